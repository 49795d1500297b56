"""Reading each crawler pod's memory: metrics.k8s.io, or the pod's own /metrics.

``metrics-api`` (the default) reads PodMetrics from metrics.k8s.io/v1beta1: the
working set summed over the pod's containers, what ``kubectl top`` shows and what the
kubelet's eviction and the OOM killer act on. When that API is unavailable (not
installed, metrics-server down, not allowed), the same reconcile falls back to
``pod-metrics``: ``process_resident_memory_bytes`` (the RSS that prometheus-client's
process collector exports) from ``http://<pod IP>:<port>/metrics``, the port being the
pod's container port named ``metrics``, else its ``HERMIT_METRICS_PORT``, else 9410.

A pod with no reading (not scraped yet, no IP, an endpoint that fails or serves
garbage) gets ``None``: the policy never treats unknown memory as over budget.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import InvalidOperation
from typing import Any

import urllib3
from kubernetes.utils.quantity import parse_quantity
from prometheus_client.parser import text_string_to_metric_families

from hermit_operator.kube import ApiError, KubeClient
from hermit_operator.pods import Pod

logger = logging.getLogger(__name__)

RSS_METRIC = "process_resident_memory_bytes"


@dataclass(frozen=True)
class MemoryReading:
    """Bytes per pod name (None: unknown) and where they came from."""

    bytes_by_pod: dict[str, int | None]
    source: str  # "metrics-api" or "pod-metrics"
    fallback_reason: str = ""  # why metrics-api was not used, when it was asked for


def working_set_bytes(pod_metrics: Any) -> int | None:
    """Sum of ``containers[].usage.memory`` of one PodMetrics, or None if any is unreadable."""
    containers = pod_metrics.get("containers") if isinstance(pod_metrics, dict) else None
    if not isinstance(containers, list) or not containers:
        return None
    total = 0
    for container in containers:
        usage = container.get("usage") if isinstance(container, dict) else None
        memory = usage.get("memory") if isinstance(usage, dict) else None
        try:
            value = parse_quantity(memory)
        except (ValueError, InvalidOperation, TypeError, AttributeError):
            return None
        if value < 0:
            return None
        total += int(value)
    return total


def rss_from_exposition(text: str) -> int | None:
    """``process_resident_memory_bytes`` from a Prometheus text exposition, or None."""
    try:
        for family in text_string_to_metric_families(text):
            if family.name == RSS_METRIC:
                for sample in family.samples:
                    if sample.name == RSS_METRIC and sample.value == sample.value and sample.value >= 0:
                        return int(sample.value)
    except Exception:  # the parser raises ValueError, IndexError, ... on malformed input
        logger.debug("unparsable /metrics exposition", exc_info=True)
    return None


class PodMetricsReader:
    """Scrapes the pods' own /metrics, a few at a time, each with a short timeout."""

    def __init__(
        self,
        default_port: int = 9410,
        *,
        timeout_seconds: float = 3.0,
        concurrency: int = 16,
        max_bytes: int = 8 * 2**20,
    ) -> None:
        self.default_port = default_port
        self.concurrency = concurrency
        self.max_bytes = max_bytes
        self.http = urllib3.PoolManager(
            retries=False, timeout=urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        )

    def read(self, pods: Sequence[Pod]) -> dict[str, int | None]:
        # Draining pods are never picked: don't spend timeouts on dying ones.
        targets = [pod for pod in pods if not pod.draining and pod.ip]
        result: dict[str, int | None] = {pod.name: None for pod in pods}
        if targets:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(targets))) as pool:
                for pod, value in zip(targets, pool.map(self.read_one, targets), strict=True):
                    result[pod.name] = value
        return result

    def url(self, pod: Pod) -> str:
        host = f"[{pod.ip}]" if pod.ip and ":" in pod.ip else pod.ip
        return f"http://{host}:{pod.metrics_port or self.default_port}/metrics"

    def read_one(self, pod: Pod) -> int | None:
        url = self.url(pod)
        try:
            response = self.http.request("GET", url, preload_content=False)
            try:
                body = response.read(self.max_bytes + 1)
            finally:
                response.release_conn()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            logger.info("pod %s: no memory reading from %s: %s", pod.name, url, exc)
            return None
        if response.status != 200 or len(body) > self.max_bytes:
            logger.info("pod %s: no memory reading from %s: HTTP %s, %d bytes", pod.name, url,
                        response.status, len(body))
            return None
        value = rss_from_exposition(body.decode("utf-8", "replace"))
        if value is None:
            logger.info("pod %s: %s has no %s", pod.name, url, RSS_METRIC)
        return value


class MemoryReader:
    """Reads memory from the configured source, falling back as the module says."""

    def __init__(self, kube: KubeClient, source: str, pod_reader: PodMetricsReader) -> None:
        if source not in ("metrics-api", "pod-metrics"):
            raise ValueError(f"unknown memory source {source!r}")
        self.kube = kube
        self.source = source
        self.pod_reader = pod_reader
        self._metrics_api_down = False

    def read(self, namespace: str, selector: str, pods: Sequence[Pod]) -> MemoryReading:
        if self.source == "pod-metrics":
            return MemoryReading(self.pod_reader.read(pods), "pod-metrics")
        try:
            # Two attempts only: when the API is down, the fallback is the better use of time.
            items = self.kube.list_pod_metrics(namespace, selector, attempts=2)
        except ApiError as exc:
            if not self._metrics_api_down:
                logger.warning("metrics.k8s.io unavailable (%s): reading the pods' own /metrics instead", exc)
            self._metrics_api_down = True
            return MemoryReading(self.pod_reader.read(pods), "pod-metrics", fallback_reason=str(exc))
        if self._metrics_api_down:
            logger.warning("metrics.k8s.io is back: reading pod memory from it again")
        self._metrics_api_down = False
        return MemoryReading(_by_pod(items, (pod.name for pod in pods)), "metrics-api")


def _by_pod(items: Iterable[Any], names: Iterable[str]) -> dict[str, int | None]:
    result: dict[str, int | None] = {name: None for name in names}
    for item in items:
        meta = item.get("metadata") if isinstance(item, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(name, str) and name in result:
            result[name] = working_set_bytes(item)
    return result
