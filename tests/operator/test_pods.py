"""Reading pods' JSON: state, age, metrics port, owners; odd fields never raise."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hermit_operator.pods import NO_OWNER, Owner, Pod, parse_pod, parse_time, resolve_owners

from kubefake import deployment, pod

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def test_a_running_ready_crawler_pod():
    _, rs = deployment("crawler")
    obj = pod(rs, ip="10.244.3.9", metrics_port=9410)
    obj["metadata"]["uid"] = "u-1"
    parsed = parse_pod(obj)
    assert parsed.name == obj["metadata"]["name"] and parsed.uid == "u-1" and parsed.ip == "10.244.3.9"
    assert parsed.running_ready and not parsed.terminating and not parsed.draining
    assert parsed.controller == Owner("ReplicaSet", rs["metadata"]["name"])
    assert parsed.metrics_port == 9410
    assert parsed.labels["pod-template-hash"] == rs["metadata"]["labels"]["pod-template-hash"]


@pytest.mark.parametrize("change", [
    lambda p: p["metadata"].__setitem__("deletionTimestamp", "2026-11-23T12:00:00Z"),
    lambda p: p["status"].__setitem__("phase", "Pending"),
    lambda p: p["status"].__setitem__("phase", "Succeeded"),
    lambda p: p["status"]["conditions"][2].__setitem__("status", "False"),
    lambda p: p["status"].pop("conditions"),
    lambda p: p.pop("status"),
])
def test_terminating_or_not_serving_counts_as_draining(change):
    obj = pod(None, name="a")
    change(obj)
    assert parse_pod(obj).draining


def test_age_from_start_time_then_creation():
    obj = pod(None, name="a")
    obj["status"]["startTime"] = "2026-11-23T11:00:00Z"
    obj["metadata"]["creationTimestamp"] = "2026-11-23T10:00:00Z"
    assert parse_pod(obj).age_seconds(NOW) == 3600
    obj["status"]["startTime"] = "not a time"
    assert parse_pod(obj).age_seconds(NOW) == 7200
    obj["metadata"]["creationTimestamp"] = 17
    assert parse_pod(obj).age_seconds(NOW) == 0  # unknown age: too young to recycle


def test_metrics_port_from_a_named_port_else_the_env():
    obj = pod(None, name="a", metrics_port=None)
    assert parse_pod(obj).metrics_port is None
    obj["spec"]["containers"][0]["env"].append({"name": "HERMIT_METRICS_PORT", "value": "9555"})
    assert parse_pod(obj).metrics_port == 9555
    obj["spec"]["containers"].insert(0, {"name": "sidecar", "ports": [{"name": "metrics", "containerPort": 8080}]})
    assert parse_pod(obj).metrics_port == 8080
    obj["spec"]["containers"][0]["ports"][0]["containerPort"] = "http"
    assert parse_pod(obj).metrics_port == 9555


@pytest.mark.parametrize("obj", [None, 3, "pod", {}, {"metadata": None}, {"metadata": {"name": ""}},
                                 {"metadata": {"name": 5}}])
def test_no_name_no_pod(obj):
    assert parse_pod(obj) is None


@pytest.mark.parametrize("mangle", [
    lambda p: p.__setitem__("spec", "x"),
    lambda p: p["spec"].__setitem__("containers", [None, {"ports": "9410",
                                                           "env": [None, {"name": "HERMIT_METRICS_PORT"}]}]),
    lambda p: p["metadata"].__setitem__("ownerReferences", [{"kind": "ReplicaSet"}, "x", None]),
    lambda p: p["metadata"].__setitem__("labels", ["a"]),
    lambda p: p["status"].__setitem__("podIP", 10),
])
def test_odd_fields_are_unknown_not_errors(mangle):
    obj = pod(None, name="a")
    mangle(obj)
    assert parse_pod(obj).name == "a"


def test_owners_through_replicasets_and_from_the_template_hash():
    _, rs = deployment("news")
    _, rs_hidden = deployment("shop")
    pods = [parse_pod(p) for p in (pod(rs, name="n1"), pod(rs_hidden, name="s1"), pod(None, name="bare"))]
    sts = pod(None, name="db-0")
    sts["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db",
                                           "uid": "x", "controller": True}]
    pods.append(parse_pod(sts))
    owners = resolve_owners(pods, [rs])  # shop's ReplicaSet not readable
    assert owners == {"n1": Owner("Deployment", "news"), "s1": Owner("Deployment", "shop"),
                      "bare": NO_OWNER, "db-0": Owner("StatefulSet", "db")}


def test_a_replicaset_of_no_deployment_is_its_own_group():
    _, rs = deployment("crawler")
    rs["metadata"]["ownerReferences"] = []
    obj = pod(rs, name="p")
    obj["metadata"]["labels"].pop("pod-template-hash")
    assert resolve_owners([parse_pod(obj)], [rs]) == {"p": Owner("ReplicaSet", rs["metadata"]["name"])}


@pytest.mark.parametrize("text,expected", [
    ("2026-11-23T12:00:00Z", NOW),
    ("2026-11-23T12:00:00.5Z", NOW + timedelta(microseconds=500000)),
    ("2026-11-23T13:00:00+01:00", NOW),
    ("2026-11-23T12:00:00", NOW),
    ("", None), ("never", None), (None, None), (1700000000, None),
])
def test_parse_time(text, expected):
    assert parse_time(text) == expected


def test_pod_defaults_are_safe():
    assert Pod("x").draining and Pod("x").age_seconds(NOW) == 0
