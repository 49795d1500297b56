"""Scrapy's live-object tracking (``scrapy.utils.trackref``), read safely from any thread.

``prefs()``, ``get_oldest()`` and ``iter_all()`` iterate trackref's weak dictionaries;
the metrics and diagnostics servers run on their own threads while the crawl's
thread adds and drops objects, and iterating a dictionary that changes size raises.
So every read here first copies the underlying dict (one C-level call, atomic under
the GIL) and works on the copy.

Scrapy 2.13 stamps objects with ``time.time()`` (float seconds), later versions with
``time.monotonic_ns()`` (int nanoseconds); ages are computed for either.
"""

from __future__ import annotations

import heapq
import time
import weakref
from dataclasses import dataclass
from typing import Any

from scrapy.utils import trackref

#: Longest ``repr`` returned for one object.
MAX_REPR_CHARS = 300


@dataclass(frozen=True)
class ClassSummary:
    """One line of ``prefs()``: live instances of a class and the age of the oldest."""

    name: str
    live: int
    oldest_age_seconds: float


@dataclass(frozen=True)
class LiveObject:
    age_seconds: float
    obj: Any


@dataclass(frozen=True)
class _Now:
    """Both clocks read once, so every age in one answer is measured from the same instant."""

    monotonic_ns: int
    wall_seconds: float

    @classmethod
    def read(cls) -> _Now:
        return cls(time.monotonic_ns(), time.time())

    def age_seconds(self, stamp: float) -> float:
        if isinstance(stamp, int):
            return max(0.0, (self.monotonic_ns - stamp) / 1e9)
        return max(0.0, self.wall_seconds - stamp)


def _classes() -> list[tuple[type, dict[weakref.ref, float]]]:
    """Every tracked class with a copy of its {weakref: stamp} dict."""
    refs: Any = trackref.live_refs
    if isinstance(refs, weakref.WeakKeyDictionary):  # Scrapy >= 2.14
        pairs = [(ref(), wdict) for ref, wdict in refs.data.copy().items()]
    else:  # a defaultdict of classes
        pairs = list(refs.copy().items())
    return [(cls, wdict.data.copy()) for cls, wdict in pairs if cls is not None]


def summarize() -> list[ClassSummary]:
    """What ``prefs()`` shows, by class name (classes of the same name are merged), sorted by name.

    Classes seen before but with no live instance now are included with 0, so a
    time series does not vanish when the last object goes.
    """
    now = _Now.read()
    live: dict[str, int] = {}
    oldest: dict[str, float] = {}
    for cls, stamps in _classes():
        name = cls.__name__
        live[name] = live.get(name, 0) + len(stamps)
        if stamps:
            age = now.age_seconds(min(stamps.values()))
            oldest[name] = max(oldest.get(name, 0.0), age)
    return [ClassSummary(name, live[name], oldest.get(name, 0.0)) for name in sorted(live)]


def is_tracked(class_name: str) -> bool:
    """Whether any class of that name was ever tracked in this process."""
    return any(cls.__name__ == class_name for cls, _ in _classes())


def oldest(class_name: str, limit: int = 1) -> list[LiveObject]:
    """The *limit* oldest live objects of that class name, oldest first (``get_oldest``/``iter_all``)."""
    stamps: dict[weakref.ref, float] = {}
    for cls, class_stamps in _classes():
        if cls.__name__ == class_name:
            stamps.update(class_stamps)
    now = _Now.read()
    found: list[LiveObject] = []
    # A few more than asked for, in case some died since the copy.
    for ref, stamp in heapq.nsmallest(limit + 8, stamps.items(), key=lambda item: item[1]):
        obj = ref()
        if obj is not None:
            found.append(LiveObject(now.age_seconds(stamp), obj))
            if len(found) == limit:
                break
    return found


def describe(item: LiveObject) -> dict[str, Any]:
    """JSON-ready facts about a live object: its age, URL (if it has one) and a short repr."""
    obj = item.obj
    url = getattr(obj, "url", None)
    if not isinstance(url, str) and hasattr(obj, "fields") and hasattr(obj, "get"):  # a scrapy.Item
        try:
            url = obj.get("url")
        except Exception:
            url = None
    description: dict[str, Any] = {"age_seconds": round(item.age_seconds, 3), "url": url if isinstance(url, str) else None}
    # Requests' and responses' reprs are short; an item's could be anything, and
    # formatting it while the crawl fills it in is not safe from this thread.
    if isinstance(url, str) and hasattr(obj, "url"):
        try:
            description["repr"] = repr(obj)[:MAX_REPR_CHARS]
        except Exception:
            description["repr"] = None
    return description
