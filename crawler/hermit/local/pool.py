"""A local pool of worker processes that replaces the ones that exit.

Each worker is a separate OS process (``hermit worker ...``), so a worker's memory
goes back to the system when it exits: this is the pool of recyclable processes.
A worker that exits 0 has seen the crawl finish and is not replaced; one that was
recycled (by the pool or by its own memory budget) or died (a signal, a crash) is
started again — at once after a recycle, with a growing delay after a death. A
worker that dies right after start several times in a row (a crash loop: a restart
won't fix it) and one that rejects its settings end the pool's run with the cause and
the worker's last log lines, as systemd and Kubernetes report a crash loop rather
than hide it. A worker told to drain that is still alive after its drain deadline is
killed; its leases come back when they expire.

With ``warm_spare``, a worker the pool recycles is replaced at once: the replacement
starts (Python, Scrapy, its first lease take seconds) while the old one drains beside
it, so the pool keeps its size in serving workers through a recycle. The draining one
is an extra process (:attr:`WorkerPool.retiring`) until it exits; the recycling policy
counts it as draining, so there are never more of them than recycles allowed at once.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from hermit.child_process import popen_options
from hermit.observability.endpoint_log import WorkerEndpoints, endpoints_in_log
from hermit.worker.exit_codes import (
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
#: This many failed starts in a row end the run (WorkerCrashLoop).
CRASH_LOOP_STARTS = 3
#: Log lines of a failing worker shown with the error.
ERROR_LINES = 8
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


@dataclass
class RetiringWorker:
    """A recycled worker draining beside the replacement that took its slot (warm spare)."""

    index: int
    process: subprocess.Popen[bytes]
    started_at: float
    draining_since: float

    @property
    def running(self) -> bool:
        return self.process.poll() is None


class ConfigurationError(RuntimeError):
    """A worker rejected its settings; restarting it would not help."""


class WorkerCrashLoop(RuntimeError):
    """A worker failed CRASH_LOOP_STARTS times in a row right after starting."""


def last_error_lines(text: str, count: int = ERROR_LINES) -> list[str]:
    """The last *count* lines of a worker's log that say what went wrong (errors, a traceback's end)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if " ERROR" in line or " CRITICAL" in line or "Error" in line]
    return (errors or lines)[-count:]


class WorkerPool:
    """Runs ``size`` copies of ``command``, logging each to ``log_dir/worker-N.log``.

    Each process gets a worker id of its own (``local-RUN-SLOT-RESTART``) — never one
    an earlier pool on the same crawl used, since Redis remembers a worker's last
    write batch by its id and would take a new worker's first batches for repeats.
    """

    def __init__(
        self, command: list[str], size: int, log_dir: Path, env: dict[str, str] | None = None,
        *, drain_timeout_seconds: float = 60.0, warm_spare: bool = False,
    ) -> None:
        if size < 1:
            raise ValueError("a pool needs at least one worker")
        self.command = command
        self.env = {**os.environ, **(env or {})}
        self.drain_timeout_seconds = drain_timeout_seconds
        self.warm_spare = warm_spare
        self.retiring: list[RetiringWorker] = []
        log_dir.mkdir(parents=True, exist_ok=True)
        self.slots = [WorkerSlot(i, log_dir / f"worker-{i}.log") for i in range(size)]
        self.events: list[str] = []
        self.recycles: list[Recycle] = []
        self.last_recycle_at: float | None = None
        self.run_id = uuid.uuid4().hex[:8]
        self.stopping = False  # set by terminate_all(): exits are recorded, nothing restarts

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: WorkerSlot) -> None:
        log = slot.log_path.open("ab")
        slot.log_offset = log.tell()
        slot.endpoints = NO_ENDPOINTS
        slot.process = subprocess.Popen(
            [*self.command, "-s", f"HERMIT_WORKER_ID={self.worker_id(slot.index, slot.restarts)}"],
            # Its own session: a terminal's Ctrl-C reaches only the supervisor, which
            # drains the workers itself. SIGKILL if the supervisor dies: its leases
            # come back on the next run.
            stdout=log, stderr=subprocess.STDOUT, env=self.env, **popen_options(signal.SIGKILL),
        )
        log.close()
        slot.started_at = time.monotonic()
        slot.restart_at = None
        slot.draining_since = None
        slot.peak_rss_bytes = None

    def worker_id(self, index: int, restarts: int) -> str:
        """The worker id of slot *index*'s process after *restarts* restarts."""
        return f"local-{self.run_id}-{index}-{restarts}"

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
        self._poll_retiring(now)
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is not None:
                self._exited(slot, slot.process.returncode, now)
            elif slot.running and slot.draining_since is not None:
                if now - slot.draining_since > self.drain_timeout_seconds + DRAIN_GRACE_SECONDS:
                    self._event(f"worker {slot.index} still draining after {now - slot.draining_since:.0f}s; killing it")
                    slot.process.kill()
            if self.stopping:
                continue
            if slot.process is None and not slot.finished and slot.restart_at is not None and now >= slot.restart_at:
                slot.restarts += 1
                self._spawn(slot)

    def _poll_retiring(self, now: float) -> None:
        for old in list(self.retiring):
            code = old.process.poll()
            if code is not None:
                self.retiring.remove(old)
                self.slots[old.index].exits.append(code)
                self._event(f"replaced worker {old.index} exited ({EXIT_REASONS.get(code) or _how(code)}) "
                            f"after draining {now - old.draining_since:.1f}s")
            elif now - old.draining_since > self.drain_timeout_seconds + DRAIN_GRACE_SECONDS:
                self._event(f"replaced worker {old.index} still draining after {now - old.draining_since:.0f}s; "
                            "killing it")
                old.process.kill()

    def _exited(self, slot: WorkerSlot, code: int, now: float) -> None:
        slot.exits.append(code)
        lived = now - slot.started_at
        slot.process = None
        if code == EXIT_FINISHED:
            slot.finished = True
            self._event(f"worker {slot.index} finished")
            return
        if self.stopping:
            self._event(f"worker {slot.index} stopped ({EXIT_REASONS.get(code) or _how(code)}) after {lived:.0f}s")
            return
        if code == EXIT_CONFIG:
            raise ConfigurationError(self._failure(slot, "can't run", f"see {slot.log_path}"))
        if code in (EXIT_MEMORY_BUDGET, EXIT_MEMORY_HARD_LIMIT, EXIT_DRAIN_TIMEOUT) and slot.draining_since is None:
            # It recycled itself.
            self._recycled(Recycle(slot.index, EXIT_REASONS[code], slot.peak_rss_bytes, lived), now)
        # A recycle the pool asked for is not a failure, however young the worker; nor
        # is a worker stopped or killed from outside (SIGTERM: exit 5; a signal: < 0).
        failed_start = (lived < QUICK_DEATH_SECONDS and slot.draining_since is None
                        and code > 0 and code != EXIT_STOPPED)
        slot.quick_deaths = slot.quick_deaths + 1 if failed_start else 0
        if slot.quick_deaths >= CRASH_LOOP_STARTS:
            if code in (EXIT_MEMORY_BUDGET, EXIT_MEMORY_HARD_LIMIT):
                why = "went over its memory budget right after starting: the budget is too low for this spider"
            else:
                why = f"failed {slot.quick_deaths} times in a row within {QUICK_DEATH_SECONDS:.0f}s of starting"
            raise WorkerCrashLoop(self._failure(slot, why, f"last exit: {_how(code)}; log {slot.log_path}"))
        delay = min(MAX_RESTART_DELAY_SECONDS, 0.5 * 2 ** max(0, slot.quick_deaths - 1)) if slot.quick_deaths else 0
        slot.restart_at = now + delay
        how = EXIT_REASONS.get(code) or _how(code)
        verb = "was recycled" if slot.draining_since is not None or code in EXIT_REASONS else "died"
        self._event(f"worker {slot.index} {verb} ({how}) after {lived:.0f}s; restart in {delay:.1f}s")

    def _failure(self, slot: WorkerSlot, what: str, where: str) -> str:
        """One line saying what failed, then the worker's last error lines."""
        try:
            with slot.log_path.open("rb") as log:
                log.seek(slot.log_offset)
                lines = last_error_lines(log.read().decode("utf-8", "replace"))
        except OSError:
            lines = []
        return "\n".join([f"worker {slot.index} {what} ({where})", *(f"  | {line}" for line in lines)])

    def recycle(self, index: int, reason: str, rss_bytes: int | None) -> None:
        """Tell worker *index* to drain (SIGTERM) and exit; it is replaced when it does.

        With ``warm_spare`` the replacement starts now, and the old process drains
        beside it as a :class:`RetiringWorker`.
        """
        slot = self.slots[index]
        if not slot.running or slot.draining_since is not None:
            return
        now = time.monotonic()
        if self.warm_spare and not self.stopping:
            old = RetiringWorker(index, slot.process, slot.started_at, now)
            self._recycled(Recycle(index, reason, rss_bytes, now - slot.started_at), now)
            slot.restarts += 1
            slot.quick_deaths = 0
            self._spawn(slot)
            old.process.send_signal(signal.SIGTERM)
            self.retiring.append(old)
            return
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

    def terminate_all(self) -> None:
        """Tell every worker to drain (SIGTERM); from now on no worker is restarted."""
        self.stopping = True
        for slot in self.slots:
            if slot.running and slot.draining_since is None:
                slot.process.send_signal(signal.SIGTERM)
                slot.draining_since = time.monotonic()

    def kill_all(self) -> None:
        """SIGKILL every worker still running (their leases come back when they expire) and reap them."""
        self.stopping = True
        processes = [(slot.index, slot.process) for slot in self.slots if slot.process is not None]
        processes += [(old.index, old.process) for old in self.retiring]
        for index, process in processes:
            if process.poll() is None:
                logger.warning("stopping worker %d (pid %d) at once", index, process.pid)
                process.kill()
        for _, process in processes:
            process.wait()
        self.poll()

    @property
    def any_running(self) -> bool:
        return any(slot.running for slot in self.slots) or any(old.running for old in self.retiring)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every worker (graceful drain), then SIGKILL what is left after *timeout*."""
        self.terminate_all()
        deadline = time.monotonic() + timeout
        while self.any_running and time.monotonic() < deadline:
            time.sleep(0.05)
        self.kill_all()


def _how(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"exit {code}"
