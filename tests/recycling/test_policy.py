"""The recycling policy: cases a supervisor meets, and properties over any fleet (hypothesis)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hermit_recycling.policy import (
    COOLING_DOWN,
    KEEP_SERVING,
    NO_SLOT,
    TOO_YOUNG,
    RecyclePolicy,
    WorkerState,
    decide,
)

MiB = 2**20
POLICY = RecyclePolicy(budget_bytes=500 * MiB, max_concurrent=2, min_age_seconds=30, min_serving=1)


def worker(name: str, mib: float | None, age: float = 100, draining: bool = False) -> WorkerState:
    return WorkerState(name, None if mib is None else int(mib * MiB), age, draining)


def test_nobody_over_budget_nothing_to_do():
    decision = decide([worker("a", 100), worker("b", 499.9), worker("c", 500)], POLICY)
    assert decision.recycle == () and decision.over_budget == () and decision.deferred == {}


def test_most_over_budget_first_within_the_limit():
    fleet = [worker("a", 600), worker("b", 900), worker("c", 700), worker("d", 100)]
    decision = decide(fleet, POLICY)
    assert decision.names == ["b", "c"]
    assert decision.deferred == {"a": NO_SLOT}


def test_draining_workers_take_slots_and_are_never_picked_again():
    fleet = [worker("a", 900, draining=True), worker("b", 800), worker("c", 700), worker("d", 100)]
    decision = decide(fleet, POLICY)
    assert decision.names == ["b"]
    assert decision.deferred == {"c": NO_SLOT}
    assert "a" not in decision.deferred and all(w.name != "a" for w in decision.over_budget)


def test_all_slots_draining_means_wait():
    fleet = [worker("a", 900, draining=True), worker("b", 900, draining=True), worker("c", 1000)]
    assert decide(fleet, POLICY).deferred == {"c": NO_SLOT}


def test_young_workers_wait_and_older_ones_go_first():
    fleet = [worker("young", 2000, age=5), worker("old", 600, age=300), worker("x", 100)]
    decision = decide(fleet, POLICY)
    assert decision.names == ["old"]
    assert decision.deferred == {"young": TOO_YOUNG}


def test_never_leaves_fewer_than_min_serving():
    # Two workers, both over budget, limit 2: recycling both would stop the crawl.
    decision = decide([worker("a", 900), worker("b", 800)], POLICY)
    assert decision.names == ["a"]
    assert decision.deferred == {"b": KEEP_SERVING}
    # A single worker is never recycled by the supervisor (its own budget still applies).
    assert decide([worker("solo", 5000)], POLICY).deferred == {"solo": KEEP_SERVING}
    # Unless the policy allows the crawl to pause.
    assert decide([worker("solo", 5000)], RecyclePolicy(500 * MiB, min_serving=0, min_age_seconds=0)).names == ["solo"]


def test_unknown_memory_is_not_over_budget():
    decision = decide([worker("a", None), worker("b", 600), worker("c", 10)], POLICY)
    assert decision.names == ["b"]


def test_cooldown_spaces_recycles_out():
    fleet = [worker("a", 900), worker("b", 800), worker("c", 10), worker("d", 10)]
    policy = RecyclePolicy(500 * MiB, max_concurrent=3, min_age_seconds=0, cooldown_seconds=60)
    assert decide(fleet, policy, seconds_since_last_recycle=10).deferred == {"a": COOLING_DOWN, "b": COOLING_DOWN}
    later = decide(fleet, policy, seconds_since_last_recycle=61)
    assert later.names == ["a"] and later.deferred == {"b": COOLING_DOWN}
    assert decide(fleet, policy).names == ["a"]  # never recycled before


def test_oldest_first_when_preferred():
    fleet = [worker("new", 900, age=100), worker("old", 600, age=1000), worker("c", 10)]
    policy = RecyclePolicy(500 * MiB, max_concurrent=1, min_age_seconds=0, prefer="oldest")
    assert decide(fleet, policy).names == ["old"]


def test_ties_are_deterministic():
    fleet = [worker(name, 700, age=50) for name in "dcba"] + [worker("z", 1)]
    assert decide(fleet, POLICY).names == ["a", "b"]


@pytest.mark.parametrize("kwargs", [
    {"budget_bytes": 0}, {"budget_bytes": 1, "max_concurrent": 0}, {"budget_bytes": 1, "min_age_seconds": -1},
    {"budget_bytes": 1, "min_serving": -1}, {"budget_bytes": 1, "prefer": "random"},
])
def test_invalid_policies_are_rejected(kwargs):
    with pytest.raises(ValueError):
        RecyclePolicy(**kwargs)


def test_duplicate_worker_names_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        decide([worker("a", 1), worker("a", 2)], POLICY)


fleets = st.lists(
    st.builds(
        WorkerState,
        name=st.text("abcdefgh", min_size=1, max_size=4),
        memory_bytes=st.one_of(st.none(), st.integers(0, 2000 * MiB)),
        age_seconds=st.floats(0, 10_000),
        draining=st.booleans(),
    ),
    max_size=30,
    unique_by=lambda w: w.name,
)
policies = st.builds(
    RecyclePolicy,
    budget_bytes=st.integers(1, 1500 * MiB),
    max_concurrent=st.integers(1, 6),
    min_age_seconds=st.floats(0, 1000),
    min_serving=st.integers(0, 4),
    cooldown_seconds=st.sampled_from([0.0, 30.0]),
    prefer=st.sampled_from(["most_over_budget", "oldest"]),
)


@settings(max_examples=400, deadline=None)
@given(fleet=fleets, policy=policies, since=st.one_of(st.none(), st.floats(0, 100)))
def test_properties_over_any_fleet(fleet, policy, since):
    decision = decide(fleet, policy, seconds_since_last_recycle=since)
    draining = [w for w in fleet if w.draining]
    picked = decision.recycle
    # Never more draining at once than allowed (others may drain for their own reasons,
    # e.g. a scale-down: then nothing is added), never one already draining, never twice.
    assert not picked or len(draining) + len(picked) <= policy.max_concurrent
    assert not any(w.draining for w in picked)
    assert len({w.name for w in picked}) == len(picked)
    # Only workers known to be over budget and old enough.
    for w in picked:
        assert w.memory_bytes is not None and w.memory_bytes > policy.budget_bytes
        assert w.age_seconds >= policy.min_age_seconds
    # Enough workers keep serving.
    serving_after = len(fleet) - len(draining) - len(picked)
    assert not picked or serving_after >= policy.min_serving
    # At most one per cool-down.
    if policy.cooldown_seconds > 0:
        assert len(picked) <= 1
        if since is not None and since < policy.cooldown_seconds:
            assert not picked
    # Preference: every eligible worker left waiting for a slot ranks after every one picked.
    def key(w):
        over = w.memory_bytes - policy.budget_bytes
        return (over, w.age_seconds) if policy.prefer == "most_over_budget" else (w.age_seconds, over)

    waiting = [w for w in decision.over_budget if decision.deferred.get(w.name) in (NO_SLOT, KEEP_SERVING)]
    for w in picked:
        for other in waiting:
            assert key(w) >= key(other)
    # Every over-budget worker is either picked or has a reason.
    assert {w.name for w in decision.over_budget} == {w.name for w in picked} | set(decision.deferred)
