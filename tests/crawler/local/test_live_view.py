"""The live view of a local crawl shows each worker's state, memory and where it serves metrics."""

from __future__ import annotations

import io
import re
import urllib.request

import pytest
from rich.console import Console

from hermit.local.live_view import plain_line, render
from hermit.local.runner import LocalCrawl, LocalCrawlOptions


@pytest.mark.parametrize("demo_site", [150], indirect=True)
def test_each_worker_row_shows_its_metrics_and_diagnostics_addresses(tmp_path, redis_url, demo_site):
    seen: list[str] = []
    scraped: list[bytes] = []

    def on_refresh(status, pool, progress, rss) -> None:
        console = Console(record=True, width=400, file=io.StringIO())
        console.print(render(status, pool, progress, rss))
        text = console.export_text()
        seen.append(text)
        for url in re.findall(r"metrics (http://127\.0\.0\.1:\d+/metrics)", text):
            if not scraped:
                with urllib.request.urlopen(url, timeout=10) as response:
                    scraped.append(response.read())
        assert "pages" in plain_line(status, pool, progress, rss)

    # Leases long enough that none expires on a loaded machine: each page is written once.
    options = LocalCrawlOptions(
        workers=2, redis_url=redis_url, crawl="view", output=tmp_path / "items.jsonl", log_dir=tmp_path / "logs",
        idle_close_seconds=2.0, lease_timeout_seconds=30.0, spider_args={"url": demo_site.url}, refresh_seconds=0.2,
        settings={"CONCURRENT_REQUESTS": "4"},
    )
    result = LocalCrawl(options, on_refresh=on_refresh).run()
    assert result.items_written == len(demo_site.site.expected_urls(demo_site.url))
    rows = [line for text in seen for line in text.splitlines() if "worker 0" in line or "worker 1" in line]
    served = [row for row in rows if re.search(r"metrics http://127\.0\.0\.1:\d+/metrics, "
                                               r"diagnostics http://127\.0\.0\.1:\d+/", row)]
    assert {row.split("│")[1].strip() for row in served} == {"worker 0", "worker 1"}, rows[-4:]
    assert scraped and b"hermit_build_info" in scraped[0]
