"""What a response or a download error says about its host: the parsing behind fleet-wide backoff."""

from __future__ import annotations

import email.utils

from twisted.internet import error as net_errors

from hermit.worker.host_signals import RobotsCrawlDelay, error_reason, retry_after_seconds


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_seconds(b"120") == 120.0
    now = 1_800_000_000.0
    assert retry_after_seconds(email.utils.formatdate(now + 30, usegmt=True), now=now) == 30.0
    assert retry_after_seconds(email.utils.formatdate(now - 30, usegmt=True), now=now) == 0.0  # in the past
    assert retry_after_seconds(b"soon") == 0.0 and retry_after_seconds(None) == 0.0 and retry_after_seconds(b"-5") == 0.0


def test_timeouts_and_connection_errors_back_off_other_errors_do_not():
    assert error_reason(net_errors.TimeoutError()) == "timeout"
    assert error_reason(net_errors.ConnectionRefusedError()) == "connection"
    assert error_reason(ValueError("a bug in a middleware")) is None
    try:
        from scrapy.exceptions import DownloadTimeoutError  # Scrapy >= 2.19
    except ImportError:
        return
    assert error_reason(DownloadTimeoutError()) == "timeout"


def test_robots_crawl_delay_is_read_for_our_agent_and_capped():
    class Crawler:
        class settings:
            @staticmethod
            def get(name, default=None):
                return {"USER_AGENT": "hermitbot"}.get(name, default)

    robots = RobotsCrawlDelay(Crawler(), max_delay_seconds=10)
    assert robots.crawl_delay(b"User-agent: *\nCrawl-delay: 2.5\n") == 2.5
    assert robots.crawl_delay(b"User-agent: hermitbot\nCrawl-delay: 3600\n") == 10  # capped
    assert robots.crawl_delay(b"User-agent: other\nCrawl-delay: 5\n") == 0
    assert robots.crawl_delay(b"\xff\xfe garbage") == 0
