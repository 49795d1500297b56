"""The frontier's hosts against a real Redis: fairness, fleet-wide limits, backoff, runtime control."""

from __future__ import annotations

import time

import redis

from hermit.keys import CrawlKeys
from hermit.queue.hosts import HostControl, clean_key, politeness_key
from hermit.queue.redis_queue import Ack, Politeness, QueuedRequest, RedisRequestQueue, read_status

KEYS = CrawlKeys("c")


def queue(client: redis.Redis, worker: str = "w1", **politeness) -> RedisRequestQueue:
    return RedisRequestQueue(client, KEYS, worker, politeness=Politeness(**politeness), lease_timeout_seconds=0.5)


def push(q: RedisRequestQueue, host: str, n: int, priority: int = 0) -> None:
    q.push_many([QueuedRequest(f"{host}/{i}".encode(), priority, f"{host}/{i}".encode(), host) for i in range(n)])


def acks(leases) -> list[Ack]:
    return [Ack(lease.id, lease.host) for lease in leases]


def test_a_lease_takes_from_every_ready_host_in_turn(redis_client):
    q = queue(redis_client)
    push(q, "slow.example", 100)
    for h in range(5):
        push(q, f"h{h}.example", 3)
    leases = q.lease(12)
    by_host: dict[str, int] = {}
    for lease in leases:
        by_host[lease.host] = by_host.get(lease.host, 0) + 1
    # One host with a long queue does not fill the batch: each host gets its share.
    assert len(leases) == 12 and len(by_host) == 6
    assert max(by_host.values()) - min(by_host.values()) <= 1


def test_a_host_never_has_more_in_flight_than_its_concurrency_across_workers(redis_client):
    a, b = queue(redis_client, "a", concurrency=3), queue(redis_client, "b", concurrency=3)
    push(a, "one.example", 20)
    first = a.lease(10)
    assert len(first) == 3
    assert b.lease(10) == []  # the other worker sees the host full
    a.ack(acks(first[:2]))
    second = b.lease(10)
    assert len(second) == 2  # two slots came free, fleet-wide
    assert redis_client.hget(KEYS.host_active, "one.example") == b"3"


def test_a_delayed_host_gives_one_request_per_delay_to_the_whole_fleet(redis_client):
    workers = [queue(redis_client, f"w{i}", delay_seconds=0.3, jitter=0) for i in range(3)]
    push(workers[0], "polite.example", 10)
    times: list[float] = []
    start = time.monotonic()
    while len(times) < 4:
        for w in workers:
            got = w.lease(5)
            times += [time.monotonic() - start] * len(got)
            w.ack(acks(got))
        time.sleep(0.01)
    # Three workers asking all the time still got one request per delay between them.
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 0.25, gaps
    # And the waiting workers were told when the host is next ready.
    assert workers[1].lease(5) == [] and 0 < workers[1].next_ready_seconds <= 0.3


def test_workers_leasing_at_once_pick_different_hosts(redis_client):
    a, b = queue(redis_client, "a", delay_seconds=5, jitter=0), queue(redis_client, "b", delay_seconds=5, jitter=0)
    for h in range(10):
        push(a, f"h{h}.example", 2)
    first = a.lease(5)
    second = b.lease(5)
    assert len(first) == 5 and len(second) == 5
    assert not {lease.host for lease in first} & {lease.host for lease in second}
    assert a.lease(5) == []  # every host now waits for its delay


def test_a_429_backs_the_host_off_for_every_worker_and_a_good_answer_ends_it(redis_client):
    a, b = queue(redis_client, "a"), queue(redis_client, "b")
    push(a, "busy.example", 5)
    lease = a.lease(1)[0]
    a.ack([Ack(lease.id, lease.host, "429", retry_after_seconds=30)])
    assert b.lease(5) == []  # the other worker may not fetch it either
    assert 25 < b.next_ready_seconds <= 30
    status = read_status(redis_client, KEYS)
    assert status.hosts.backed_off == 1 and status.counters["backoff:429"] == 1
    # A later answer of a request sent before the backoff began doesn't lengthen it.
    a.ack([Ack("0", "busy.example", "503")])
    state = redis_client.hget(KEYS.host_backoff, "busy.example")
    assert b'"level":1' in state
    a.ack([Ack("0", "busy.example", "ok")])
    assert redis_client.hlen(KEYS.host_backoff) == 0
    assert read_status(redis_client, KEYS).counters["backoff_recovered"] == 1


def test_outcomes_in_one_ack_apply_in_their_order(redis_client):
    # 'ok' is applied once per host and call, until another outcome says otherwise.
    q = queue(redis_client)
    q.ack([Ack("0", "a.example", "ok"), Ack("0", "a.example", "ok"), Ack("0", "a.example", "503"),
           Ack("0", "b.example", "503"), Ack("0", "b.example", "ok"), Ack("0", "b.example", "ok")])
    assert redis_client.hexists(KEYS.host_backoff, "a.example")  # the last word: 503
    assert not redis_client.hexists(KEYS.host_backoff, "b.example")
    counters = read_status(redis_client, KEYS).counters
    assert counters["backoff:503"] == 2 and counters["backoff_recovered"] == 1
    q.ack([Ack("0", "a.example", "ok"), Ack("0", "a.example", "503"), Ack("0", "a.example", "ok")])
    assert not redis_client.hexists(KEYS.host_backoff, "a.example")
    assert read_status(redis_client, KEYS).counters["backoff_recovered"] == 3


def test_one_ack_of_interleaved_hosts_and_runs_ends_every_lease(redis_client):
    # An ack sends runs of leases that say the same of one host: runs of one, of
    # several, and a host coming back after another's run all end their leases.
    q = queue(redis_client, concurrency=10)
    for host in ("a.example", "b.example", "c.example"):
        push(q, host, 4)
    leases = q.lease(12)
    assert len(leases) == 12
    by_host = {host: [lease for lease in leases if lease.host == host] for host in ("a.example", "b.example", "c.example")}
    a, b, c = by_host.values()
    mixed = [*acks(a[:3]), *acks(b[:1]), *acks(a[3:]), Ack(c[0].id, c[0].host, "ok"), *acks(c[1:]), *acks(b[1:])]
    q.ack(mixed)
    status = read_status(redis_client, KEYS)
    assert status.leased == 0 and status.counters["acked"] == 12
    assert [int(redis_client.hget(KEYS.host_active, host) or 0) for host in by_host] == [0, 0, 0]
    assert redis_client.hlen(KEYS.leases("w1")) == 0


def test_backoff_doubles_and_is_capped(redis_client):
    q = queue(redis_client, backoff_base_seconds=0.05, backoff_max_seconds=0.15)
    push(q, "down.example", 1)
    waits = []
    for _ in range(4):
        q.ack([Ack("0", "down.example", "connection")])
        q.lease(1)
        waits.append(q.next_ready_seconds)
        time.sleep(0.2)  # the backoff ends before the next error
    assert waits[0] <= 0.05 and 0.05 < waits[1] <= 0.1 and 0.1 < waits[2] <= 0.15 and waits[3] <= 0.15


def test_pause_resume_block_unblock_reach_every_worker_at_once(redis_client):
    q = queue(redis_client)
    control = HostControl(redis_client, KEYS)
    push(q, "a.example", 3)
    push(q, "b.example", 3)
    control.update("a.example", paused=True)
    assert {lease.host for lease in q.lease(10)} == {"b.example"}
    assert read_status(redis_client, KEYS).hosts.paused == 1
    control.update("a.example", paused=None)
    assert {lease.host for lease in q.lease(10)} == {"a.example"}

    control.update("c.example", blocked=True)
    result = q.push_many([QueuedRequest(b"c/1", 0, b"c/1", "c.example")])
    assert result == [2]  # not queued ...
    control.update("c.example", blocked=None)
    assert q.push_many([QueuedRequest(b"c/1", 0, b"c/1", "c.example")]) == [1]  # ... and not marked seen
    assert read_status(redis_client, KEYS).counters["blocked"] == 1


def test_a_host_setting_overrides_the_defaults(redis_client):
    q = queue(redis_client, concurrency=1)
    control = HostControl(redis_client, KEYS)
    push(q, "big.example", 10)
    assert control.update("big.example", concurrency=4) == {"concurrency": 4}
    assert len(q.lease(10)) == 4
    control.clear("big.example")
    assert redis_client.hlen(KEYS.host_settings) == 0
    info = control.describe(["big.example"])[0]
    assert (info.queued, info.active) == (6, 4)


def test_robots_delay_is_a_floor_under_the_hosts_delay(redis_client):
    q = queue(redis_client, jitter=0)
    push(q, "robots.example", 5)
    HostControl(redis_client, KEYS).set_robots_delay("robots.example", 20)
    assert len(q.lease(5)) == 1
    assert q.lease(5) == [] and 19 < q.next_ready_seconds <= 20


def test_a_dead_workers_leases_go_back_to_their_own_hosts(redis_client):
    dead, alive = queue(redis_client, "dead"), queue(redis_client, "alive")
    for h in range(4):
        push(dead, f"h{h}.example", 3, priority=h)
    held = dead.lease(8)
    assert len(held) == 8
    time.sleep(0.6)
    reaped, returned = alive.heartbeat()
    assert (reaped, returned) == (1, 8)
    status = read_status(redis_client, KEYS)
    assert (status.queued, status.leased, status.hosts.active) == (12, 0, 0)
    again = []
    while batch := alive.lease(20):
        again += batch
        alive.ack(acks(batch))
    assert sorted(lease.entry for lease in again) == sorted(f"h{h}.example/{i}".encode()
                                                            for h in range(4) for i in range(3))


def test_a_host_whose_queue_empties_leaves_nothing_behind(redis_client):
    q = queue(redis_client)
    for h in range(50):
        push(q, f"h{h}.example", 2)
    while batch := q.lease(30):
        q.ack([Ack(lease.id, lease.host, "ok") for lease in batch])
    left = {key.decode() for key in redis_client.keys("*")}
    # Only crawl-wide keys stay: no per-host key, and no per-host field in the hashes.
    assert not any(":q:" in key or ":qp:" in key for key in left)
    assert redis_client.zcard(KEYS.ready) == 0 and redis_client.hlen(KEYS.host_top) == 0
    assert redis_client.hlen(KEYS.host_active) == 0
    assert read_status(redis_client, KEYS).done


def test_politeness_key_is_the_download_slot():
    from scrapy import Request

    assert politeness_key(Request("http://Example.com:8080/a")) == "example.com"
    assert politeness_key(Request("http://a.example/", meta={"download_slot": "shared"})) == "shared"
    assert clean_key("bad\nslot") == "bad slot"
    assert len(clean_key("x" * 1000)) == 253


def test_a_finished_download_frees_its_hosts_slot_and_the_lease_stays_until_its_ack(redis_client):
    a, b = queue(redis_client, "a", concurrency=2), queue(redis_client, "b", concurrency=2)
    push(a, "one.example", 6)
    held = a.lease(5)
    assert len(held) == 2 and b.lease(5) == []
    a.downloaded([Ack(lease.id, lease.host, "ok") for lease in held])
    # The slots are free for the fleet while the responses are still being processed
    # (each of the two workers takes its share, one) ...
    assert len(b.lease(5)) == 1 and len(a.lease(5)) == 1
    assert read_status(redis_client, KEYS).leased == 4
    # ... and the acks don't free them a second time.
    a.ack(acks(held))
    assert redis_client.hget(KEYS.host_active, "one.example") == b"2"
    assert read_status(redis_client, KEYS).leased == 2


def test_a_dead_workers_downloaded_leases_return_without_freeing_slots_twice(redis_client):
    dead, alive = queue(redis_client, "dead", concurrency=3), queue(redis_client, "alive", concurrency=3)
    push(dead, "one.example", 3)
    held = dead.lease(3)
    dead.downloaded([Ack(held[0].id, held[0].host)])  # one download ended, two in flight
    assert redis_client.hget(KEYS.host_active, "one.example") == b"2"
    time.sleep(0.6)
    assert alive.heartbeat() == (1, 3)
    assert not redis_client.hexists(KEYS.host_active, "one.example")
    assert len(alive.lease(5)) == 3  # all three back, and the host's three slots free


def test_hosts_take_turns_even_within_one_millisecond(redis_client):
    # Leases one at a time, as a downloader with one free slot asks: every host once
    # before any host twice, however fast the leases come (ties in Redis' time).
    for _ in range(50):
        redis_client.flushall()
        q = queue(redis_client)
        q.push_many([QueuedRequest(f"{h}{i}".encode(), 0, None, h) for h in "abc" for i in range(2)])
        order = [q.lease(1)[0].host for _ in range(6)]
        assert sorted(order[:3]) == ["a", "b", "c"] and sorted(order[3:]) == ["a", "b", "c"], order


def test_a_busy_hosts_slots_are_shared_among_the_workers(redis_client):
    workers = [queue(redis_client, f"w{i}", concurrency=8) for i in range(3)]
    for w in workers:
        w.heartbeat()  # three live workers
    push(workers[0], "one.example", 30)
    # Each takes at most its share (8 / 3, rounded up), counting what it still downloads.
    first = workers[0].lease(16)
    assert len(first) == 3
    assert workers[0].lease(16, in_flight={"one.example": 3}) == []
    assert len(workers[1].lease(16)) == 3 and len(workers[2].lease(16)) == 2  # the host's 8, fleet-wide
    workers[0].downloaded([Ack(lease.id, lease.host) for lease in first])
    assert len(workers[0].lease(16, in_flight={})) == 3  # its finished downloads freed its share
