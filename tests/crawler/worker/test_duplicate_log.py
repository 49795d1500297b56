"""Duplicates: logged as Scrapy's own dupefilter logs them (the first one, or all with
DUPEFILTER_DEBUG), and dropped by the worker itself once Redis confirmed their fingerprints."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

FILTERED = "Filtered duplicate request: "


def crawl_log(redis_url: str, site_url: str, crawl: str, *settings: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "hermit.cli", "worker", "demo", "--redis", redis_url, "--crawl", crawl,
         "-a", f"url={site_url}", "-s", "LOG_LEVEL=DEBUG", "-s", "HERMIT_IDLE_CLOSE_SECONDS=0.5",
         "-s", "HERMIT_METRICS_ENABLED=False", "-s", "HERMIT_DIAGNOSTICS_ENABLED=False", *settings],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stderr


def stat(log: str, name: str) -> int:
    """A stat from the dump Scrapy logs at the end (0 when absent)."""
    assert "Dumping Scrapy stats" in log, log[-3000:]
    match = re.search(rf"'{re.escape(name)}': (\d+)", log)
    return int(match.group(1)) if match else 0


def filtered_count(log: str) -> int:
    """The crawl's duplicates."""
    return stat(log, "dupefilter/filtered")


@pytest.mark.parametrize("demo_site", [40], indirect=True)
def test_only_the_first_duplicate_is_logged_unless_dupefilter_debug(redis_url, demo_site):
    log = crawl_log(redis_url, demo_site.url, "quiet")
    lines = [line for line in log.splitlines() if FILTERED in line]
    assert filtered_count(log) > 40  # the demo site links every page many times
    assert len(lines) == 1 and lines[0].endswith(
        "- no more duplicates will be shown (see DUPEFILTER_DEBUG to show all duplicates)")

    log = crawl_log(redis_url, demo_site.url, "verbose", "-s", "DUPEFILTER_DEBUG=True")
    lines = [line for line in log.splitlines() if FILTERED in line]
    assert len(lines) == filtered_count(log) > 40
    assert not any("no more duplicates" in line for line in lines)


@pytest.mark.parametrize("demo_site", [150], indirect=True)
def test_known_fingerprints_spare_redis_the_repeated_links_and_change_nothing_else(redis_url, demo_site):
    pages = len(demo_site.site.expected_urls(demo_site.url))
    remembered = crawl_log(redis_url, demo_site.url, "remembered", "-s", "LOG_LEVEL=INFO")
    asked = crawl_log(redis_url, demo_site.url, "asked", "-s", "LOG_LEVEL=INFO",
                      "-s", "HERMIT_DEDUP_KNOWN_FINGERPRINTS=0")
    for log in (remembered, asked):
        assert stat(log, "item_scraped_count") == pages
    # The same requests were queued and the same links found duplicates either way;
    # most of those never reached Redis.
    assert stat(remembered, "scheduler/enqueued/redis") == stat(asked, "scheduler/enqueued/redis") >= pages
    assert filtered_count(remembered) == filtered_count(asked) > 10 * pages
    assert stat(asked, "hermit/dedup/known_locally") == 0
    assert stat(remembered, "hermit/dedup/known_locally") > 0.8 * filtered_count(remembered)
