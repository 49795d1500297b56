"""One reconcile: list the crawler pods, read their memory, apply the recycling
policy per owner Deployment, evict what it picks.

Pods without a controller are left alone (evicting one would delete it for good).
Idempotent and stateless but for two things kept in memory: when each Deployment
last had a pod recycled (the cool-down) and which pods were already reported (so a
refused eviction or a dry run records one Event per pod, not one per reconcile).

Per-Deployment overrides, as annotations on the crawler Deployment:

- ``hermit.dev/memory-budget``: bytes or a quantity (``400Mi``)
- ``hermit.dev/max-concurrent-recycles``: an integer, at least 1

so one operator serves several crawls in a namespace, each with its own budget.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any

from hermit_operator.events import EventRecorder, ObjectRef
from hermit_operator.kube import ApiError, EvictionResult, KubeClient
from hermit_operator.memory import MemoryReader
from hermit_operator.metrics import OperatorMetrics
from hermit_operator.pods import NO_OWNER, Owner, Pod, parse_pod, resolve_owners
from hermit_operator.settings import Settings, parse_bytes
from hermit_recycling import Decision, RecyclePolicy, WorkerState, decide

logger = logging.getLogger(__name__)

ANNOTATION_BUDGET = "hermit.dev/memory-budget"
ANNOTATION_MAX_CONCURRENT = "hermit.dev/max-concurrent-recycles"

REASON_RECYCLED = "OverMemoryBudget"
REASON_REFUSED = "RecycleBlocked"
REASON_DRY_RUN = "WouldRecycle"
REASON_BAD_ANNOTATION = "InvalidRecycleSettings"


@dataclass
class GroupReport:
    """What one reconcile decided and did for one owner (Deployment)."""

    owner: Owner
    pods: list[str]
    policy: RecyclePolicy | None = None
    decision: Decision | None = None
    evicted: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    would_evict: list[str] = field(default_factory=list)
    skipped: str = ""  # why the policy was not applied at all


@dataclass
class ReconcileReport:
    namespace: str
    memory_source: str
    groups: list[GroupReport] = field(default_factory=list)

    def _all(self, name: str) -> list[str]:
        return [pod for group in self.groups for pod in getattr(group, name)]

    @property
    def evicted(self) -> list[str]:
        return self._all("evicted")

    @property
    def refused(self) -> list[str]:
        return self._all("refused")

    @property
    def would_evict(self) -> list[str]:
        return self._all("would_evict")


class Reconciler:
    def __init__(
        self,
        kube: KubeClient,
        settings: Settings,
        namespace: str,
        memory: MemoryReader,
        events: EventRecorder,
        metrics: OperatorMetrics,
        *,
        may_evict: Callable[[], bool] = lambda: True,
        clock: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube, self.settings, self.namespace = kube, settings, namespace
        self.memory, self.events, self.metrics = memory, events, metrics
        self.may_evict = may_evict
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.monotonic = monotonic
        self.base_policy = RecyclePolicy(
            budget_bytes=settings.budget_bytes or 1,  # replaced per group; 1 only satisfies validation
            max_concurrent=settings.max_concurrent,
            min_age_seconds=settings.min_age_seconds,
            min_serving=settings.min_serving,
            cooldown_seconds=settings.cooldown_seconds,
            prefer=settings.prefer,  # type: ignore[arg-type]
        )
        self.last_recycle: dict[Owner, float] = {}
        self._reported: set[tuple[str, str]] = set()  # (kind of report, pod uid or name)
        self._warned: set[tuple[Owner, str]] = set()
        self._rbac_warned: set[str] = set()

    def reconcile(self) -> ReconcileReport:
        """One pass; raises ApiError if the pods can't be listed (nothing was done)."""
        ns, selector = self.namespace, self.settings.selector
        pods = _unique(parse_pod(obj) for obj in self.kube.list_pods(ns, selector))
        replicasets = self._optional(lambda: self.kube.list_replicasets(ns, selector), "replicasets")
        deployments = {
            name: obj for obj in self._optional(lambda: self.kube.list_deployments(ns), "deployments")
            if (name := _meta(obj).get("name"))
        }
        owners = resolve_owners(pods, replicasets)
        reading = self.memory.read(ns, selector, pods)
        self.metrics.memory_fallback.set(1 if reading.fallback_reason else 0)
        now = self.clock()
        report = ReconcileReport(ns, reading.source)

        groups: dict[Owner, list[Pod]] = {}
        for pod in pods:
            groups.setdefault(owners[pod.name], []).append(pod)
        for owner in sorted(groups, key=str):
            members = groups[owner]
            group = GroupReport(owner, [pod.name for pod in members])
            report.groups.append(group)
            deployment = deployments.get(owner.name) if owner.kind == "Deployment" else None
            group.policy, group.skipped = self._policy(owner, deployment)
            if group.policy is None:
                continue
            workers = [WorkerState(pod.name, reading.bytes_by_pod.get(pod.name), pod.age_seconds(now), pod.draining)
                       for pod in members]
            last = self.last_recycle.get(owner)
            group.decision = decide(workers, group.policy,
                                    seconds_since_last_recycle=None if last is None else self.monotonic() - last)
            for name, why in group.decision.deferred.items():
                logger.debug("%s: pod %s over budget, waits: %s", owner, name, why)
            self._act(group, {pod.name: pod for pod in members}, deployment, reading.source)

        self._update_gauges(pods, reading.bytes_by_pod, report)
        live = {pod.uid or pod.name for pod in pods}
        self._reported = {key for key in self._reported if key[1] in live}
        return report

    # ---- per group -----------------------------------------------------------------------

    def _policy(self, owner: Owner, deployment: Mapping[str, Any] | None) -> tuple[RecyclePolicy | None, str]:
        if owner == NO_OWNER:
            return None, "pods without a controller are never recycled: nothing would replace them"
        annotations = _meta(deployment).get("annotations") if deployment else None
        annotations = annotations if isinstance(annotations, dict) else {}
        budget, max_concurrent = self.settings.budget_bytes, self.settings.max_concurrent
        problems = []
        if ANNOTATION_BUDGET in annotations:
            try:
                budget = parse_bytes(str(annotations[ANNOTATION_BUDGET]))
            except ValueError as exc:
                problems.append(f"{ANNOTATION_BUDGET}={annotations[ANNOTATION_BUDGET]!r}: expected {exc}")
        if ANNOTATION_MAX_CONCURRENT in annotations:
            value = str(annotations[ANNOTATION_MAX_CONCURRENT]).strip()
            if re.fullmatch(r"[0-9]{1,6}", value) and int(value) >= 1:
                max_concurrent = int(value)
            else:
                problems.append(f"{ANNOTATION_MAX_CONCURRENT}={annotations[ANNOTATION_MAX_CONCURRENT]!r}: "
                                "expected an integer, at least 1")
        if problems:
            why = "; ".join(problems)
            self._warn_once(owner, why, deployment)
            return None, f"invalid annotations, pods left alone: {why}"
        if budget is None:
            why = (f"no memory budget: set HERMIT_OPERATOR_MEMORY_BUDGET_BYTES or annotate the Deployment "
                   f"with {ANNOTATION_BUDGET}")
            if (owner, why) not in self._warned:
                self._warned.add((owner, why))
                logger.info("%s: %s", owner, why)
            return None, why
        return replace(self.base_policy, budget_bytes=budget, max_concurrent=max_concurrent), ""

    def _act(self, group: GroupReport, pods: Mapping[str, Pod], deployment: Mapping[str, Any] | None,
             source: str) -> None:
        decision, policy = group.decision, group.policy
        assert decision is not None and policy is not None
        for worker in decision.recycle:
            pod = pods[worker.name]
            memory = _size(worker.memory_bytes) + (" working set" if source == "metrics-api" else " RSS")
            why = f"{memory} is over the memory budget {_size(policy.budget_bytes)}"
            if self.settings.dry_run:
                group.would_evict.append(pod.name)
                if self._first("dry-run", pod):
                    logger.info("dry run: would recycle pod %s (%s): %s", pod.name, group.owner, why)
                    self.metrics.evictions.labels(result="dry_run").inc()
                    self._record(pod, deployment, group.owner, REASON_DRY_RUN, f"Dry run: would evict: {why}")
                self.last_recycle[group.owner] = self.monotonic()  # pace a dry run as the real one
                continue
            if not self.may_evict():
                logger.warning("no longer the leader: not evicting %s", pod.name)
                return
            try:
                outcome = self.kube.evict(self.namespace, pod.name, pod.uid)
            except ApiError as exc:
                self.metrics.evictions.labels(result="failed").inc()
                logger.warning("could not evict pod %s: %s", pod.name, exc)
                return
            if outcome.result is EvictionResult.GONE:
                self.metrics.evictions.labels(result="gone").inc()
                continue
            if outcome.result is EvictionResult.REFUSED:
                # The PodDisruptionBudget allows no disruption now: try again next reconcile.
                group.refused.append(pod.name)
                self.metrics.evictions.labels(result="refused").inc()
                logger.info("eviction of pod %s refused for now: %s", pod.name, outcome.message)
                if self._first("refused", pod):
                    self._record(pod, None, group.owner, REASON_REFUSED,
                                 f"Eviction refused, will retry: {outcome.message or 'refused'} ({why})",
                                 type="Warning")
                return
            group.evicted.append(pod.name)
            self.last_recycle[group.owner] = self.monotonic()
            self.metrics.evictions.labels(result="evicted").inc()
            self.metrics.recycles.labels(reason="memory_budget").inc()
            logger.info("recycling pod %s (%s): %s", pod.name, group.owner, why)
            self._record(pod, deployment, group.owner, REASON_RECYCLED,
                         f"Evicted to be replaced: {why} (at most {policy.max_concurrent} recycling at once)")

    def _record(self, pod: Pod, deployment: Mapping[str, Any] | None, owner: Owner, reason: str, note: str,
                type: str = "Normal") -> None:
        pod_ref = ObjectRef("v1", "Pod", pod.name, self.namespace, pod.uid)
        owner_ref = None
        if owner.kind == "Deployment" and owner.name:
            owner_ref = ObjectRef("apps/v1", "Deployment", owner.name, self.namespace,
                                  _meta(deployment).get("uid") if deployment else None)
        self.events.record(pod_ref, reason=reason, action="Recycle", note=note, type=type, related=owner_ref)
        if owner_ref is not None and deployment is not None:
            self.events.record(owner_ref, reason=reason, action="Recycle", note=f"Pod {pod.name}: {note}",
                               type=type, related=pod_ref)

    # ---- helpers -------------------------------------------------------------------------

    def _optional(self, call: Callable[[], list[dict[str, Any]]], what: str) -> list[dict[str, Any]]:
        """Lists the operator can do without when RBAC forbids them."""
        try:
            return call()
        except ApiError as exc:
            if exc.status not in (401, 403, 404):
                raise
            if what not in self._rbac_warned:
                self._rbac_warned.add(what)
                logger.warning("cannot list %s (%s): %s", what, exc,
                               "owners found from pod-template-hash" if what == "replicasets"
                               else "Deployment annotations ignored")
            return []

    def _first(self, kind: str, pod: Pod) -> bool:
        key = (kind, pod.uid or pod.name)
        if key in self._reported:
            return False
        self._reported.add(key)
        return True

    def _warn_once(self, owner: Owner, why: str, deployment: Mapping[str, Any] | None) -> None:
        if (owner, why) in self._warned:
            return
        self._warned.add((owner, why))
        logger.warning("%s: %s; its pods are left alone until fixed", owner, why)
        ref = ObjectRef("apps/v1", "Deployment", owner.name, self.namespace, _meta(deployment).get("uid"))
        self.events.record(ref, reason=REASON_BAD_ANNOTATION, action="Configure", type="Warning",
                           note=f"{why}; its pods are not recycled until this is fixed")

    def _update_gauges(self, pods: list[Pod], memory: Mapping[str, int | None], report: ReconcileReport) -> None:
        self.metrics.pods_seen.set(len(pods))
        self.metrics.pods_draining.set(sum(1 for pod in pods if pod.draining))
        self.metrics.pods_without_memory.set(
            sum(1 for pod in pods if not pod.draining and memory.get(pod.name) is None))
        self.metrics.pods_over_budget.set(
            sum(len(group.decision.over_budget) for group in report.groups if group.decision))


def _unique(pods: Any) -> list[Pod]:
    seen: dict[str, Pod] = {}
    for pod in pods:
        if pod is not None:
            seen.setdefault(pod.name, pod)
    return list(seen.values())


def _meta(obj: Any) -> dict[str, Any]:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return meta if isinstance(meta, dict) else {}


def _size(value: int | None) -> str:
    if value is None:
        return "unknown"
    return f"{value / 2**20:.1f}Mi ({value} bytes)"
