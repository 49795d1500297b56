"""The Kubernetes calls the operator makes, through the official client, with retries.

A thin wrapper: each method is one API call (or one paginated list), returns plain
JSON dicts (never the client's models, so a pod with an unexpected field can't fail
deserialization), and retries what is worth retrying — 429 and 5xx answers and lost
connections — with exponential backoff, honouring ``Retry-After``. Every failed
attempt is reported to ``on_error(verb)`` (the operator counts them by verb).

The tests point it at a mock API server on 127.0.0.1 through a kubeconfig file, so
the real client builds and sends every request.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from hermit_operator import __version__

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")

#: Verbs as counted in ``hermit_operator_api_errors_total{verb}``.
VERBS = ("list", "get", "create", "update", "evict")


class ApiError(Exception):
    """A call that failed for good (not retryable, or out of attempts)."""

    def __init__(self, verb: str, what: str, status: int | None, reason: str, message: str = "") -> None:
        self.verb, self.what, self.status, self.reason, self.message = verb, what, status, reason, message
        detail = f"{status} {reason}" if status else reason
        super().__init__(f"{verb} {what}: {detail}{': ' + message if message else ''}")

    @property
    def not_found(self) -> bool:
        return self.status == 404


class EvictionResult(enum.Enum):
    EVICTED = "evicted"  # the API server accepted it: the pod is now terminating gracefully
    REFUSED = "refused"  # a PodDisruptionBudget (429) or a concurrent change (409): try later
    GONE = "gone"  # the pod no longer exists (or is another pod of the same name)


@dataclass(frozen=True)
class Eviction:
    result: EvictionResult
    message: str = ""


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> tuple[client.ApiClient, str | None]:
    """An API client and the namespace it implies (service account's or context's).

    ``kubeconfig`` given: that file. Else inside a pod: the service account. Else the
    usual kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``), as kubectl does.
    """
    configuration = client.Configuration()
    namespace: str | None = None
    if kubeconfig or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration,
                                persist_config=False)
        try:
            contexts, current = config.list_kube_config_contexts(kubeconfig)
            chosen = next((c for c in contexts if c.get("name") == context), current) if context else current
            namespace = ((chosen or {}).get("context") or {}).get("namespace")
        except Exception:  # the namespace is a convenience; the file already loaded
            namespace = None
    else:
        config.load_incluster_config(client_configuration=configuration)
        try:
            namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or None
        except OSError:
            namespace = None
    # Retries are ours (with backoff and counting), not urllib3's silent ones.
    configuration.retries = 0
    api = client.ApiClient(configuration)
    api.user_agent = f"hermit-operator/{__version__}"
    return api, namespace


class KubeClient:
    """The operator's API calls. ``stop`` cuts backoff waits short at shutdown."""

    def __init__(
        self,
        api_client: client.ApiClient,
        *,
        on_error: Callable[[str], None] | None = None,
        attempts: int = 5,
        backoff_seconds: float = 0.5,
        max_backoff_seconds: float = 10.0,
        timeout: tuple[float, float] = (5.0, 30.0),
        page_size: int = 500,
        stop: threading.Event | None = None,
    ) -> None:
        self.api_client = api_client
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.custom = client.CustomObjectsApi(api_client)
        self.events = client.EventsV1Api(api_client)
        self.coordination = client.CoordinationV1Api(api_client)
        self.on_error = on_error or (lambda verb: None)
        self.attempts = max(1, attempts)
        self.backoff_seconds = backoff_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.timeout = timeout
        self.page_size = page_size
        self.stop = stop or threading.Event()

    # ---- reads -------------------------------------------------------------------------

    def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._list("pods", self.core.list_namespaced_pod, namespace, label_selector=selector)

    def list_pod_metrics(self, namespace: str, selector: str, *, attempts: int | None = None) -> list[dict[str, Any]]:
        """PodMetrics of metrics.k8s.io/v1beta1 (what ``kubectl top pod`` shows)."""
        return self._list("pods.metrics.k8s.io", self.custom.list_namespaced_custom_object,
                          "metrics.k8s.io", "v1beta1", namespace, "pods", label_selector=selector,
                          attempts=attempts)

    def list_replicasets(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self._list("replicasets", self.apps.list_namespaced_replica_set, namespace, label_selector=selector)

    def list_deployments(self, namespace: str) -> list[dict[str, Any]]:
        return self._list("deployments", self.apps.list_namespaced_deployment, namespace)

    def get_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Lease, or None when there is none."""
        try:
            return self._call("get", f"lease {namespace}/{name}", self.coordination.read_namespaced_lease,
                              name, namespace)
        except ApiError as exc:
            if exc.not_found:
                return None
            raise

    # ---- writes ------------------------------------------------------------------------

    def create_lease(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._call("create", f"lease {namespace}", self.coordination.create_namespaced_lease,
                          namespace, body, retry_statuses=_SERVER_ERRORS)

    def replace_lease(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT with ``metadata.resourceVersion``: 409 if someone else wrote it first."""
        return self._call("update", f"lease {namespace}/{name}", self.coordination.replace_namespaced_lease,
                          name, namespace, body, retry_statuses=_SERVER_ERRORS)

    def create_event(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """An events.k8s.io/v1 Event, or a core/v1 Event when the body's apiVersion is v1."""
        if body.get("apiVersion") == "v1":
            return self._call("create", "core/v1 event", self.core.create_namespaced_event, namespace, body)
        return self._call("create", "events.k8s.io/v1 event", self.events.create_namespaced_event, namespace, body)

    def evict(self, namespace: str, name: str, uid: str | None = None) -> Eviction:
        """Evict through policy/v1 Eviction, so PodDisruptionBudgets apply.

        A 429 (the budget allows no disruption now) or 409 is not retried here: the
        caller tries again on a later reconcile. ``uid`` makes sure a new pod that took
        the same name is never evicted in its place.
        """
        body: dict[str, Any] = {
            "apiVersion": "policy/v1",
            "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        }
        if uid:
            body["deleteOptions"] = {"preconditions": {"uid": uid}}
        try:
            self._call("evict", f"pod {namespace}/{name}", self.core.create_namespaced_pod_eviction,
                       name, namespace, body, retry_statuses=_SERVER_ERRORS)
        except ApiError as exc:
            if exc.status == 404 or (exc.status == 409 and "precondition" in exc.message.lower()):
                return Eviction(EvictionResult.GONE, exc.message or exc.reason)
            if exc.status in (429, 409):
                return Eviction(EvictionResult.REFUSED, exc.message or exc.reason)
            raise
        return Eviction(EvictionResult.EVICTED)

    # ---- plumbing ----------------------------------------------------------------------

    def _list(
        self, what: str, method: Callable[..., Any], *args: Any, attempts: int | None = None, **kwargs: Any
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        token: str | None = None
        restarted = False
        while True:
            page_kwargs = dict(kwargs, limit=self.page_size)
            if token:
                page_kwargs["_continue"] = token
            try:
                page = self._call("list", what, method, *args, attempts=attempts, **page_kwargs)
            except ApiError as exc:
                if exc.status != 410 or not token or restarted:
                    raise
                # The continue token expired (410 Gone) between pages: list again from the start.
                items, token, restarted = [], None, True
                continue
            items.extend(item for item in page.get("items") or [] if isinstance(item, dict))
            token = (page.get("metadata") or {}).get("continue") if isinstance(page.get("metadata"), dict) else None
            if not token:
                return items

    def _call(
        self,
        verb: str,
        what: str,
        method: Callable[..., Any],
        *args: Any,
        retry_statuses: frozenset[int] | None = None,
        attempts: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        retry_statuses = _RETRY_STATUSES if retry_statuses is None else retry_statuses
        attempts = self.attempts if attempts is None else max(1, attempts)
        for attempt in range(1, attempts + 1):
            delay = None
            try:
                response = method(*args, _preload_content=False, _request_timeout=self.timeout, **kwargs)
                return _json_object(response.data)
            except ApiException as exc:
                self.on_error(verb)
                status = exc.status or None  # 0: the client could not even send it
                error = ApiError(verb, what, status, *_status_text(exc))
                if status is not None and status not in retry_statuses:
                    raise error from None
                delay = _retry_after(exc)
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                self.on_error(verb)
                error = ApiError(verb, what, None, type(exc).__name__, str(exc))
            if attempt == attempts or self.stop.is_set():
                raise error
            delay = self._backoff(attempt) if delay is None else min(delay, self.max_backoff_seconds)
            logger.info("%s; retrying in %.1fs (attempt %d of %d)", error, delay, attempt + 1, attempts)
            self.stop.wait(delay)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int) -> float:
        base = min(self.max_backoff_seconds, self.backoff_seconds * 2 ** (attempt - 1))
        return base * random.uniform(0.5, 1.0)  # jitter: replicas don't retry in step


_SERVER_ERRORS = frozenset(range(500, 600))
_RETRY_STATUSES = _SERVER_ERRORS | {429}


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _status_text(exc: ApiException) -> tuple[str, str]:
    """(reason, message) from the API's Status body when it has one."""
    reason, message = str(exc.reason or ""), ""
    try:
        body = json.loads(exc.body) if exc.body else {}
    except ValueError:
        body = {}
    if isinstance(body, dict):
        reason = str(body.get("reason") or reason)
        message = str(body.get("message") or "")
        details = body.get("details") if isinstance(body.get("details"), dict) else {}
        causes = [c.get("message") for c in details.get("causes") or [] if isinstance(c, dict) and c.get("message")]
        if causes:  # e.g. which PodDisruptionBudget refused an eviction, and why
            message = f"{message} ({'; '.join(map(str, causes))})" if message else "; ".join(map(str, causes))
    return reason or "error", message


def _retry_after(exc: ApiException) -> float | None:
    headers = exc.headers or {}
    try:
        value = headers.get("Retry-After")
        return max(0.0, float(value)) if value is not None else None
    except (TypeError, ValueError):
        return None
