"""The embedded parts of a local crawl (Redis, the demo site), restarted when they die.

The workers keep going through a short outage (they retry Redis with backoff and
Scrapy retries failed downloads), so a service that dies is started again at once,
on the same port — the Redis from its append-only file, the demo site with the same
pages — and the crawl carries on. One that can't be started again after a few tries
ends the crawl with the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger(__name__)

#: Consecutive failed restarts after which a service is given up on.
MAX_FAILED_RESTARTS = 5
RESTART_INTERVAL_SECONDS = 1.0


class Service(Protocol):
    @property
    def alive(self) -> bool: ...

    def start(self) -> object: ...

    def stop(self) -> None: ...


class ServiceFailed(RuntimeError):
    """An embedded service died and could not be started again."""


class SupervisedService:
    """Restarts *service* (named *name* in messages) when :meth:`check` finds it dead.

    ``on_event(text)`` hears of each death and restart, for the live view and the summary.
    """

    def __init__(self, name: str, service: Service, on_event: Callable[[str], None] | None = None) -> None:
        self.name = name
        self.service = service
        self.on_event = on_event or (lambda text: None)
        self.restarts = 0
        self._failures = 0
        self._last_try = 0.0

    def check(self) -> bool:
        """True if the service runs (after restarting it if need be); raise ServiceFailed when it can't."""
        if self.service.alive:
            self._failures = 0
            return True
        now = time.monotonic()
        if now - self._last_try < RESTART_INTERVAL_SECONDS:
            return False
        self._last_try = now
        if self._failures == 0:
            self.on_event(f"{self.name} died; starting it again")
        self.service.stop()  # reap the dead process
        try:
            self.service.start()
        except Exception as exc:
            self._failures += 1
            logger.warning("Could not start %s again (%s)", self.name, exc)
            if self._failures >= MAX_FAILED_RESTARTS:
                raise ServiceFailed(f"{self.name} died and could not be started again: {exc}") from None
            return False
        self._failures = 0
        self.restarts += 1
        self.on_event(f"{self.name} started again (restart {self.restarts})")
        return True
