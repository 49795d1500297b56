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

from hermit.dedup.bloom import fingerprint_shard
from hermit.keys import CrawlKeys
from hermit.queue.redis_queue import (
    Ack, BloomSettings, Handoff, Lease, Politeness, QueuedRequest, QueueStatus, RedisRequestQueue, parse_received,
    read_status,
)
from hermit.queue import script_calls
from hermit.queue.shards import check_shards, host_shard, layout_keys

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
        self.shards = check_shards(shards)
        self.keys = keys = layout_keys(client, keys) if shards > 1 else keys
        self.worker_id = worker_id
        bloom = bloom or BloomSettings()
        if shards > 1:
            bloom = dataclasses.replace(bloom, capacity=math.ceil(bloom.capacity / shards))
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
        and leases, in that order. Returns the push results.

        On one shard it is one MULTI/EXEC. Over several, every shard's push and the
        items go in one pipeline, then the handoffs those pushes made are delivered,
        then the downloads and acks go in another pipeline: nothing is acked before the
        requests and items its response produced landed. *landed* (shard -> its push
        results) keeps the shards whose push landed, so a batch sent again after an
        error pushes nothing twice; items (numbered by *batch*) and acks land once
        however often they are sent. A delivery that fails waits in Redis for the next
        (:meth:`deliver_handoffs`), never lost.
        """
        if self.shards == 1:
            return self._write_one_shard(batch, pushes, items, downloads, acks, landed)
        by_shard: dict[int, list[int]] = {}
        for position, request in enumerate(pushes):
            by_shard.setdefault(self._checking_shard(request), []).append(position)
        pending = [shard for shard in sorted(by_shard) if shard not in landed]
        if pending or items:
            pipe = script_calls.pipeline(self.client)
            for shard in pending:
                self.queues[shard].push_many([pushes[i] for i in by_shard[shard]], client=pipe)
            if items:
                self.first.add_items(items, batch, client=pipe)
            replies = script_calls.execute(pipe, raise_on_error=False)
            for shard, reply in zip(pending, replies):
                if not isinstance(reply, Exception):
                    landed[shard] = [int(r) for r in reply]
            failed = [reply for reply in replies if isinstance(reply, Exception)]
            if failed:
                raise failed[0]
        results = [0] * len(pushes)
        handoffs: dict[int, dict[int, list[Handoff]]] = {}  # target -> source -> in their order
        for shard, positions in by_shard.items():
            for position, result in zip(positions, landed[shard]):
                if result < 0:  # handed off to the host's shard as number -result
                    if shard in pending:
                        request = pushes[position]
                        handoffs.setdefault(host_shard(request.host, self.shards), {}).setdefault(shard, []).append(
                            Handoff(-result, int(request.priority), request.host, request.entry))
                    result = 1
                results[position] = result
        applied = self._receive(handoffs) if handoffs else {}
        pipe = script_calls.pipeline(self.client)
        for source, per_target in sorted(applied.items()):
            self.queues[source].trim_handoffs(per_target, client=pipe)
        for queue, part in self._by_host_shard(downloads):
            queue.downloaded(part, client=pipe)
        for queue, part in self._by_host_shard(acks):
            queue.ack(part, client=pipe)
        script_calls.execute(pipe)
        behind = {source for target, sources in handoffs.items() for source, sent in sources.items()
                  if applied.get(source, {}).get(target, 0) < sent[-1].seq}
        if behind:
            self._deliver_quietly(sorted(behind))
        return results

    def _write_one_shard(self, batch: int, pushes: Sequence[QueuedRequest], items: Sequence[bytes],
                         downloads: Sequence[Ack], acks: Sequence[Ack], landed: dict[int, list[int]]) -> list[int]:
        pipe = self.client.pipeline(transaction=True)
        try:
            if pushes:
                self.first.push_many(pushes, client=pipe)
            self.first.add_items(items, batch, client=pipe)
            self.first.downloaded(downloads, client=pipe)
            self.first.ack(acks, client=pipe)
            replies = pipe.execute()
        finally:
            pipe.reset()
        landed[0] = [int(r) for r in replies[0]] if pushes else []
        return landed[0]

    def _receive(self, handoffs: dict[int, dict[int, list[Handoff]]]) -> dict[int, dict[int, int]]:
        """Every target's receive in one pipeline; source -> target -> the highest number
        it applied. A failure is logged and leaves the handoffs for the next delivery."""
        targets = sorted(handoffs)
        pipe = script_calls.pipeline(self.client)
        for target in targets:
            self.queues[target].receive(handoffs[target], client=pipe)
        try:
            replies = script_calls.execute(pipe)
        except redis.RedisError as exc:
            logger.warning("Handoffs between shards wait for the next delivery: %s", exc)
            return {}
        applied: dict[int, dict[int, int]] = {}
        for target, reply in zip(targets, replies):
            for source, last in parse_received(reply)[1].items():
                applied.setdefault(source, {})[target] = last
        return applied

    def _deliver_quietly(self, sources: Sequence[int]) -> None:
        try:
            self.deliver_handoffs(sources)
        except redis.RedisError as exc:
            logger.warning("Handoffs between shards wait for the next delivery: %s", exc)

    def deliver_handoffs(self, sources: Sequence[int] | None = None) -> int:
        """Deliver what shards *sources* (all if None) handed off to other shards and
        those have not applied yet, from the head of each list; returns the requests
        newly queued there."""
        queued = 0
        for source in range(self.shards) if sources is None else sources:
            for target, waiting in self.queues[source].waiting_handoffs().items():
                newly, applied = self.queues[target].receive({source: waiting})
                self.queues[source].trim_handoffs({target: applied.get(source, 0)})
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
