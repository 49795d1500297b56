"""A local pool of worker processes that replaces the ones that exit.

Each worker is a separate OS process (``hermit worker ...``), so a worker's memory
goes back to the system when it exits: this is the pool of recyclable processes.
A worker that exits 0 has seen the crawl finish and is not replaced; one that was
recycled (by the pool or by its own memory budget) or died (a signal, a crash) is
started again — at once after a recycle, with a growing delay when it keeps dying
right after start. A worker told to drain that is still alive after its drain
deadline is killed; its leases come back when they expire.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from hermit.observability.endpoint_log import WorkerEndpoints, endpoints_in_log
from hermit.worker.run import (
    EXIT_CONFIG,
    EXIT_DRAIN_TIMEOUT,
    EXIT_FINISHED,
    EXIT_MEMORY_BUDGET,
    EXIT_MEMORY_HARD_LIMIT,
    EXIT_STOPPED,
)

logger = logging.getLogger(__name__)

NO_ENDPOINTS = WorkerEndpoints(metrics=None, diagnostics=None)

#: A worker that dies sooner than this after start counts as a failed start.
QUICK_DEATH_SECONDS = 5.0
MAX_RESTART_DELAY_SECONDS = 30.0
#: How long past its own drain deadline a draining worker may take to exit.
DRAIN_GRACE_SECONDS = 10.0

#: Why a worker that exited with this status stopped.
EXIT_REASONS = {
    EXIT_STOPPED: "stopped",
    EXIT_MEMORY_BUDGET: "over its memory budget",
    EXIT_MEMORY_HARD_LIMIT: "over its hard memory limit",
    EXIT_DRAIN_TIMEOUT: "drain deadline",
}


@dataclass(frozen=True)
class Recycle:
    """One recycle, for the live view, the logs and the summary."""

    index: int
    reason: str
    rss_bytes: int | None
    age_seconds: float


@dataclass
class WorkerSlot:
    """One place in the pool and the process currently filling it."""

    index: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    restarts: int = 0
    quick_deaths: int = 0
    restart_at: float | None = None
    finished: bool = False
    exits: list[int] = field(default_factory=list)
    draining_since: float | None = None  # when the pool told it to drain
    peak_rss_bytes: int | None = None  # of the current process, as last seen
    log_offset: int = 0  # where the current process's lines start in its log
    endpoints: WorkerEndpoints = NO_ENDPOINTS  # of the current process, once it has logged them

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class ConfigurationError(RuntimeError):
    """A worker rejected its settings; restarting it would not help."""


class WorkerPool:
    """Runs ``size`` copies of ``command``, logging each to ``log_dir/worker-N.log``."""

    def __init__(
        self, command: list[str], size: int, log_dir: Path, env: dict[str, str] | None = None,
        *, drain_timeout_seconds: float = 60.0,
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.command = command
        self.env = {**os.environ, **(env or {})}
        self.drain_timeout_seconds = drain_timeout_seconds
        log_dir.mkdir(parents=True, exist_ok=True)
        self.slots = [WorkerSlot(i, log_dir / f"worker-{i}.log") for i in range(size)]
        self.events: list[str] = []
        self.recycles: list[Recycle] = []
        self.last_recycle_at: float | None = None

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: WorkerSlot) -> None:
        log = slot.log_path.open("ab")
        slot.log_offset = log.tell()
        slot.endpoints = NO_ENDPOINTS
        slot.process = subprocess.Popen(
            [*self.command, "-s", f"HERMIT_WORKER_ID=local-{slot.index}-{slot.restarts}"],
            stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True,
        )
        log.close()
        slot.started_at = time.monotonic()
        slot.restart_at = None
        slot.draining_since = None
        slot.peak_rss_bytes = None

    def refresh_endpoints(self) -> bool:
        """Read the endpoints that running workers have logged since they started; True if any changed.

        Each worker serves /metrics and diagnostics on a free port and logs where
        (``HERMIT_METRICS_PORT=0``); a worker that stopped serving loses its entry.
        """
        changed = False
        for slot in self.slots:
            found = NO_ENDPOINTS
            if slot.running:
                found = slot.endpoints
                if found.metrics is None or found.diagnostics is None:
                    try:
                        with slot.log_path.open("rb") as log:
                            log.seek(slot.log_offset)
                            found = endpoints_in_log(log.read().decode("utf-8", "replace"))
                    except OSError:
                        found = slot.endpoints
            if found != slot.endpoints:
                slot.endpoints, changed = found, True
        return changed

    def poll(self) -> None:
        """Notice exits; restart workers when their delay has passed; kill stuck drains."""
        now = time.monotonic()
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is not None:
                self._exited(slot, slot.process.returncode, now)
            elif slot.running and slot.draining_since is not None:
                if now - slot.draining_since > self.drain_timeout_seconds + DRAIN_GRACE_SECONDS:
                    self._event(f"worker {slot.index} still draining after {now - slot.draining_since:.0f}s; killing it")
                    slot.process.kill()
            if slot.process is None and not slot.finished and slot.restart_at is not None and now >= slot.restart_at:
                slot.restarts += 1
                self._spawn(slot)

    def _exited(self, slot: WorkerSlot, code: int, now: float) -> None:
        slot.exits.append(code)
        lived = now - slot.started_at
        slot.process = None
        if code == EXIT_FINISHED:
            slot.finished = True
            self._event(f"worker {slot.index} finished")
            return
        if code == EXIT_CONFIG:
            raise ConfigurationError(f"worker {slot.index} rejected its settings; see {slot.log_path}")
        if code in (EXIT_MEMORY_BUDGET, EXIT_MEMORY_HARD_LIMIT, EXIT_DRAIN_TIMEOUT) and slot.draining_since is None:
            # It recycled itself.
            self._recycled(Recycle(slot.index, EXIT_REASONS[code], slot.peak_rss_bytes, lived), now)
        slot.quick_deaths = slot.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
        delay = min(MAX_RESTART_DELAY_SECONDS, 0.5 * 2 ** max(0, slot.quick_deaths - 1)) if slot.quick_deaths else 0
        slot.restart_at = now + delay
        how = EXIT_REASONS.get(code) or (f"signal {-code}" if code < 0 else f"exit {code}")
        verb = "was recycled" if slot.draining_since is not None or code in EXIT_REASONS else "died"
        self._event(f"worker {slot.index} {verb} ({how}) after {lived:.0f}s; restart in {delay:.1f}s")
        if slot.quick_deaths >= 3 and code in (EXIT_MEMORY_BUDGET, EXIT_MEMORY_HARD_LIMIT):
            self._event(f"worker {slot.index} keeps going over its memory budget right after start: "
                        "the budget is too low for this spider")

    def recycle(self, index: int, reason: str, rss_bytes: int | None) -> None:
        """Tell worker *index* to drain (SIGTERM) and exit; it is replaced when it does."""
        slot = self.slots[index]
        if not slot.running or slot.draining_since is not None:
            return
        now = time.monotonic()
        slot.process.send_signal(signal.SIGTERM)
        slot.draining_since = now
        self._recycled(Recycle(index, reason, rss_bytes, now - slot.started_at), now)

    def _recycled(self, recycle: Recycle, now: float) -> None:
        self.recycles.append(recycle)
        self.last_recycle_at = now
        rss = f"{recycle.rss_bytes / 2**20:.0f} MiB" if recycle.rss_bytes else "RSS unknown"
        self._event(f"recycling worker {recycle.index}: {recycle.reason} ({rss}, age {recycle.age_seconds:.0f}s)")

    def _event(self, text: str) -> None:
        logger.info(text)
        self.events.append(text)

    @property
    def all_finished(self) -> bool:
        return all(slot.finished for slot in self.slots)

    def rss_bytes(self) -> dict[int, int]:
        """Resident memory of each running worker (what the kernel's OOM killer sees)."""
        result = {}
        for slot in self.slots:
            if slot.running:
                try:
                    result[slot.index] = psutil.Process(slot.pid).memory_info().rss
                except psutil.Error:
                    continue
                slot.peak_rss_bytes = max(slot.peak_rss_bytes or 0, result[slot.index])
        return result

    def signal_worker(self, index: int, signum: int) -> None:
        slot = self.slots[index]
        if slot.running:
            os.kill(slot.pid, signum)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every worker (graceful drain), then SIGKILL what is left after *timeout*."""
        for slot in self.slots:
            if slot.running:
                slot.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for slot in self.slots:
            if slot.process is None:
                continue
            try:
                slot.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("worker %d did not stop in %.0fs; killing it", slot.index, timeout)
                slot.process.kill()
                slot.process.wait()
