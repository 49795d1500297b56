"""``hermit queue migrate``: a crawl queued in the one-queue layout moves to per-host queues, nothing lost."""

from __future__ import annotations

import time

from click.testing import CliRunner
from scrapy import Request

from hermit.cli import main
from hermit.keys import CrawlKeys
from hermit.queue.codec import encode_request
from hermit.queue.redis_queue import Ack, RedisRequestQueue, read_status

KEYS = CrawlKeys("old")


def old_layout(client) -> list[bytes]:
    """Requests on two hosts at two priorities, and a dead worker's lease, as the old layout kept them."""
    entries = {p: [encode_request(Request(f"http://127.0.0.{2 + i % 2}:8000/{p}/{i}.html"), None) for i in range(5)]
               for p in (0, 3)}
    for p, values in entries.items():
        client.rpush(KEYS.legacy_queue(p), *values)
        client.zadd(KEYS.legacy_priorities, {str(p): p})
    client.rpush(KEYS.legacy_queue(0), b"not a request")
    leased = encode_request(Request("http://127.0.0.9:8000/leased.html"), None)
    client.hset(KEYS.leases("gone"), "7", b"0 " + leased)
    client.zadd(KEYS.workers, {"gone": int(time.time() * 1000) - 60_000})
    return [e for values in entries.values() for e in values] + [leased]


def test_migrate_moves_every_request_to_its_host(redis_client, redis_url):
    expected = old_layout(redis_client)
    assert read_status(redis_client, KEYS).legacy_layout
    result = CliRunner().invoke(main, ["queue", "migrate", "--redis", redis_url, "--crawl", "old", "--batch", "3"])
    assert result.exit_code == 0, result.output
    assert "moved 11 requests" in result.output and "1 old leases returned" in result.output
    status = read_status(redis_client, KEYS)
    assert not status.legacy_layout and status.queued == 11 and status.dead_letters == 1
    assert status.hosts.with_queue == 3
    q = RedisRequestQueue(redis_client, KEYS, "new")
    got = []
    while batch := q.lease(50):
        got += batch
        q.ack([Ack(lease.id, lease.host) for lease in batch])
    assert sorted(lease.entry for lease in got) == sorted(expected)
    # Priorities survive: within a host, priority 3 came before priority 0.
    per_host = [lease.priority for lease in got if lease.host == "127.0.0.2"]
    assert per_host == sorted(per_host, reverse=True)


def test_migrate_refuses_while_workers_are_alive(redis_client, redis_url):
    old_layout(redis_client)
    redis_client.zadd(KEYS.workers, {"busy": int(time.time() * 1000) + 60_000})
    result = CliRunner().invoke(main, ["queue", "migrate", "--redis", redis_url, "--crawl", "old"])
    assert result.exit_code == 1 and "alive" in result.output
    assert read_status(redis_client, KEYS).legacy_layout
