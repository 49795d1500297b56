"""Kubernetes Events: what the operator did, where ``kubectl describe`` and
``kubectl get events`` show it.

Events go to events.k8s.io/v1; on a cluster without it (404) the recorder switches to
core/v1 Events for good. Recording is best effort: a failed Event is logged and
counted, never allowed to stop a recycle.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from hermit_operator.kube import ApiError, KubeClient

logger = logging.getLogger(__name__)

#: ``reportingController`` of every Event.
CONTROLLER = "hermit.dev/operator"
NOTE_LIMIT = 1024  # the API rejects longer notes


@dataclass(frozen=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str
    namespace: str
    uid: str | None = None

    def as_dict(self) -> dict[str, Any]:
        ref = {"apiVersion": self.api_version, "kind": self.kind, "name": self.name, "namespace": self.namespace}
        if self.uid:
            ref["uid"] = self.uid
        return ref


class EventRecorder:
    def __init__(
        self,
        kube: KubeClient,
        identity: str,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.kube = kube
        self.identity = identity[:128]
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.core_v1 = False  # set when events.k8s.io/v1 is not served
        self._sequence = itertools.count()

    def record(
        self,
        regarding: ObjectRef,
        *,
        reason: str,
        action: str,
        note: str,
        type: str = "Normal",
        related: ObjectRef | None = None,
    ) -> bool:
        """Post one Event about ``regarding``; True if the API took it."""
        note = note if len(note) <= NOTE_LIMIT else note[: NOTE_LIMIT - 1] + "…"
        now = self.clock()
        # Unique names, as Kubernetes' own recorders make them: "<object>.<hex time>".
        name = f"{regarding.name}.{time.time_ns() + next(self._sequence):x}"
        for _ in range(2):
            body = (self._core_event if self.core_v1 else self._event)(
                name, now, regarding, reason=reason, action=action, note=note, type=type, related=related)
            try:
                self.kube.create_event(regarding.namespace, body)
                return True
            except ApiError as exc:
                if exc.status == 409:  # an earlier attempt was stored though its answer was lost
                    return True
                if exc.status == 404 and not self.core_v1:
                    logger.info("events.k8s.io/v1 not served (%s): using core/v1 Events", exc)
                    self.core_v1 = True
                    continue
                logger.warning("could not record Event %s on %s %s: %s", reason, regarding.kind, regarding.name, exc)
                return False
            except Exception:  # e.g. the client refusing a body built from odd fields: best effort
                logger.warning("could not record Event %s on %s %s", reason, regarding.kind, regarding.name,
                               exc_info=True)
                return False
        return False

    def _event(self, name: str, now: datetime, regarding: ObjectRef, *, reason: str, action: str, note: str,
               type: str, related: ObjectRef | None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": regarding.namespace},
            "eventTime": _micro_time(now),
            "reportingController": CONTROLLER,
            "reportingInstance": self.identity,
            "action": action,
            "reason": reason,
            "note": note,
            "type": type,
            "regarding": regarding.as_dict(),
        }
        if related is not None:
            body["related"] = related.as_dict()
        return body

    def _core_event(self, name: str, now: datetime, regarding: ObjectRef, *, reason: str, action: str, note: str,
                    type: str, related: ObjectRef | None) -> dict[str, Any]:
        stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": regarding.namespace},
            "involvedObject": regarding.as_dict(),
            "reason": reason,
            "message": note,
            "type": type,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            # Old-style (no eventTime): the API then wants no reporting* fields.
            "source": {"component": CONTROLLER, "host": self.identity},
        }
        return body


def _micro_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
