"""Which workers over their memory budget to recycle now.

A pure function of what the supervisor sees (each worker's memory, age and whether it
is already draining) and the policy's limits. The local pool calls it with the RSS of
its child processes; the Kubernetes operator with each pod's working set. Neither
Scrapy nor Kubernetes is imported here, so both make exactly the same decisions.

The rules, in order:

1. A worker already draining (recycling, terminating) is never picked again, and it
   takes one of the ``max_concurrent`` recycle slots until it is gone.
2. Only workers whose memory is known and above ``budget_bytes`` are candidates.
3. A candidate younger than ``min_age_seconds`` waits: a fresh worker's memory
   settles after start-up, and recycling it would only thrash.
4. At most ``max_concurrent`` workers drain at once, and recycling never leaves fewer
   than ``min_serving`` workers taking requests, so throughput never drops to zero.
5. After a recycle starts, the next waits ``cooldown_seconds``.
6. Candidates go most over budget first (or oldest first); ties by the other order,
   then by name, so the decision is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

Preference = Literal["most_over_budget", "oldest"]

#: Why an over-budget worker was not picked.
TOO_YOUNG = "too young"
NO_SLOT = "recycle limit reached"
KEEP_SERVING = "would leave too few workers serving"
COOLING_DOWN = "cooling down after the last recycle"


@dataclass(frozen=True)
class WorkerState:
    """What the supervisor knows of one worker."""

    name: str
    memory_bytes: int | None  # None: no reading (yet)
    age_seconds: float
    draining: bool = False


@dataclass(frozen=True)
class RecyclePolicy:
    budget_bytes: int
    max_concurrent: int = 1
    min_age_seconds: float = 60.0
    min_serving: int = 1
    cooldown_seconds: float = 0.0
    prefer: Preference = "most_over_budget"

    def __post_init__(self) -> None:
        if self.budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, not {self.budget_bytes}")
        if self.max_concurrent < 1:
            raise ValueError(f"max_concurrent must be at least 1, not {self.max_concurrent}")
        if self.min_age_seconds < 0 or self.cooldown_seconds < 0:
            raise ValueError("min_age_seconds and cooldown_seconds must not be negative")
        if self.min_serving < 0:
            raise ValueError(f"min_serving must not be negative, not {self.min_serving}")
        if self.prefer not in ("most_over_budget", "oldest"):
            raise ValueError(f"prefer must be 'most_over_budget' or 'oldest', not {self.prefer!r}")


@dataclass(frozen=True)
class Decision:
    """``recycle``: start recycling these now, in this order."""

    recycle: tuple[WorkerState, ...]
    over_budget: tuple[WorkerState, ...]
    deferred: dict[str, str] = field(default_factory=dict)  # name -> why not now

    @property
    def names(self) -> list[str]:
        return [worker.name for worker in self.recycle]


def decide(
    workers: Iterable[WorkerState],
    policy: RecyclePolicy,
    *,
    seconds_since_last_recycle: float | None = None,
) -> Decision:
    """The workers to recycle now (see the module's rules)."""
    workers = list(workers)
    names = [worker.name for worker in workers]
    if len(set(names)) != len(names):
        raise ValueError("worker names must be unique")
    draining = sum(1 for worker in workers if worker.draining)
    serving = len(workers) - draining
    over = [
        worker for worker in workers
        if not worker.draining and worker.memory_bytes is not None and worker.memory_bytes > policy.budget_bytes
    ]
    over.sort(key=lambda worker: _rank(worker, policy))
    slots = min(policy.max_concurrent - draining, serving - policy.min_serving)
    cooling = (
        seconds_since_last_recycle is not None and seconds_since_last_recycle < policy.cooldown_seconds
    )
    recycle: list[WorkerState] = []
    deferred: dict[str, str] = {}
    for worker in over:
        if worker.age_seconds < policy.min_age_seconds:
            deferred[worker.name] = TOO_YOUNG
        elif cooling:
            deferred[worker.name] = COOLING_DOWN
        elif len(recycle) < slots:
            recycle.append(worker)
            if policy.cooldown_seconds > 0:
                cooling = True  # one at a time when a cool-down is set
        elif policy.max_concurrent - draining - len(recycle) > 0:
            deferred[worker.name] = KEEP_SERVING
        else:
            deferred[worker.name] = NO_SLOT
    return Decision(recycle=tuple(recycle), over_budget=tuple(over), deferred=deferred)


def _rank(worker: WorkerState, policy: RecyclePolicy) -> tuple[float, float, str]:
    overage = float(worker.memory_bytes or 0) - policy.budget_bytes
    if policy.prefer == "oldest":
        return (-worker.age_seconds, -overage, worker.name)
    return (-overage, -worker.age_seconds, worker.name)
