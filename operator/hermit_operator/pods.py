"""What the operator needs to know of a pod, read defensively from the API's JSON.

A pod with missing or odd fields never raises here: a field that can't be read is
taken as unknown, and the recycling policy treats unknown as "leave it alone" (no
memory reading is not over budget; no start time is too young; not Running and Ready
counts as draining).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

logger = logging.getLogger(__name__)

_FRACTION = re.compile(r"\.(\d+)")


@dataclass(frozen=True)
class Owner:
    """The controller a pod belongs to; pods are grouped (and budgets applied) by it."""

    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}" if self.name else "(no owner)"


NO_OWNER = Owner("Pod", "")


@dataclass(frozen=True)
class Pod:
    name: str
    uid: str | None = None
    ip: str | None = None
    started_at: datetime | None = None
    terminating: bool = False  # deletionTimestamp is set
    running_ready: bool = False  # phase Running and condition Ready True
    controller: Owner | None = None  # the direct controller (a ReplicaSet for Deployments)
    metrics_port: int | None = None  # a container port named "metrics", or HERMIT_METRICS_PORT
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def draining(self) -> bool:
        """Already on its way out, or not serving: never picked, and takes a recycle slot."""
        return self.terminating or not self.running_ready

    def age_seconds(self, now: datetime) -> float:
        if self.started_at is None:
            return 0.0
        return max(0.0, (now - self.started_at).total_seconds())


def parse_pod(obj: Any) -> Pod | None:
    """A :class:`Pod` from a pod's JSON, or None if it has no name."""
    meta = _dict(obj, "metadata")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        return None
    status, spec = _dict(obj, "status"), _dict(obj, "spec")
    ready = any(
        isinstance(c, dict) and c.get("type") == "Ready" and c.get("status") == "True"
        for c in _list(status, "conditions")
    )
    labels = meta.get("labels")
    return Pod(
        name=name,
        uid=_str(meta.get("uid")),
        ip=_str(status.get("podIP")),
        started_at=parse_time(status.get("startTime")) or parse_time(meta.get("creationTimestamp")),
        terminating=bool(meta.get("deletionTimestamp")),
        running_ready=status.get("phase") == "Running" and ready,
        controller=controller_of(obj),
        metrics_port=_metrics_port(spec),
        labels={str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
    )


def controller_of(obj: Any) -> Owner | None:
    """The ownerReference marked ``controller: true`` (else the only one), if any."""
    refs = [r for r in _list(_dict(obj, "metadata"), "ownerReferences") if isinstance(r, dict)]
    chosen = next((r for r in refs if r.get("controller") is True), refs[0] if len(refs) == 1 else None)
    if chosen is None or not _str(chosen.get("kind")) or not _str(chosen.get("name")):
        return None
    return Owner(str(chosen["kind"]), str(chosen["name"]))


def resolve_owners(pods: Iterable[Pod], replicasets: Iterable[Any]) -> dict[str, Owner]:
    """Each pod's group: its Deployment (through its ReplicaSet), else its controller."""
    rs_owner: dict[str, Owner] = {}
    for rs in replicasets:
        name = _str(_dict(rs, "metadata").get("name"))
        owner = controller_of(rs)
        if name and owner is not None and owner.kind == "Deployment":
            rs_owner[name] = owner
    groups = {}
    for pod in pods:
        controller = pod.controller
        if controller is None:
            groups[pod.name] = NO_OWNER
        elif controller.kind == "ReplicaSet" and controller.name in rs_owner:
            groups[pod.name] = rs_owner[controller.name]
        elif controller.kind == "ReplicaSet" and pod.labels.get("pod-template-hash"):
            # The ReplicaSet is not readable (no RBAC) or already gone: Deployments name
            # their ReplicaSets "<deployment>-<pod-template-hash>".
            suffix = "-" + pod.labels["pod-template-hash"]
            name = controller.name[: -len(suffix)] if controller.name.endswith(suffix) else ""
            groups[pod.name] = Owner("Deployment", name) if name else controller
        else:
            groups[pod.name] = controller
    return groups


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as the API writes it (``2026-11-23T10:00:00Z``), else None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    # Python 3.10's fromisoformat takes only 3 or 6 fractional digits.
    text = _FRACTION.sub(lambda m: "." + (m.group(1) + "000000")[:6], text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _metrics_port(spec: Mapping[str, Any]) -> int | None:
    containers = [c for c in _list(spec, "containers") if isinstance(c, dict)]
    for container in containers:
        for port in _list(container, "ports"):
            if isinstance(port, dict) and port.get("name") == "metrics":
                number = _port(port.get("containerPort"))
                if number:
                    return number
    for container in containers:
        for env in _list(container, "env"):
            if isinstance(env, dict) and env.get("name") == "HERMIT_METRICS_PORT":
                number = _port(env.get("value"))
                if number:
                    return number
    return None


def _port(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 65536 else None


def _dict(obj: Any, key: str) -> dict[str, Any]:
    value = obj.get(key) if isinstance(obj, dict) else None
    return value if isinstance(value, dict) else {}


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
