"""A worker's leases on a real Redis: renewed by its heartbeat, dead workers' returned,
stale ones given back, unstarted ones and the rest returned when it stops."""

from __future__ import annotations

import hashlib
import time

import pytest
import redis

from hermit.keys import CrawlKeys
from hermit.queue.frontier import Frontier
from hermit.queue.redis_queue import Lease, QueuedRequest, read_status
from hermit.redis_server import EmbeddedRedis
from hermit.worker.leases import WorkerLeases
from hermit.worker.redis_health import RedisHealth

KEYS = CrawlKeys("leases")


class Stats(dict):
    """The counters of Scrapy's stats collector that the leases add to."""

    def inc_value(self, key: str, count: int = 1, start: int = 0) -> None:
        self[key] = self.get(key, start) + count


def requests(count: int) -> list[QueuedRequest]:
    urls = [f"http://h{i % 3}.example/{i}" for i in range(count)]
    return [QueuedRequest(url.encode(), 0, hashlib.sha1(url.encode()).digest(), url.split("/")[2]) for url in urls]


def worker(client, name: str, lease_timeout_seconds: float = 60.0) -> tuple[Frontier, WorkerLeases, Stats]:
    queue = Frontier(client, KEYS, name, lease_timeout_seconds=lease_timeout_seconds)
    stats = Stats()
    return queue, WorkerLeases(queue, stats, RedisHealth(), lease_timeout_seconds), stats


def lease_all(queue: Frontier) -> list:
    leased = []
    while batch := queue.lease(50):
        leased += batch
    return leased


def test_a_heartbeat_returns_a_dead_workers_leases_and_says_there_is_work(redis_client):
    queue, leases, _ = worker(redis_client, "alive")
    queue.push_many(requests(12))
    assert leases.heartbeat_due()
    assert leases.heartbeat() is False  # nothing came back
    assert not leases.heartbeat_due()  # the next one is a third of a lease timeout away

    dead_queue, _, _ = worker(redis_client, "dead", lease_timeout_seconds=0.1)
    assert len(lease_all(dead_queue)) == 12
    time.sleep(0.3)  # its leases are past their deadline, and it sent no heartbeat
    assert leases.heartbeat() is True
    status = read_status(redis_client, KEYS)
    assert (status.queued, status.leased) == (12, 0)


def test_a_heartbeat_without_redis_counts_the_error_and_waits_for_redis(tmp_path):
    with EmbeddedRedis(data_dir=tmp_path / "redis") as server:
        client = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)
        _, leases, stats = worker(client, "w")
    assert leases.heartbeat() is False
    assert stats["hermit/redis/errors"] == 1 and leases.health.errors_total == 1
    leases.return_stale()  # noted as a failure, nothing raised
    assert leases.return_unstarted([Lease("1", 0, b"entry", "h0.example")]) is False  # still held
    leases.release_all()  # they expire after the lease timeout
    assert leases.health.errors_total == 3 and "hermit/leases/returned" not in stats


def test_leases_redis_kept_after_losing_writes_are_returned_as_stale(redis_client):
    queue, leases, stats = worker(redis_client, "w")
    queue.push_many(requests(5))
    assert len(lease_all(queue)) == 5  # their acks were lost: the worker holds none of them
    leases.return_stale()
    assert stats["hermit/leases/stale_returned"] == 5
    assert read_status(redis_client, KEYS).queued == 5


@pytest.mark.parametrize("started", [0, 3])
def test_unstarted_requests_go_back_at_once_and_the_rest_at_close(redis_client, started):
    queue, leases, stats = worker(redis_client, "w")
    queue.push_many(requests(8))
    held = lease_all(queue)
    assert leases.return_unstarted(held[started:]) is True
    assert stats["hermit/leases/returned"] == 8 - started
    assert read_status(redis_client, KEYS).leased == started

    leases.release_all()
    assert stats["hermit/leases/returned"] == 8
    status = read_status(redis_client, KEYS)
    assert (status.queued, status.leased) == (8, 0)
