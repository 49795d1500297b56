"""Leader election through a coordination.k8s.io/v1 Lease, so that of several
operator replicas exactly one evicts.

The same protocol as Kubernetes' own controllers (client-go's leaderelection), run
from the operator's loop instead of a thread of its own:

- acquire: create the Lease, or take it over when its holder released it (empty
  ``holderIdentity``) or has not renewed it for ``leaseDurationSeconds``;
- renew: every third of the duration, a PUT carrying the ``resourceVersion`` read, so
  two candidates can never both win (the loser gets 409 Conflict);
- release: at shutdown the holder empties the Lease, so a standby takes over at once.

Expiry is judged by this process's monotonic clock — how long the Lease has stayed
unchanged since *we* saw it change — never by comparing ``renewTime`` with our wall
clock, so clock skew between nodes can't make two leaders. The leader stops acting
(:attr:`LeaderElector.is_leader` turns False) two thirds of the duration after its
last successful renew, before any standby may take over.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from hermit_operator.kube import ApiError, KubeClient

logger = logging.getLogger(__name__)


class LeaderElector:
    def __init__(
        self,
        kube: KubeClient,
        namespace: str,
        name: str,
        identity: str,
        lease_duration_seconds: float = 15.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], datetime] | None = None,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.kube = kube
        self.namespace, self.name, self.identity = namespace, name, identity
        self.lease_duration = max(1, math.ceil(lease_duration_seconds))
        self.renew_deadline = self.lease_duration * 2 / 3
        self.retry_period = self.lease_duration / 3
        self.monotonic = monotonic
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.on_change = on_change or (lambda leading: None)
        self._leading = False
        self._renewed_at = -math.inf
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.last_error = ""  # why the last round failed to reach the API ("" = it did)

    @property
    def is_leader(self) -> bool:
        """True while we hold the Lease and renewed it recently enough to act on it."""
        return self._leading and self.monotonic() - self._renewed_at < self.renew_deadline

    def try_acquire_or_renew(self) -> bool:
        """One election round; returns :attr:`is_leader` afterwards. Never raises ApiError."""
        try:
            self._round()
            self.last_error = ""
        except ApiError as exc:
            self.last_error = str(exc)
            logger.warning("leader election: %s", exc)
        leading = self.is_leader
        if leading != self._leading:  # the renew deadline passed without a renew
            self._set_leading(False)
        return leading

    def release(self) -> None:
        """Give the Lease up if we hold it, so a standby need not wait for it to expire."""
        if not self._leading:
            return
        self._set_leading(False)
        try:
            lease = self.kube.get_lease(self.namespace, self.name)
            spec = (lease or {}).get("spec") or {}
            if lease is None or spec.get("holderIdentity") != self.identity:
                return
            now = _micro_time(self.clock())
            released = {"leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now,
                        "leaseTransitions": _int(spec.get("leaseTransitions"))}
            self.kube.replace_lease(self.namespace, self.name, _lease_body(lease, released))
            logger.info("released the leader Lease %s/%s", self.namespace, self.name)
        except ApiError as exc:
            logger.warning("could not release the leader Lease (it expires by itself): %s", exc)

    def _round(self) -> None:
        now_mono, now = self.monotonic(), _micro_time(self.clock())
        lease = self.kube.get_lease(self.namespace, self.name)
        if lease is None:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._spec(now, now, 0),
            }
            try:
                created = self.kube.create_lease(self.namespace, body)
            except ApiError as exc:
                if exc.status == 409:  # another candidate created it first
                    return
                raise
            self._won(created, now_mono)
            return

        spec = lease.get("spec") if isinstance(lease.get("spec"), dict) else {}
        meta = lease.get("metadata") if isinstance(lease.get("metadata"), dict) else {}
        holder = spec.get("holderIdentity") or ""
        record = (meta.get("resourceVersion"), holder, spec.get("renewTime"))
        if record != self._observed:
            self._observed, self._observed_at = record, now_mono
        transitions = _int(spec.get("leaseTransitions"))
        if holder == self.identity:
            acquired = spec.get("acquireTime") or now
        else:
            duration = _int(spec.get("leaseDurationSeconds")) or self.lease_duration
            if holder and now_mono - self._observed_at < duration:
                self._set_leading(False)  # held by a live leader
                return
            if holder:
                logger.info("leader Lease held by %s expired: taking it over", holder)
            acquired, transitions = now, transitions + 1
        try:
            replaced = self.kube.replace_lease(
                self.namespace, self.name, _lease_body(lease, self._spec(acquired, now, transitions)))
        except ApiError as exc:
            if exc.status == 409:  # someone else renewed or took it between our read and write
                self._set_leading(False)
                return
            raise
        self._won(replaced, now_mono)

    def _spec(self, acquired: str, renewed: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_duration,
            "acquireTime": acquired,
            "renewTime": renewed,
            "leaseTransitions": transitions,
        }

    def _won(self, lease: dict[str, Any], now_mono: float) -> None:
        spec = lease.get("spec") if isinstance(lease.get("spec"), dict) else {}
        meta = lease.get("metadata") if isinstance(lease.get("metadata"), dict) else {}
        self._observed = (meta.get("resourceVersion"), spec.get("holderIdentity") or "", spec.get("renewTime"))
        self._observed_at = self._renewed_at = now_mono
        self._set_leading(True)

    def _set_leading(self, leading: bool) -> None:
        if leading != self._leading:
            logger.info("%s the leader (Lease %s/%s, identity %s)", "became" if leading else "is no longer",
                        self.namespace, self.name, self.identity)
            self._leading = leading
            self.on_change(leading)


def _lease_body(lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    """A PUT body: the Lease as read (its resourceVersion guards the write), new spec."""
    meta = copy.deepcopy(lease.get("metadata")) if isinstance(lease.get("metadata"), dict) else {}
    meta.pop("managedFields", None)
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": meta, "spec": spec}


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
