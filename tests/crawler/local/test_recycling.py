"""The recyclable pool: a leaky spider crawls to the end under a memory budget, and chaos
(tens of SIGTERMs and SIGKILLs, a Redis crash) loses no page and no item."""

from __future__ import annotations

import json
import random
import signal
import sys
import time
from pathlib import Path

import pytest

from hermit.demo import leaky_spider
from hermit.demo.process import DemoSiteProcess
from hermit.local.pool import WorkerPool
from hermit.local.runner import LocalCrawl, LocalCrawlOptions
from hermit.redis_server import EmbeddedRedis

MiB = 2**20


def item_urls(path: Path) -> list[str]:
    return [json.loads(line)["url"] for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_a_leaky_spider_crawls_20000_pages_under_a_budget_with_many_recycles(tmp_path, redis_url, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no Scrapy project here: the workers find the spider by SPIDER_MODULES
    draining_at_once: list[int] = []

    def on_refresh(status, pool, progress, rss):
        draining_at_once.append(sum(1 for s in pool.slots if s.running and s.draining_since is not None))

    with DemoSiteProcess(pages=20_000, slow_seconds=0.2, huge_bytes=100_000) as site:
        options = LocalCrawlOptions(
            spider="leaky", workers=3, redis_url=redis_url, crawl="leaky", output=tmp_path / "items.jsonl",
            log_dir=tmp_path / "logs", idle_close_seconds=2.0, lease_timeout_seconds=10.0,
            spider_args={"url": site.url}, refresh_seconds=0.2,
            settings={"LOG_LEVEL": "INFO", "SPIDER_MODULES": leaky_spider.__name__},
            memory_budget_bytes=140 * MiB, max_concurrent_recycles=1, min_worker_age_seconds=3.0,
        )
        result = LocalCrawl(options, on_refresh=on_refresh).run()
        expected = {site.url} | {f"{site.url}p/{n}.html" for n in range(20_000)}
    urls = item_urls(tmp_path / "items.jsonl")
    assert set(urls) == expected  # every page fetched, every item delivered
    assert len(urls) - len(expected) <= result.status.queue.counters.get("expired", 0)
    assert len(result.recycles) >= 4
    assert max(draining_at_once) <= 1  # never more than the policy allows at once
    exits = [code for codes in result.exit_codes.values() for code in codes]
    assert all(code >= 0 for code in exits), f"a worker was killed: {exits}"  # no OOM-style kill
    assert result.status.queue.leased == 0 and result.status.queue.queued == 0


@pytest.mark.slow
@pytest.mark.parametrize("appendfsync", ["always", "everysec"])
def test_chaos_tens_of_kills_and_a_redis_crash_lose_nothing(tmp_path, appendfsync, record_property):
    pages = 3000
    rng = random.Random(20261123)
    server = EmbeddedRedis(data_dir=tmp_path / "redis", appendonly=True, appendfsync=appendfsync).start()
    kills: list[tuple[int, str]] = []
    state = {"next_kill_at": 100, "redis_restarted": False}

    def on_refresh(status, pool, progress, rss):
        acked = status.queue.counters.get("acked", 0)
        if not state["redis_restarted"] and acked >= pages // 2:
            state["redis_restarted"] = True
            server.kill()
            time.sleep(1.5)
            server.start()
            return
        if acked >= state["next_kill_at"] and len(kills) < 30:
            running = [slot.index for slot in pool.slots if slot.running]
            if running:
                index = rng.choice(running)
                signum = rng.choice([signal.SIGTERM, signal.SIGKILL])
                pool.signal_worker(index, signum)
                kills.append((index, signum.name))
            state["next_kill_at"] = acked + pages // 40

    try:
        with DemoSiteProcess(pages=pages, slow_seconds=0.2, huge_bytes=100_000) as site:
            options = LocalCrawlOptions(
                workers=4, redis_url=server.url, crawl="chaos", output=tmp_path / "items.jsonl",
                log_dir=tmp_path / "logs", idle_close_seconds=2.0, lease_timeout_seconds=3.0,
                spider_args={"url": site.url}, refresh_seconds=0.1,
                settings={"LOG_LEVEL": "INFO", "CONCURRENT_REQUESTS": "8"},
            )
            result = LocalCrawl(options, on_refresh=on_refresh).run()
            expected = site.site.expected_urls(site.url)
    finally:
        server.cleanup()
    assert state["redis_restarted"] and len(kills) >= 20, kills
    urls = item_urls(tmp_path / "items.jsonl")
    assert expected - set(urls) == set(), "pages lost"
    assert set(urls) - expected == set()
    duplicates = len(urls) - len(set(urls))
    expired = result.status.queue.counters.get("expired", 0)
    if appendfsync == "always":
        # Only requests whose leases expired (SIGKILL, the Redis outage) are fetched
        # twice; SIGTERMed workers finish or return what they hold. (With "everysec"
        # Redis may also forget up to a second of leases and acks: those pages are
        # fetched again too, uncounted; see docs/recycling.md.)
        assert duplicates <= expired
    record_property("kills", len(kills))
    record_property("duplicates", duplicates)
    record_property("expired_leases", expired)


def test_a_worker_stuck_draining_is_killed_and_replaced(tmp_path):
    # A process that ignores SIGTERM stands in for a worker whose drain hangs.
    command = [sys.executable, "-c",
               "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); "
               "time.sleep(600)"]
    pool = WorkerPool(command, 1, tmp_path / "logs", drain_timeout_seconds=0.2)
    pool.start()
    try:
        first_pid = pool.slots[0].pid
        deadline = time.monotonic() + 30
        while "ready" not in pool.slots[0].log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        pool.recycle(0, "test", None)
        deadline = time.monotonic() + 60
        while pool.slots[0].pid in (first_pid, None) and time.monotonic() < deadline:
            pool.poll()
            time.sleep(0.1)
        assert pool.slots[0].pid not in (first_pid, None), pool.events
        assert any("still draining" in event for event in pool.events)
        assert pool.slots[0].exits == [-signal.SIGKILL]
        assert pool.slots[0].restarts == 1
    finally:
        pool.stop(timeout=1)


def test_a_warm_spare_starts_before_the_recycled_worker_has_drained(tmp_path):
    # Workers that take a while to drain: on SIGTERM each says so, waits for a file,
    # then exits with the "stopped" status.
    release = tmp_path / "release"
    command = [sys.executable, "-c",
               "import os, signal, sys, time\n"
               "def drain(*_):\n"
               "    print('draining', flush=True)\n"
               f"    while not os.path.exists({str(release)!r}): time.sleep(0.02)\n"
               "    sys.exit(5)\n"
               "signal.signal(signal.SIGTERM, drain)\n"
               "print('ready', flush=True)\n"
               "time.sleep(600)\n"]
    pool = WorkerPool(command, 2, tmp_path / "logs", drain_timeout_seconds=60, warm_spare=True)
    pool.start()
    try:
        deadline = time.monotonic() + 60
        while "ready" not in pool.slots[0].log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # its SIGTERM handler is in place
        old_pid = pool.slots[0].pid
        pool.recycle(0, "test", None)
        # The replacement runs at once, beside the old process, which drains.
        assert pool.slots[0].running and pool.slots[0].pid != old_pid
        assert [old.process.pid for old in pool.retiring] == [old_pid]
        assert pool.slots[0].restarts == 1 and pool.slots[1].restarts == 0
        while "draining" not in pool.slots[0].log_path.read_text() and time.monotonic() < deadline:
            pool.poll()
            time.sleep(0.05)
        assert pool.retiring[0].running
        release.touch()
        while pool.retiring and time.monotonic() < deadline:
            pool.poll()
            time.sleep(0.05)
        assert not pool.retiring, pool.events
        assert pool.slots[0].exits == [5]  # the old process's drain, recorded on its slot
        assert pool.slots[0].running and pool.slots[0].restarts == 1  # not replaced twice
        assert any("replaced worker 0 exited (stopped)" in event for event in pool.events)
    finally:
        pool.stop(timeout=1)
    assert not pool.any_running
