"""Crawl-wide metrics read from a real Redis."""

from __future__ import annotations

import hashlib

import pytest
import redis
from prometheus_client import CollectorRegistry

from hermit.crawl_status import read_crawl_status
from hermit.keys import CrawlKeys
from hermit.observability.collector_group import CollectorGroup
from hermit.observability.crawl_metrics import CrawlStatusCollector, status_client
from hermit.queue.redis_queue import Ack, QueuedRequest, RedisRequestQueue


def queued(n: int) -> list[QueuedRequest]:
    # Two hosts, so the host gauges have something to count.
    return [QueuedRequest(f"u{i}".encode(), 0, hashlib.sha1(f"u{i}".encode()).digest(), f"h{i % 2}.example")
            for i in range(n)]


def collector_for(client: redis.Redis, worker: str, clock=lambda: 0.0) -> CrawlStatusCollector:
    keys = CrawlKeys("c1")
    return CrawlStatusCollector(lambda: read_crawl_status(client, keys), "c1", worker, clock=clock)


def samples(collector: CrawlStatusCollector) -> dict[tuple[str, str], float]:
    return {(s.name, s.labels.get("result") or s.labels.get("reason") or ""): s.value
            for family in collector.collect() for s in family.samples}


def test_crawl_wide_values_and_this_workers_leases(redis_client):
    keys = CrawlKeys("c1")
    mine, other = RedisRequestQueue(redis_client, keys, "w1"), RedisRequestQueue(redis_client, keys, "w2")
    mine.push_many(queued(10))
    mine.push_many(queued(4))  # duplicates
    mine.lease(3)
    leases = other.lease(2)
    other.ack([Ack(leases[0].id, leases[0].host, "429", retry_after_seconds=60)])
    other.dead_letter(leases[1], "test")
    redis_client.hincrby(keys.stats, "recycles_memory_budget", 2)
    redis_client.hincrby(keys.stats, "recycles_Not A Reason", 1)
    redis_client.xadd(keys.items, {"item": b"{}"})
    values = samples(collector_for(redis_client, "w1"))
    assert values[("hermit_crawl_queued_requests", "")] == 5
    assert values[("hermit_crawl_leased_requests", "")] == 3
    assert values[("hermit_leased_requests", "")] == 3  # w1's own
    assert values[("hermit_crawl_workers", "")] == 2
    assert values[("hermit_crawl_dead_letter_entries", "")] == 1
    assert values[("hermit_crawl_dead_letters_total", "")] == 1
    assert values[("hermit_crawl_items", "")] == 1
    assert values[("hermit_crawl_dedup_checks_total", "new")] == 10
    assert values[("hermit_crawl_dedup_checks_total", "duplicate")] == 4
    assert values[("hermit_crawl_requests_leased_total", "")] == 5
    assert values[("hermit_crawl_requests_acked_total", "")] == 1
    assert values[("hermit_crawl_recycles_total", "memory_budget")] == 2
    assert values[("hermit_crawl_recycles_total", "hard_limit")] == 0  # known reasons exist from the start
    assert {reason for name, reason in values if name == "hermit_crawl_recycles_total"} == {
        "memory_budget", "hard_limit"}  # "Not A Reason" is no label value
    assert values[("hermit_crawl_bloom_fingerprints", "")] == 10
    # 5 queued on two hosts: one backed off for a minute (its 429), the other ready.
    assert values[("hermit_crawl_schedulable_requests", "")] == 5
    assert values[("hermit_crawl_host_backoffs_total", "429")] == 1
    assert values[("hermit_crawl_host_backoffs_total", "timeout")] == 0  # known reasons exist from the start
    assert values[("hermit_crawl_hosts_backed_off", "")] == 1
    hosts = {s.labels["state"]: s.value for family in collector_for(redis_client, "w1").collect()
             if family.name == "hermit_crawl_hosts" for s in family.samples}
    assert hosts == {"ready": 1, "waiting": 1, "paused": 0}
    assert 0 < values[("hermit_crawl_bloom_fill_ratio", "")] < 1
    assert values[("hermit_crawl_bloom_target_false_positive_ratio", "")] == pytest.approx(1e-4)
    assert values[("hermit_crawl_bloom_layers", "")] == 1
    assert samples(collector_for(redis_client, "w2"))[("hermit_leased_requests", "")] == 0


def test_no_bloom_series_before_the_first_fingerprint(redis_client):
    values = samples(collector_for(redis_client, "w1"))
    assert values[("hermit_crawl_queued_requests", "")] == 0
    assert not any(name.startswith("hermit_crawl_bloom") for name, _ in values)


def test_reads_are_shared_by_scrapes_within_a_second(redis_client):
    reads = []
    now = [100.0]

    def read():
        reads.append(now[0])
        return read_crawl_status(redis_client, CrawlKeys("c1"))

    collector = CrawlStatusCollector(read, "c1", "w1", clock=lambda: now[0])
    list(collector.collect())
    now[0] += 0.5
    list(collector.collect())
    now[0] += 0.6
    list(collector.collect())
    assert reads == [100.0, 101.1]


def test_an_unreachable_redis_raises_for_the_caller_to_count():
    client = status_client("redis://127.0.0.1:9/0")  # nothing listens on the discard port
    keys = CrawlKeys("c1")
    collector = CrawlStatusCollector(lambda: read_crawl_status(client.get(), keys), "c1", "w1")
    with pytest.raises(redis.ConnectionError):
        list(collector.collect())
    registry = CollectorRegistry()
    registry.register(CollectorGroup("c1", {"crawl_status": collector}))
    assert registry.get_sample_value(
        "hermit_metrics_collect_errors_total", {"crawl": "c1", "collector": "crawl_status"}) == 1
