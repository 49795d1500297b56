"""tracemalloc on demand: start, top allocations, a baseline and the diff against it, stop.

tracemalloc slows allocations and keeps a record of every traced block, so it is off
until asked for. A snapshot copies those records into Python objects (about 200
bytes per traced block, for a moment) and grouping them takes seconds on a large
heap, so: one operation runs at a time (others get :class:`Busy`); a snapshot is
grouped by allocation site at once and dropped, and the baseline keeps only those
per-site totals (one entry per distinct traceback, not per block); every answer is
bounded by ``limit``.
"""

from __future__ import annotations

import contextlib
import linecache
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

MAX_FRAMES = 64
MAX_LIMIT = 500
GROUP_BY = ("lineno", "filename", "traceback")

#: Allocation sites left out of the answers: tracemalloc's own, and the import system's.
_IGNORED_FILES = frozenset({
    tracemalloc.__file__, "<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>", "<unknown>",
})

#: A site: its frames as (file, line), the allocating one first; line None when grouped by file.
Site = tuple[tuple[str, "int | None"], ...]
#: Bytes and blocks allocated at each site.
Totals = dict[Site, tuple[int, int]]


class Busy(RuntimeError):
    """Another tracemalloc operation is running."""


class NotTracing(RuntimeError):
    """tracemalloc is off."""


class NoBaseline(RuntimeError):
    """No baseline snapshot to compare with."""


def _site(traceback: tracemalloc.Traceback, group_by: str) -> Site:
    # A Traceback iterates from the oldest frame; the allocating frame is the last.
    allocating = traceback[-1]
    if group_by == "lineno":
        return ((allocating.filename, allocating.lineno),)
    if group_by == "filename":
        return ((allocating.filename, None),)
    return tuple((frame.filename, frame.lineno) for frame in reversed(traceback))


def _regroup(totals: Totals, group_by: str) -> Totals:
    """Totals by full traceback, summed into coarser sites."""
    if group_by == "traceback":
        return totals
    grouped: Totals = {}
    for site, (size, count) in totals.items():
        key = ((site[0][0], site[0][1] if group_by == "lineno" else None),)
        old_size, old_count = grouped.get(key, (0, 0))
        grouped[key] = (old_size + size, old_count + count)
    return grouped


def _frames(site: Site) -> list[dict[str, Any]]:
    return [
        {"file": file, "line": line,
         "code": linecache.getline(file, line).strip()[:200] if line else ""}
        for file, line in site
    ]


class HeapProfiler:
    """Thread-safe control of the process's tracemalloc."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._started_here = False
        self._baseline: Totals | None = None
        self._baseline_taken: float | None = None

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if not self._lock.acquire(blocking=False):
            raise Busy("another tracemalloc operation is running; try again in a moment")
        try:
            yield
        finally:
            self._lock.release()

    def status(self) -> dict[str, Any]:
        tracing = tracemalloc.is_tracing()
        current, peak = tracemalloc.get_traced_memory() if tracing else (0, 0)
        return {
            "tracing": tracing,
            "frames": tracemalloc.get_traceback_limit() if tracing else 0,
            "traced_bytes": current,
            "traced_peak_bytes": peak,
            "tracemalloc_overhead_bytes": tracemalloc.get_tracemalloc_memory() if tracing else 0,
            "baseline_age_seconds": None if self._baseline_taken is None
            else round(time.monotonic() - self._baseline_taken, 3),
        }

    def start(self, frames: int) -> dict[str, Any]:
        with self._locked():
            already = tracemalloc.is_tracing()
            if not already:
                tracemalloc.start(frames)
                self._started_here = True
            return {**self.status(), "started": not already}

    def stop(self) -> dict[str, Any]:
        with self._locked():
            was = tracemalloc.is_tracing()
            self._baseline = self._baseline_taken = None
            tracemalloc.stop()
            self._started_here = False
            return {**self.status(), "stopped": was}

    def stop_if_started_here(self) -> None:
        """Stop tracing if this profiler started it (the process started it otherwise)."""
        if self._started_here:
            try:
                self.stop()
            except Busy:
                pass

    def _totals(self) -> tuple[Totals, float]:
        """A snapshot summed by full traceback at once (the snapshot itself is dropped), and the
        seconds the snapshot took: it holds the GIL throughout, so the crawl waits that long."""
        if not tracemalloc.is_tracing():
            raise NotTracing("tracemalloc is off: POST /tracemalloc/start first")
        started = time.perf_counter()
        snapshot = tracemalloc.take_snapshot()
        took = time.perf_counter() - started
        totals = {_site(stat.traceback, "traceback"): (stat.size, stat.count)
                  for stat in snapshot.statistics("traceback")}
        return totals, took

    def top(self, limit: int, group_by: str) -> dict[str, Any]:
        with self._locked():
            started = time.perf_counter()
            totals, snapshot_seconds = self._totals()
            totals = _regroup(totals, group_by)
            shown = sorted(
                ((site, size, count) for site, (size, count) in totals.items() if site[0][0] not in _IGNORED_FILES),
                key=lambda entry: entry[1], reverse=True,
            )
            return {
                **self.status(),
                "group_by": group_by,
                "total_bytes": sum(size for _, size, _ in shown),
                "snapshot_seconds": round(snapshot_seconds, 3),
                "seconds": round(time.perf_counter() - started, 3),
                "top": [{"size_bytes": size, "count": count, "traceback": _frames(site)}
                        for site, size, count in shown[:limit]],
            }

    def take_baseline(self) -> dict[str, Any]:
        with self._locked():
            self._baseline = None  # let the old one go before the new one is made
            started = time.perf_counter()
            (self._baseline, snapshot_seconds), self._baseline_taken = self._totals(), time.monotonic()
            return {**self.status(), "baseline_sites": len(self._baseline),
                    "snapshot_seconds": round(snapshot_seconds, 3),
                    "seconds": round(time.perf_counter() - started, 3)}

    def diff(self, limit: int, group_by: str) -> dict[str, Any]:
        with self._locked():
            if self._baseline is None:
                raise NoBaseline("no baseline: POST /tracemalloc/snapshot first")
            started = time.perf_counter()
            totals, snapshot_seconds = self._totals()
            now, before = _regroup(totals, group_by), _regroup(self._baseline, group_by)
            changes = []
            for site in now.keys() | before.keys():
                if site[0][0] in _IGNORED_FILES:
                    continue
                size, count = now.get(site, (0, 0))
                old_size, old_count = before.get(site, (0, 0))
                if size != old_size or count != old_count:
                    changes.append((site, size, size - old_size, count, count - old_count))
            changes.sort(key=lambda change: (abs(change[2]), change[1]), reverse=True)
            return {
                **self.status(),
                "group_by": group_by,
                "total_diff_bytes": sum(change[2] for change in changes),
                "snapshot_seconds": round(snapshot_seconds, 3),
                "seconds": round(time.perf_counter() - started, 3),
                "diff": [
                    {"size_bytes": size, "size_diff_bytes": size_diff, "count": count, "count_diff": count_diff,
                     "traceback": _frames(site)}
                    for site, size, size_diff, count, count_diff in changes[:limit]
                ],
            }
