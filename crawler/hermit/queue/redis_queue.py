"""The shared request queue: priority lists in Redis with per-worker leases.

Layout (see :mod:`hermit.keys`): one LIST per priority holding encoded requests, a
ZSET of the non-empty priorities, a ZSET of live workers scored by their lease
deadline, and per worker a HASH of the requests it leased.

Delivery is at-least-once. :meth:`RedisRequestQueue.lease` moves requests from the
lists into the worker's lease hash in one script; :meth:`ack` deletes them once
processed; :meth:`release` puts them back at once (graceful stop). A worker that
stops heart-beating (SIGKILL, OOM kill, lost node) is reaped by any other worker
after ``lease_timeout_seconds`` and its leases go back to the head of the queue.

Dedup and push are one script (Bloom check-and-set, then push), so a request can
never be marked as seen without being queued.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

import redis

from hermit.dedup.bloom import BLOOM_LUA, RedisBloomFilter, fingerprint_hashes
from hermit.keys import CrawlKeys

logger = logging.getLogger(__name__)

QUEUE_ORDERS = ("fifo", "lifo")


#: How long the number of a worker's last landed write batch is kept.
FLUSH_MARKER_SECONDS = 7 * 24 * 3600


def _script(name: str) -> str:
    return resources.files("hermit.queue").joinpath("scripts", name).read_text()


@dataclass(frozen=True)
class QueuedRequest:
    """One request to push: its encoded entry, priority, and fingerprint (None = don't dedup)."""

    entry: bytes
    priority: int = 0
    fingerprint: bytes | None = None


@dataclass(frozen=True)
class Lease:
    """A leased request: ``id`` is what :meth:`RedisRequestQueue.ack` takes."""

    id: str
    priority: int
    entry: bytes


@dataclass
class QueueStatus:
    """A snapshot of one crawl's queue."""

    queued: int
    queued_by_priority: dict[int, int]
    leased: int
    leased_by_worker: dict[str, int]
    workers: int
    dead_letters: int
    counters: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """Nothing queued and nothing leased: no worker can produce more work."""
        return self.queued == 0 and self.leased == 0


@dataclass(frozen=True)
class BloomSettings:
    """How the crawl's Bloom filter is sized when it is first created."""

    capacity: int = 1_000_000
    error_ratio: float = 1e-4
    growth: int = 2
    max_chunk_bits: int = 2**32


class RedisRequestQueue:
    """A crawl's shared request queue, as seen by one worker.

    Parameters: ``client`` (a ``redis.Redis``), ``keys`` (the crawl's key names),
    ``worker_id`` (unique among live workers), ``order`` (``fifo`` or ``lifo``
    within one priority), ``lease_timeout_seconds`` (how long a silent worker
    keeps its leases), ``bloom`` (dedup filter sizing).
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
        requeue = _script("requeue.lua")
        self._push = client.register_script(BLOOM_LUA + "\n" + _script("push.lua"))
        self._lease = client.register_script(_script("lease.lua"))
        self._release = client.register_script(requeue + "\n" + _script("release.lua"))
        self._heartbeat = client.register_script(requeue + "\n" + _script("heartbeat.lua"))
        self._ack = client.register_script(_script("ack.lua"))
        self._add_items = client.register_script(_script("add_items.lua"))

    @property
    def bloom(self) -> RedisBloomFilter:
        s = self.bloom_settings
        return RedisBloomFilter(
            self.client, self.keys, capacity=s.capacity, error_ratio=s.error_ratio,
            growth=s.growth, max_chunk_bits=s.max_chunk_bits,
        )

    def push_many(self, requests: Sequence[QueuedRequest], client: redis.Redis | None = None) -> list[bool]:
        """Dedup and enqueue *requests* in one round trip; return True for each one queued.

        A request with a fingerprint is queued only if the Bloom filter had not seen
        it; one without (``dont_filter``) is always queued. *client* may be a
        pipeline, in which case the result comes from its ``execute()``.
        """
        if not requests:
            return []
        s = self.bloom_settings
        args: list[object] = [
            self.keys.base, self.order, s.capacity, repr(s.error_ratio), s.growth, s.max_chunk_bits,
        ]
        for request in requests:
            if request.fingerprint is None:
                args += ["0", "0", "0"]
            else:
                h1, h2 = fingerprint_hashes(request.fingerprint)
                args += ["1", h1, h2]
            args += [int(request.priority), request.entry]
        result = self._push(
            keys=[self.keys.priorities, self.keys.bloom_meta, self.keys.stats],
            args=args,
            client=client,
        )
        if client is not None and client is not self.client:
            return result  # a pipeline: the caller reads the outcome from execute()
        return [bool(r) for r in result]

    def lease(self, count: int) -> list[Lease]:
        """Lease up to *count* requests, highest priority first (also a heartbeat)."""
        flat = self._lease(
            keys=[
                self.keys.priorities, self.keys.workers, self.keys.leases(self.worker_id),
                self.keys.lease_seq, self.keys.stats,
            ],
            args=[self.keys.base, self.worker_id, int(count), self.lease_timeout_ms],
        )
        return [
            Lease(id=flat[i].decode(), priority=int(flat[i + 1]), entry=flat[i + 2])
            for i in range(0, len(flat), 3)
        ]

    def ack(self, lease_ids: Sequence[str], client: redis.Redis | None = None) -> None:
        """Forget processed leases. Acking a lease that was already reaped is a no-op."""
        if not lease_ids:
            return
        self._ack(keys=[self.keys.leases(self.worker_id), self.keys.stats], args=list(lease_ids), client=client)

    def add_items(self, items: Sequence[bytes], batch: int, client: redis.Redis | None = None) -> None:
        """Append *items* (JSON) to the crawl's stream unless batch number *batch* already landed.

        A worker numbers its write batches; resending a batch whose reply was lost
        (Redis died after applying it) then appends nothing twice.
        """
        if not items:
            return
        self._add_items(
            keys=[self.keys.items, self.keys.flushed(self.worker_id)],
            args=[batch, FLUSH_MARKER_SECONDS, *items],
            client=client,
        )

    def release(self, lease_ids: Sequence[str] | None = None) -> int:
        """Return leases to the head of the queue; all of them (and unregister) if None."""
        if lease_ids is not None and not lease_ids:
            return 0
        mode = ["all"] if lease_ids is None else ["some", *lease_ids]
        return int(
            self._release(
                keys=[self.keys.priorities, self.keys.leases(self.worker_id), self.keys.workers],
                args=[self.keys.base, self.worker_id, *mode],
            )
        )

    def heartbeat(self, *, register: bool = True) -> tuple[int, int]:
        """Extend this worker's leases and reap dead workers.

        Returns ``(dead workers reaped, requests returned to the queue)``.
        """
        reaped, returned = self._heartbeat(
            keys=[self.keys.workers, self.keys.priorities],
            args=[self.keys.base, self.worker_id if register else "", self.lease_timeout_ms],
        )
        if returned:
            logger.warning(
                "Returned %d requests leased by %d dead worker(s) to the queue", returned, reaped
            )
        return int(reaped), int(returned)

    def dead_letter(self, lease: Lease, reason: str) -> None:
        """Move an undecodable leased entry to the dead-letter list, with the reason."""
        record = json.dumps(
            {
                "reason": reason,
                "entry": lease.entry.decode("utf-8", errors="backslashreplace"),
                "priority": lease.priority,
                "worker": self.worker_id,
                "time": time.time(),
            }
        )
        pipe = self.client.pipeline(transaction=True)
        pipe.lpush(self.keys.dead_letters, record)
        pipe.hdel(self.keys.leases(self.worker_id), lease.id)
        pipe.hincrby(self.keys.stats, "dead_letters", 1)
        pipe.execute()
        logger.error("Dead-lettered queue entry %r: %s", lease.entry[:200], reason)

    def status(self) -> QueueStatus:
        """Queue depth per priority, leases per worker, dead letters and counters."""
        return read_status(self.client, self.keys)


def read_status(client: redis.Redis, keys: CrawlKeys) -> QueueStatus:
    """A :class:`QueueStatus` for the crawl *keys* (three round trips)."""
    pipe = client.pipeline(transaction=False)
    pipe.zrange(keys.priorities, 0, -1)
    pipe.zrange(keys.workers, 0, -1)
    pipe.llen(keys.dead_letters)
    pipe.hgetall(keys.stats)
    priorities, workers, dead_letters, counters = pipe.execute()
    pipe = client.pipeline(transaction=False)
    for priority in priorities:
        pipe.llen(keys.queue(int(priority)))
    for worker in workers:
        pipe.hlen(keys.leases(worker.decode()))
    lengths = pipe.execute()
    by_priority = {int(p): n for p, n in zip(priorities, lengths[: len(priorities)]) if n}
    by_worker = {w.decode(): n for w, n in zip(workers, lengths[len(priorities):])}
    return QueueStatus(
        queued=sum(by_priority.values()),
        queued_by_priority=by_priority,
        leased=sum(by_worker.values()),
        leased_by_worker=by_worker,
        workers=len(workers),
        dead_letters=int(dead_letters),
        counters={k.decode(): int(v) for k, v in counters.items()},
    )
