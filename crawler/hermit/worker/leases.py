"""A worker's leases over their life: renewed while it works, given back when it stops.

A lease is a request this worker took from the crawl's queue (:mod:`hermit.queue`
keeps them in Redis, with a deadline). :class:`WorkerLeases` renews them all with a
heartbeat a few times per lease timeout (which also returns the leases of workers
that died), returns leases Redis holds for this worker that it no longer knows
(Redis lost its last writes), and gives back what the worker holds when it stops:
its unstarted requests as soon as the engine closes, and every lease left at close.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import redis

from hermit.queue.frontier import Frontier
from hermit.queue.redis_queue import Lease
from hermit.worker.redis_health import RedisHealth

logger = logging.getLogger(__name__)

#: Heartbeats per lease timeout: a lease outlives two missed heartbeats.
HEARTBEATS_PER_LEASE_TIMEOUT = 3


class WorkerLeases:
    """The lease lifecycle of one worker on *queue*, counted in Scrapy's *stats*;
    *health* is the worker's view of whether Redis answers."""

    def __init__(self, queue: Frontier, stats: Any, health: RedisHealth, lease_timeout_seconds: float) -> None:
        self.queue = queue
        self.stats = stats
        self.health = health
        self.lease_timeout_seconds = lease_timeout_seconds
        self._next_heartbeat = 0.0

    def heartbeat_due(self) -> bool:
        """Whether it is time for the next heartbeat (and Redis may be tried)."""
        return time.monotonic() >= self._next_heartbeat and self.health.available()

    def heartbeat(self) -> bool:
        """Renew this worker's leases (and return dead workers' to the queue); True
        if some came back to the queue, so there may be work to lease now."""
        self._next_heartbeat = time.monotonic() + self.lease_timeout_seconds / HEARTBEATS_PER_LEASE_TIMEOUT
        try:
            _, returned = self.queue.heartbeat()
        except redis.RedisError as exc:
            self.stats.inc_value("hermit/redis/errors")
            self.health.failed(exc, "renewing leases")
            return False
        self.health.succeeded()
        return bool(returned)

    def return_stale(self) -> None:
        """Return leases Redis says this worker holds while it holds none.

        That happens only if Redis lost its last writes (a crash with ``appendfsync
        everysec`` or no persistence): the acks that were lost leave leases that no
        request in this worker will ever ack, and the crawl would never look done.
        Call it only while the worker holds no lease.
        """
        try:
            returned = self.queue.release(None)
        except redis.RedisError as exc:
            self.health.failed(exc, "checking for stale leases")
            return
        if returned:
            self.stats.inc_value("hermit/leases/stale_returned", returned)
            logger.warning("Returned %d leases this worker no longer held (Redis lost recent writes?)", returned)

    def return_unstarted(self, leases: Sequence[Lease]) -> bool:
        """Give back the leases of requests the engine will not start (it is closing);
        False if Redis could not be told (they are still held)."""
        try:
            returned = self.queue.release(list(leases))
        except redis.RedisError as exc:
            self.health.failed(exc, "returning unstarted requests")
            return False
        self.stats.inc_value("hermit/leases/returned", returned)
        logger.info("Stopping: returned %d unstarted requests to the queue", returned)
        return True

    def release_all(self) -> None:
        """Give back every lease this worker still holds (at close, once its writes
        are sent); those Redis can't be told about expire after the lease timeout."""
        try:
            returned = self.queue.release(None)
        except redis.RedisError as exc:
            logger.warning("Could not return leases at close (%s); they expire in %.0fs",
                           exc, self.lease_timeout_seconds)
            return
        if returned:
            self.stats.inc_value("hermit/leases/returned", returned)
            logger.info("Returned %d unprocessed requests to the queue", returned)
