"""Runs the read-at-scrape collectors and reports on them: how long each took, how often each failed.

One failing collector (Redis unreachable, say) costs its own series for that scrape
and nothing else: the others are still exported, the failure is counted in
``hermit_metrics_collect_errors_total{collector}`` and logged once per outage.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)


class CollectorGroup(Collector):
    """Collects each of *collectors* (name → collector) in turn, timing and guarding each."""

    def __init__(self, crawl: str, collectors: Mapping[str, Collector]) -> None:
        self.crawl = crawl
        self.collectors = dict(collectors)
        self._lock = threading.Lock()
        self._errors = dict.fromkeys(self.collectors, 0)
        self._failing: set[str] = set()

    def collect(self) -> Iterator[Metric]:
        durations: dict[str, float] = {}
        for name, collector in self.collectors.items():
            started = time.perf_counter()
            try:
                families = list(collector.collect())
            except Exception as exc:
                families = []
                self._failed(name, exc)
            else:
                self._succeeded(name)
            durations[name] = time.perf_counter() - started
            yield from families
        duration = GaugeMetricFamily(
            "hermit_metrics_collect_duration_seconds", "Time the last scrape spent in each collector.",
            labels=["crawl", "collector"],
        )
        errors = CounterMetricFamily(
            "hermit_metrics_collect_errors", "Scrapes in which a collector failed (its series were left out).",
            labels=["crawl", "collector"],
        )
        with self._lock:
            error_counts = dict(self._errors)
        for name in self.collectors:
            duration.add_metric([self.crawl, name], durations[name])
            errors.add_metric([self.crawl, name], error_counts[name])
        yield duration
        yield errors

    def _failed(self, name: str, exc: Exception) -> None:
        with self._lock:
            self._errors[name] += 1
            first = name not in self._failing
            self._failing.add(name)
        if first:
            logger.warning("Metrics collector %r failed (%s: %s); its series are left out until it works again",
                           name, type(exc).__name__, exc)
        else:
            logger.debug("Metrics collector %r failed again: %s", name, exc)

    def _succeeded(self, name: str) -> None:
        if name in self._failing:
            with self._lock:
                self._failing.discard(name)
            logger.info("Metrics collector %r works again", name)
