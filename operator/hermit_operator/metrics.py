"""The operator's own Prometheus metrics (``hermit_operator_*``).

Every labelled series is created up front, so it exists (at 0) before its first
event. Labels are small fixed sets: ``reason``, ``result``, ``verb``. The process
collector (``process_resident_memory_bytes``, ...) is added to the operator's own
registry, which is never the global one: two instances in one process (the tests)
don't collide.

- ``hermit_operator_pods_seen``: crawler pods the selector matched in the last reconcile
- ``hermit_operator_pods_over_budget``: of those, serving pods over their budget
- ``hermit_operator_pods_draining``: terminating, or not Running and Ready
- ``hermit_operator_pods_without_memory``: serving pods with no memory reading
- ``hermit_operator_recycles_total{reason}``: recycles started (evictions accepted)
- ``hermit_operator_evictions_total{result}``: eviction outcomes: evicted, refused
  (PodDisruptionBudget), gone, failed, dry_run (what a dry run would have evicted)
- ``hermit_operator_api_errors_total{verb}``: failed API calls, each attempt counted
- ``hermit_operator_reconciles_total{result}``: ok, error
- ``hermit_operator_reconcile_duration_seconds``: histogram of one reconcile
- ``hermit_operator_last_reconcile_timestamp_seconds``: end of the last good reconcile
- ``hermit_operator_leader``: 1 while this instance holds the leader Lease
- ``hermit_operator_memory_source_fallback``: 1 while metrics.k8s.io is unavailable
- ``hermit_operator_build_info{version}``: always 1
"""

from __future__ import annotations

import sys

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
)

from hermit_operator import __version__
from hermit_operator.kube import VERBS

RECYCLE_REASONS = ("memory_budget",)
EVICTION_RESULTS = ("evicted", "refused", "gone", "failed", "dry_run")
RECONCILE_RESULTS = ("ok", "error")


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        if registry is None:
            registry = CollectorRegistry()
            for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
                registry.register(collector)
        self.registry = registry
        prefix = "hermit_operator"
        self.pods_seen = Gauge(f"{prefix}_pods_seen", "Crawler pods the selector matched in the last reconcile",
                               registry=registry)
        self.pods_over_budget = Gauge(f"{prefix}_pods_over_budget",
                                      "Serving crawler pods over their memory budget in the last reconcile",
                                      registry=registry)
        self.pods_draining = Gauge(f"{prefix}_pods_draining",
                                   "Crawler pods terminating, or not Running and Ready, in the last reconcile",
                                   registry=registry)
        self.pods_without_memory = Gauge(f"{prefix}_pods_without_memory",
                                         "Serving crawler pods with no memory reading in the last reconcile",
                                         registry=registry)
        self.recycles = Counter(f"{prefix}_recycles", "Pod recycles started (evictions the API accepted)",
                                ["reason"], registry=registry)
        self.evictions = Counter(f"{prefix}_evictions", "Eviction outcomes (dry_run: what a dry run would evict)",
                                 ["result"], registry=registry)
        self.api_errors = Counter(f"{prefix}_api_errors", "Failed Kubernetes API calls (every attempt)",
                                  ["verb"], registry=registry)
        self.reconciles = Counter(f"{prefix}_reconciles", "Reconciles by result", ["result"], registry=registry)
        self.reconcile_duration = Histogram(
            f"{prefix}_reconcile_duration_seconds", "Time one reconcile took", registry=registry,
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
        )
        self.last_reconcile = Gauge(f"{prefix}_last_reconcile_timestamp_seconds",
                                    "When the last successful reconcile ended", registry=registry)
        self.leader = Gauge(f"{prefix}_leader", "1 while this instance holds the leader Lease", registry=registry)
        self.memory_fallback = Gauge(f"{prefix}_memory_source_fallback",
                                     "1 while metrics.k8s.io is unavailable and pods' /metrics are read instead",
                                     registry=registry)
        build = Info(f"{prefix}_build", "The operator's version", registry=registry)
        build.info({"version": __version__, "python": ".".join(map(str, sys.version_info[:3]))})
        for reason in RECYCLE_REASONS:
            self.recycles.labels(reason=reason)
        for result in EVICTION_RESULTS:
            self.evictions.labels(result=result)
        for verb in VERBS:
            self.api_errors.labels(verb=verb)
        for result in RECONCILE_RESULTS:
            self.reconciles.labels(result=result)

    def api_error(self, verb: str) -> None:
        self.api_errors.labels(verb=verb if verb in VERBS else "other").inc()
