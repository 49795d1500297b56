"""hermit-operator against the real control plane, as the chart's ServiceAccount.

The operator (the Python package from the project's .venv) runs on the host with a
kubeconfig holding a token from the TokenRequest API for the ServiceAccount the chart
made, so every call it makes goes through the real authenticator and the RBAC
authorizer with the chart's Role. Its settings are the env of the operator Deployment
the chart installed (only the intervals are shortened). Pod memory is kwok's emulated
usage (the pod annotation ``kwok.x-k8s.io/usage-memory``), scraped by a real
metrics-server and served as metrics.k8s.io by the API server's aggregator.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster import CHART, Cluster, wait_for
from operator_runner import USAGE, Operator

NAMESPACE = "hermit-operator"
RELEASE = "ops"
CRAWLER = f"{RELEASE}-hermit-crawler"
OPERATOR = f"{RELEASE}-hermit-operator"


@pytest.fixture(scope="module")
def release(cluster: Cluster) -> dict:
    cluster.namespace(NAMESPACE)
    cluster.helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--wait", "--timeout", "10m",
                 "--set", "redis.persistence.enabled=false")
    deployment = cluster.get("deployment", OPERATOR, namespace=NAMESPACE)
    return deployment


@pytest.fixture(scope="module")
def sa_kubeconfig(cluster: Cluster, release: dict, tmp_path_factory) -> Path:
    return cluster.token_kubeconfig(tmp_path_factory.mktemp("sa") / "kubeconfig", NAMESPACE, OPERATOR)


@pytest.fixture
def operators(release: dict, sa_kubeconfig: Path, tmp_path) -> Iterator:
    started: list[Operator] = []

    def start(identity: str, **overrides: str) -> Operator:
        operator = Operator(release, sa_kubeconfig, identity, tmp_path, **overrides)
        started.append(operator)
        return operator
    yield start
    for operator in started:
        operator.stop(signal.SIGKILL)


def can_i(cluster: Cluster, kubeconfig: Path, *args: str) -> bool:
    result = cluster.run_kubectl("auth", "can-i", *args, kubeconfig=kubeconfig)
    assert result.returncode in (0, 1), result.stderr
    return result.returncode == 0


def test_the_service_account_may_do_what_the_role_grants(cluster: Cluster, sa_kubeconfig: Path) -> None:
    whoami = cluster.kubectl("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}", kubeconfig=sa_kubeconfig)
    assert whoami == f"system:serviceaccount:{NAMESPACE}:{OPERATOR}"
    assert can_i(cluster, sa_kubeconfig, "create", "pods", "--subresource=eviction", "-n", NAMESPACE)
    for verb, resource in [("list", "pods"), ("create", "events"),
                           ("create", "events.events.k8s.io"), ("get", "leases.coordination.k8s.io"),
                           ("update", "leases.coordination.k8s.io"), ("list", "pods.metrics.k8s.io"),
                           ("list", "deployments.apps"), ("list", "replicasets.apps")]:
        assert can_i(cluster, sa_kubeconfig, verb, resource, "-n", NAMESPACE), (verb, resource)


def test_the_service_account_is_refused_what_the_role_does_not_grant(cluster: Cluster, sa_kubeconfig: Path) -> None:
    for args in [("delete", "pods"), ("patch", "pods"), ("create", "pods"), ("get", "secrets"), ("list", "secrets"),
                 ("update", "deployments.apps"), ("delete", "leases.coordination.k8s.io"),
                 ("list", "pods", "-n", "default"), ("list", "pods", "--all-namespaces"), ("list", "nodes"),
                 ("create", "namespaces"), ("list", "clusterroles.rbac.authorization.k8s.io")]:
        namespaced = ["-n", NAMESPACE] if "-n" not in args and "--all-namespaces" not in args else []
        assert not can_i(cluster, sa_kubeconfig, *args, *namespaced), args
    # Not just the authorizer's opinion: the call itself is refused.
    pod = cluster.get("pods", "-l", "app.kubernetes.io/component=crawler", namespace=NAMESPACE)["items"][0]
    refused = cluster.run_kubectl("delete", "pod", pod["metadata"]["name"], "-n", NAMESPACE, "--wait=false",
                                  kubeconfig=sa_kubeconfig)
    assert refused.returncode != 0 and "Forbidden" in refused.stderr, refused.stderr
    refused = cluster.run_kubectl("get", "secrets", "-n", NAMESPACE, kubeconfig=sa_kubeconfig)
    assert refused.returncode != 0 and "Forbidden" in refused.stderr, refused.stderr


def pod_memory(cluster: Cluster, name: str) -> int | None:
    result = cluster.run_kubectl("top", "pod", name, "-n", NAMESPACE, "--no-headers")
    if result.returncode:
        return None
    value = result.stdout.split()[2]  # NAME CPU MEMORY
    return int(value[:-2]) if value.endswith("Mi") else None


def live_crawlers(cluster: Cluster) -> list[dict]:
    pods = cluster.get("pods", "-l", "app.kubernetes.io/component=crawler", namespace=NAMESPACE)["items"]
    return [p for p in pods if not p["metadata"].get("deletionTimestamp")]


def events(cluster: Cluster, reason: str) -> list[dict]:
    return [e for e in cluster.get("events", "--field-selector", f"reason={reason}", namespace=NAMESPACE)["items"]]


def set_max_unavailable(cluster: Cluster, value: int) -> None:
    cluster.kubectl("patch", "pdb", CRAWLER, "-n", NAMESPACE, "--type=merge",
                    "-p", f'{{"spec": {{"maxUnavailable": {value}}}}}')
    wait_for(f"the PDB to allow {value} disruption(s)", lambda: (
        (s := cluster.get("pdb", CRAWLER, namespace=NAMESPACE)["status"]).get("disruptionsAllowed") == value
        and s.get("observedGeneration") == cluster.get("pdb", CRAWLER, namespace=NAMESPACE)["metadata"]["generation"]))


def test_the_operator_evicts_the_pod_over_budget_once_the_pdb_allows_it(cluster: Cluster, operators) -> None:
    pods = live_crawlers(cluster)
    assert len(pods) == 2
    target = pods[0]["metadata"]
    name, uid = target["name"], target["uid"]
    other = pods[1]["metadata"]["name"]
    cluster.kubectl("annotate", "pod", name, "-n", NAMESPACE, f"{USAGE}=900Mi", "--overwrite")
    cluster.kubectl("annotate", "pod", other, "-n", NAMESPACE, f"{USAGE}=100Mi", "--overwrite")
    # metrics-server scrapes kwok's emulated usage: kubectl top shows it.
    wait_for("metrics.k8s.io to report the usage", lambda: pod_memory(cluster, name) == 900
             and pod_memory(cluster, other) == 100)

    # A PodDisruptionBudget that allows nothing: the API server refuses the eviction (429).
    set_max_unavailable(cluster, 0)
    operator = operators("hermit-operator-test")
    wait_for("a refused eviction", lambda: operator.metric('hermit_operator_evictions_total{result="refused"}'),
             timeout=180)
    blocked = wait_for("the RecycleBlocked Event", lambda: [
        e for e in events(cluster, "RecycleBlocked") if e["involvedObject"]["name"] == name])
    assert blocked[0]["type"] == "Warning"
    assert {p["metadata"]["uid"] for p in live_crawlers(cluster)} >= {uid}
    assert operator.metric('hermit_operator_evictions_total{result="evicted"}') == 0
    assert operator.metric("hermit_operator_memory_source_fallback") == 0  # metrics.k8s.io was read

    # The budget relaxed: a later pass evicts; the pod terminates; the ReplicaSet replaces it.
    set_max_unavailable(cluster, 1)
    wait_for("the eviction", lambda: operator.metric('hermit_operator_evictions_total{result="evicted"}') == 1,
             timeout=180)

    def replaced():
        live = live_crawlers(cluster)
        return (len(live) == 2 and uid not in {p["metadata"]["uid"] for p in live}
                and all(any(c["type"] == "Ready" and c["status"] == "True" for c in p["status"].get("conditions", []))
                        for p in live))
    wait_for("the ReplicaSet to replace the evicted pod", replaced)
    assert other in {p["metadata"]["name"] for p in live_crawlers(cluster)}  # the pod under budget stayed
    recycled = events(cluster, "OverMemoryBudget")
    assert {(e["involvedObject"]["kind"], e["involvedObject"]["name"]) for e in recycled} == {
        ("Pod", name), ("Deployment", CRAWLER)}
    listed = cluster.kubectl("get", "events", "-n", NAMESPACE, "--field-selector", "reason=OverMemoryBudget")
    assert f"pod/{name}" in listed and f"deployment/{CRAWLER}" in listed
    assert operator.metric('hermit_operator_recycles_total{reason="memory_budget"}') == 1
    assert operator.metric('hermit_operator_api_errors_total{verb="list"}') == 0

    assert operator.stop() == 0
    lease = cluster.get("lease", OPERATOR, namespace=NAMESPACE)
    assert not lease["spec"].get("holderIdentity")  # released at shutdown


def test_two_operators_elect_one_leader_and_the_other_takes_over(cluster: Cluster, operators) -> None:
    first, second = operators("operator-a"), operators("operator-b")

    def leader():
        holder = cluster.get("lease", OPERATOR, namespace=NAMESPACE)["spec"].get("holderIdentity")
        gauges = {op.identity: op.metric("hermit_operator_leader") for op in (first, second)}
        running = [op for op in (first, second) if op.process.poll() is None]
        if holder in gauges and gauges[holder] == 1 and all(
                gauges[op.identity] == (1 if op.identity == holder else 0) for op in running):
            return holder
        return None
    holder = wait_for("one leader", leader, timeout=120)
    transitions = cluster.get("lease", OPERATOR, namespace=NAMESPACE)["spec"].get("leaseTransitions", 0)
    leading, standing = (first, second) if holder == first.identity else (second, first)
    leading.stop(signal.SIGKILL)  # no release: the standby must wait for the Lease to expire
    assert wait_for("the standby to take over", lambda: leader() == standing.identity, timeout=120)
    lease = cluster.get("lease", OPERATOR, namespace=NAMESPACE)
    assert lease["spec"]["leaseTransitions"] > transitions
    assert standing.stop() == 0
