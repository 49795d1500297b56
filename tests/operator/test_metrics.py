"""The operator's own metrics: names, labels, series present before their first event."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from hermit_operator import __version__
from hermit_operator.metrics import EVICTION_RESULTS, OperatorMetrics


def families(registry):
    return {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}


def test_every_series_exists_at_zero_before_anything_happens():
    registry = CollectorRegistry()
    OperatorMetrics(registry)
    get = registry.get_sample_value
    for name in ("pods_seen", "pods_over_budget", "pods_draining", "pods_without_memory", "leader",
                 "memory_source_fallback", "last_reconcile_timestamp_seconds"):
        assert get(f"hermit_operator_{name}") == 0, name
    assert get("hermit_operator_recycles_total", {"reason": "memory_budget"}) == 0
    for result in EVICTION_RESULTS:
        assert get("hermit_operator_evictions_total", {"result": result}) == 0
    for verb in ("list", "get", "create", "update", "evict"):
        assert get("hermit_operator_api_errors_total", {"verb": verb}) == 0
    assert get("hermit_operator_reconciles_total", {"result": "error"}) == 0
    assert get("hermit_operator_reconcile_duration_seconds_count") == 0
    assert get("hermit_operator_build_info", {"version": __version__, "python": get_python()}) == 1


def get_python():
    import sys

    return ".".join(map(str, sys.version_info[:3]))


def test_types_and_units_follow_prometheus_conventions():
    registry = CollectorRegistry()
    OperatorMetrics(registry)
    found = families(registry)
    assert found["hermit_operator_reconcile_duration_seconds"].type == "histogram"
    assert found["hermit_operator_recycles"].type == "counter"  # exposed as ..._total
    assert found["hermit_operator_pods_seen"].type == "gauge"
    assert all(name.startswith("hermit_operator_") for name in found)


def test_the_default_registry_is_never_touched_and_has_the_process_collector():
    first, second = OperatorMetrics(), OperatorMetrics()  # two instances in one process
    assert first.registry is not second.registry
    assert first.registry.get_sample_value("process_resident_memory_bytes") > 0


def test_api_errors_by_verb():
    metrics = OperatorMetrics(CollectorRegistry())
    metrics.api_error("evict")
    metrics.api_error("watch")  # not one of ours: counted apart, the label set stays bounded
    assert metrics.registry.get_sample_value("hermit_operator_api_errors_total", {"verb": "evict"}) == 1
    assert metrics.registry.get_sample_value("hermit_operator_api_errors_total", {"verb": "other"}) == 1


def test_every_metric_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text()
    registry = CollectorRegistry()
    OperatorMetrics(registry)
    for family in families(registry).values():
        if family.name.endswith("_created"):  # prometheus-client's creation times of counters
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        name = name + ("_info" if family.type == "info" else "")
        assert f"`{name}" in doc, name
