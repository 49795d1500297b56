"""A worker's ordered buffer of writes to Redis: new requests, items, finished downloads, then acks.

Scrapy hands the scheduler one request at a time and the item sink one item at a
time; sending each alone would cost a round trip apiece. The outbox collects them
and writes everything gathered during one turn of the reactor in one MULTI/EXEC
transaction (one per shard the writes concern, see
:meth:`hermit.queue.frontier.Frontier.write`): dedup-and-push first, then items,
then acks. An ack is therefore never
written before the requests and items its response produced — if the worker dies
in between, the lease comes back and the page is fetched again (at-least-once),
and nothing is lost.

If Redis is unreachable the outbox keeps everything and retries with backoff.

With an ``executor`` (the worker's: one thread), a scheduled flush sends its
transaction from that thread, so the reactor goes on parsing responses while Redis
runs the scripts; the reply is handled back in the reactor thread. One transaction
is in flight at a time, so the order above holds across transactions too. A
flush called directly (before a lease, at close) first waits for the one in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import redis

from hermit.worker.redis_health import RedisHealth

if TYPE_CHECKING:
    from hermit.queue.frontier import Frontier
    from hermit.queue.redis_queue import Ack, QueuedRequest

logger = logging.getLogger(__name__)

#: Called after a flush with the pushed payloads (whatever ``push`` was given
#: as ``context``) and, for each, what push.lua said: 1 queued, 0 duplicate, 2 host blocked.
PushedCallback = Callable[[list[Any], list[int]], None]


class Outbox:
    """Buffered, ordered writes of one worker.

    ``max_operations``: flush at once when this many writes wait.
    ``call_later(delay, fn)``: the reactor's scheduling (so tests can flush by hand).
    ``executor`` and ``call_from_thread(fn, *args)``: send scheduled flushes from the
    executor's thread, their outcome handled through ``call_from_thread`` (the
    reactor's ``callFromThread``); without them every flush is sent from the caller.
    """

    def __init__(
        self,
        queue: Frontier,
        *,
        health: RedisHealth,
        call_later: Callable[[float, Callable[[], None]], Any],
        max_operations: int = 500,
        on_pushed: PushedCallback | None = None,
        executor: Executor | None = None,
        call_from_thread: Callable[..., Any] | None = None,
    ) -> None:
        if (executor is None) != (call_from_thread is None):
            raise ValueError("an executor needs call_from_thread, and the other way round")
        self.queue = queue
        self.health = health
        self.call_later = call_later
        self.max_operations = max_operations
        self.on_pushed = on_pushed
        self._pushes: list[QueuedRequest] = []
        self._push_context: list[Any] = []
        self._items: list[bytes] = []
        self._acks: list[Ack] = []
        self._downloads: list[Ack] = []
        self._next_batch_number = 0
        self._unconfirmed: _Batch | None = None
        self._executor = executor
        self._call_from_thread = call_from_thread
        #: The batch being sent from the executor's thread, and its outcome.
        self._sending: tuple[_Batch, Future] | None = None
        self._flush_scheduled = False
        self.flushes = 0

    @property
    def pending(self) -> int:
        """Writes not yet confirmed by Redis."""
        unconfirmed = self._unconfirmed.size if self._unconfirmed is not None else 0
        sending = self._sending[0].size if self._sending is not None else 0
        return len(self._pushes) + len(self._items) + len(self._downloads) + len(self._acks) + unconfirmed + sending

    @property
    def pending_pushes(self) -> int:
        """Requests pushed and not yet confirmed by Redis."""
        unconfirmed = len(self._unconfirmed.pushes) if self._unconfirmed is not None else 0
        sending = len(self._sending[0].pushes) if self._sending is not None else 0
        return len(self._pushes) + unconfirmed + sending

    def push(self, queued: QueuedRequest, context: Any = None) -> None:
        self._pushes.append(queued)
        self._push_context.append(context)
        self._written()

    def add_item(self, item_json: bytes) -> None:
        self._items.append(item_json)
        self._written()

    def downloaded(self, download: Ack) -> None:
        """A leased request's download ended: free its host's slot (written before any ack)."""
        self._downloads.append(download)
        self._written()

    def ack(self, ack: Ack) -> None:
        self._acks.append(ack)
        self._written()

    def _written(self) -> None:
        if self.pending >= self.max_operations and self.health.available():
            if self._executor is not None and self._sending is None:
                self._send_in_background()
            else:
                self.flush()  # a full outbox waits for Redis: that holds the spider back
        else:
            self._schedule(0.0 if self.health.available() else self.health.delay())

    def _schedule(self, delay: float) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.call_later(delay, self._scheduled_flush)

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        if self._executor is None:
            self.flush()
        elif self._sending is None:
            self._send_in_background()
        # else: when the batch in flight is done, the rest is scheduled

    def _send_in_background(self) -> None:
        if not self.pending:
            return
        if not self.health.available():
            self._schedule(self.health.delay())
            return
        assert self._executor is not None and self._call_from_thread is not None
        batch = self._unconfirmed or self._take_batch()
        self._unconfirmed = None
        future = self._executor.submit(self._execute, batch)
        self._sending = (batch, future)
        call_from_thread = self._call_from_thread
        future.add_done_callback(lambda done: call_from_thread(self._sent_in_background, done))

    def _sent_in_background(self, future: Future) -> None:
        if self._sending is None or self._sending[1] is not future:
            return  # a direct flush waited for it and handled it
        if self._finish_sending() and self.pending:
            self._schedule(0.0)

    def _finish_sending(self) -> bool:
        """Wait for the batch in flight and handle its outcome; True if it landed."""
        assert self._sending is not None
        batch, future = self._sending
        wait_for([future])
        self._sending = None
        try:
            results = future.result()
        except redis.RedisError as exc:
            return self._failed(batch, exc)
        return self._landed(batch, results)

    def flush(self) -> bool:
        """Write everything pending; return True if nothing is left.

        A batch that failed is sent again alone, with its number, before anything
        newer: if it had in fact landed (only the reply was lost), its pushes are
        found already seen, its acks are no-ops and its items are not appended twice.
        """
        if self._sending is not None and not self._finish_sending():
            return False
        if not self.pending:
            return True
        if not self.health.available():
            self._schedule(self.health.delay())
            return False
        while self.pending:
            batch = self._unconfirmed or self._take_batch()
            if not self._send(batch):
                return False
        return True

    def _take_batch(self) -> _Batch:
        batch = _Batch(self._next_batch_number, self._pushes, self._push_context, self._items, self._acks,
                       self._downloads)
        self._next_batch_number += 1
        self._pushes, self._push_context, self._items, self._acks, self._downloads = [], [], [], [], []
        return batch

    def _execute(self, batch: _Batch) -> list[int]:
        """Send *batch* (a MULTI/EXEC per shard, those that landed before skipped); the
        push results. Touches nothing but the batch (it may run in the executor's thread)."""
        return self.queue.write(batch.number, batch.pushes, batch.items, batch.downloads, batch.acks, batch.landed)

    def _send(self, batch: _Batch) -> bool:
        try:
            results = self._execute(batch)
        except redis.RedisError as exc:
            return self._failed(batch, exc)
        return self._landed(batch, results)

    def _failed(self, batch: _Batch, exc: redis.RedisError) -> bool:
        # A failed MULTI/EXEC applied nothing, or (reply lost) everything; the
        # shards whose transaction landed are in batch.landed.
        self._unconfirmed = batch
        self._schedule(self.health.failed(exc, "writing requests, items and acks"))
        return False

    def _landed(self, batch: _Batch, results: list[int]) -> bool:
        self._unconfirmed = None
        self.health.succeeded()
        self.flushes += 1
        if batch.pushes and self.on_pushed is not None:
            self.on_pushed(batch.contexts, results)
        return True


@dataclass
class _Batch:
    """One transaction's worth of writes, numbered per worker."""

    number: int
    pushes: list[QueuedRequest]
    contexts: list[Any]
    items: list[bytes]
    acks: list[Ack]
    downloads: list[Ack]
    #: Shards whose transaction of this batch landed -> their push results.
    landed: dict[int, list[int]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.pushes) + len(self.items) + len(self.acks) + len(self.downloads)
