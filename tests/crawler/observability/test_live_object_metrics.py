"""hermit_live_objects: prefs() as metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from scrapy import Request

from hermit.observability.live_object_metrics import LiveObjectsCollector


class MetricsProbeRequest(Request):
    pass


def test_live_objects_and_oldest_age_per_class():
    registry = CollectorRegistry()
    registry.register(LiveObjectsCollector("c1"))
    kept = [MetricsProbeRequest(f"https://example.com/{i}") for i in range(7)]
    labels = {"crawl": "c1", "class": "MetricsProbeRequest"}
    assert registry.get_sample_value("hermit_live_objects", labels) == 7
    assert registry.get_sample_value("hermit_live_objects_oldest_age_seconds", labels) >= 0
    kept.append(MetricsProbeRequest("https://example.com/more"))
    assert registry.get_sample_value("hermit_live_objects", labels) == 8
