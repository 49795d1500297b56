"""A crawl's frontier over several shards, on one real Redis (the same layout a cluster
spreads over its slots): every request queued once, handoffs delivered once, nothing
marked seen without being queued."""

from __future__ import annotations

import hashlib
import time

import pytest

from hermit.dedup.bloom import fingerprint_shard
from hermit.keys import CrawlKeys
from hermit.queue.frontier import Frontier
from hermit.queue.hosts import HostControl
from hermit.queue.redis_queue import Ack, Politeness, QueuedRequest, read_status
from hermit.queue.shards import crawl_shards, host_shard, shard_keys

SHARDS = 4


def request(host: str, path: str) -> QueuedRequest:
    url = f"http://{host}/{path}"
    return QueuedRequest(url.encode(), 0, hashlib.sha1(url.encode()).digest(), host)


def many_hosts(n_hosts: int = 12, per_host: int = 10) -> list[QueuedRequest]:
    return [request(f"h{h}.example", f"p{i}") for h in range(n_hosts) for i in range(per_host)]


def frontier(client, worker: str = "w1", crawl: str = "c", **options) -> Frontier:
    shards = crawl_shards(client, CrawlKeys(crawl), SHARDS)
    options.setdefault("politeness", Politeness(concurrency=100))
    return Frontier(client, CrawlKeys(crawl), worker, shards=shards, **options)


def lease_all(front: Frontier) -> list:
    leases = []
    while batch := front.lease(50):
        leases += batch
    return leases


def test_requests_of_many_hosts_are_queued_once_and_leased_once(redis_client):
    front = frontier(redis_client)
    requests = many_hosts()
    # Some requests are checked on another shard than their host's: those are handed off.
    assert any(fingerprint_shard(r.fingerprint, SHARDS) != host_shard(r.host, SHARDS) for r in requests)

    assert front.push_many(requests) == [1] * len(requests)
    assert front.push_many(requests) == [0] * len(requests)
    assert read_status(redis_client, CrawlKeys("c")).queued == len(requests)

    leases = lease_all(front)
    assert sorted(lease.entry for lease in leases) == sorted(r.entry for r in requests)
    assert {host_shard(lease.host, SHARDS) for lease in leases} == set(range(SHARDS))
    front.ack([Ack(lease.id, lease.host) for lease in leases])

    status = read_status(redis_client, CrawlKeys("c"))
    assert status.done
    assert status.counters["enqueued"] == len(requests)
    assert status.counters["duplicates"] == len(requests)
    assert status.counters["acked"] == len(requests)
    assert all(not queue.waiting_handoffs() for queue in front.queues)


def test_a_handoff_left_by_a_dead_pusher_counts_as_queued_and_is_delivered_once(redis_client):
    front = frontier(redis_client)
    handed = [r for r in many_hosts() if fingerprint_shard(r.fingerprint, SHARDS) != host_shard(r.host, SHARDS)]
    source = fingerprint_shard(handed[0].fingerprint, SHARDS)
    handed = [r for r in handed if fingerprint_shard(r.fingerprint, SHARDS) == source]
    # The pusher's push landed (marked seen, handed off: numbered per target shard),
    # then it died before delivering.
    results = front.queues[source].push_many(handed)
    for target in {host_shard(r.host, SHARDS) for r in handed}:
        numbers = [-n for n, r in zip(results, handed) if host_shard(r.host, SHARDS) == target]
        assert numbers == list(range(1, len(numbers) + 1))
    status = read_status(redis_client, CrawlKeys("c"))
    assert status.queued == len(handed) and not status.done

    # Delivered twice (two workers at once, or one that died before trimming): queued once.
    waiting = front.queues[source].waiting_handoffs()
    for target, records in waiting.items():
        front.queues[target].receive({source: records})
    other = frontier(redis_client, worker="w2")
    other.heartbeat()  # any worker's heartbeat delivers what waits

    assert all(not queue.waiting_handoffs() for queue in front.queues)
    leases = lease_all(front)
    assert sorted(lease.entry for lease in leases) == sorted(r.entry for r in handed)
    assert read_status(redis_client, CrawlKeys("c")).queued == 0
    # ... and they stay seen.
    assert front.push_many(handed) == [0] * len(handed)


def test_a_blocked_host_is_refused_on_whichever_shard_checks_its_requests(redis_client):
    front = frontier(redis_client)
    HostControl(redis_client, CrawlKeys("c")).update("h1.example", blocked=True)
    requests = [request("h1.example", f"p{i}") for i in range(40)]
    assert {fingerprint_shard(r.fingerprint, SHARDS) for r in requests} == set(range(SHARDS))

    assert front.push_many(requests) == [2] * len(requests)
    HostControl(redis_client, CrawlKeys("c")).update("h1.example", blocked=None)
    assert front.push_many(requests) == [1] * len(requests)  # never marked as seen


def test_release_and_a_dead_workers_leases_return_to_their_shards(redis_client):
    front = frontier(redis_client)
    requests = many_hosts()
    front.push_many(requests)
    leases = lease_all(front)
    assert front.release(leases[:10]) == 10
    assert front.release(None) == len(leases) - 10
    assert read_status(redis_client, CrawlKeys("c")).queued == len(requests)

    dead = frontier(redis_client, worker="dead", lease_timeout_seconds=0.1)
    held = lease_all(dead)
    assert len(held) == len(requests)
    time.sleep(0.3)
    reaped, returned = frontier(redis_client, worker="w3").heartbeat()
    assert (reaped, returned) == (1, len(requests))


def test_a_crawls_shards_are_fixed_when_it_is_created(redis_client):
    keys = CrawlKeys("fixed")
    assert crawl_shards(redis_client, keys) == 1  # nothing asked: one, nothing written
    assert crawl_shards(redis_client, keys, 8) == 8
    assert crawl_shards(redis_client, keys, 2) == 8  # the first writer won
    assert crawl_shards(redis_client, keys) == 8


def test_a_new_crawls_shards_have_spread_tags_and_one_made_before_keeps_plain_ones(redis_client):
    for crawl, spread in (("new", True), ("before-spread", False)):
        keys = CrawlKeys(crawl)
        if spread:
            assert crawl_shards(redis_client, keys, SHARDS) == SHARDS
        else:  # the layout of a crawl sharded before tags were spread: no 'tags' field
            redis_client.hset(keys.layout, "shards", SHARDS)
        front = frontier(redis_client, crawl=crawl)
        requests = many_hosts(12, 5)
        assert front.push_many(requests) == [1] * len(requests)
        named = shard_keys(redis_client, keys)
        assert [k.spread_shards for k in named] == [spread] * SHARDS
        assert [q.keys for q in front.queues] == named
        tags = {k.base for k in named}
        prefixes = {f"hermit:{{{crawl}}}", *(f"hermit:{{{crawl}~{i}{'.' if spread else '}'}" for i in range(1, SHARDS))}
        assert all(any(tag.startswith(prefix) for tag in tags) for prefix in prefixes)
        # Every request sits under the tags the layout names, as the readers see them.
        queued = sum(redis_client.zcard(k.host_priorities(r.host)) > 0 for k in named for r in requests[::5])
        assert queued == len(requests[::5])
        assert read_status(redis_client, keys).queued == len(requests)
        assert sum(info.queued for info in HostControl(redis_client, keys).describe(sorted({r.host for r in requests}))) \
            == len(requests)
        assert sorted(lease.entry for lease in lease_all(front)) == sorted(r.entry for r in requests)


def test_a_crawl_made_before_shards_keeps_its_one_shard(redis_client):
    keys = CrawlKeys("old")
    Frontier(redis_client, keys, "w").push_many(many_hosts(2, 2))
    assert crawl_shards(redis_client, keys, 8) == 1
    assert read_status(redis_client, keys).queued == 4


@pytest.mark.parametrize("bad", [0, -1, 1025, "4", 2.5, True])
def test_a_bad_number_of_shards_is_a_clear_error(redis_client, bad):
    with pytest.raises(ValueError, match="number of shards"):
        Frontier(redis_client, CrawlKeys("c"), "w", shards=bad)


def test_a_handoff_delivered_past_an_older_one_waits_for_it(redis_client):
    # Two pushers on one shard: the first one's handoffs (numbers 1, 2) are not
    # delivered yet when the second one's (3, 4) reach the target. The target applies
    # nothing past the gap; the second pusher then delivers the list from its head.
    front = frontier(redis_client)
    source, target = 0, 1
    requests = [r for r in many_hosts(40, 5)
                if fingerprint_shard(r.fingerprint, SHARDS) == source and host_shard(r.host, SHARDS) == target][:4]
    assert len(requests) == 4
    assert front.queues[source].push_many(requests[:2]) == [-1, -2]  # its pusher died here
    waiting = front.queues[source].waiting_handoffs()[target]
    assert front.queues[target].receive({source: waiting[1:]}) == (0, {source: 0})  # past the gap: nothing

    assert front.push_many(requests[2:]) == [1, 1]

    assert not front.queues[source].waiting_handoffs()
    assert sorted(lease.entry for lease in lease_all(front)) == sorted(r.entry for r in requests)
    assert read_status(redis_client, CrawlKeys("c")).queued == 0


def test_a_malformed_handoff_record_is_dead_lettered_and_holds_nothing_up(redis_client):
    front = frontier(redis_client)
    source, target = 0, 1
    requests = [r for r in many_hosts(40, 5)
                if fingerprint_shard(r.fingerprint, SHARDS) == source and host_shard(r.host, SHARDS) == target][:2]
    keys = CrawlKeys("c").shard(source)
    redis_client.rpush(keys.handoff(target), b"garbage without a number")
    redis_client.sadd(keys.handoff_targets, target)
    redis_client.incr(keys.queued_count)  # as if it counted as queued
    assert front.queues[source].push_many(requests) == [-1, -2]  # numbered after it

    front.heartbeat()  # delivers what waits

    assert sorted(lease.entry for lease in lease_all(front)) == sorted(r.entry for r in requests)
    status = read_status(redis_client, CrawlKeys("c"))
    assert status.dead_letters == 1 and status.counters["dead_letters"] == 1
    assert status.queued == 0 and not front.queues[source].waiting_handoffs()
