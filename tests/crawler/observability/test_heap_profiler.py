"""tracemalloc on demand."""

from __future__ import annotations

import tracemalloc

import pytest

from hermit.observability.heap_profiler import Busy, HeapProfiler, NoBaseline, NotTracing


@pytest.fixture
def profiler():
    assert not tracemalloc.is_tracing(), "tracemalloc was left on by something else"
    heap = HeapProfiler()
    yield heap
    tracemalloc.stop()


def allocate_here(n: int) -> list[bytes]:
    return [bytes(1000) for _ in range(n)]  # the line the profiler must name


def test_off_until_started(profiler):
    assert profiler.status()["tracing"] is False
    with pytest.raises(NotTracing):
        profiler.top(10, "lineno")


def test_top_names_the_allocating_line(profiler):
    started = profiler.start(frames=5)
    assert started["started"] is True and started["frames"] == 5
    assert profiler.start(frames=3)["started"] is False  # already on: unchanged
    kept = allocate_here(2000)
    top = profiler.top(3, "lineno")
    assert len(top["top"]) == 3
    first = top["top"][0]
    assert first["traceback"][0]["file"] == __file__
    assert "bytes(1000)" in first["traceback"][0]["code"]
    assert first["size_bytes"] >= 2000 * 1000 and first["count"] >= 2000
    assert top["total_bytes"] >= first["size_bytes"]
    by_traceback = profiler.top(2, "traceback")["top"][0]["traceback"]
    assert 1 < len(by_traceback) <= 5
    # The allocating frame first, then its callers.
    assert by_traceback[0]["file"] == __file__ and "bytes(1000)" in by_traceback[0]["code"]
    assert any("allocate_here(2000)" in frame["code"] for frame in by_traceback[1:])
    del kept


def test_diff_shows_what_grew_since_the_baseline(profiler):
    profiler.start(frames=1)
    with pytest.raises(NoBaseline):
        profiler.diff(5, "lineno")
    baseline = profiler.take_baseline()
    assert baseline["baseline_age_seconds"] is not None
    kept = allocate_here(3000)
    diff = profiler.diff(5, "filename")
    grown = diff["diff"][0]
    assert grown["traceback"][0]["file"] == __file__
    assert grown["size_diff_bytes"] >= 3000 * 1000 and grown["count_diff"] >= 3000
    del kept


def test_stop_drops_the_baseline_and_one_operation_runs_at_a_time(profiler):
    profiler.start(frames=1)
    profiler.take_baseline()
    with profiler._lock:  # an operation in progress on another thread
        with pytest.raises(Busy):
            profiler.top(5, "lineno")
    stopped = profiler.stop()
    assert stopped["stopped"] is True and stopped["tracing"] is False
    assert stopped["baseline_age_seconds"] is None


def test_only_stops_what_it_started(profiler):
    tracemalloc.start(1)  # as PYTHONTRACEMALLOC=1 would
    profiler.stop_if_started_here()
    assert tracemalloc.is_tracing()
    tracemalloc.stop()
    profiler.start(frames=1)
    profiler.stop_if_started_here()
    assert not tracemalloc.is_tracing()
