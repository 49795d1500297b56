"""Each ci/ values file of the chart installed for real, with the Prometheus Operator's and
KEDA's own CRDs installed first (their manifests from those projects' Go modules, pinned
in tools/kubernetes/crds/go.mod).

Only the CRDs are installed, not those operators: what is proven is that the API server,
validating against the real CRD schemas, accepts every ServiceMonitor, PodMonitor,
PrometheusRule and ScaledObject the chart renders. No Prometheus scrapes and no KEDA
scales here.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml
from cluster import CHART, TOOLS, Cluster, conditions, module_dir, storage_for_redis, wait_for

CI = CHART / "ci"
CRD_FILES = {
    "github.com/prometheus-operator/prometheus-operator": [
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
    ],
    "github.com/kedacore/keda/v2": [
        "config/crd/bases/keda.sh_scaledobjects.yaml",
        "config/crd/bases/keda.sh_triggerauthentications.yaml",
    ],
}

# values file -> (the kinds it must create, objects to create before installing)
CASES = {
    "monitoring-values.yaml": ({"ServiceMonitor", "PrometheusRule", "ConfigMap"}, ["diagnostics-secret"]),
    "keda-values.yaml": ({"ScaledObject", "ServiceMonitor"}, []),
    "hpa-values.yaml": ({"HorizontalPodAutoscaler", "PodMonitor"}, []),
    "networkpolicy-values.yaml": ({"NetworkPolicy", "Job"}, []),
    "external-redis-values.yaml": ({"Deployment", "Job"}, ["books-redis-secret"]),
    "minimal-values.yaml": ({"Deployment", "StatefulSet"}, []),
    "podman-values.yaml": ({"Deployment", "Secret"}, []),
}
# default-values.yaml is the chart's defaults: test_chart_install.py installs those.


@pytest.fixture(scope="module")
def crds(cluster: Cluster) -> list[str]:
    names = []
    for module, files in CRD_FILES.items():
        root = module_dir("crds", module)
        for file in files:
            crd = yaml.safe_load((root / file).read_text())
            cluster.apply(crd)
            names.append(crd["metadata"]["name"])
    for name in names:
        wait_for(f"CRD {name} to be established",
                 lambda: conditions(cluster.get("crd", name)).get("Established") == "True")
    return names


def test_the_crds_come_from_the_pinned_modules(cluster: Cluster, crds: list[str]) -> None:
    assert set(crds) == {"servicemonitors.monitoring.coreos.com", "podmonitors.monitoring.coreos.com",
                         "prometheusrules.monitoring.coreos.com", "scaledobjects.keda.sh",
                         "triggerauthentications.keda.sh"}
    pinned = (TOOLS / "crds" / "go.mod").read_text()
    assert "github.com/prometheus-operator/prometheus-operator v0." in pinned
    assert "github.com/kedacore/keda/v2 v2." in pinned


def test_the_crd_schemas_are_enforced(cluster: Cluster, crds: list[str]) -> None:
    """The acceptance below means something: the same CRDs refuse a malformed object."""
    bad = {"apiVersion": "monitoring.coreos.com/v1", "kind": "ServiceMonitor",
           "metadata": {"name": "bad", "namespace": "default"},
           "spec": {"endpoints": "not-a-list", "selector": {}}}
    result = subprocess.run([cluster.binary("kubectl"), "apply", "--dry-run=server", "-f", "-"], env=cluster.env,
                            input=yaml.safe_dump(bad), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "endpoints" in result.stderr, result.stderr
    bad = {"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
           "metadata": {"name": "bad", "namespace": "default"}, "spec": {"triggers": []}}
    result = subprocess.run([cluster.binary("kubectl"), "apply", "--dry-run=server", "-f", "-"], env=cluster.env,
                            input=yaml.safe_dump(bad), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "scaleTargetRef" in result.stderr, result.stderr


def prerequisites(cluster: Cluster, namespace: str, needs: list[str]) -> None:
    for need in needs:
        if need == "diagnostics-secret":
            cluster.kubectl("create", "secret", "generic", "hermit-diagnostics", "-n", namespace,
                            "--from-literal=token=not-a-real-token")
        elif need == "books-redis-secret":
            cluster.kubectl("create", "secret", "generic", "books-redis", "-n", namespace,
                            "--from-literal=url=redis://:password@redis.example:6379/0")


@pytest.mark.parametrize("values", sorted(CASES))
def test_ci_values_install_for_real(cluster: Cluster, crds: list[str], values: str) -> None:
    kinds, needs = CASES[values]
    namespace = cluster.namespace("ci-" + values.removesuffix("-values.yaml"))
    prerequisites(cluster, namespace, needs)
    rendered = [d for d in yaml.safe_load_all(cluster.helm(
        "template", "ci", str(CHART), "-n", namespace, "-f", str(CI / values)).stdout) if d]
    for claim_owner in [d for d in rendered if d["kind"] == "StatefulSet" and d["spec"].get("volumeClaimTemplates")]:
        storage_for_redis(cluster, f"{namespace}-redis", namespace, f"data-{claim_owner['metadata']['name']}-0")
    cluster.helm("install", "ci", str(CHART), "-n", namespace, "-f", str(CI / values), "--wait", "--timeout", "10m")
    manifest = [d for d in yaml.safe_load_all(cluster.helm("get", "manifest", "ci", "-n", namespace).stdout) if d]
    assert {d["kind"] for d in manifest} >= kinds - {"Job"}
    # Every object helm rendered is stored as rendered (kind, name), including the CRDs' kinds.
    for doc in manifest:
        stored = cluster.get(f"{doc['kind'].lower()}.{doc['apiVersion'].split('/')[0]}"
                             if "/" in doc["apiVersion"] else doc["kind"].lower(),
                             doc["metadata"]["name"], namespace=namespace)
        assert stored["metadata"]["uid"]
    if "Job" in kinds:  # the seed hook ran to completion under --wait
        jobs = cluster.get("jobs", namespace=namespace)["items"]
        assert [j["status"].get("succeeded") for j in jobs] == [1]
    deployments = cluster.get("deployments", namespace=namespace)["items"]
    assert deployments and all(conditions(d).get("Available") == "True" for d in deployments)
    if values == "hpa-values.yaml":
        hpa = cluster.get("hpa", namespace=namespace)["items"][0]
        assert hpa["spec"]["minReplicas"] == 2
        crawler = cluster.get("deployment", "ci-hermit-crawler", namespace=namespace)
        assert "replicas" in crawler["spec"]  # the Deployment controller defaulted it; the chart left it out
        assert wait_for("the HPA controller's status",
                        lambda: cluster.get("hpa", namespace=namespace)["items"][0]["status"].get("currentReplicas"))
    cluster.helm("uninstall", "ci", "-n", namespace, "--wait", "--timeout", "5m")
