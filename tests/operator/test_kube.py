"""The client wrapper: real requests to the mock API, retries, errors, evictions."""

from __future__ import annotations

import json

import pytest

from hermit_operator.kube import ApiError, EvictionResult, load_api_client

from kubefake import (
    DEPLOYMENTS,
    NAMESPACE,
    PDBS,
    POD_METRICS,
    PODS,
    RELEASE_LABELS,
    REPLICASETS,
    MiB,
    deployment,
    pdb,
    pod,
    pod_metrics,
)


def errors(metrics, verb):
    return metrics.registry.get_sample_value("hermit_operator_api_errors_total", {"verb": verb})


def test_kubeconfig_gives_the_server_the_token_and_the_context_namespace(cluster, kubeconfig):
    api_client, namespace = load_api_client(str(kubeconfig))
    assert namespace == NAMESPACE
    assert api_client.configuration.host == cluster.url
    assert api_client.configuration.retries == 0  # retries are the wrapper's, never urllib3's silent ones
    api_client.close()


def test_a_named_context_and_its_namespace(cluster, tmp_path):
    path = cluster.kubeconfig(tmp_path / "kubeconfig")
    config = json.loads(path.read_text())
    config["contexts"].append({"name": "staging", "context": {"cluster": "fake", "user": "operator",
                                                              "namespace": "staging-crawls"}})
    path.write_text(json.dumps(config))
    api_client, namespace = load_api_client(str(path), "staging")
    assert namespace == "staging-crawls"
    api_client.close()


def test_lists_are_plain_dicts_filtered_by_label_selector(cluster, kube):
    dep, rs = deployment("crawler")
    cluster.put(DEPLOYMENTS, dep)
    cluster.put(REPLICASETS, rs)
    ours = cluster.put(PODS, pod(rs))
    other = pod(None, name="redis-0")
    other["metadata"]["labels"] = {"app.kubernetes.io/component": "redis"}
    cluster.put(PODS, other)
    cluster.put(POD_METRICS, pod_metrics(ours, 300 * MiB))

    selector = "app.kubernetes.io/component=crawler"
    assert [p["metadata"]["name"] for p in kube.list_pods(NAMESPACE, selector)] == [ours["metadata"]["name"]]
    assert [r["metadata"]["name"] for r in kube.list_replicasets(NAMESPACE, selector)] == [rs["metadata"]["name"]]
    assert [d["metadata"]["name"] for d in kube.list_deployments(NAMESPACE)] == ["crawler"]
    [metrics_item] = kube.list_pod_metrics(NAMESPACE, selector)
    assert metrics_item["containers"][0]["usage"]["memory"] == f"{300 * 1024}Ki"
    sent = [r for r in cluster.requests() if r.method == "GET" and r.url.path.endswith("/pods")]
    assert {r.params.get("labelSelector") for r in sent} == {selector}
    assert all(r.headers.get("Authorization") == "Bearer test-token" for r in sent)
    assert all(r.params.get("limit") == "500" for r in sent)  # paginated


def test_429_and_5xx_are_retried_with_backoff(cluster, kube, metrics):
    cluster.put(PODS, pod(None, name="crawler-a"))
    cluster.fail("GET", r"/namespaces/crawl/pods$", [500, 429, 503, 504], retry_after=0)
    pods = kube.list_pods(NAMESPACE, "app.kubernetes.io/component=crawler")
    assert [p["metadata"]["name"] for p in pods] == ["crawler-a"]
    assert cluster.pending_faults() == 0
    assert errors(metrics, "list") == 4
    assert len([r for r in cluster.requests() if r.url.path.endswith("/pods")]) == 5


def test_gives_up_after_its_attempts(cluster, kube, metrics):
    cluster.fail("GET", r"/pods$", [500] * 6)
    with pytest.raises(ApiError) as raised:
        kube.list_pods(NAMESPACE, "a=b")
    assert raised.value.status == 500 and raised.value.verb == "list"
    assert errors(metrics, "list") == 5
    assert cluster.pending_faults() == 1  # five attempts, not six


def test_client_errors_are_not_retried(cluster, kube, metrics):
    cluster.fail("GET", r"/pods$", [403], message='pods is forbidden: User "system:serviceaccount:crawl:op" '
                                                   'cannot list resource "pods"')
    with pytest.raises(ApiError) as raised:
        kube.list_pods(NAMESPACE, "a=b")
    assert raised.value.status == 403 and "forbidden" in str(raised.value)
    assert errors(metrics, "list") == 1


def test_a_missing_lease_is_none(cluster, kube):
    assert kube.get_lease(NAMESPACE, "hermit-operator") is None


def test_survives_an_api_server_restart(cluster, kube, metrics):
    cluster.put(PODS, pod(None, name="crawler-a"))
    cluster.stop_server()
    with pytest.raises(ApiError) as raised:
        kube.list_pods(NAMESPACE, "app.kubernetes.io/component=crawler")
    assert raised.value.status is None  # no answer at all: connection refused
    assert errors(metrics, "list") == 5
    cluster.start_server()  # same port, same objects
    assert [p["metadata"]["name"] for p in kube.list_pods(NAMESPACE, "app.kubernetes.io/component=crawler")] \
        == ["crawler-a"]


def test_eviction_goes_through_the_eviction_api_with_the_pod_uid(cluster, kube):
    victim = cluster.put(PODS, pod(None, name="crawler-a"))
    assert kube.evict(NAMESPACE, "crawler-a", victim["metadata"]["uid"]).result is EvictionResult.EVICTED
    [request] = [r for r in cluster.requests() if r.subresource == "eviction"]
    assert request.method == "POST" and request.url.path == "/api/v1/namespaces/crawl/pods/crawler-a/eviction"
    body = json.loads(request.body)
    assert body["apiVersion"] == "policy/v1" and body["kind"] == "Eviction"
    assert body["deleteOptions"]["preconditions"]["uid"] == victim["metadata"]["uid"]
    assert cluster.get(PODS, "crawler-a")["metadata"]["deletionTimestamp"]


def test_eviction_refused_by_a_disruption_budget_is_not_retried_in_the_call(cluster, kube, metrics):
    cluster.put(PDBS, pdb("crawler", RELEASE_LABELS, max_unavailable=1))
    cluster.put(PODS, pod(None, name="crawler-a"))
    cluster.put(PODS, pod(None, name="crawler-b", ready=False))
    outcome = kube.evict(NAMESPACE, "crawler-a")
    assert outcome.result is EvictionResult.REFUSED
    assert "disruption budget" in outcome.message and "needs 1 healthy pods and has 1" in outcome.message
    assert cluster.eviction_attempts() == ["crawler-a"]
    assert errors(metrics, "evict") == 1


def test_eviction_of_a_pod_gone_or_replaced(cluster, kube):
    assert kube.evict(NAMESPACE, "crawler-gone").result is EvictionResult.GONE
    cluster.put(PODS, pod(None, name="crawler-0"))  # a StatefulSet-style name taken by a new pod
    assert kube.evict(NAMESPACE, "crawler-0", uid="uid-of-the-old-pod").result is EvictionResult.GONE
    assert not cluster.get(PODS, "crawler-0")["metadata"].get("deletionTimestamp")


def test_eviction_retries_server_errors(cluster, kube, metrics):
    cluster.put(PODS, pod(None, name="crawler-a"))
    cluster.fail("POST", r"/eviction$", [500, 503])
    assert kube.evict(NAMESPACE, "crawler-a").result is EvictionResult.EVICTED
    assert errors(metrics, "evict") == 2
    assert cluster.evicted() == ["crawler-a"]


def test_long_lists_come_in_pages(cluster, kube):
    for i in range(5):
        cluster.put(PODS, pod(None, name=f"crawler-{i}"))
    kube.page_size = 2
    names = [p["metadata"]["name"] for p in kube.list_pods(NAMESPACE, "app.kubernetes.io/component=crawler")]
    assert names == [f"crawler-{i}" for i in range(5)]
    pages = [r for r in cluster.requests() if r.url.path.endswith("/pods")]
    assert [r.params.get("continue") for r in pages] == [None, "2", "4"]


def test_an_expired_continue_token_starts_the_list_again(cluster, kube):
    for i in range(5):
        cluster.put(PODS, pod(None, name=f"crawler-{i}"))
    kube.page_size = 2
    cluster.expire_continue_tokens = 1
    names = [p["metadata"]["name"] for p in kube.list_pods(NAMESPACE, "app.kubernetes.io/component=crawler")]
    assert names == [f"crawler-{i}" for i in range(5)]  # each once
    pages = [r for r in cluster.requests() if r.url.path.endswith("/pods")]
    assert [r.params.get("continue") for r in pages] == [None, "2", None, "2", "4"]
