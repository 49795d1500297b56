"""Crawl-wide limits: two workers of one crawl stop together once the crawl's pages or items
reach HERMIT_CRAWL_PAGECOUNT / HERMIT_CRAWL_ITEMCOUNT, counted in its Redis; what is queued
stays queued, and a later run with a higher limit, then none, carries on with nothing lost."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from hermit.crawl_status import read_crawl_status
from hermit.keys import CrawlKeys
from hermit.worker.exit_codes import EXIT_CONFIG, EXIT_FINISHED

CRAWL = "limited"
CONCURRENCY = 4
WORKERS = 2


def start_worker(redis_url: str, site_url: str, log: Path, *settings: str) -> subprocess.Popen[bytes]:
    args = [sys.executable, "-m", "hermit.cli", "worker", "demo", "--redis", redis_url, "--crawl", CRAWL,
            "-a", f"url={site_url}", "-s", "LOG_LEVEL=INFO", "-s", f"CONCURRENT_REQUESTS={CONCURRENCY}",
            "-s", "HERMIT_IDLE_CLOSE_SECONDS=1", "-s", "HERMIT_METRICS_ENABLED=False",
            "-s", "HERMIT_DIAGNOSTICS_ENABLED=False"]
    for setting in settings:
        args += ["-s", setting]
    with log.open("wb") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def run_workers(redis_url: str, site_url: str, logs: Path, name: str, *settings: str,
                workers: int = WORKERS) -> list[str]:
    """Run *workers* workers at once to their end; their logs (each must exit 0)."""
    paths = [logs / f"{name}-{i}.log" for i in range(workers)]
    procs = [start_worker(redis_url, site_url, path, *settings) for path in paths]
    texts = []
    for proc, path in zip(procs, paths):
        code = proc.wait(timeout=300)
        texts.append(path.read_text())
        assert code == EXIT_FINISHED, texts[-1][-4000:]
    return texts


def status(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    try:
        return read_crawl_status(client, CrawlKeys(CRAWL))
    finally:
        client.close()


def streamed_urls(redis_url: str) -> list[str]:
    client = redis.Redis.from_url(redis_url)
    try:
        return [json.loads(fields[b"item"])["url"] for _, fields in client.xrange(CrawlKeys(CRAWL).items)]
    finally:
        client.close()


def dequeued(log: str) -> int:
    match = re.search(r"'scheduler/dequeued/redis': (\d+)", log)
    return int(match[1]) if match else 0


#: limit setting -> (the crawl's counter it limits, the finish reason, other settings).
LIMITS = {
    "HERMIT_CRAWL_PAGECOUNT": ("pages_fetched", "crawl_pagecount", ()),
    # Items are counted as callbacks produce them, which on a fast site lag the downloads
    # (pages downloaded and not yet parsed also give their items: see the docs); spaced
    # downloads are parsed as they come, so in-flight downloads bound what goes over.
    "HERMIT_CRAWL_ITEMCOUNT": ("items_scraped", "crawl_itemcount", ("DOWNLOAD_DELAY=0.05",)),
}


@pytest.mark.parametrize("demo_site", [150], indirect=True)
@pytest.mark.parametrize("setting", sorted(LIMITS))
def test_workers_stop_together_at_the_crawl_limit_and_a_higher_one_carries_on(redis_url, demo_site, tmp_path,
                                                                                setting):
    counter, reason, extra = LIMITS[setting]
    expected = demo_site.site.expected_urls(demo_site.url)
    # Beyond the limit: what the workers had in flight when they learned of it (the demo
    # spider yields one item per page).
    slack = WORKERS * CONCURRENCY

    logs = run_workers(redis_url, demo_site.url, tmp_path, "first", f"{setting}=30", *extra)
    assert all(f"'finish_reason': '{reason}'" in log for log in logs)
    first = status(redis_url)
    assert 30 <= first.queue.counters[counter] <= 30 + slack, first.queue.counters
    assert first.queue.counters[f"closed_{reason}"] == WORKERS
    # Every worker stopped taking requests: nothing is leased, the rest of the crawl is queued.
    assert first.queue.leased == 0 and first.queue.workers == 0 and first.queue.queued > 0
    assert first.items == len(streamed_urls(redis_url)) < len(expected)
    assert first.queue.counters["pages_fetched"] >= first.queue.counters["items_scraped"] == first.items
    shown = subprocess.run([sys.executable, "-m", "hermit.cli", "status", "--redis", redis_url, "--crawl", CRAWL],
                           capture_output=True, text=True, timeout=60).stdout
    assert re.search(rf"^  {counter} +{first.queue.counters[counter]}$", shown, re.M), shown
    assert re.search(rf"^  closed_{reason} +{WORKERS}$", shown, re.M), shown

    # A worker started with the same limit closes at once, before it takes a request.
    late = run_workers(redis_url, demo_site.url, tmp_path, "late", f"{setting}=30", *extra, workers=1)[0]
    assert f"'finish_reason': '{reason}'" in late and dequeued(late) == 0
    assert status(redis_url).queue.queued == first.queue.queued

    # A higher limit carries on from the crawl's count.
    logs = run_workers(redis_url, demo_site.url, tmp_path, "higher", f"{setting}=60", *extra)
    assert all(f"'finish_reason': '{reason}'" in log for log in logs)
    higher = status(redis_url)
    assert 60 <= higher.queue.counters[counter] <= 60 + slack, higher.queue.counters
    assert higher.queue.queued > 0

    # Without a limit the crawl ends, every page's item in the stream.
    logs = run_workers(redis_url, demo_site.url, tmp_path, "rest")
    assert all("'finish_reason': 'finished'" in log for log in logs)
    urls = streamed_urls(redis_url)
    assert set(urls) == expected
    assert len(urls) - len(expected) <= WORKERS * CONCURRENCY  # pages in flight at a stop fetched again at most
    done = status(redis_url)
    assert done.queue.queued == 0 and done.queue.counters["items_scraped"] == len(urls)


def test_a_limit_that_is_not_a_count_is_a_configuration_error(redis_url, demo_site, tmp_path):
    for value, message in (("-1", "HERMIT_CRAWL_PAGECOUNT must be at least 0, got '-1'"),
                           ("many", "HERMIT_CRAWL_PAGECOUNT must be an integer, got 'many'")):
        log = tmp_path / f"bad{value}.log"
        assert start_worker(redis_url, demo_site.url, log, f"HERMIT_CRAWL_PAGECOUNT={value}").wait(60) == EXIT_CONFIG
        assert message in log.read_text()
