"""The shared frontier against a real Redis: leases, acks, reaping, priorities, keys."""

from __future__ import annotations

import hashlib
import time

import pytest
import redis

from hermit.keys import CrawlKeys
from hermit.queue.redis_queue import Ack, QueuedRequest, RedisRequestQueue, read_status


def fp(text: str) -> bytes:
    return hashlib.sha1(text.encode()).digest()


def entries(n: int, prefix: str = "u", priority: int = 0, host: str = "example.com") -> list[QueuedRequest]:
    return [QueuedRequest(f"{prefix}{i}".encode(), priority, fp(f"{prefix}{i}"), host) for i in range(n)]


def acks(leases) -> list[Ack]:
    return [Ack(lease.id, lease.host) for lease in leases]


def make_queue(client: redis.Redis, worker: str = "w1", crawl: str = "c", **kw) -> RedisRequestQueue:
    return RedisRequestQueue(client, CrawlKeys(crawl), worker, **kw)


def test_push_dedups_and_lease_moves_to_leases(redis_client):
    q = make_queue(redis_client)
    assert q.push_many(entries(5)) == [True] * 5
    assert q.push_many(entries(5)) == [False] * 5
    leases = q.lease(3)
    assert [lease.entry for lease in leases] == [b"u0", b"u1", b"u2"]
    status = q.status()
    assert (status.queued, status.leased, status.workers) == (2, 3, 1)
    assert status.counters["enqueued"] == 5 and status.counters["duplicates"] == 5


def test_dont_filter_requests_are_always_queued(redis_client):
    q = make_queue(redis_client)
    same = QueuedRequest(b"x", 0, None, "example.com")
    assert q.push_many([same, same, same]) == [True, True, True]
    assert q.status().queued == 3


def test_ack_removes_lease_for_good(redis_client):
    q = make_queue(redis_client)
    q.push_many(entries(4))
    leases = q.lease(4)
    q.ack(acks(leases[:3]))
    status = q.status()
    assert (status.queued, status.leased) == (0, 1)
    assert status.counters["acked"] == 3


def test_release_returns_unstarted_requests_at_once_to_the_head(redis_client):
    q = make_queue(redis_client)
    q.push_many(entries(6))
    leases = q.lease(4)
    assert q.release(leases[2:4]) == 2
    assert q.status().queued == 4
    # Returned requests are taken first again.
    assert {lease.entry for lease in q.lease(2)} == {b"u2", b"u3"}
    assert q.release(None) == 4  # everything this worker held
    status = q.status()
    assert (status.queued, status.leased, status.workers) == (6, 0, 0)


def test_dead_workers_leases_return_after_the_timeout(redis_client):
    # 2 s leases: the checks before the deadline hold however slow a loaded machine is
    # between the lease and them (they take milliseconds).
    dead = make_queue(redis_client, "dead", lease_timeout_seconds=2)
    alive = make_queue(redis_client, "alive", lease_timeout_seconds=2)
    dead.push_many(entries(5))
    leased_at = time.monotonic()
    assert len(dead.lease(5)) == 5
    # Before the deadline the leases stay put.
    assert alive.heartbeat() == (0, 0)
    assert alive.status().leased == 5
    assert time.monotonic() - leased_at < 2, "the machine stalled past the lease timeout"
    time.sleep(2.2 - (time.monotonic() - leased_at))
    reaped, returned = alive.heartbeat()
    assert (reaped, returned) == (1, 5)
    status = alive.status()
    assert (status.queued, status.leased, status.workers) == (5, 0, 1)
    assert status.counters["expired"] == 5 and status.counters["returned"] == 5
    # The late ack of a reaped lease changes nothing, and is not counted.
    dead.ack([Ack("1", "example.com"), Ack("2", "example.com")])
    status = alive.status()
    assert status.queued == 5 and "acked" not in status.counters


def test_heartbeat_keeps_a_live_worker_leases(redis_client):
    # Heart-beats 0.5 s apart keep 2 s leases for 3 s, past their timeout; a machine
    # stalled 1.5 s between two of them would still not lose them.
    worker = make_queue(redis_client, "slow", lease_timeout_seconds=2)
    other = make_queue(redis_client, "other", lease_timeout_seconds=2)
    worker.push_many(entries(2))
    started = time.monotonic()
    worker.lease(2)
    while time.monotonic() - started < 3:
        time.sleep(0.5)
        worker.heartbeat()
        assert other.heartbeat() == (0, 0)
    assert other.status().leased == 2


def test_higher_priority_first_fifo_within_priority(redis_client):
    q = make_queue(redis_client)
    q.push_many(entries(3, "low", priority=-1))
    q.push_many(entries(3, "high", priority=5))
    q.push_many(entries(3, "mid", priority=0))
    # A lease takes from a host's highest priority only; the next one goes on below it.
    got = []
    for _ in range(3):
        leases = q.lease(9)
        got += [lease.entry.decode() for lease in leases]
        q.ack(acks(leases))
    assert got == ["high0", "high1", "high2", "mid0", "mid1", "mid2", "low0", "low1", "low2"]
    assert [lease.priority for lease in q.lease(1)] == []
    keys = CrawlKeys("c")
    assert redis_client.zcard(keys.host_priorities("example.com")) == 0
    assert not redis_client.hexists(keys.host_top, "example.com")


def test_lifo_order_within_priority(redis_client):
    q = make_queue(redis_client, order="lifo")
    q.push_many(entries(3))
    assert [lease.entry for lease in q.lease(3)] == [b"u2", b"u1", b"u0"]


def test_invalid_order_and_timeout_are_rejected(redis_client):
    with pytest.raises(ValueError, match="queue order"):
        make_queue(redis_client, order="random")
    with pytest.raises(ValueError, match="lease timeout"):
        make_queue(redis_client, lease_timeout_seconds=0)


def test_every_key_carries_the_crawl_hash_tag_and_crawls_share_a_redis(redis_client):
    a, b = make_queue(redis_client, crawl="alpha"), make_queue(redis_client, crawl="beta")
    a.push_many(entries(3))
    b.push_many(entries(3))  # same URLs, other crawl: not duplicates
    a.lease(1)
    b.dead_letter(b.lease(1)[0], "test")
    keys = [k.decode() for k in redis_client.keys("*")]
    assert keys and all(k.startswith(("hermit:{alpha}:", "hermit:{beta}:")) for k in keys)
    # One hash slot per crawl: a Redis Cluster keeps each crawl's keys together.
    slots = {redis.crc.key_slot(k.encode()) for k in keys if "{alpha}" in k}
    assert len(slots) == 1
    assert (a.status().queued, b.status().queued) == (2, 2)
    assert b.status().dead_letters == 1 and a.status().dead_letters == 0


def test_dead_letter_keeps_entry_and_reason(redis_client):
    q = make_queue(redis_client)
    q.push_many([QueuedRequest(b"\xffnot json", 0, fp("bad"), "example.com")])
    lease = q.lease(1)[0]
    q.dead_letter(lease, "not JSON")
    status = q.status()
    assert (status.queued, status.leased, status.dead_letters) == (0, 0, 1)
    assert status.counters["dead_letters"] == 1
    record = redis_client.lindex(CrawlKeys("c").dead_letters, 0)
    assert b"not JSON" in record and b"not json" in record


def test_concurrent_leasing_never_hands_a_request_twice(redis_url):
    import threading

    clients = [redis.Redis.from_url(redis_url) for _ in range(4)]
    for h in range(40):
        make_queue(clients[0]).push_many(entries(50, f"h{h}-", host=f"host{h}"))
    taken: list[list[bytes]] = [[] for _ in clients]

    def take(i: int) -> None:
        q = make_queue(clients[i], f"w{i}")
        while q.status().queued:
            batch = q.lease(7)
            taken[i].extend(lease.entry for lease in batch)
            q.ack(acks(batch))

    threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [e for part in taken for e in part]
    assert len(everything) == 2000 and len(set(everything)) == 2000
    status = read_status(clients[0], CrawlKeys("c"))
    assert (status.queued, status.leased, status.counters["acked"]) == (0, 0, 2000)
    assert sum(1 for part in taken if part) > 1  # the workers shared the hosts
