"""Reading Scrapy's live-object tracking (trackref) from any thread."""

from __future__ import annotations

import gc
import threading
import time

import pytest

from scrapy import Item, Field, Request
from scrapy.http import HtmlResponse

from hermit.observability import live_objects

# trackref stamps objects differently from one Scrapy version to the next.
pytestmark = pytest.mark.scrapy_versions


class ProbeItem(Item):
    url = Field()


class ProbeRequest(Request):
    """A class of its own, so other tests' objects don't count here."""


def by_name() -> dict[str, live_objects.ClassSummary]:
    return {summary.name: summary for summary in live_objects.summarize()}


def test_summary_counts_live_objects_and_the_age_of_the_oldest():
    kept = [ProbeRequest(f"https://example.com/{i}") for i in range(5)]
    summary = by_name()["ProbeRequest"]
    assert summary.live == 5 and summary.oldest_age_seconds >= 0
    del kept
    gc.collect()
    # The class stays, at 0, so its time series doesn't vanish.
    assert by_name()["ProbeRequest"] == live_objects.ClassSummary("ProbeRequest", 0, 0.0)


def test_oldest_objects_come_oldest_first_with_their_urls():
    kept = [ProbeRequest(f"https://example.com/{i}") for i in range(50)]
    oldest = live_objects.oldest("ProbeRequest", 3)
    assert [item.obj.url for item in oldest] == [r.url for r in kept[:3]]
    assert oldest[0].age_seconds >= oldest[1].age_seconds >= oldest[2].age_seconds
    assert len(live_objects.oldest("ProbeRequest", 1000)) == 50
    assert live_objects.oldest("NoSuchClass") == [] and not live_objects.is_tracked("NoSuchClass")
    assert live_objects.is_tracked("ProbeRequest")


class _ClockThatRunsOnEveryRead:
    """Moves an hour on from the real clocks each time it is read."""

    def __init__(self):
        self.reads = 0

    def _advance(self) -> int:
        self.reads += 1
        return self.reads * 3600

    def monotonic_ns(self) -> int:
        return time.monotonic_ns() + self._advance() * 10**9

    def time(self) -> float:
        return time.time() + self._advance()


def test_ages_in_one_answer_are_measured_from_one_instant(monkeypatch):
    kept = [ProbeRequest(f"https://example.com/{i}") for i in range(10)]
    monkeypatch.setattr(live_objects, "time", _ClockThatRunsOnEveryRead())
    ages = [item.age_seconds for item in live_objects.oldest("ProbeRequest", len(kept))]
    assert len(ages) == 10 and ages == sorted(ages, reverse=True)
    assert ages[0] - ages[-1] < 60  # created within a minute, whatever the clock did between reads


def test_describe_gives_the_url_of_requests_responses_and_items():
    response = HtmlResponse("https://example.com/page", body=b"<html></html>")
    item = ProbeItem(url="https://example.com/item")
    described = live_objects.describe(live_objects.LiveObject(1.5, response))
    assert described == {"age_seconds": 1.5, "url": "https://example.com/page",
                         "repr": "<200 https://example.com/page>"}
    assert live_objects.describe(live_objects.LiveObject(2.0, item)) == {
        "age_seconds": 2.0, "url": "https://example.com/item"}
    assert live_objects.describe(live_objects.LiveObject(0.0, ProbeItem()))["url"] is None


def test_reading_while_another_thread_creates_and_drops_objects():
    # Iterating trackref's weak dictionaries directly while they change size raises
    # "dictionary changed size during iteration"; the copies don't.
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn() -> None:
        kept: list[ProbeRequest] = []
        n = 0
        while not stop.is_set() and n < 2_000_000:
            kept.append(ProbeRequest(f"https://example.com/{n}"))
            if len(kept) > 500:
                del kept[:250]
            n += 1

    thread = threading.Thread(target=churn)
    thread.start()
    try:
        for _ in range(2000):
            try:
                live_objects.summarize()
                live_objects.oldest("ProbeRequest", 20)
            except RuntimeError as exc:
                errors.append(exc)
    finally:
        stop.set()
        thread.join()
    assert errors == []
