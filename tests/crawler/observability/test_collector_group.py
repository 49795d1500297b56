"""One failing collector costs its own series, counted, and nothing else."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from hermit.observability.collector_group import CollectorGroup


class Fixed:
    def collect(self):
        yield GaugeMetricFamily("probe_value", "A value.", value=42)


class Flaky:
    def __init__(self) -> None:
        self.fail = True

    def collect(self):
        yield GaugeMetricFamily("probe_partial", "Yielded before failing.", value=1)
        if self.fail:
            raise ConnectionError("Redis is down")


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[str, ...]], float]:
    """One full scrape."""
    return {(s.name, tuple(s.labels.values())): s.value for family in registry.collect() for s in family.samples}


def test_a_failing_collector_is_counted_and_the_others_still_export(caplog):
    flaky = Flaky()
    registry = CollectorRegistry()
    registry.register(CollectorGroup("c1", {"fixed": Fixed(), "flaky": flaky}))
    with caplog.at_level(logging.DEBUG, logger="hermit.observability.collector_group"):
        for _ in range(3):
            scrape = samples(registry)
            assert scrape[("probe_value", ())] == 42
            # What the failing collector yielded before failing is left out too: no half scrape.
            assert ("probe_partial", ()) not in scrape
    assert scrape[("hermit_metrics_collect_errors_total", ("c1", "flaky"))] == 3
    assert scrape[("hermit_metrics_collect_errors_total", ("c1", "fixed"))] == 0
    assert scrape[("hermit_metrics_collect_duration_seconds", ("c1", "flaky"))] >= 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Redis is down" in warnings[0].getMessage()  # once per outage
    flaky.fail = False
    assert samples(registry)[("probe_partial", ())] == 1
    assert any("works again" in r.getMessage() for r in caplog.records)
