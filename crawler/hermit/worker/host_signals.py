"""What servers say about their hosts, told to the whole fleet.

``HostSignalsMiddleware`` (a downloader middleware the add-on turns on) tells the
scheduler when the download of a leased request ends, which frees its host's slot
for the whole fleet at once (Scrapy counts a host's concurrency by downloads in
flight, not by callbacks), and what it says about its host: 429 and 503 (with
``Retry-After`` when given), timeouts and connection errors back the host off for
every worker; any other answer ends a backoff. Without it a slot is freed at the
request's ack.

``RobotsCrawlDelay`` (an extension, with ``ROBOTSTXT_OBEY``) reads the
``Crawl-delay`` of each robots.txt the worker downloads and records it for the
host, capped by ``HERMIT_ROBOTS_CRAWL_DELAY_MAX_SECONDS``; every lease of that
host then waits at least as long.

Stats: ``hermit/hosts/backoff/<reason>``, ``hermit/hosts/robots_delay``.
"""

from __future__ import annotations

import email.utils
import logging
import time
from typing import TYPE_CHECKING

from scrapy import signals
from scrapy.exceptions import NotConfigured

from hermit.queue.hosts import HostControl, clean_key
from hermit.settings import read
from hermit.worker.session import session_of

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

logger = logging.getLogger(__name__)

#: Statuses that mean "too fast" or "overloaded": the host backs off.
BACKOFF_STATUSES = {429: "429", 503: "503"}


def retry_after_seconds(value: bytes | str | None, now: float | None = None) -> float:
    """Seconds a ``Retry-After`` header asks to wait (delta-seconds or an HTTP date); 0 if none or unreadable."""
    if not value:
        return 0.0
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    text = text.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return 0.0
    if when is None:
        return 0.0
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _classes(module: object, *names: str) -> tuple[type, ...]:
    return tuple(getattr(module, name) for name in names if isinstance(getattr(module, name, None), type))


def error_reason(exception: BaseException) -> str | None:
    """'timeout' or 'connection' for download errors that say the host is struggling, else None.

    Scrapy >= 2.19 raises its own exceptions (``scrapy.exceptions.DownloadTimeoutError``
    …); older ones raise Twisted's.
    """
    from scrapy import exceptions as scrapy_errors
    from twisted.internet import error as net_errors
    from twisted.web import client as web_client

    timeouts = _classes(net_errors, "TimeoutError", "TCPTimedOutError") + _classes(
        scrapy_errors, "DownloadTimeoutError")
    connection = _classes(
        net_errors, "ConnectionRefusedError", "ConnectionLost", "ConnectionDone", "ConnectError"
    ) + _classes(web_client, "ResponseFailed") + _classes(
        scrapy_errors, "DownloadConnectionRefusedError", "DownloadFailedError", "ResponseDataLossError")
    if isinstance(exception, timeouts):
        return "timeout"
    if isinstance(exception, connection):
        return "connection"
    return None


class HostSignalsMiddleware:
    """Downloader middleware: what each response or download error says about its host."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HostSignalsMiddleware:
        return cls(crawler)

    def _note(self, request: Request, outcome: str, retry_after: float = 0.0) -> None:
        session = session_of(self.crawler)
        if session is not None:
            session.download_finished(request, outcome, retry_after)
        if outcome not in ("ok", "") and self.crawler.stats is not None:
            self.crawler.stats.inc_value(f"hermit/hosts/backoff/{outcome}")

    def process_response(self, request: Request, response: Response, spider: Spider | None = None) -> Response:
        reason = BACKOFF_STATUSES.get(response.status)
        if reason is None:
            self._note(request, "ok")
        else:
            wait = retry_after_seconds(response.headers.get(b"Retry-After"))
            logger.info("%s answered %d%s: backing the host off for every worker", request.url,
                        response.status, f" (Retry-After {wait:.0f}s)" if wait else "")
            self._note(request, reason, wait)
        return response

    def process_exception(self, request: Request, exception: Exception, spider: Spider | None = None) -> None:
        # Any error ends the download (its slot comes free); only some say the host struggles.
        self._note(request, error_reason(exception) or "")
        return None


class RobotsCrawlDelay:
    """Records robots.txt ``Crawl-delay`` per host for the whole fleet (with ROBOTSTXT_OBEY)."""

    def __init__(self, crawler: Crawler, max_delay_seconds: float) -> None:
        self.crawler = crawler
        self.max_delay_seconds = max_delay_seconds
        self.user_agent = crawler.settings.get("ROBOTSTXT_USER_AGENT") or crawler.settings.get("USER_AGENT") or "*"
        self._seen: set[str] = set()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RobotsCrawlDelay:
        if not crawler.settings.getbool("ROBOTSTXT_OBEY"):
            raise NotConfigured("ROBOTSTXT_OBEY is off")
        extension = cls(crawler, read(crawler.settings, "HERMIT_ROBOTS_CRAWL_DELAY_MAX_SECONDS"))
        crawler.signals.connect(extension.response_downloaded, signal=signals.response_downloaded)
        return extension

    def crawl_delay(self, body: bytes) -> float:
        """The Crawl-delay robots.txt *body* sets for this worker's user agent, capped; 0 if none."""
        from protego import Protego

        try:
            parser = Protego.parse(body.decode("utf-8", errors="replace"))
            delay = parser.crawl_delay(self.user_agent)
        except Exception:  # a robots.txt is outside data: never let it break the worker
            logger.debug("Unreadable robots.txt", exc_info=True)
            return 0.0
        if not delay or delay < 0:
            return 0.0
        return min(float(delay), self.max_delay_seconds)

    def response_downloaded(self, response: Response, request: Request, spider: Spider | None = None) -> None:
        if not request.url.endswith("/robots.txt") or response.status != 200:
            return
        from scrapy.utils.httpobj import urlparse_cached

        host = clean_key(urlparse_cached(request).hostname or "")
        if host in self._seen:
            return
        self._seen.add(host)
        delay = self.crawl_delay(response.body)
        session = session_of(self.crawler)
        if session is None:
            return
        try:
            HostControl(session.client, session.keys).set_robots_delay(host, delay)
        except Exception as exc:
            logger.warning("Could not record the Crawl-delay of %s: %s", host, exc)
            return
        if delay:
            self.crawler.stats.inc_value("hermit/hosts/robots_delay")
            logger.info("robots.txt of %s sets Crawl-delay %.2fs: every worker waits as long between its pages",
                        host, delay)
