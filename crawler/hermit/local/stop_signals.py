"""SIGINT and SIGTERM as ``hermit crawl`` answers them: the first drains, the second stops at once.

The handlers only record what arrived; the supervisor's loop, which never blocks for
long, acts on it. So a signal is answered whatever Redis and the workers are doing.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

logger = logging.getLogger(__name__)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """Counts SIGINT/SIGTERM while installed (a context manager; main thread only, else a no-op)."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, object] = {}

    @property
    def requested(self) -> bool:
        """A stop was asked for: drain the workers and end."""
        return bool(self.received)

    @property
    def forced(self) -> bool:
        """A second signal came: stop the workers at once."""
        return len(self.received) >= 2

    @property
    def first(self) -> int | None:
        return self.received[0] if self.received else None

    def request(self, signum: int = signal.SIGTERM) -> None:
        """What a signal does; also callable directly (tests, a fatal error)."""
        self.received.append(signum)
        if len(self.received) == 1:
            logger.warning("%s: draining the workers (their unfinished requests stay queued); "
                           "press Ctrl-C again to stop at once", signal.Signals(signum).name)
        elif len(self.received) == 2:
            logger.warning("%s again: stopping the workers at once (their leases return on the next run)",
                           signal.Signals(signum).name)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.request(signum)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()
