"""A crawl's frontier over all its shards, as one worker sees it.

:class:`Frontier` has the interface of :class:`RedisRequestQueue` (one shard) and
routes every call to the shards it concerns (:mod:`hermit.queue.shards`): a push
to the shards of the requests' fingerprints, then delivers what they handed off;
an ack, a release or a dead letter to the shard of its host; a lease to the shards
in turn, from where the last one left off, skipping for a moment those that had
nothing ready; heartbeats to every shard, so each counts the live workers its
hosts' concurrency is shared by. With one shard it is that shard's queue.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis

from hermit.keys import CrawlKeys
from hermit.queue.redis_queue import (
    Ack, BloomSettings, Handoff, Lease, Politeness, QueuedRequest, QueueStatus, RedisRequestQueue, read_status,
)
from hermit.queue.shards import check_shards, fingerprint_shard, host_shard

logger = logging.getLogger(__name__)


class Frontier:
    """The frontier of crawl *keys* over *shards* shards (its layout's number, see
    :func:`hermit.queue.shards.crawl_shards`); the other parameters are
    :class:`RedisRequestQueue`'s. The Bloom filter's capacity is shared by the shards.

    ``idle_poll_seconds``: how long a shard that had nothing to lease is skipped
    while others are leased from.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: CrawlKeys,
        worker_id: str,
        *,
        shards: int = 1,
        bloom: BloomSettings | None = None,
        idle_poll_seconds: float = 0.2,
        **queue_options: Any,
    ) -> None:
        self.client = client
        self.keys = keys
        self.worker_id = worker_id
        self.shards = check_shards(shards)
        bloom = bloom or BloomSettings()
        if shards > 1:
            bloom = dataclasses.replace(bloom, capacity=math.ceil(bloom.capacity / shards))
        self.bloom_settings = bloom
        self.queues = [
            RedisRequestQueue(client, keys.shard(i), worker_id, shards=shards, bloom=bloom, **queue_options)
            for i in range(shards)
        ]
        self.politeness: Politeness = self.queues[0].politeness
        self.idle_poll_seconds = idle_poll_seconds
        #: After a lease: seconds until the next host is ready (None: no host has work).
        self.next_ready_seconds: float | None = None
        self._next_shard = random.randrange(shards)
        # Per shard: when (monotonic) to lease from it again, after it had nothing ready.
        self._skip_until = [0.0] * shards

    @property
    def first(self) -> RedisRequestQueue:
        """Shard 0's queue: where what the crawl has once lives (its items)."""
        return self.queues[0]

    def _of_host(self, host: str) -> RedisRequestQueue:
        return self.queues[host_shard(host, self.shards)]

    def _checking_shard(self, request: QueuedRequest) -> int:
        """The shard a push of *request* goes to: its fingerprint's, or its host's
        when it has none (dont_filter: nothing to check)."""
        if request.fingerprint is None:
            return host_shard(request.host, self.shards)
        return fingerprint_shard(request.fingerprint, self.shards)

    # writes -------------------------------------------------------------------

    def push_many(self, requests: Sequence[QueuedRequest]) -> list[int]:
        """As :meth:`RedisRequestQueue.push_many` (1 queued, 0 duplicate, 2 host
        blocked), over the shards; what a shard hands off is delivered before it
        returns, and counts as queued."""
        return self.write(0, requests, [], [], [], {})

    def write(
        self,
        batch: int,
        pushes: Sequence[QueuedRequest],
        items: Sequence[bytes],
        downloads: Sequence[Ack],
        acks: Sequence[Ack],
        landed: dict[int, list[int]],
    ) -> list[int]:
        """One worker write batch (number *batch*): push, append items, end downloads
        and leases, as one MULTI/EXEC per shard concerned. Returns the push results.

        *landed* (shard -> its push results) records the shards whose transaction
        landed, so a batch sent again after an error skips them: on one shard a batch
        is applied once, as on a single Redis. Items go with shard 0's transaction.
        Handoffs are delivered afterwards; one that fails waits in Redis for the
        next delivery (:meth:`deliver_handoffs`), never lost.
        """
        per_shard: dict[int, tuple[list[int], list[QueuedRequest], list[Ack], list[Ack]]] = {}

        def part(shard: int) -> tuple[list[int], list[QueuedRequest], list[Ack], list[Ack]]:
            return per_shard.setdefault(shard, ([], [], [], []))

        for position, request in enumerate(pushes):
            positions, requests, _, _ = part(self._checking_shard(request) if self.shards > 1 else 0)
            positions.append(position)
            requests.append(request)
        for download in downloads:
            part(host_shard(download.host, self.shards))[2].append(download)
        for ack in acks:
            part(host_shard(ack.host, self.shards))[3].append(ack)
        if items:
            part(0)
        results = [0] * len(pushes)
        handoffs: dict[tuple[int, int], list[Handoff]] = {}
        for shard in sorted(per_shard):
            positions, requests, shard_downloads, shard_acks = per_shard[shard]
            fresh = shard not in landed
            if fresh:
                queue = self.queues[shard]
                pipe = self.client.pipeline(transaction=True)
                try:
                    if requests:
                        queue.push_many(requests, client=pipe)
                    if shard == 0:
                        queue.add_items(items, batch, client=pipe)
                    queue.downloaded(shard_downloads, client=pipe)
                    queue.ack(shard_acks, client=pipe)
                    replies = pipe.execute()
                finally:
                    pipe.reset()
                landed[shard] = [int(r) for r in replies[0]] if requests else []
            for position, request, result in zip(positions, requests, landed[shard]):
                if result < 0:  # handed off to the host's shard as number -result
                    if fresh:
                        handoffs.setdefault((shard, host_shard(request.host, self.shards)), []).append(
                            Handoff(-result, int(request.priority), request.host, request.entry))
                    result = 1
                results[position] = result
        if handoffs:
            try:
                self._deliver(handoffs)
            except redis.RedisError as exc:
                logger.warning("Handoffs between shards wait for the next delivery: %s", exc)
        return results

    def _deliver(self, handoffs: dict[tuple[int, int], list[Handoff]]) -> None:
        """Deliver the handoffs a push just made, per (source, target) in their order:
        every target's receive in one pipeline, then every source's trim in another.
        A pair with an older handoff still undelivered (another pusher's, or one whose
        delivery failed) is delivered from its list's head instead."""
        pairs = sorted(handoffs)
        pipe = self.client.pipeline(transaction=False)
        for source, target in pairs:
            self.queues[target].receive(source, handoffs[source, target], client=pipe)
        applied = [int(reply[1]) for reply in pipe.execute()]
        pipe = self.client.pipeline(transaction=False)
        behind = []
        for (source, target), last in zip(pairs, applied):
            self.queues[source].trim_handoff(target, last, client=pipe)
            if last < handoffs[source, target][-1].seq:
                behind.append(source)
        pipe.execute()
        if behind:
            self.deliver_handoffs(sorted(set(behind)))

    def deliver_handoffs(self, sources: Sequence[int] | None = None) -> int:
        """Deliver what shards *sources* (all if None) handed off to other shards and
        those have not applied yet; returns the requests newly queued there."""
        queued = 0
        for source in range(self.shards) if sources is None else sources:
            for target, records in self.queues[source].waiting_handoffs().items():
                newly, applied = self.queues[target].receive(source, records)
                self.queues[source].trim_handoff(target, applied)
                queued += newly
        return queued

    def ack(self, acks: Sequence[Ack], *, counter: str = "acked") -> None:
        for queue, part in self._by_host_shard(acks):
            queue.ack(part, counter=counter)

    def downloaded(self, downloads: Sequence[Ack]) -> None:
        for queue, part in self._by_host_shard(downloads):
            queue.downloaded(part)

    def add_items(self, items: Sequence[bytes], batch: int) -> None:
        self.first.add_items(items, batch)

    def dead_letter(self, lease: Lease, reason: str) -> None:
        self._of_host(lease.host).dead_letter(lease, reason)

    def release(self, leases: Sequence[Lease] | None = None) -> int:
        """Return *leases* (all this worker holds, and unregister it, if None)."""
        if leases is None:
            return sum(queue.release(None) for queue in self.queues)
        return sum(queue.release(part) for queue, part in self._by_host_shard(leases))

    def _by_host_shard(self, entries: Sequence[Any]) -> list[tuple[RedisRequestQueue, list[Any]]]:
        if self.shards == 1:
            return [(self.first, list(entries))] if entries else []
        parts: dict[int, list[Any]] = {}
        for entry in entries:
            parts.setdefault(host_shard(entry.host, self.shards), []).append(entry)
        return [(self.queues[shard], part) for shard, part in sorted(parts.items())]

    # reads --------------------------------------------------------------------

    def lease(self, count: int, in_flight: Mapping[str, int] | None = None) -> list[Lease]:
        """Up to *count* leases from the shards in turn (see the module's doc); sets
        :attr:`next_ready_seconds` from the shards asked."""
        if self.shards == 1:
            leases = self.first.lease(count, in_flight)
            self.next_ready_seconds = self.first.next_ready_seconds
            return leases
        leases: list[Lease] = []
        waits: list[float] = []
        now = time.monotonic()
        start = self._next_shard
        for step in range(self.shards):
            shard = (start + step) % self.shards
            if self._skip_until[shard] > now:
                continue
            queue = self.queues[shard]
            got = queue.lease(count - len(leases), in_flight)
            leases += got
            if queue.next_ready_seconds is not None:
                waits.append(queue.next_ready_seconds)
            if not got:
                wait = queue.next_ready_seconds
                self._skip_until[shard] = now + min(self.idle_poll_seconds, wait if wait is not None else math.inf)
            if len(leases) >= count:
                self._next_shard = (shard + 1) % self.shards
                break
        else:
            self._next_shard = (start + 1) % self.shards
        self.next_ready_seconds = 0.0 if leases else (min(waits) if waits else None)
        return leases

    def heartbeat(self, *, register: bool = True) -> tuple[int, int]:
        """Heart-beat on every shard (and deliver handoffs a dead pusher left);
        ``(dead workers reaped, requests returned)``, a worker reaped on several
        shards counted once."""
        reaped = returned = 0
        for queue in self.queues:
            dead, back = queue.heartbeat(register=register)
            reaped = max(reaped, dead)
            returned += back
        if self.shards > 1:
            delivered = self.deliver_handoffs()
            if delivered:
                logger.info("Delivered %d requests handed off between shards", delivered)
        return reaped, returned

    def status(self) -> QueueStatus:
        return read_status(self.client, self.keys, self.politeness.concurrency)
