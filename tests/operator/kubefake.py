"""A Kubernetes API server stand-in for the operator's tests, on 127.0.0.1.

kmock's ``KubernetesEmulator`` (PyPI ``kmock``, by kopf's author) stores objects and
serves get/list/create/patch/delete with the API's URL layout and ``Status`` errors.
What the operator needs and kmock 0.8 leaves out is added here as kmock reactions:

- ``labelSelector`` on lists (``=``, ``==``, ``!=``, ``in``, ``notin``, ``key``, ``!key``),
  and ``limit``/``continue`` pagination, with tokens that can expire (410 Gone);
- ``metadata.uid``, ``resourceVersion`` and ``creationTimestamp`` on created objects;
- PUT (replace) with optimistic concurrency: a stale ``resourceVersion`` gets 409;
- the ``pods/{name}/eviction`` subresource: 404 for a missing pod, 409 on a failed
  uid precondition, 429 with a ``DisruptionBudget`` cause when a
  PodDisruptionBudget allows no disruption (as the API server words it), else the
  pod gets a ``deletionTimestamp`` and the answer is ``201 Status Success``;
- injected failures: the next N matching requests answer 429/5xx.

kmock runs on an asyncio loop in a thread of its own; the operator's real client
(urllib3) calls it over TCP from the test's thread. Every mutation from the test goes
through :meth:`FakeCluster.call`, which runs it on that loop.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import kmock
from kmock import Response

MiB = 2**20
NAMESPACE = "crawl"
RELEASE_LABELS = {
    "app.kubernetes.io/name": "hermit",
    "app.kubernetes.io/instance": "crawl",
    "app.kubernetes.io/component": "crawler",
}
SELECTOR = ",".join(f"{k}={v}" for k, v in RELEASE_LABELS.items())

PODS = "v1/pods"
POD_METRICS = "metrics.k8s.io/v1beta1/pods"
DEPLOYMENTS = "apps/v1/deployments"
REPLICASETS = "apps/v1/replicasets"
LEASES = "coordination.k8s.io/v1/leases"
EVENTS = "events.k8s.io/v1/events"
CORE_EVENTS = "v1/events"
PDBS = "policy/v1/poddisruptionbudgets"

KINDS = {
    "pods": "Pod", "deployments": "Deployment", "replicasets": "ReplicaSet", "leases": "Lease",
    "events": "Event", "poddisruptionbudgets": "PodDisruptionBudget",
}


def now_utc() -> datetime:
    return datetime.now(timezone.utc)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class FakeCluster:
    def __init__(self, namespace: str = NAMESPACE) -> None:
        self.namespace = namespace
        self.loop = asyncio.new_event_loop()
        self.handler: kmock.KubernetesEmulator | None = None
        self.server: kmock.Server | None = None
        self.port: int | None = None
        self._resource_version = itertools.count(1000)
        self._pending_faults = 0
        self._accepted: list[str] = []  # pods whose eviction was accepted, in order
        #: metrics.k8s.io: "up", "down" (metrics-server unreachable: the aggregator's 503)
        #: or "absent" (never installed: 404).
        self.metrics_api = "up"
        #: How many continued list requests answer 410 Gone (an expired continue token).
        self.expire_continue_tokens = 0
        self._thread = threading.Thread(target=self.loop.run_forever, name="kubefake", daemon=True)

    # ---- life cycle -----------------------------------------------------------------------

    def start(self) -> FakeCluster:
        self._thread.start()
        self.call(self._start_handler)
        self.start_server()
        return self

    def stop(self) -> None:
        """Stop; raises if the fake itself failed on a request (a bug in the fake, not an API error)."""
        if self.server is not None:
            self.stop_server()
        crashes = self.call(lambda: [e for e in self.handler.errors if not isinstance(e, kmock.KubernetesError)])
        self.call(lambda: self.handler.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()
        if crashes:
            raise AssertionError(f"the fake API server failed on requests: {crashes!r}")

    def start_server(self) -> None:
        """(Re)start listening, on the same port after the first time (an API server restart)."""
        async def start() -> None:
            self.server = kmock.Server(self.handler, port=self.port)
            await self.server.__aenter__()
            self.port = self.server.port

        self.call(start)

    def stop_server(self) -> None:
        """The API server goes away: connections are refused until :meth:`start_server`."""
        server, self.server = self.server, None
        self.call(lambda: server.__aexit__(None, None, None))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kubeconfig(self, path: Path, namespace: str | None = None) -> Path:
        """A kubeconfig (JSON is YAML) pointing at this server, with a bearer token."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "fake", "cluster": {"server": self.url}}],
            "users": [{"name": "operator", "user": {"token": "test-token"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "operator",
                                                      "namespace": namespace or self.namespace}}],
            "current-context": "fake",
        }
        path.write_text(json.dumps(config))
        return path

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` (sync, or returning an awaitable) on the server's loop; return its result."""
        async def run() -> Any:
            result = fn()
            if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(30)

    async def _start_handler(self) -> None:
        k = kmock.KubernetesEmulator()
        await k.__aenter__()
        self.handler = k
        # The behaviours kmock lacks; injected faults (fail()) go above them. Each
        # reaction always answers with a Response of its own status: kmock keeps the
        # status a reaction last answered with for its later answers.
        k["post", kmock.resource(PODS), kmock.subresource("eviction")] << self._evict
        k["put"] << self._replace
        k["list"] << self._list
        k["create"] << self._created

    # ---- objects --------------------------------------------------------------------------

    def put(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store (create or overwrite) an object as the API server would hold it."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", self.namespace)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", rfc3339(now_utc()))
        meta["resourceVersion"] = str(next(self._resource_version))

        def store() -> None:
            self.handler.objects[resource, meta["namespace"], meta["name"]] = obj

        self.call(store)
        return obj

    def get(self, resource: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            # kmock's `in` wants a parsed resource (a plain string never matches).
            key = (kmock.resource(resource), namespace or self.namespace, name)
            if key not in self.handler.objects or self.handler.objects[key].deleted:
                return None
            return json.loads(json.dumps(self.handler.objects[key].raw))

        return self.call(read)

    def history(self, resource: str, name: str) -> list[dict[str, Any] | None]:
        """Every stored version of an object, oldest first (None: deleted)."""
        def read() -> list[dict[str, Any] | None]:
            versions = self.handler.objects[resource, self.namespace, name].history
            return [None if v is None else json.loads(json.dumps(v.raw)) for v in versions]

        return self.call(read)

    def all(self, resource: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            wanted = kmock.resource(resource)
            return [json.loads(json.dumps(obj.raw)) for (res, _, _), obj in self.handler.objects.items()
                    if res == wanted and not obj.deleted]

        return self.call(read)

    def delete(self, resource: str, name: str) -> None:
        self.call(lambda: self.handler.objects[resource, self.namespace, name].delete())

    def requests(self) -> list[kmock.Request]:
        return self.call(lambda: list(self.handler))

    def evicted(self) -> list[str]:
        """Pods whose eviction the server accepted, in order."""
        return self.call(lambda: list(self._accepted))

    def eviction_attempts(self) -> list[str]:
        return [r.name for r in self.requests() if r.subresource == "eviction"]

    def events(self) -> list[dict[str, Any]]:
        return self.all(EVENTS) + self.all(CORE_EVENTS)

    def fail(self, method: str, path: str, statuses: Iterable[int], retry_after: float | None = None,
             message: str = "injected failure", applied: bool = False) -> None:
        """The next requests of ``method`` whose path matches regex ``path`` answer ``statuses``.

        The failed request has no effect, unless ``applied`` (the API stored a created
        object and then failed to answer, as a timeout can do). One kmock reaction per
        call, above every other; used up, it declines (NotImplementedError: kmock goes
        on to the next reaction).
        """
        pattern = re.compile(f".*(?:{path})")
        remaining = list(statuses)

        def serve(request: kmock.Request) -> Response:
            if not remaining:
                raise NotImplementedError
            self._pending_faults -= 1
            if request.action == kmock.action.CREATE and not applied:
                # kmock stores what is POSTed before any reaction runs: take it back.
                meta = (request.data or {}).get("metadata") or {}
                key = (request.resource, request.namespace or meta.get("namespace"), meta.get("name"))
                if key in self.handler.objects:
                    del self.handler.objects[key]
            return self._fault_response(remaining.pop(0), retry_after, message)

        def register() -> None:
            self._pending_faults += len(remaining)
            (self.handler ** 100)[kmock.method(method.upper()), kmock.path(pattern)] << serve

        self.call(register)

    def pending_faults(self) -> int:
        return self.call(lambda: self._pending_faults)

    # ---- reactions (run on the server's loop) ----------------------------------------------

    @staticmethod
    def _fault_response(code: int, retry_after: float | None, message: str) -> Response:
        headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
        reason = {403: "Forbidden", 404: "NotFound", 429: "TooManyRequests", 500: "InternalError",
                  503: "ServiceUnavailable", 504: "Timeout"}.get(code, "InternalError")
        return Response(status=code, payload=status_body(code, reason, message), headers=headers)

    def _list(self, request: kmock.Request) -> Any:
        resource, namespace = request.resource, request.namespace
        if resource.group == "metrics.k8s.io" and self.metrics_api != "up":
            if self.metrics_api == "down":
                return Response(status=503, payload=status_body(
                    503, "ServiceUnavailable", "the server is currently unable to handle the request"))
            return Response(status=404, payload=status_body(404, "NotFound", "the server could not find the "
                                                            "requested resource"))
        selector = request.params.get("labelSelector", "")
        items = []
        for (res, ns, _), obj in self.handler.objects.items():
            if res == resource and not obj.deleted and (namespace is None or ns == namespace):
                raw = obj.raw
                if label_selector_matches(selector, (raw.get("metadata") or {}).get("labels") or {}):
                    items.append(raw)
        kind = KINDS.get(resource.plural, "Object")
        if resource.group == "metrics.k8s.io":
            kind = "PodMetrics"
        api_version = f"{resource.group}/{resource.version}" if resource.group else resource.version
        # Pagination: limit, and continue tokens that can expire (410 Gone).
        items.sort(key=lambda obj: (obj["metadata"].get("namespace") or "", obj["metadata"]["name"]))
        offset = 0
        if request.params.get("continue"):
            if self.expire_continue_tokens:
                self.expire_continue_tokens -= 1
                return Response(status=410, payload=status_body(
                    410, "Expired", "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter."))
            offset = int(request.params["continue"])
        limit = int(request.params.get("limit") or 0) or len(items) or 1
        page, rest = items[offset:offset + limit], items[offset + limit:]
        meta = {"resourceVersion": str(next(self._resource_version))}
        if rest:
            meta["continue"] = str(offset + limit)
            meta["remainingItemCount"] = len(rest)
        return Response(status=200, payload={"kind": f"{kind}List", "apiVersion": api_version,
                                             "metadata": meta, "items": page})

    def _created(self, request: kmock.Request) -> Any:
        # kmock stored the body already (before any reaction); complete it as the API would.
        meta = (request.data or {}).get("metadata") or {}
        key = (request.resource, request.namespace or meta.get("namespace"), meta.get("name"))
        obj = self.handler.objects[key]
        completed = json.loads(json.dumps(obj.raw))
        completed["metadata"].update(uid=str(uuid.uuid4()), resourceVersion=str(next(self._resource_version)),
                                     creationTimestamp=rfc3339(now_utc()))
        obj.history[-1] = completed  # the same version, completed: no extra entry in its history
        return Response(status=201, payload=completed)

    def _replace(self, request: kmock.Request) -> Any:
        key = (request.resource, request.namespace, request.name)
        kind = KINDS.get(request.resource.plural if request.resource else "", "object")
        if request.resource is None or key not in self.handler.objects or self.handler.objects[key].deleted:
            return Response(status=404, payload=status_body(404, "NotFound", f'{kind} "{request.name}" not found'))
        stored = self.handler.objects[key]
        sent = (request.data or {}).get("metadata", {}).get("resourceVersion")
        current = stored.raw["metadata"].get("resourceVersion")
        if sent != current:
            return Response(status=409, payload=status_body(
                409, "Conflict", f'Operation cannot be fulfilled on {request.resource.plural} "{request.name}": '
                "the object has been modified; please apply your changes to the latest version and try again"))
        new = json.loads(json.dumps(request.data))
        new["metadata"]["resourceVersion"] = str(next(self._resource_version))
        stored.history.append(new)
        return Response(status=200, payload=new)

    def _evict(self, request: kmock.Request) -> Any:
        key = (kmock.resource(PODS), request.namespace, request.name)
        if key not in self.handler.objects or self.handler.objects[key].deleted:
            return Response(status=404, payload=status_body(404, "NotFound", f'pods "{request.name}" not found'))
        pod = self.handler.objects[key].raw
        wanted_uid = (((request.data or {}).get("deleteOptions") or {}).get("preconditions") or {}).get("uid")
        if wanted_uid and wanted_uid != pod["metadata"].get("uid"):
            return Response(status=409, payload=status_body(409, "Conflict", "Precondition failed: UID in "
                            f"precondition: {wanted_uid}, UID in object meta: {pod['metadata'].get('uid')}"))
        if not pod["metadata"].get("deletionTimestamp"):
            for pdb in self._pdbs(request.namespace):
                refusal = self._pdb_refusal(pdb, pod, request.namespace)
                if refusal:
                    return Response(status=429, headers={"Retry-After": "10"}, payload={
                        **status_body(429, "TooManyRequests",
                                      "Cannot evict pod as it would violate the pod's disruption budget."),
                        "details": {"causes": [{"reason": "DisruptionBudget", "message": refusal}]},
                    })
            grace = 30
            self.handler.objects[key].patch({"metadata": {
                "deletionTimestamp": rfc3339(now_utc() + timedelta(seconds=grace)),
                "deletionGracePeriodSeconds": grace,
                "resourceVersion": str(next(self._resource_version)),
            }})
        self._accepted.append(request.name)
        return Response(status=201, payload={"kind": "Status", "apiVersion": "v1", "metadata": {},
                                             "status": "Success", "code": 201})

    def _pdbs(self, namespace: str) -> list[dict[str, Any]]:
        wanted = kmock.resource(PDBS)
        return [obj.raw for (res, ns, _), obj in self.handler.objects.items()
                if res == wanted and ns == namespace and not obj.deleted]

    def _pdb_refusal(self, pdb: Mapping[str, Any], pod: Mapping[str, Any], namespace: str) -> str:
        """The API server's words when the budget allows no disruption, else ""."""
        match = ((pdb.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = pod["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in match.items()):
            return ""
        wanted = kmock.resource(PODS)
        covered = [obj.raw for (res, ns, _), obj in self.handler.objects.items()
                   if res == wanted and ns == namespace and not obj.deleted
                   and all((obj.raw["metadata"].get("labels") or {}).get(k) == v for k, v in match.items())]
        healthy = sum(1 for p in covered if is_healthy(p))
        max_unavailable = int((pdb.get("spec") or {}).get("maxUnavailable", 1))
        desired = max(0, len(covered) - max_unavailable)
        if healthy - desired > 0:
            return ""
        return (f"The disruption budget {pdb['metadata']['name']} needs {desired} healthy pods "
                f"and has {healthy} currently")


def status_body(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": reason, "code": code}


def is_healthy(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])
    return status.get("phase") == "Running" and ready and not pod["metadata"].get("deletionTimestamp")


_REQUIREMENT = re.compile(r"^\s*(?:(!)\s*([^\s=!,()]+)|([^\s=!,()]+)\s*(?:(==|=|!=)\s*([^\s,()]*)"
                          r"|\s+(in|notin)\s*\(([^)]*)\))?)\s*$")


def label_selector_matches(selector: str, labels: Mapping[str, str]) -> bool:
    """The API server's label selector semantics (equality- and set-based)."""
    if not selector.strip():
        return True
    parts, depth, current = [], 0, ""
    for char in selector:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    for part in parts:
        m = _REQUIREMENT.match(part)
        if m is None:
            raise ValueError(f"bad selector {selector!r}")
        negated_key, key, op, value, set_op, values = m.group(2, 3, 4, 5, 6, 7)
        if negated_key:
            if negated_key in labels:
                return False
        elif op in ("=", "=="):
            if labels.get(key) != value:
                return False
        elif op == "!=":
            if labels.get(key) == value:
                return False
        elif set_op:
            choices = {v.strip() for v in values.split(",")}
            if set_op == "in" and labels.get(key) not in choices:
                return False
            if set_op == "notin" and labels.get(key) in choices:
                return False
        elif key not in labels:
            return False
    return True


# ---- realistic objects ----------------------------------------------------------------------

def deployment(name: str, *, replicas: int = 3, annotations: Mapping[str, str] | None = None,
               labels: Mapping[str, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """A crawler Deployment and its current ReplicaSet, as a cluster holds them."""
    labels = dict(labels or RELEASE_LABELS)
    template_hash = uuid.uuid4().hex[:10]
    deploy_uid = str(uuid.uuid4())
    created = rfc3339(now_utc() - timedelta(days=1))
    dep = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "uid": deploy_uid, "labels": labels, "generation": 1,
                     "creationTimestamp": created,
                     "annotations": {"deployment.kubernetes.io/revision": "1", **(annotations or {})}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "crawler", "image": "hermit-crawler:0.1.0"}]}}},
        "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas,
                   "updatedReplicas": replicas, "observedGeneration": 1},
    }
    rs_labels = {**labels, "pod-template-hash": template_hash}
    rs = {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{name}-{template_hash}", "labels": rs_labels, "creationTimestamp": created,
                     "annotations": {"deployment.kubernetes.io/desired-replicas": str(replicas),
                                     "deployment.kubernetes.io/revision": "1"},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                                          "uid": deploy_uid, "controller": True, "blockOwnerDeletion": True}]},
        "spec": {"replicas": replicas, "selector": {"matchLabels": rs_labels},
                 "template": {"metadata": {"labels": rs_labels}}},
        "status": {"replicas": replicas, "readyReplicas": replicas},
    }
    return dep, rs


_suffixes = itertools.count()


def pod(rs: Mapping[str, Any] | None, *, name: str | None = None, age_seconds: float = 3600, ready: bool = True,
        phase: str = "Running", ip: str = "10.244.1.17", metrics_port: int | None = 9410,
        terminating: bool = False) -> dict[str, Any]:
    """A crawler pod owned by ``rs``, as the API returns it."""
    labels = dict((rs or {}).get("metadata", {}).get("labels") or RELEASE_LABELS)
    rs_name = rs["metadata"]["name"] if rs else None
    name = name or f"{rs_name or 'crawler'}-{next(_suffixes):05x}"
    started = now_utc() - timedelta(seconds=age_seconds)
    conditions = [
        {"type": t, "status": "True" if (ready or t in ("PodScheduled", "Initialized")) else "False",
         "lastProbeTime": None, "lastTransitionTime": rfc3339(started)}
        for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
    ]
    container: dict[str, Any] = {
        "name": "crawler", "image": "hermit-crawler:0.1.0", "imagePullPolicy": "IfNotPresent",
        "args": ["crawl", "demo"],
        "env": [{"name": "HERMIT_MEMORY_BUDGET_BYTES", "value": "524288000"},
                {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "crawl-redis", "key": "password"}}}],
        "resources": {"limits": {"memory": "1Gi"}, "requests": {"cpu": "250m", "memory": "512Mi"}},
        "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
    }
    if metrics_port:
        container["ports"] = [{"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"}]
        container["env"].append({"name": "HERMIT_METRICS_PORT", "value": str(metrics_port)})
    obj: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "generateName": f"{rs_name}-" if rs_name else None, "labels": labels,
                     "creationTimestamp": rfc3339(started)},
        "spec": {"containers": [container], "restartPolicy": "Always", "terminationGracePeriodSeconds": 120,
                 "dnsPolicy": "ClusterFirst", "serviceAccountName": "crawl-hermit-crawler",
                 "nodeName": "node-1", "schedulerName": "default-scheduler",
                 "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}},
        "status": {"phase": phase, "hostIP": "172.18.0.2", "podIP": ip, "podIPs": [{"ip": ip}],
                   "startTime": rfc3339(started), "qosClass": "Burstable", "conditions": conditions,
                   "containerStatuses": [{"name": "crawler", "ready": ready, "restartCount": 0, "started": True,
                                          "image": "hermit-crawler:0.1.0", "imageID": "sha256:0123",
                                          "containerID": "containerd://abc",
                                          "state": {"running": {"startedAt": rfc3339(started)}}}]},
    }
    if obj["metadata"]["generateName"] is None:
        del obj["metadata"]["generateName"]
    if rs:
        obj["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                                               "uid": rs["metadata"].get("uid", str(uuid.uuid4())),
                                               "controller": True, "blockOwnerDeletion": True}]
    if terminating:
        obj["metadata"]["deletionTimestamp"] = rfc3339(now_utc() + timedelta(seconds=30))
        obj["metadata"]["deletionGracePeriodSeconds"] = 30
    return obj


def pod_metrics(pod_obj: Mapping[str, Any], memory_bytes: int, *, sidecar_bytes: int = 0) -> dict[str, Any]:
    """metrics-server's PodMetrics for a pod: working set per container, in Ki as it reports it."""
    containers = [{"name": "crawler", "usage": {"cpu": "153241n", "memory": f"{memory_bytes // 1024}Ki"}}]
    if sidecar_bytes:
        containers.append({"name": "sidecar", "usage": {"cpu": "1021n", "memory": f"{sidecar_bytes // 1024}Ki"}})
    meta = pod_obj["metadata"]
    return {
        "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace", NAMESPACE),
                     "creationTimestamp": rfc3339(now_utc()), "labels": dict(meta.get("labels") or {})},
        "timestamp": rfc3339(now_utc() - timedelta(seconds=7)), "window": "15.018s",
        "containers": containers,
    }


def seed_crawler(cluster: FakeCluster, memory_mib: Iterable[int] = (900, 10, 10)) -> list[str]:
    """A crawler Deployment with its ReplicaSet and one pod per value in *memory_mib* (its
    working set in metrics.k8s.io), oldest first; returns the pods' names."""
    dep, rs = deployment("crawler")
    cluster.put(DEPLOYMENTS, dep)
    cluster.put(REPLICASETS, rs)
    names = []
    for i, mib in enumerate(memory_mib):
        obj = cluster.put(PODS, pod(rs, age_seconds=5000 - i))
        cluster.put(POD_METRICS, pod_metrics(obj, mib * MiB))
        names.append(obj["metadata"]["name"])
    return names


def pdb(name: str, match_labels: Mapping[str, str], max_unavailable: int = 1) -> dict[str, Any]:
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": name},
            "spec": {"maxUnavailable": max_unavailable, "selector": {"matchLabels": dict(match_labels)}}}
