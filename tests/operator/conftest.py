"""Operator tests: the real ``kubernetes`` client against a mock API server on 127.0.0.1.

``cluster`` is a :class:`kubefake.FakeCluster` (kmock plus the API behaviours the
operator relies on); ``operator(...)`` builds the operator's parts from Settings and a
kubeconfig pointing at it, with short backoffs so retries take milliseconds.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, start_http_server

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hermit_operator.events import EventRecorder  # noqa: E402
from hermit_operator.health import Health  # noqa: E402
from hermit_operator.kube import KubeClient, load_api_client  # noqa: E402
from hermit_operator.leader import LeaderElector  # noqa: E402
from hermit_operator.memory import MemoryReader, PodMetricsReader  # noqa: E402
from hermit_operator.metrics import OperatorMetrics  # noqa: E402
from hermit_operator.reconcile import Reconciler  # noqa: E402
from hermit_operator.runner import Runner  # noqa: E402
from hermit_operator.settings import Settings  # noqa: E402

from kubefake import NAMESPACE, SELECTOR, FakeCluster  # noqa: E402


@pytest.fixture
def cluster() -> Iterator[FakeCluster]:
    fake = FakeCluster().start()
    yield fake
    fake.stop()


@pytest.fixture
def kubeconfig(cluster: FakeCluster, tmp_path: Path) -> Path:
    return cluster.kubeconfig(tmp_path / "kubeconfig")


@dataclass
class Operator:
    """One operator instance's parts, wired as the CLI wires them."""

    settings: Settings
    kube: KubeClient
    metrics: OperatorMetrics
    events: EventRecorder
    reconciler: Reconciler
    elector: LeaderElector | None
    runner: Runner

    def reconcile(self) -> Any:
        return self.reconciler.reconcile()

    def sample(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)


def fast_kube(kubeconfig: Path, metrics: OperatorMetrics, **kwargs: Any) -> KubeClient:
    api_client, _ = load_api_client(str(kubeconfig))
    options = dict(backoff_seconds=0.01, max_backoff_seconds=0.05, timeout=(2.0, 5.0))
    options.update(kwargs)
    return KubeClient(api_client, on_error=metrics.api_error, **options)


@pytest.fixture
def metrics() -> OperatorMetrics:
    """The operator's metrics in a private registry."""
    return OperatorMetrics(CollectorRegistry())


@pytest.fixture
def kube(kubeconfig: Path, metrics: OperatorMetrics) -> Iterator[KubeClient]:
    """The client wrapper on the mock API, counting errors into ``metrics``."""
    client = fast_kube(kubeconfig, metrics)
    yield client
    client.api_client.close()


@pytest.fixture
def operator(kubeconfig: Path) -> Iterator[Any]:
    """``operator(**settings)`` -> :class:`Operator`; ``leader_election`` is off unless asked."""
    built: list[Operator] = []

    def build(*, clock: Any = None, monotonic: Any = None, kube_options: dict[str, Any] | None = None,
              **overrides: Any) -> Operator:
        values: dict[str, Any] = dict(namespace=NAMESPACE, selector=SELECTOR, budget_bytes=500 * 2**20,
                                      min_age_seconds=60, cooldown_seconds=0, leader_election=False,
                                      identity=f"operator-{len(built)}")
        values.update(overrides)
        settings = Settings(**values)
        metrics = OperatorMetrics(CollectorRegistry())
        kube = fast_kube(kubeconfig, metrics, **(kube_options or {}))
        timing = {"monotonic": monotonic} if monotonic else {}
        elector = None
        if settings.leader_election:
            elector = LeaderElector(kube, NAMESPACE, settings.lease_name, settings.identity,
                                    settings.lease_duration_seconds,
                                    on_change=lambda leading: metrics.leader.set(leading), **timing)
        events = EventRecorder(kube, settings.identity)
        memory = MemoryReader(kube, settings.memory_source,
                              PodMetricsReader(settings.pod_metrics_port, timeout_seconds=2.0))
        reconciler = Reconciler(kube, settings, NAMESPACE, memory, events, metrics,
                                may_evict=(lambda: elector.is_leader) if elector else (lambda: True),
                                **({"clock": clock} if clock else {}), **timing)
        runner = Runner(reconciler, metrics, Health(120, 60), interval_seconds=settings.interval_seconds,
                        elector=elector, **timing)
        op = Operator(settings, kube, metrics, events, reconciler, elector, runner)
        built.append(op)
        return op

    yield build
    for op in built:
        op.kube.api_client.close()


@pytest.fixture
def metrics_endpoint() -> Iterator[Any]:
    """``metrics_endpoint(rss_bytes)`` -> port of a real prometheus-client /metrics on 127.0.0.1
    exporting ``process_resident_memory_bytes`` (as a worker's process collector does)."""
    servers = []

    def start(rss_bytes: float) -> int:
        registry = CollectorRegistry()
        Gauge("process_resident_memory_bytes", "Resident memory size in bytes.", registry=registry).set(rss_bytes)
        Gauge("hermit_pages_fetched", "Pages fetched", registry=registry).set(12)
        server, _ = start_http_server(0, addr="127.0.0.1", registry=registry)
        servers.append(server)
        return server.server_port

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
