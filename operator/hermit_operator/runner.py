"""The operator's loop: election rounds and reconciles on their own schedules.

One thread. Each turn runs whatever is due — an election round every third of the
Lease duration, a reconcile every ``interval_seconds`` (only while leading) — then
sleeps until the next thing is due or ``stop`` is set. A periodic full list, not a
watch: each decision needs a consistent view of a whole Deployment's pods and their
memory (metrics.k8s.io can't be watched anyway), a few hundred pods a tick cost the
API server little, and there is no cache to go stale and no 410 Gone to recover from:
after an API server restart the next reconcile simply lists again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from hermit_operator.health import Health
from hermit_operator.kube import ApiError
from hermit_operator.leader import LeaderElector
from hermit_operator.metrics import OperatorMetrics
from hermit_operator.reconcile import Reconciler, ReconcileReport

logger = logging.getLogger(__name__)


class Runner:
    def __init__(
        self,
        reconciler: Reconciler,
        metrics: OperatorMetrics,
        health: Health,
        *,
        interval_seconds: float,
        elector: LeaderElector | None = None,
        stop: threading.Event | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reconciler, self.metrics, self.health = reconciler, metrics, health
        self.interval = interval_seconds
        self.elector = elector
        self.stop = stop or threading.Event()
        self.monotonic = monotonic
        self.last_report: ReconcileReport | None = None
        self.last_error = ""  # why the last reconcile (or election round) failed; "" when it did not
        self._next_election = self._next_reconcile = -math.inf
        if elector is None:
            metrics.leader.set(1)  # alone: always acting

    @property
    def leading(self) -> bool:
        return self.elector is None or self.elector.is_leader

    def turn(self) -> float:
        """Run what is due; returns the seconds until the next thing is due."""
        now = self.monotonic()
        if self.elector is not None and now >= self._next_election:
            try:
                self.elector.try_acquire_or_renew()
                error = self.elector.last_error
            except Exception as exc:  # e.g. a Lease with fields we can't read: retry, don't die
                logger.exception("leader election round failed unexpectedly")
                error = f"{type(exc).__name__}: {exc}"
            if error:
                self.health.api_failed(error)
            else:
                self.health.api_ok()
            self._next_election = now + self.elector.retry_period
        if now >= self._next_reconcile:
            if self.leading:
                self.reconcile()
            self._next_reconcile = now + self.interval
        self.health.turned()
        due = min(self._next_reconcile, self._next_election if self.elector is not None else math.inf)
        return max(0.0, due - self.monotonic())

    def reconcile(self) -> ReconcileReport | None:
        """One reconcile that never raises: failures are logged, counted and retried next time."""
        started = time.perf_counter()
        try:
            report = self.reconciler.reconcile()
        except ApiError as exc:
            self._failed(f"reconcile failed, retrying in {self.interval:g}s: {exc}", str(exc))
            return None
        except Exception as exc:  # a bug must not stop the operator; it is logged in full
            logger.exception("reconcile failed unexpectedly")
            self._failed("", f"{type(exc).__name__}: {exc}")
            return None
        finally:
            self.metrics.reconcile_duration.observe(time.perf_counter() - started)
        self.metrics.reconciles.labels(result="ok").inc()
        self.metrics.last_reconcile.set_to_current_time()
        self.health.api_ok()
        self.last_report, self.last_error = report, ""
        return report

    def run(self) -> None:
        """Turn until ``stop`` is set, then give the leader Lease up."""
        logger.info("running: reconcile every %gs%s", self.interval,
                    "" if self.elector is None else f", leader election through Lease "
                    f"{self.elector.namespace}/{self.elector.name} as {self.elector.identity}")
        try:
            while not self.stop.is_set():
                self.stop.wait(self.turn())
        finally:
            self.close()

    def run_once(self) -> ReconcileReport | None:
        """One election round and, when leading, one reconcile; then release."""
        try:
            if self.elector is not None and not self.elector.try_acquire_or_renew():
                if self.elector.last_error:
                    self.last_error = self.elector.last_error
                    logger.error("leader election failed: %s", self.last_error)
                else:
                    logger.warning("another instance holds the leader Lease: not reconciling")
                return None
            return self.reconcile()
        finally:
            self.close()

    def close(self) -> None:
        if self.elector is not None:
            self.elector.release()

    def _failed(self, message: str, error: str) -> None:
        if message:
            logger.warning(message)
        self.metrics.reconciles.labels(result="error").inc()
        self.health.api_failed(error)
        self.last_error = error
