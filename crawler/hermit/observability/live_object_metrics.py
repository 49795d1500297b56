"""``hermit_live_objects`` and the age of the oldest, per tracked class: ``prefs()`` as metrics.

The classes are those Scrapy tracks (``scrapy.utils.trackref``): ``Request``,
``Response`` and its subclasses, ``Item`` subclasses, ``Selector`` and the spider's
class — a set fixed by the code, never by the crawled data. A steadily growing
count, or an oldest ``*Response`` minutes old, is the signature of a leak.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from hermit.observability import live_objects


class LiveObjectsCollector(Collector):
    """Yields ``hermit_live_objects{crawl,class}`` and ``hermit_live_objects_oldest_age_seconds{crawl,class}``."""

    def __init__(self, crawl: str) -> None:
        self.crawl = crawl

    def collect(self) -> Iterator[GaugeMetricFamily]:
        live = GaugeMetricFamily(
            "hermit_live_objects", "Live objects of a class tracked by Scrapy (what prefs() shows).",
            labels=["crawl", "class"],
        )
        age = GaugeMetricFamily(
            "hermit_live_objects_oldest_age_seconds",
            "Age of the oldest live object of a class tracked by Scrapy (0 when none is alive).",
            labels=["crawl", "class"],
        )
        for summary in live_objects.summarize():
            live.add_metric([self.crawl, summary.name], summary.live)
            age.add_metric([self.crawl, summary.name], summary.oldest_age_seconds)
        yield live
        yield age
