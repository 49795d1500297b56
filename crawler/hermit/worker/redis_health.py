"""Backoff bookkeeping for a worker's Redis connection.

While Redis is unreachable the worker keeps what it must write, stops asking for
work, and retries with exponential backoff; one warning when the outage starts and
one line when it ends, instead of a log line per failed call.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger(__name__)


class RedisHealth:
    """Tracks outages; ``retry_max_seconds`` caps the backoff delay."""

    def __init__(self, retry_max_seconds: float = 10.0, first_delay_seconds: float = 0.1) -> None:
        self.retry_max_seconds = retry_max_seconds
        self.first_delay_seconds = first_delay_seconds
        self.failures = 0
        self.errors_total = 0
        self.outage_started: float | None = None
        self.retry_at = 0.0

    def available(self) -> bool:
        """True when a call may be tried now (no outage, or its backoff delay passed)."""
        return time.monotonic() >= self.retry_at

    def delay(self) -> float:
        return max(0.0, self.retry_at - time.monotonic())

    def failed(self, exc: BaseException, doing: str) -> float:
        """Record a failed call; return the delay before the next try."""
        self.errors_total += 1
        self.failures += 1
        delay = min(self.retry_max_seconds, self.first_delay_seconds * 2 ** (self.failures - 1))
        self.retry_at = time.monotonic() + delay
        if self.outage_started is None:
            self.outage_started = time.monotonic()
            logger.warning(
                "Redis unreachable while %s (%s: %s); keeping pending work and retrying with backoff",
                doing, type(exc).__name__, exc,
            )
        else:
            logger.debug("Redis still unreachable while %s (%s); next try in %.1fs", doing, exc, delay)
        return delay

    def succeeded(self) -> None:
        if self.outage_started is not None:
            logger.warning(
                "Redis reachable again after %.1fs and %d failed calls",
                time.monotonic() - self.outage_started, self.failures,
            )
        self.failures = 0
        self.outage_started = None
        self.retry_at = 0.0
