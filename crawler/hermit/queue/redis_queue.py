"""The shared frontier: a queue per host in Redis, a fleet-wide schedule, per-worker leases.

Layout (see :mod:`hermit.keys`): each host (Scrapy's download slot, see
:mod:`hermit.queue.hosts`) has one LIST per priority and a ZSET of its priorities;
crawl-wide, a ZSET ``ready`` of the hosts that may be fetched, scored by when they
may next be fetched, beside hashes of each host's top priority, leases in flight,
settings, robots.txt delay and backoff (``hosts.lua`` documents them all).

A lease takes two round trips whatever the number of hosts: ``pick.lua`` claims up
to N ready hosts for a moment (so concurrent workers pick different ones), then
``lease.lua`` takes requests from them one host at a time in turn, never more of a
host than its concurrency allows and one per host when it has a delay, and moves
each host's next-fetch time forward for the whole fleet.

Delivery is at-least-once. A lease moves a request into the worker's lease hash;
:meth:`RedisRequestQueue.ack` deletes it once processed (freeing the host's slot
and applying what the response said about the host: 429/503/errors back it off);
:meth:`release` puts it back at once (graceful stop). A worker that stops
heart-beating (SIGKILL, OOM kill, lost node) is reaped by any other worker after
``lease_timeout_seconds`` and its leases go back to the head of their hosts' queues.

Dedup and push are one script (Bloom check-and-set, then push), so a request can
never be marked as seen without being queued. Every key a script touches reaches it
through ``KEYS`` (the Bloom filter's chunk keys aside, named after its meta key);
the caller reads first what it needs to name them.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, NamedTuple

import redis

from hermit.dedup.bloom import BLOOM_LUA, RedisBloomFilter, fingerprint_hashes
from hermit.dedup.sizing import DEDUP_CAPACITY, DEDUP_ERROR_RATIO, DEDUP_GROWTH, DEDUP_MAX_CHUNK_BITS
from hermit.items.stream import ADD_ITEMS_LUA, add_items_call
from hermit.keys import CrawlKeys
from hermit.queue.script_calls import run_script
from hermit.queue.shards import check_shards, host_shard, shard_keys

logger = logging.getLogger(__name__)

QUEUE_ORDERS = ("fifo", "lifo")


#: How long a worker holds the hosts it picked before it leases from them: only a
#: worker that dies between its two lease round trips leaves them waiting this long.
HOST_CLAIM_MS = 1000

#: Hosts a lease picks at most, whatever the count asked for.
MAX_HOSTS_PER_LEASE = 256

#: A settled backoff's level is remembered this long past its end, so that a host
#: failing again soon backs off longer; then it is forgotten.
BACKOFF_MEMORY_MS = 3600 * 1000


def _script(name: str) -> str:
    return resources.files("hermit.queue").joinpath("scripts", name).read_text()


class QueuedRequest(NamedTuple):
    """One request to push: its encoded entry, priority, fingerprint (None = don't
    dedup) and politeness key (the host, see :func:`hermit.queue.hosts.politeness_key`).

    This and :class:`Lease` and :class:`Ack` are named tuples, made once per request
    pushed, leased and acked: a quarter of a frozen dataclass's cost to build."""

    entry: bytes
    priority: int = 0
    fingerprint: bytes | None = None
    host: str = ""


class Lease(NamedTuple):
    """A leased request: ``id`` is what :meth:`RedisRequestQueue.ack` takes."""

    id: str
    priority: int
    entry: bytes
    host: str = ""


class Ack(NamedTuple):
    """A processed lease, with what its response said about its host.

    ``outcome``: ``""`` (nothing to say), ``"ok"`` (the host answered: a backoff
    ends), or the reason to back the host off (``"429"``, ``"503"``, ``"timeout"``,
    ``"connection"``); ``retry_after_seconds`` from the response's Retry-After.
    """

    lease_id: str
    host: str
    outcome: str = ""
    retry_after_seconds: float = 0.0


@dataclass(frozen=True)
class Politeness:
    """The fleet-wide limits of a host that sets none of its own (``hermit hosts``).

    ``delay_seconds`` between two fetches of a host (Scrapy's DOWNLOAD_DELAY),
    each drawn between ``1 - jitter`` and ``1 + jitter`` times it (Scrapy's
    DOWNLOAD_DELAY_JITTER; 0.5 is the old RANDOMIZE_DOWNLOAD_DELAY); ``concurrency``: requests of one host in flight
    fleet-wide (CONCURRENT_REQUESTS_PER_DOMAIN); backoff after 429/503/errors
    starts at ``backoff_base_seconds`` and doubles up to ``backoff_max_seconds``
    (which also caps a Retry-After).
    """

    delay_seconds: float = 0.0
    jitter: float = 0.5
    concurrency: int = 8
    backoff_base_seconds: float = 1.0
    backoff_max_seconds: float = 300.0

    def __post_init__(self) -> None:
        if self.delay_seconds < 0:
            raise ValueError("delay must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError("delay jitter must be between 0 and 1")
        if self.concurrency < 1:
            raise ValueError("per-host concurrency must be at least 1")
        if not 0 < self.backoff_base_seconds <= self.backoff_max_seconds:
            raise ValueError("backoff base must be positive and at most the longest backoff")

    def delay_factor(self) -> str:
        """One draw of the factor a host's next delay is multiplied by."""
        return f"{1 + random.uniform(-self.jitter, self.jitter):.4f}" if self.jitter else "1"


@dataclass
class HostsSummary:
    """How many hosts are in each state, crawl-wide."""

    with_queue: int = 0  # hosts with queued requests
    ready: int = 0  # ... that may be fetched right now
    waiting: int = 0  # ... that wait for their delay, a backoff or a free slot
    backed_off: int = 0  # hosts in a backoff after 429/503/errors
    active: int = 0  # hosts with requests in flight
    paused: int = 0  # hosts paused or blocked by `hermit hosts`


@dataclass
class QueueStatus:
    """A snapshot of one crawl's queue."""

    queued: int
    leased: int
    leased_by_worker: dict[str, int]
    workers: int
    dead_letters: int
    counters: dict[str, int] = field(default_factory=dict)
    hosts: HostsSummary = field(default_factory=HostsSummary)
    #: Requests that may be in flight at once under the hosts' limits: the queue
    #: depth that workers can actually work off (what autoscaling should follow).
    schedulable: int = 0
    legacy_layout: bool = False

    @property
    def done(self) -> bool:
        """Nothing queued and nothing leased: no worker can produce more work."""
        return self.queued == 0 and self.leased == 0


@dataclass(frozen=True)
class BloomSettings:
    """How the crawl's Bloom filter is made when it is first created (its kind:
    ``blocked`` or ``classic``, see hermit.dedup.bloom)."""

    capacity: int = DEDUP_CAPACITY.default
    error_ratio: float = DEDUP_ERROR_RATIO.default
    growth: int = DEDUP_GROWTH.default
    max_chunk_bits: int = DEDUP_MAX_CHUNK_BITS.default
    kind: str = "blocked"


class _KeyList:
    """KEYS of one script call: fixed keys first, then per-host keys, each once."""

    def __init__(self, fixed: Iterable[str]) -> None:
        self.keys = list(fixed)
        self._index = {key: i for i, key in enumerate(self.keys)}

    def index(self, key: str) -> int:
        """The 1-based position of *key* (added if new), as Lua's KEYS counts."""
        position = self._index.get(key)
        if position is None:
            position = self._index[key] = len(self.keys)
            self.keys.append(key)
        return position + 1


def parse_leases(reply: list[Any]) -> list[Lease]:
    """The leases of a lease.lua reply, in the turns they were shared in: the first
    of each host, then the second, ..."""
    groups = []
    i = 0
    while i < len(reply):
        host, priority, count = reply[i].decode(), int(reply[i + 1]), int(reply[i + 2])
        pairs = reply[i + 3:i + 3 + 2 * count]
        groups.append([Lease(pairs[j].decode(), priority, pairs[j + 1], host) for j in range(0, len(pairs), 2)])
        i += 3 + 2 * count
    if len(groups) == 1:
        return groups[0]
    return [lease for turn in itertools.zip_longest(*groups) for lease in turn if lease is not None]


def parse_lease_value(value: bytes) -> tuple[int, str, bytes]:
    """(priority, host, entry) of a lease hash value ``'<priority> <host>\\n<entry>'``
    (``'~'`` first once its download is over)."""
    if value.startswith(b"~"):  # its download is over (ack.lua, step "downloaded")
        value = value[1:]
    space = value.index(b" ")
    newline = value.index(b"\n", space + 1)
    return int(value[:space]), value[space + 1:newline].decode(), value[newline + 1:]


class Handoff(NamedTuple):
    """A request one shard's filter found new, on its way to its host's shard: number
    ``seq`` of the source's handoffs to that shard (hermit.queue.shards)."""

    seq: int
    priority: int
    host: str
    entry: bytes


def parse_received(reply: Sequence[Any]) -> tuple[int, dict[int, int]]:
    """``(requests queued, {source: highest number applied})`` of a receive.lua reply."""
    return int(reply[0]), {int(reply[i]): int(reply[i + 1]) for i in range(1, len(reply), 2)}


def parse_handoff_record(record: bytes) -> Handoff:
    """The :class:`Handoff` of a record ``'<seq> <priority> <host>\\n<entry>'`` (push.lua writes them)."""
    first = record.index(b" ")
    priority, host, entry = parse_lease_value(record[first + 1:])
    return Handoff(int(record[:first]), priority, host, entry)


class RedisRequestQueue:
    """A crawl's shared frontier, as seen by one worker.

    Parameters: ``client`` (a ``redis.Redis``), ``keys`` (the crawl's key names),
    ``worker_id`` (unique among live workers), ``order`` (``fifo`` or ``lifo``
    within one host and priority), ``lease_timeout_seconds`` (how long a silent
    worker keeps its leases), ``bloom`` (dedup filter sizing), ``politeness`` (the
    limits of hosts that set none of their own).
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: CrawlKeys,
        worker_id: str,
        *,
        order: str = "fifo",
        lease_timeout_seconds: float = 30.0,
        bloom: BloomSettings | None = None,
        politeness: Politeness | None = None,
        shards: int = 1,
    ) -> None:
        if order not in QUEUE_ORDERS:
            raise ValueError(f"queue order must be one of {QUEUE_ORDERS}, not {order!r}")
        if lease_timeout_seconds <= 0:
            raise ValueError("lease timeout must be positive")
        self.client = client
        self.keys = keys
        self.worker_id = worker_id
        self.order = order
        self.lease_timeout_ms = int(lease_timeout_seconds * 1000)
        self.bloom_settings = bloom or BloomSettings()
        self.politeness = politeness or Politeness()
        #: The crawl's number of shards; *keys* name this queue's (hermit.queue.shards).
        self.shards = check_shards(shards)
        if keys.shard_index >= self.shards:
            raise ValueError(f"shard {keys.shard_index} of a crawl with {self.shards} shard(s)")
        #: After a lease: seconds until the next host is ready (None: no host has work).
        self.next_ready_seconds: float | None = None
        hosts = _script("hosts.lua")
        self._push = client.register_script(BLOOM_LUA + "\n" + hosts + "\n" + _script("push.lua"))
        self._pick = client.register_script(hosts + "\n" + _script("pick.lua"))
        self._lease = client.register_script(hosts + "\n" + _script("lease.lua"))
        self._requeue = client.register_script(hosts + "\n" + _script("requeue.lua"))
        self._heartbeat = client.register_script(_script("heartbeat.lua"))
        self._ack = client.register_script(hosts + "\n" + _script("ack.lua"))
        self._add_items = client.register_script(ADD_ITEMS_LUA)
        self._receive = client.register_script(hosts + "\n" + _script("receive.lua"))
        self._trim_handoff = client.register_script(_script("trim_handoff.lua"))

    @property
    def bloom(self) -> RedisBloomFilter:
        s = self.bloom_settings
        return RedisBloomFilter(
            self.client, self.keys, capacity=s.capacity, error_ratio=s.error_ratio,
            growth=s.growth, max_chunk_bits=s.max_chunk_bits, kind=s.kind,
        )

    def push_many(self, requests: Sequence[QueuedRequest], client: redis.Redis | None = None) -> list[int]:
        """Dedup and enqueue *requests* in one round trip; return, for each one, 1 if
        it was queued, 0 if it was a duplicate, 2 if its host is blocked (neither
        queued nor marked as seen), -n if its host lives on another shard and it was
        handed off there as this shard's handoff number n (:class:`Handoff`).

        A request with a fingerprint is queued only if the Bloom filter had not seen
        it; one without (``dont_filter``) is always queued. *client* may be a
        pipeline, in which case the result comes from its ``execute()``.
        """
        if not requests:
            return []
        k = self.keys
        s = self.bloom_settings
        key_list = _KeyList([
            k.ready, k.host_waits, k.host_top, k.host_active, k.host_settings, k.queued_count, k.stats,
            k.bloom_meta, k.handoff_targets, k.blocked_hosts,
        ])
        args: list[object] = [
            self.order, s.capacity, repr(s.error_ratio), s.growth, s.max_chunk_bits, s.kind,
            self.politeness.concurrency,
        ]
        here = k.shard_index
        for request in requests:
            if request.fingerprint is None:
                args += ["0", "0", "0"]
            else:
                h1, h2 = fingerprint_hashes(request.fingerprint)
                args += ["1", h1, h2]
            priority = int(request.priority)
            target = host_shard(request.host, self.shards)
            if target == here:
                args += [
                    priority, request.host,
                    key_list.index(k.host_queue(request.host, priority)),
                    key_list.index(k.host_priorities(request.host)),
                    request.entry, "",
                ]
            else:  # its host lives on another shard: handed off there (hermit.queue.shards)
                args += [
                    priority, request.host,
                    key_list.index(k.handoff(target)), key_list.index(k.handoff_seq(target)),
                    request.entry, target,
                ]
        result = run_script(self._push, key_list.keys, args, client)
        if client is not None and client is not self.client:
            return result  # a pipeline: the caller reads the outcome from execute()
        return [int(r) for r in result]

    def lease(self, count: int, in_flight: Mapping[str, int] | None = None) -> list[Lease]:
        """Lease up to *count* requests from hosts that may be fetched now (two round
        trips; also a heartbeat). Sets :attr:`next_ready_seconds`.

        *in_flight*: this worker's leases per host whose download has not finished;
        a worker takes at most its share of a host's concurrency (the concurrency
        over the live workers, rounded up), so a busy host's slots spread over the fleet.
        """
        in_flight = in_flight or {}
        k = self.keys
        picked = self._pick(
            keys=[k.ready, k.host_waits, k.host_top, k.host_backoff, k.host_backoff_until],
            args=[min(max(int(count), 1), MAX_HOSTS_PER_LEASE), HOST_CLAIM_MS, BACKOFF_MEMORY_MS],
        )
        claim, wait_ms = picked[0], int(picked[1])
        self.next_ready_seconds = None if wait_ms < 0 else wait_ms / 1000
        p = self.politeness
        keys = [
            k.ready, k.host_waits, k.host_top, k.host_active, k.host_settings, k.host_robots_delay,
            k.host_backoff, k.queued_count, k.stats, k.workers, k.leases(self.worker_id), k.lease_seq,
        ]
        args: list[object] = [
            self.worker_id, int(count), self.lease_timeout_ms, claim, int(p.delay_seconds * 1000), p.concurrency,
        ]
        for i in range(2, len(picked), 2):
            host, priority = picked[i].decode(), int(picked[i + 1])
            keys += [k.host_priorities(host), k.host_queue(host, priority)]
            args += [host, priority, p.delay_factor(), in_flight.get(host, 0)]
        leases = parse_leases(self._lease(keys=keys, args=args))
        if leases:
            self.next_ready_seconds = 0.0
        return leases

    def ack(self, acks: Sequence[Ack], client: redis.Redis | None = None, *, counter: str = "acked") -> None:
        """Forget processed leases (counted under *counter*), freeing the host slots
        their downloads did not and applying what their responses said about the hosts.
        Acking a lease that was already reaped is a no-op (its host outcome still counts)."""
        self._end(counter, acks, client)

    def downloaded(self, downloads: Sequence[Ack], client: redis.Redis | None = None) -> None:
        """Free the host slots of leases whose download ended (the leases stay until
        :meth:`ack`), applying what each download said about its host. Scrapy counts
        a host's concurrency by downloads in flight; so does the fleet."""
        self._end("downloaded", downloads, client)

    def _end(self, step: str, acks: Sequence[Ack], client: redis.Redis | None) -> None:
        if not acks:
            return
        k = self.keys
        p = self.politeness
        args: list[object] = [
            p.concurrency, int(p.backoff_base_seconds * 1000), int(p.backoff_max_seconds * 1000), step,
        ]
        # Runs of leases that say the same of the same host go as one: host, outcome,
        # Retry-After, count, then their ids (a batch of one host's acks is one id each).
        for (host, outcome, retry_after), run in itertools.groupby(
                acks, key=lambda ack: (ack.host, ack.outcome, ack.retry_after_seconds)):
            ids = [ack.lease_id for ack in run]
            args += [host, outcome, int(retry_after * 1000), len(ids), *ids]
        keys = [
            k.leases(self.worker_id), k.stats, k.ready, k.host_waits, k.host_top, k.host_active,
            k.host_settings, k.host_backoff, k.host_backoff_until,
        ]
        run_script(self._ack, keys, args, client)

    def add_items(self, items: Sequence[bytes], batch: int, client: redis.Redis | None = None) -> None:
        """Append *items* (JSON) to the crawl's stream unless batch number *batch* already landed.

        A worker numbers its write batches; resending a batch whose reply was lost
        (Redis died after applying it) then appends nothing twice.
        """
        if not items:
            return
        run_script(self._add_items, *add_items_call(self.keys, self.worker_id, items, batch), client)

    def release(self, leases: Sequence[Lease] | None = None) -> int:
        """Return leases to the head of their hosts' queues; all of this worker's (and
        unregister it) if None. Returns how many went back."""
        if leases is None:
            return self._requeue_worker(self.worker_id, "all")
        if not leases:
            return 0
        values = {lease.id: (lease.priority, lease.host) for lease in leases}
        returned, _ = self._requeue_values(self.worker_id, "some", values)
        return returned

    def _requeue_worker(self, worker_id: str, mode: str) -> int:
        """Return every lease *worker_id* holds (*mode* 'all' or 'expired')."""
        returned = 0
        for _ in range(10):  # a worker declared dead may still be leasing: look again
            raw = self.client.hgetall(self.keys.leases(worker_id))
            values: dict[str, tuple[int, str]] = {}
            for lease_id, value in raw.items():
                try:
                    priority, host, _ = parse_lease_value(value)
                except ValueError:
                    priority, host = 0, ""  # requeue.lua dead-letters it
                values[lease_id.decode()] = (priority, host)
            batch, left = self._requeue_values(worker_id, mode, values)
            returned += batch
            if not left:
                break
        return returned

    def _requeue_values(self, worker_id: str, mode: str, values: dict[str, tuple[int, str]]) -> tuple[int, int]:
        k = self.keys
        key_list = _KeyList([
            k.leases(worker_id), k.workers, k.ready, k.host_waits, k.host_top, k.host_active, k.host_settings,
            k.queued_count, k.stats, k.dead_letters,
        ])
        args: list[object] = [worker_id, mode, self.politeness.concurrency]
        for lease_id, (priority, host) in values.items():
            args += [lease_id, key_list.index(k.host_queue(host, priority)), key_list.index(k.host_priorities(host))]
        returned, left = self._requeue(keys=key_list.keys, args=args)
        return int(returned), int(left)

    def waiting_handoffs(self, limit: int = 500) -> dict[int, list[Handoff]]:
        """Requests this shard handed off and no target has applied yet: target shard ->
        up to *limit* of its handoffs, oldest first."""
        k = self.keys
        targets = sorted(int(t) for t in self.client.smembers(k.handoff_targets))
        if not targets:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for target in targets:
            pipe.lrange(k.handoff(target), 0, limit - 1)
        waiting = {}
        for target, records in zip(targets, pipe.execute()):
            parsed = []
            for record in records:
                try:
                    parsed.append(parse_handoff_record(record))
                except ValueError:  # not push.lua's: trim_handoff.lua dead-letters it
                    logger.error("Malformed handoff record to shard %d: %r", target, record[:200])
            waiting[target] = parsed
        return waiting

    def receive(self, handoffs: Mapping[int, Sequence[Handoff]], client: redis.Redis | None = None) -> Any:
        """Enqueue the handoffs other shards made for this one (source shard -> its
        handoffs, in their order), those not applied before and none past a gap
        (receive.lua); ``(requests queued, {source: highest number applied from it})``.
        *client* may be a pipeline, in which case the result comes from its
        ``execute()`` (read it with :func:`parse_received`)."""
        k = self.keys
        key_list = _KeyList([
            k.ready, k.host_waits, k.host_top, k.host_active, k.host_settings, k.queued_count, k.stats,
            k.handoffs_received,
        ])
        args: list[object] = [self.order, self.politeness.concurrency]
        for source, part in handoffs.items():
            args += [source, len(part)]
            for handoff in part:
                args += [
                    handoff.seq, handoff.priority, handoff.host,
                    key_list.index(k.host_queue(handoff.host, handoff.priority)),
                    key_list.index(k.host_priorities(handoff.host)), handoff.entry,
                ]
        result = run_script(self._receive, key_list.keys, args, client)
        return result if client is not None else parse_received(result)

    def trim_handoffs(self, applied: Mapping[int, int], client: redis.Redis | None = None) -> Any:
        """Forget the handoffs to each target shard numbered up to what it applied
        (target -> highest number); how many. *client* as for :meth:`receive`."""
        k = self.keys
        keys = [k.handoff_targets, k.queued_count, k.dead_letters, k.stats, *(k.handoff(target) for target in applied)]
        args: list[object] = [value for target, last in applied.items() for value in (target, last)]
        result = run_script(self._trim_handoff, keys, args, client)
        return result if client is not None else int(result)

    def heartbeat(self, *, register: bool = True) -> tuple[int, int]:
        """Extend this worker's leases and reap dead workers.

        Returns ``(dead workers reaped, requests returned to the queue)``.
        """
        dead = self._heartbeat(
            keys=[self.keys.workers],
            args=[self.worker_id if register else "", self.lease_timeout_ms],
        )
        reaped = returned = 0
        for worker in dead:
            worker_id = worker.decode()
            if worker_id == self.worker_id:
                continue
            reaped += 1
            returned += self._requeue_worker(worker_id, "expired")
        if returned:
            logger.warning(
                "Returned %d requests leased by %d dead worker(s) to the queue", returned, reaped
            )
        return reaped, returned

    def dead_letter(self, lease: Lease, reason: str) -> None:
        """Move an undecodable leased entry to the dead-letter list, with the reason."""
        record = json.dumps(
            {
                "reason": reason,
                "entry": lease.entry.decode("utf-8", errors="backslashreplace"),
                "priority": lease.priority,
                "host": lease.host,
                "worker": self.worker_id,
                "time": time.time(),
            }
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.keys.dead_letters, record)
        self.ack([Ack(lease.id, lease.host)], client=pipe, counter="dead_letters")
        pipe.execute()
        logger.error("Dead-lettered queue entry %r: %s", lease.entry[:200], reason)

    def status(self) -> QueueStatus:
        """Queue depth, leases per worker, hosts by state, dead letters and counters."""
        return read_status(self.client, self.keys, self.politeness.concurrency)


def read_status(client: redis.Redis, keys: CrawlKeys, default_concurrency: int = 8) -> QueueStatus:
    """A :class:`QueueStatus` for the crawl *keys*, all its shards together (four round
    trips, whatever the number of shards and hosts: on a cluster each pipeline goes
    to every master at once).

    *default_concurrency* is the per-host limit of hosts that set none, for
    :attr:`QueueStatus.schedulable`.
    """
    shards = shard_keys(client, keys)
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros // 1000
    pipe = client.pipeline(transaction=False)
    for k in shards:
        pipe.get(k.queued_count)
        pipe.zrange(k.workers, 0, -1)
        pipe.llen(k.dead_letters)
        pipe.hgetall(k.stats)
        pipe.hlen(k.host_top)
        pipe.zcount(k.ready, "-inf", now_ms)
        pipe.zcard(k.ready)
        pipe.hlen(k.host_backoff)
        pipe.hlen(k.host_active)
        pipe.hgetall(k.host_settings)
        pipe.exists(k.legacy_priorities)
    replies = pipe.execute()
    per_shard = [replies[i * 11:(i + 1) * 11] for i in range(len(shards))]
    pipe = client.pipeline(transaction=False)
    for k, values in zip(shards, per_shard):
        for worker in values[1]:
            pipe.hlen(k.leases(worker.decode()))
    lengths = iter(pipe.execute() if any(values[1] for values in per_shard) else [])
    parts = [
        _shard_status(values, {w.decode(): next(lengths) for w in values[1]}, default_concurrency)
        for values in per_shard
    ]
    if len(parts) == 1:
        return parts[0]
    by_worker: dict[str, int] = {}
    counters: dict[str, int] = {}
    hosts = HostsSummary()
    for part in parts:
        for worker, leased in part.leased_by_worker.items():
            by_worker[worker] = by_worker.get(worker, 0) + leased
        for name, value in part.counters.items():
            counters[name] = counters.get(name, 0) + value
        for name in vars(hosts):
            setattr(hosts, name, getattr(hosts, name) + getattr(part.hosts, name))
    return QueueStatus(
        queued=sum(p.queued for p in parts),
        leased=sum(by_worker.values()),
        leased_by_worker=by_worker,
        workers=len(by_worker),
        dead_letters=sum(p.dead_letters for p in parts),
        counters=counters,
        hosts=hosts,
        schedulable=sum(p.schedulable for p in parts),
        legacy_layout=parts[0].legacy_layout,
    )


def _shard_status(values: list[Any], by_worker: dict[str, int], default_concurrency: int) -> QueueStatus:
    """The :class:`QueueStatus` of one shard, from what :func:`read_status` read of it."""
    (queued, workers, dead_letters, counters, with_queue, ready_now, ready, backed_off, active,
     settings, legacy) = values
    paused = 0
    # Hosts with their own concurrency change the sum; they are few (set by hand).
    extra_slots = 0
    for raw in settings.values():
        try:
            host_settings = json.loads(raw)
        except ValueError:
            continue
        if host_settings.get("paused") or host_settings.get("blocked"):
            paused += 1
        elif isinstance(host_settings.get("concurrency"), int):
            extra_slots += host_settings["concurrency"] - default_concurrency
    queued_count = max(0, int(queued or 0))
    slots = max(0, (with_queue - paused) * default_concurrency + extra_slots)
    return QueueStatus(
        queued=queued_count,
        leased=sum(by_worker.values()),
        leased_by_worker=by_worker,
        workers=len(workers),
        dead_letters=int(dead_letters),
        counters={k.decode(): int(v) for k, v in counters.items()},
        hosts=HostsSummary(
            with_queue=with_queue, ready=ready_now, waiting=max(0, with_queue - ready_now - paused),
            backed_off=backed_off, active=active, paused=paused,
        ),
        schedulable=min(queued_count, slots),
        legacy_layout=bool(legacy),
    )
