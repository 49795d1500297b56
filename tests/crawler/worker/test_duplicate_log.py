"""Duplicates are logged as Scrapy's own dupefilter logs them: the first one, or all with DUPEFILTER_DEBUG."""

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


def filtered_count(log: str) -> int:
    """The crawl's duplicates, from the stats Scrapy dumps at the end."""
    match = re.search(r"'dupefilter/filtered': (\d+)", log)
    assert match, log[-3000:]
    return int(match.group(1))


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
