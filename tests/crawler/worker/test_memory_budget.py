"""A worker over its memory budget drains and exits to be replaced; over its hard limit it
exits at once. Either way it gives back every lease, and nothing it processed is lost."""

from __future__ import annotations

import subprocess
import sys

import redis

from hermit.crawl_status import read_crawl_status
from hermit.keys import CrawlKeys
from hermit.worker.exit_codes import EXIT_CONFIG, EXIT_MEMORY_BUDGET, EXIT_MEMORY_HARD_LIMIT

# Any Scrapy process is far above this: the budget is crossed at the first check.
TINY_BYTES = 20 * 2**20


def run_worker(redis_url: str, site_url: str, *settings: str) -> subprocess.CompletedProcess[str]:
    args = [sys.executable, "-m", "hermit.cli", "worker", "demo", "--redis", redis_url, "--crawl", "m",
            "-a", f"url={site_url}", "-s", "LOG_LEVEL=INFO", "-s", "HERMIT_MEMORY_CHECK_SECONDS=0.2"]
    for setting in settings:
        args += ["-s", setting]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def crawl_state(redis_url: str):
    client = redis.Redis.from_url(redis_url)
    try:
        return read_crawl_status(client, CrawlKeys("m"))
    finally:
        client.close()


def test_over_the_soft_budget_the_worker_drains_and_exits_to_be_replaced(redis_url, demo_site):
    proc = run_worker(redis_url, demo_site.url, f"HERMIT_MEMORY_BUDGET_BYTES={TINY_BYTES}")
    assert proc.returncode == EXIT_MEMORY_BUDGET, proc.stderr[-3000:]
    assert "over the memory budget 20 MiB" in proc.stderr
    assert "Closing spider (memory_budget)" in proc.stderr
    status = crawl_state(redis_url)
    # Nothing is left leased: unstarted requests went back, in-flight ones finished.
    assert status.queue.leased == 0 and status.queue.workers == 0
    assert status.queue.queued > 0  # the rest of the crawl waits for the next worker
    assert status.queue.counters["recycles_memory_budget"] == 1
    # Every processed page's item is in the stream (the 404 page has none).
    assert status.items == status.queue.counters["acked"] - 1 or status.items == status.queue.counters["acked"]


def test_over_the_hard_limit_the_worker_exits_at_once_returning_its_leases(redis_url, demo_site):
    proc = run_worker(redis_url, demo_site.url, f"HERMIT_MEMORY_HARD_LIMIT_BYTES={TINY_BYTES}")
    assert proc.returncode == EXIT_MEMORY_HARD_LIMIT, proc.stderr[-3000:]
    assert "over the hard limit 20 MiB" in proc.stderr
    assert "Spider closed" not in proc.stderr  # it did not wait for a graceful close
    status = crawl_state(redis_url)
    assert status.queue.leased == 0 and status.queue.queued > 0
    assert status.queue.counters["recycles_hard_limit"] == 1


def test_a_replacement_worker_finishes_the_crawl_with_nothing_lost(redis_url, demo_site):
    first = run_worker(redis_url, demo_site.url, f"HERMIT_MEMORY_BUDGET_BYTES={TINY_BYTES}")
    assert first.returncode == EXIT_MEMORY_BUDGET
    second = run_worker(redis_url, demo_site.url, "HERMIT_IDLE_CLOSE_SECONDS=1")
    assert second.returncode == 0, second.stderr[-3000:]
    client = redis.Redis.from_url(redis_url)
    import json

    urls = [json.loads(f[b"item"])["url"] for _, f in client.xrange(CrawlKeys("m").items)]
    assert sorted(urls) == sorted(demo_site.site.expected_urls(demo_site.url))


def test_inconsistent_limits_are_a_configuration_error(redis_url, demo_site):
    proc = run_worker(redis_url, demo_site.url, "HERMIT_MEMORY_BUDGET_BYTES=600000000",
                      "HERMIT_MEMORY_HARD_LIMIT_BYTES=500000000")
    assert proc.returncode == EXIT_CONFIG
    assert "HERMIT_MEMORY_HARD_LIMIT_BYTES (500000000) must be above HERMIT_MEMORY_BUDGET_BYTES" in proc.stderr
    bad = run_worker(redis_url, demo_site.url, "HERMIT_MEMORY_BUDGET_BYTES=lots")
    assert bad.returncode == EXIT_CONFIG
    assert "HERMIT_MEMORY_BUDGET_BYTES must be an integer, got 'lots'" in bad.stderr
