"""Events: events.k8s.io/v1 first, core/v1 when it is not served; never fatal."""

from __future__ import annotations

from datetime import datetime, timezone

from hermit_operator.events import CONTROLLER, EventRecorder, ObjectRef

from kubefake import CORE_EVENTS, EVENTS, NAMESPACE

POD = ObjectRef("v1", "Pod", "crawler-abc", NAMESPACE, "uid-1")
DEPLOYMENT = ObjectRef("apps/v1", "Deployment", "crawler", NAMESPACE, "uid-2")
FIXED = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=timezone.utc)


def recorder(kube):
    return EventRecorder(kube, "operator-a", clock=lambda: FIXED)


def test_an_events_k8s_io_event(cluster, kube):
    assert recorder(kube).record(POD, reason="OverMemoryBudget", action="Recycle", note="612Mi over 500Mi",
                                 related=DEPLOYMENT)
    [event] = cluster.all(EVENTS)
    assert event["regarding"] == {"apiVersion": "v1", "kind": "Pod", "name": "crawler-abc",
                                  "namespace": NAMESPACE, "uid": "uid-1"}
    assert event["related"]["kind"] == "Deployment"
    assert event["reportingController"] == CONTROLLER and event["reportingInstance"] == "operator-a"
    assert event["metadata"]["name"].startswith("crawler-abc.")
    assert datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")) == FIXED


def test_names_are_unique(cluster, kube):
    events = recorder(kube)
    for _ in range(5):
        assert events.record(POD, reason="R", action="A", note="n")
    assert len({e["metadata"]["name"] for e in cluster.all(EVENTS)}) == 5


def test_long_notes_are_cut_to_what_the_api_takes(cluster, kube):
    recorder(kube).record(POD, reason="R", action="A", note="x" * 5000)
    [event] = cluster.all(EVENTS)
    assert len(event["note"]) == 1024


def test_core_v1_events_when_events_k8s_io_is_not_served(cluster, kube):
    cluster.fail("POST", r"/apis/events.k8s.io/v1/namespaces/crawl/events$", [404])
    events = recorder(kube)
    assert events.record(POD, reason="OverMemoryBudget", action="Recycle", note="first", type="Warning")
    assert events.record(POD, reason="OverMemoryBudget", action="Recycle", note="second")
    assert cluster.all(EVENTS) == []
    first, second = sorted(cluster.all(CORE_EVENTS), key=lambda e: e["message"])
    assert first["involvedObject"]["name"] == "crawler-abc" and first["type"] == "Warning"
    assert first["source"]["component"] == CONTROLLER and first["count"] == 1
    assert datetime.fromisoformat(first["firstTimestamp"].replace("Z", "+00:00")) == FIXED.replace(microsecond=0)
    assert second["message"] == "second"


def test_a_failing_events_api_does_not_raise(cluster, kube, metrics):
    cluster.fail("POST", r"/events$", [500] * 5)
    assert not recorder(kube).record(POD, reason="R", action="A", note="n")
    assert metrics.registry.get_sample_value("hermit_operator_api_errors_total", {"verb": "create"}) == 5


def test_an_event_stored_by_an_attempt_whose_answer_was_lost_counts_as_recorded(cluster, kube):
    cluster.fail("POST", r"/events$", [504], applied=True, message="Timeout: request did not complete")
    assert recorder(kube).record(POD, reason="R", action="A", note="n")
    assert len(cluster.all(EVENTS)) == 1
