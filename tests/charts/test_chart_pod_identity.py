"""Who the pods run as: the security-context and ServiceAccount values (secure defaults,
OpenShift's assigned UIDs, workload identity, ServiceAccounts the user brings)."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from chartlib import KUBERNETES_VERSIONS, NAMESPACE, RELEASE, pod_spec, workloads

SEEDS = "seeds=https://example.com/"
CRAWLER_SA = f"{RELEASE}-hermit-crawler"
OPERATOR_SA = f"{RELEASE}-hermit-operator"

#: What every pod ran with before these values existed, and must still run with by default.
IMAGE_USER_POD = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001,
                  "seccompProfile": {"type": "RuntimeDefault"}}
REDIS_POD = {"runAsNonRoot": True, "runAsUser": 10002, "runAsGroup": 10002, "fsGroup": 10002,
             "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER = {"allowPrivilegeEscalation": False, "privileged": False, "readOnlyRootFilesystem": True,
             "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
#: OpenShift's restricted SCC assigns the UID, GID and fsGroup from the namespace's range.
OPENSHIFT = {"runAsUser": None, "runAsGroup": None, "fsGroup": None}


def by_component(docs: list[dict]) -> dict[str, dict]:
    """component label -> its one workload (crawler, redis, operator, seed, test)."""
    found = {}
    for doc in workloads(docs):
        component = doc["metadata"]["labels"]["app.kubernetes.io/component"]
        assert component not in found, component
        found[component] = doc
    return found


def values_file(tmp_path, values: dict):
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_default_security_contexts_are_the_secure_ones(render):
    pods = by_component(render(set=[SEEDS]).docs)
    assert sorted(pods) == ["crawler", "operator", "redis", "seed", "test"]
    for component, doc in pods.items():
        spec = pod_spec(doc)
        assert spec["securityContext"] == (REDIS_POD if component == "redis" else IMAGE_USER_POD), component
        for container in spec["containers"]:
            assert container["securityContext"] == CONTAINER, component


def test_set_security_contexts_reach_their_pods_only(render, tmp_path):
    values = values_file(tmp_path, {
        "crawler": {"podSecurityContext": {"runAsUser": 20001, "supplementalGroups": [5000]},
                    "containerSecurityContext": {"seLinuxOptions": {"level": "s0:c1,c2"}}},
        "redis": {"podSecurityContext": {"runAsUser": 20002}},
        "operator": {"podSecurityContext": {"runAsUser": 20003},
                     "containerSecurityContext": {"readOnlyRootFilesystem": False}},
    })
    pods = by_component(render(values, set=[SEEDS]).docs)
    for component, uid in {"crawler": 20001, "seed": 20001, "test": 20001, "redis": 20002, "operator": 20003}.items():
        spec = pod_spec(pods[component])
        # The keys set replace or join the defaults; the others stay.
        assert spec["securityContext"]["runAsUser"] == uid, component
        assert spec["securityContext"]["runAsNonRoot"] is True, component
        assert ("supplementalGroups" in spec["securityContext"]) is (component in ("crawler", "seed", "test")), component
        container = spec["containers"][0]["securityContext"]
        assert ("seLinuxOptions" in container) is (component in ("crawler", "seed", "test")), component
        assert container["readOnlyRootFilesystem"] is (component != "operator"), component
        assert container["capabilities"] == {"drop": ["ALL"]}, component


def test_openshift_assigned_uids_render_valid_manifests(render, venv_tool, tmp_path):
    """runAsUser, runAsGroup and fsGroup set to null on every component leave them out,
    and what remains is still valid and non-root."""
    values = values_file(tmp_path, {component: {"podSecurityContext": OPENSHIFT}
                                    for component in ("crawler", "redis", "operator")})
    result = render(values, set=[SEEDS])
    pods = by_component(result.docs)
    assert len(pods) == 5
    for component, doc in pods.items():
        spec = pod_spec(doc)
        assert spec["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}, component
        assert spec["containers"][0]["securityContext"] == CONTAINER, component
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(result.stdout)
    for version in KUBERNETES_VERSIONS:
        done = subprocess.run([venv_tool("kubernetes-validate"), "--strict", "--quiet", "-k", version, str(manifest)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr


def test_a_null_context_leaves_the_security_context_out(render, tmp_path):
    values = values_file(tmp_path, {"crawler": {"podSecurityContext": None, "containerSecurityContext": None}})
    pods = by_component(render(values, set=[SEEDS]).docs)
    for component in ("crawler", "seed", "test"):
        spec = pod_spec(pods[component])
        assert "securityContext" not in spec and "securityContext" not in spec["containers"][0], component
    assert pod_spec(pods["operator"])["securityContext"] == IMAGE_USER_POD


def service_accounts(result) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in result.kind("ServiceAccount")}


def test_default_service_accounts(render):
    result = render(set=[SEEDS])
    accounts = service_accounts(result)
    assert sorted(accounts) == [CRAWLER_SA, OPERATOR_SA]
    assert all(account["automountServiceAccountToken"] is False for account in accounts.values())
    assert all("annotations" not in account["metadata"] for account in accounts.values())
    for component, doc in by_component(result.docs).items():
        assert pod_spec(doc)["serviceAccountName"] == (OPERATOR_SA if component == "operator" else CRAWLER_SA)
    assert result.one("RoleBinding")["subjects"] == [{"kind": "ServiceAccount", "name": OPERATOR_SA, "namespace": NAMESPACE}]


def test_service_accounts_carry_workload_identity_annotations(render):
    result = render(set=[
        "crawler.serviceAccount.annotations.iam\\.gke\\.io/gcp-service-account=crawler@project.iam.gserviceaccount.com",
        "operator.serviceAccount.annotations.eks\\.amazonaws\\.com/role-arn=arn:aws:iam::111122223333:role/hermit",
        "crawler.serviceAccount.name=crawler-identity",
        "commonAnnotations.team=crawling",
    ])
    accounts = service_accounts(result)
    assert accounts["crawler-identity"]["metadata"]["annotations"] == {
        "iam.gke.io/gcp-service-account": "crawler@project.iam.gserviceaccount.com", "team": "crawling"}
    assert accounts[OPERATOR_SA]["metadata"]["annotations"] == {
        "eks.amazonaws.com/role-arn": "arn:aws:iam::111122223333:role/hermit", "team": "crawling"}
    assert pod_spec(result.one("Deployment", "-crawler"))["serviceAccountName"] == "crawler-identity"


def test_service_accounts_the_user_brings(render):
    result = render(set=[SEEDS, "crawler.serviceAccount.create=false", "crawler.serviceAccount.name=crawlers",
                         "operator.serviceAccount.create=false", "operator.serviceAccount.name=recycler"])
    assert result.kind("ServiceAccount") == []
    pods = by_component(result.docs)
    for component, doc in pods.items():
        assert pod_spec(doc)["serviceAccountName"] == ("recycler" if component == "operator" else "crawlers"), component
    assert pod_spec(pods["operator"])["automountServiceAccountToken"] is True
    assert pod_spec(pods["crawler"])["automountServiceAccountToken"] is False
    # The chart's Role is bound to the operator's ServiceAccount the user named.
    assert result.one("RoleBinding")["subjects"] == [{"kind": "ServiceAccount", "name": "recycler", "namespace": NAMESPACE}]


@pytest.mark.parametrize("name, expected", [("", "default"), ("shared", "shared")])
def test_workers_without_a_created_service_account(render, name, expected):
    result = render(set=["crawler.serviceAccount.create=false", f"crawler.serviceAccount.name={name}"])
    assert sorted(service_accounts(result)) == [OPERATOR_SA]
    assert pod_spec(result.one("Deployment", "-crawler"))["serviceAccountName"] == expected
