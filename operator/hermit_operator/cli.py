"""``hermit-operator``: build the parts from the settings and run the loop.

Exit status: 0 after a clean stop (SIGTERM, SIGINT) or a good ``--once``; 1 when
``--once`` failed or a port could not be opened; 2 for invalid settings or an
unusable Kubernetes configuration, with one message saying what is wrong.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from prometheus_client import start_http_server

from hermit_operator import __version__
from hermit_operator.events import EventRecorder
from hermit_operator.health import Health, HealthServer
from hermit_operator.kube import KubeClient, load_api_client
from hermit_operator.leader import LeaderElector
from hermit_operator.memory import MemoryReader, PodMetricsReader
from hermit_operator.metrics import OperatorMetrics
from hermit_operator.reconcile import Reconciler, ReconcileReport
from hermit_operator.runner import Runner
from hermit_operator.settings import Settings, SettingsError, add_arguments, describe, load

logger = logging.getLogger("hermit_operator")

PROG = "hermit-operator"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Recycles Hermit crawler pods over their memory budget through the Eviction API, "
                    "a few at a time. Every flag can also be set by the environment variable in brackets.",
    )
    add_arguments(parser)
    parser.add_argument("--once", action="store_true",
                        help="one reconcile (after winning the election), print what it did, and exit")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load(args)
    except SettingsError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        api_client, context_namespace = load_api_client(settings.kubeconfig, settings.context)
    except Exception as exc:  # ConfigException, a missing or unreadable file, a bad context, ...
        where = settings.kubeconfig or "the in-cluster service account or the default kubeconfig"
        print(f"{PROG}: cannot load the Kubernetes configuration from {where}: {exc}", file=sys.stderr)
        return 2
    namespace = settings.namespace or context_namespace or "default"
    logger.info("hermit-operator %s: %s", __version__, describe(settings).replace("(auto)", namespace))
    if settings.budget_bytes is None:
        logger.warning("no default memory budget: only Deployments annotated hermit.dev/memory-budget are recycled")

    stop = threading.Event()
    metrics = OperatorMetrics()
    runner = build_runner(settings, namespace, api_client, metrics, stop)
    try:
        servers = _start_servers(settings, metrics, runner.health)
    except OSError as exc:
        print(f"{PROG}: cannot listen on {settings.listen_address}: {exc}", file=sys.stderr)
        return 1
    try:
        if args.once:
            report = runner.run_once()
            if report is not None:
                print(summarize(report, settings))
            return 1 if runner.last_error else 0
        with _stop_on_signals(stop):
            runner.run()
        logger.info("stopped")
        return 0
    finally:
        for server in servers:
            server.shutdown()
        api_client.close()


def build_runner(settings: Settings, namespace: str, api_client: Any, metrics: OperatorMetrics,
                 stop: threading.Event) -> Runner:
    kube = KubeClient(api_client, on_error=metrics.api_error, stop=stop)
    elector = None
    if settings.leader_election:
        elector = LeaderElector(kube, namespace, settings.lease_name, settings.identity,
                                settings.lease_duration_seconds, on_change=lambda leading: metrics.leader.set(leading))
    memory = MemoryReader(kube, settings.memory_source, PodMetricsReader(settings.pod_metrics_port))
    events = EventRecorder(kube, settings.identity)
    reconciler = Reconciler(kube, settings, namespace, memory, events, metrics,
                            may_evict=(lambda: elector.is_leader) if elector else (lambda: True))
    health = Health(stall_after_seconds=max(120.0, 4 * settings.interval_seconds),
                    ready_within_seconds=max(60.0, 3 * settings.interval_seconds))
    return Runner(reconciler, metrics, health, interval_seconds=settings.interval_seconds,
                  elector=elector, stop=stop)


def summarize(report: ReconcileReport, settings: Settings) -> str:
    """What ``--once`` prints: one block per owner."""
    lines = [f"namespace {report.namespace}, memory from {report.memory_source}"
             + (" (dry run: nothing evicted)" if settings.dry_run else "")]
    if not report.groups:
        lines.append(f"  no pods match {settings.selector!r}")
    for group in report.groups:
        head = f"{group.owner}: {len(group.pods)} pod(s)"
        if group.policy is None:
            lines.append(f"{head}; skipped: {group.skipped}")
            continue
        lines.append(f"{head}, budget {group.policy.budget_bytes} bytes, "
                     f"at most {group.policy.max_concurrent} at once")
        decision = group.decision
        over = ", ".join(w.name for w in decision.over_budget) if decision else ""
        lines.append(f"  over budget: {over or 'none'}")
        for label, names in (("evicted", group.evicted), ("would evict", group.would_evict),
                             ("eviction refused", group.refused)):
            if names:
                lines.append(f"  {label}: {', '.join(names)}")
        for name, why in (decision.deferred.items() if decision else ()):
            lines.append(f"  waiting: {name} ({why})")
    return "\n".join(lines)


def _start_servers(settings: Settings, metrics: OperatorMetrics, health: Health) -> list[Any]:
    servers: list[Any] = []
    try:
        if settings.metrics_port:
            server, _ = start_http_server(settings.metrics_port, settings.listen_address, registry=metrics.registry)
            servers.append(server)
        if settings.health_port:
            health_server = HealthServer(health, settings.listen_address, settings.health_port).start()
            servers.append(health_server.server)
    except OSError:
        for server in servers:
            server.shutdown()
        raise
    return servers


class _stop_on_signals:
    """SIGTERM (kubelet) and SIGINT (Ctrl-C) set ``stop``; the loop then releases the Lease."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: Any) -> None:
        logger.info("%s: stopping", signal.Signals(signum).name)
        self.stop.set()

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
