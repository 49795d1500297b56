"""charts/hermit installed, upgraded and uninstalled with a real helm on a real control plane.

Pods run on kwok's emulated nodes (no containers: the images need not exist), so what
is proven here is the API side: every object is accepted by the real API server (its
validation, the restricted Pod Security admission, the real CRDs), and the real
controllers act on them — the Deployment and StatefulSet controllers make pods, the
scheduler places them, the PersistentVolume binder binds Redis' claim, the disruption
controller computes the PodDisruptionBudget's status, the Job controller runs the seed
hook to completion.
"""

from __future__ import annotations

import json

import pytest
import yaml
from cluster import CHART, Cluster, conditions, storage_for_redis, wait_for

NAMESPACE = "hermit-chart"
RELEASE = "crawl"
CRAWLER = f"{RELEASE}-hermit-crawler"
REDIS = f"{RELEASE}-hermit-redis"
OPERATOR = f"{RELEASE}-hermit-operator"
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
}
SEEDS = "http://demo.example/\nhttp://demo.example/a\n"


def crawler_pods(cluster: Cluster, namespace: str = NAMESPACE, release: str = RELEASE) -> list[dict]:
    return cluster.get("pods", "-l", f"app.kubernetes.io/instance={release},app.kubernetes.io/component=crawler",
                       namespace=namespace)["items"]


@pytest.fixture(scope="module")
def installed(cluster: Cluster, tmp_path_factory) -> dict:
    """The chart with its default values in a namespace enforcing the restricted Pod
    Security Standard, with seeds (so the seed hook Job runs)."""
    cluster.namespace(NAMESPACE, RESTRICTED)
    storage_for_redis(cluster, "hermit-chart-redis", NAMESPACE, f"data-{REDIS}-0")
    seeds = tmp_path_factory.mktemp("seeds") / "urls.txt"
    seeds.write_text(SEEDS)
    result = cluster.helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--wait", "--timeout", "10m",
                          "--set-file", f"seeds={seeds}")
    return {"stdout": result.stdout, "stderr": result.stderr}


def test_install_with_default_values_waits_until_everything_is_ready(cluster: Cluster, installed: dict) -> None:
    crawler = cluster.get("deployment", CRAWLER, namespace=NAMESPACE)
    assert conditions(crawler).get("Available") == "True"
    assert crawler["status"]["readyReplicas"] == crawler["spec"]["replicas"] == 2
    operator = cluster.get("deployment", OPERATOR, namespace=NAMESPACE)
    assert conditions(operator).get("Available") == "True"
    assert operator["status"]["readyReplicas"] == 1
    redis = cluster.get("statefulset", REDIS, namespace=NAMESPACE)
    assert redis["status"]["readyReplicas"] == 1
    # The claim from the StatefulSet's volumeClaimTemplates, bound by the real binder.
    claims = cluster.get("pvc", namespace=NAMESPACE)["items"]
    assert [(c["spec"]["volumeName"], c["status"]["phase"]) for c in claims] == [("hermit-chart-redis", "Bound")]
    # Every pod placed on a kwok node by the scheduler and Running.
    pods = cluster.get("pods", namespace=NAMESPACE)["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"]
    assert len(running) == 4, [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
    nodes = {n["metadata"]["name"] for n in cluster.get("nodes")["items"]
             if n["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake"}
    assert nodes and all(p["spec"].get("nodeName") in nodes for p in running)


def test_the_restricted_pod_security_standard_admits_every_pod(cluster: Cluster, installed: dict) -> None:
    namespace = cluster.get("namespace", NAMESPACE)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    # Nothing refused: no FailedCreate from the ReplicaSet, StatefulSet or Job controllers...
    events = cluster.get("events", namespace=NAMESPACE)["items"]
    refused = [e["message"] for e in events if e.get("reason") == "FailedCreate"]
    assert refused == []
    # ...and the admission plugin, asked about the pods now there, finds nothing to warn about.
    # (A dry run of the label on a namespace holding a privileged pod lists it: see the next test.)
    check = cluster.run_kubectl("label", "--dry-run=server", "--overwrite", "namespace", NAMESPACE,
                                "pod-security.kubernetes.io/enforce=restricted",
                                "pod-security.kubernetes.io/enforce-version=v1.37")
    assert check.returncode == 0, check.stderr
    assert "violate" not in check.stderr, check.stderr
    assert "Warning" not in check.stderr, check.stderr


def test_the_restricted_namespace_does_refuse_a_pod_that_breaks_the_standard(cluster: Cluster, installed: dict) -> None:
    """The checks above can fail: the same admission refuses a root pod in that namespace,
    and the same dry run of the label warns about one already running elsewhere."""
    result = cluster.run_kubectl("run", "root-pod", "-n", NAMESPACE, "--image=example.invalid/root:1",
                                 "--restart=Never", "--dry-run=server")
    assert result.returncode != 0
    assert "violates PodSecurity" in result.stderr
    other = cluster.namespace("hermit-psa-probe")
    cluster.kubectl("run", "root-pod", "-n", other, "--image=example.invalid/root:1", "--restart=Never")
    check = cluster.run_kubectl("label", "--dry-run=server", "--overwrite", "namespace", other,
                                "pod-security.kubernetes.io/enforce=restricted",
                                "pod-security.kubernetes.io/enforce-version=v1.37")
    assert check.returncode == 0 and "violate" in check.stderr, check.stderr
    cluster.kubectl("delete", "namespace", other, "--wait=false")


def test_the_seed_hook_job_completed(cluster: Cluster, installed: dict) -> None:
    job = cluster.get("job", f"{RELEASE}-hermit-seed", namespace=NAMESPACE)
    assert job["status"].get("succeeded") == 1
    assert conditions(job).get("Complete") == "True"
    seeds = cluster.get("configmap", "-l", "app.kubernetes.io/component=seed", namespace=NAMESPACE)["items"]
    assert [s["data"]["seeds.txt"] for s in seeds] == [SEEDS]


def test_the_pod_disruption_budget_has_a_real_status(cluster: Cluster, installed: dict) -> None:
    pdb = wait_for("the disruption controller's status", lambda: (
        (p := cluster.get("pdb", CRAWLER, namespace=NAMESPACE))["status"].get("observedGeneration") and p))
    status = pdb["status"]
    assert status["expectedPods"] == 2
    assert status["currentHealthy"] == 2
    assert status["desiredHealthy"] == 1
    assert status["disruptionsAllowed"] == 1
    assert conditions(pdb).get("DisruptionAllowed") == "True"


def test_the_operator_runs_as_its_service_account_with_the_chart_role(cluster: Cluster, installed: dict) -> None:
    pod = cluster.get("pods", "-l", "app.kubernetes.io/component=operator", namespace=NAMESPACE)["items"][0]
    assert pod["spec"]["serviceAccountName"] == OPERATOR
    binding = cluster.get("rolebinding", OPERATOR, namespace=NAMESPACE)
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": OPERATOR}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": OPERATOR, "namespace": NAMESPACE}]


def test_upgrade_with_changed_values_rolls_the_workers_and_keeps_the_redis_password(
        cluster: Cluster, installed: dict) -> None:
    before = {p["metadata"]["name"] for p in crawler_pods(cluster)}
    hash_before = {p["metadata"]["labels"]["pod-template-hash"] for p in crawler_pods(cluster)}
    secret = cluster.get("secret", REDIS, namespace=NAMESPACE)
    generation = cluster.get("deployment", CRAWLER, namespace=NAMESPACE)["metadata"]["generation"]
    cluster.helm("upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values", "--wait",
                 "--timeout", "10m", "--set", "crawler.leaseTimeoutSeconds=45", "--set", "networkPolicy.enabled=true")
    crawler = cluster.get("deployment", CRAWLER, namespace=NAMESPACE)
    assert crawler["metadata"]["generation"] > generation
    args = crawler["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "HERMIT_LEASE_TIMEOUT_SECONDS=45" in args, args

    # The Deployment controller replaced every worker by a pod of the new template.
    def rolled():
        pods = crawler_pods(cluster)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        names = {p["metadata"]["name"] for p in live}
        hashes = {p["metadata"]["labels"]["pod-template-hash"] for p in live}
        return (len(live) == 2 and not names & before and not hashes & hash_before
                and all(conditions(p).get("Ready") == "True" for p in live))
    wait_for("the workers to roll", rolled)
    replica_sets = cluster.get("replicasets", "-l", "app.kubernetes.io/component=crawler", namespace=NAMESPACE)
    assert sorted(rs["status"]["replicas"] for rs in replica_sets["items"]) == [0, 2]
    # lookup() found the installed Secret: the generated password survived the upgrade.
    assert cluster.get("secret", REDIS, namespace=NAMESPACE)["data"] == secret["data"]
    # The NetworkPolicies were accepted by the API server as rendered.
    rendered = {d["metadata"]["name"]: d for d in yaml.safe_load_all(
        cluster.helm("get", "manifest", RELEASE, "--namespace", NAMESPACE).stdout)
        if d and d["kind"] == "NetworkPolicy"}
    stored = {p["metadata"]["name"]: p for p in cluster.get("networkpolicies", namespace=NAMESPACE)["items"]}
    assert set(stored) == set(rendered) == {CRAWLER, REDIS, OPERATOR, f"{RELEASE}-hermit-jobs"}
    for name, policy in rendered.items():
        assert stored[name]["spec"]["policyTypes"] == policy["spec"]["policyTypes"], name
        assert stored[name]["spec"]["podSelector"] == policy["spec"]["podSelector"], name
        assert len(stored[name]["spec"].get("ingress", [])) == len(policy["spec"].get("ingress") or []), name
        assert len(stored[name]["spec"].get("egress", [])) == len(policy["spec"].get("egress") or []), name


def test_uninstall_leaves_only_what_the_docs_say_it_keeps(cluster: Cluster, installed: dict) -> None:
    cluster.helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", "--timeout", "5m")
    kinds = cluster.kubectl("api-resources", "--verbs=list", "--namespaced", "-o", "name").split()
    kinds = [k for k in kinds if k not in ("events", "events.events.k8s.io")]

    def leftovers():
        found = json.loads(cluster.kubectl("get", ",".join(kinds), "-n", NAMESPACE, "-o", "json"))["items"]
        return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in found
                      # what Kubernetes itself puts in every namespace
                      if (o["kind"], o["metadata"]["name"]) not in {("ServiceAccount", "default"),
                                                                    ("ConfigMap", "kube-root-ca.crt")}
                      and not o["metadata"].get("deletionTimestamp"))
    # docs/kubernetes.md, "Uninstalling": the Redis password Secret (resource-policy keep), the
    # StatefulSet's claim (Kubernetes never deletes those with the StatefulSet), and the seed
    # hook Job with its Pod (Helm does not delete hooks on uninstall).
    job = f"{RELEASE}-hermit-seed"
    seed_pods = [p["metadata"]["name"]
                 for p in cluster.get("pods", "-l", f"job-name={job}", namespace=NAMESPACE)["items"]]
    assert len(seed_pods) == 1
    expected = [f"PersistentVolumeClaim/data-{REDIS}-0", f"Secret/{REDIS}", f"Job/{job}", f"Pod/{seed_pods[0]}"]
    try:
        wait_for("only the kept objects to remain", lambda: leftovers() == sorted(expected), timeout=120)
    except AssertionError:
        pass
    assert leftovers() == sorted(expected)
