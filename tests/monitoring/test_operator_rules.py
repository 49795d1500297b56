"""A real Prometheus scrapes a real ``hermit-operator`` process (against the mock API server):
every query of the operator's dashboard returns data, every metric its alert rules use
exists, every rule evaluates, and only the rule for the problem the cluster really has
becomes pending."""

from __future__ import annotations

import re
import signal
import sys
import time
from pathlib import Path

from hermit.redis_server import free_loopback_port

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from kubefake import PODS, SELECTOR, FakeCluster, MiB, pod, seed_crawler  # noqa: E402
from operator_process import start_operator  # noqa: E402

_OPERATOR_METRIC = re.compile(r"\bhermit_operator_[a-z0-9_]+")


def test_prometheus_scrapes_the_operator_and_its_rules_and_dashboard_find_their_series(
    tmp_path, prometheus, rule_files, dashboards,
):
    rules = rule_files["operator"]
    cluster = FakeCluster().start()
    # One pod over the budget (recycled), two under it, and one metrics.k8s.io knows nothing about.
    victim = seed_crawler(cluster, (900, 10, 10))[0]
    cluster.put(PODS, pod(None, name="crawler-unmeasured"))
    metrics_port, health_port = free_loopback_port(), free_loopback_port()
    operator = start_operator(
        cluster.kubeconfig(tmp_path / "kubeconfig"), HERMIT_OPERATOR_MEMORY_BUDGET_BYTES=str(500 * MiB),
        HERMIT_OPERATOR_SELECTOR=SELECTOR, HERMIT_OPERATOR_INTERVAL_SECONDS="0.5",
        HERMIT_OPERATOR_LISTEN_ADDRESS="127.0.0.1", HERMIT_OPERATOR_METRICS_PORT=str(metrics_port),
        HERMIT_OPERATOR_HEALTH_PORT=str(health_port), POD_NAME="hermit-operator-0")
    try:
        server = prometheus([f"127.0.0.1:{metrics_port}"], job="hermit-operator", rules=rules, namespaces=["team-a"])
        server.wait_for('sum(hermit_operator_recycles_total{job="hermit-operator"})', 1)
        server.wait_for("hermit_operator_leader", 1)
        server.wait_for("hermit_operator_pods_without_memory", 1)
        # rate() and increase() need two samples of each series: a few more scrapes.
        server.wait_for('count_over_time(up{job="hermit-operator"}[1m])', 3, at_least=True)

        def filled(expr: str, namespace: str) -> str:
            return expr.replace("$namespace", namespace).replace("$instance", ".*").replace("$__rate_interval", "1m")

        no_data = [(title, expr) for title, expr in dashboards["operator"].queries
                   if not server.query(filled(expr, "team-a"))]
        assert no_data == [], f"operator dashboard queries without data: {no_data}"
        # Another namespace's choice shows nothing of this operator.
        elsewhere = [title for title, expr in dashboards["operator"].queries if server.query(filled(expr, "team-b"))]
        assert elsewhere == []

        missing = server.metrics_missing(rules.alerts, _OPERATOR_METRIC)
        assert missing == set(), f"operator alert rules on metrics the operator doesn't export: {missing}"

        deadline = time.monotonic() + 30
        while True:
            loaded = [rule for group in server.api("rules")["data"]["groups"] for rule in group["rules"]]
            states = {rule["name"]: rule["state"] for rule in loaded}
            if (loaded and all(rule.get("lastEvaluation", "").startswith("20") for rule in loaded)
                    and states.get("HermitOperatorPodsWithoutMemory") == "pending"):
                break
            assert time.monotonic() < deadline, loaded
            time.sleep(0.5)
        assert sorted(states) == sorted(rule["alert"] for rule in rules.alerts)
        assert [rule["name"] for rule in loaded if rule["health"] != "ok"] == []
        # The unmeasured pod is the one problem: its alert waits out its `for`; the rest are quiet.
        assert {name: state for name, state in states.items() if state != "inactive"} == {
            "HermitOperatorPodsWithoutMemory": "pending"}
        assert cluster.evicted() == [victim]
    finally:
        operator.send_signal(signal.SIGTERM)
        output, _ = operator.communicate(timeout=30)
        cluster.stop()
    assert operator.returncode == 0, output
