"""Reconcile passes against the mock API: who is evicted, in what order, how many, and
what is recorded."""

from __future__ import annotations

from datetime import datetime, timedelta

from hermit_operator.reconcile import REASON_BAD_ANNOTATION, REASON_DRY_RUN, REASON_RECYCLED, REASON_REFUSED

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


def seed_deployment(cluster, name="crawler", annotations=None, labels=None):
    dep, rs = deployment(name, annotations=annotations, labels=labels)
    cluster.put(DEPLOYMENTS, dep)
    cluster.put(REPLICASETS, rs)
    return dep, rs


def seed_pod(cluster, rs, memory_mib=None, **kwargs):
    obj = cluster.put(PODS, pod(rs, **kwargs))
    if memory_mib is not None:
        cluster.put(POD_METRICS, pod_metrics(obj, int(memory_mib * MiB)))
    return obj["metadata"]["name"]


def test_oldest_over_budget_first_at_most_n_never_a_terminating_one(cluster, operator):
    _, rs = seed_deployment(cluster)
    oldest = seed_pod(cluster, rs, 600, age_seconds=9000)
    middle = seed_pod(cluster, rs, 900, age_seconds=5000)
    newer = seed_pod(cluster, rs, 700, age_seconds=4000)
    seed_pod(cluster, rs, 100, age_seconds=9500)  # under budget
    young = seed_pod(cluster, rs, 5000, age_seconds=20)  # over budget but too young
    dying = seed_pod(cluster, rs, 2000, age_seconds=9999, terminating=True)
    seed_pod(cluster, rs, 800, age_seconds=8000, ready=False)  # not Ready: counts as draining
    # Not ours: other labels, or another namespace.
    stranger = cluster.put(PODS, pod(None, name="redis-0", age_seconds=99999))
    stranger["metadata"]["labels"] = {"app.kubernetes.io/component": "redis"}
    cluster.put(PODS, stranger)
    cluster.put(POD_METRICS, pod_metrics(stranger, 9000 * MiB))
    elsewhere = pod(rs, name="crawler-other-ns", age_seconds=99999)
    elsewhere["metadata"]["namespace"] = "other"
    cluster.put(PODS, elsewhere)

    op = operator(max_concurrent=3, prefer="oldest")
    report = op.reconcile()

    # Three slots, two taken by the terminating and the unready pod: one recycle, the oldest.
    assert cluster.evicted() == [oldest]
    assert report.evicted == [oldest]
    assert dying not in cluster.eviction_attempts()
    group = report.groups[0]
    assert str(group.owner) == "Deployment/crawler"
    assert {w.name for w in group.decision.over_budget} == {oldest, middle, newer, young}
    assert group.decision.deferred[young] == "too young"
    assert op.sample("hermit_operator_pods_seen") == 7
    assert op.sample("hermit_operator_pods_over_budget") == 4
    assert op.sample("hermit_operator_pods_draining") == 2
    assert op.sample("hermit_operator_recycles_total", reason="memory_budget") == 1

    # The evicted pod is terminating now: all three slots are taken, nothing more.
    assert op.reconcile().evicted == []
    assert cluster.evicted() == [oldest]

    # It is gone, and so is the old terminating one: two slots free up.
    cluster.delete(PODS, oldest)
    cluster.delete(PODS, dying)
    assert op.reconcile().evicted == [middle, newer]
    assert cluster.evicted() == [oldest, middle, newer]


def test_most_over_budget_first_when_configured(cluster, operator):
    _, rs = seed_deployment(cluster)
    seed_pod(cluster, rs, 600, age_seconds=9000)
    biggest = seed_pod(cluster, rs, 1200, age_seconds=100)
    seed_pod(cluster, rs, 10)
    op = operator(max_concurrent=1, prefer="most_over_budget")
    assert op.reconcile().evicted == [biggest]


def test_events_on_the_pod_and_its_deployment(cluster, operator):
    dep, rs = seed_deployment(cluster)
    victim = seed_pod(cluster, rs, 612)
    seed_pod(cluster, rs, 10)
    op = operator(identity="hermit-operator-7d9f-abcde")
    op.reconcile()

    events = cluster.events()
    assert len(events) == 2
    on_pod = next(e for e in events if e["regarding"]["kind"] == "Pod")
    on_deployment = next(e for e in events if e["regarding"]["kind"] == "Deployment")
    victim_obj = cluster.get(PODS, victim)
    assert on_pod["regarding"] == {"apiVersion": "v1", "kind": "Pod", "name": victim, "namespace": NAMESPACE,
                                   "uid": victim_obj["metadata"]["uid"]}
    assert on_pod["related"]["name"] == "crawler" and on_pod["related"]["uid"] == dep["metadata"]["uid"]
    assert on_deployment["regarding"]["name"] == "crawler" and on_deployment["related"]["name"] == victim
    for event in events:
        assert event["reason"] == REASON_RECYCLED and event["type"] == "Normal" and event["action"] == "Recycle"
        assert event["reportingController"] == "hermit.dev/operator"
        assert event["reportingInstance"] == "hermit-operator-7d9f-abcde"
        assert "612.0Mi" in event["note"] and "500.0Mi" in event["note"]  # memory and budget
        assert datetime.fromisoformat(event["eventTime"].replace("Z", "+00:00")).utcoffset() == timedelta(0)
    assert victim in on_deployment["note"]


def test_deployment_annotations_override_budget_and_concurrency(cluster, operator):
    # Two crawls in one namespace, one operator.
    labels_a = {**RELEASE_LABELS, "app.kubernetes.io/instance": "news"}
    labels_b = {**RELEASE_LABELS, "app.kubernetes.io/instance": "shop"}
    _, rs_a = seed_deployment(cluster, "news", labels=labels_a, annotations={
        "hermit.dev/memory-budget": "400Mi", "hermit.dev/max-concurrent-recycles": "2"})
    _, rs_b = seed_deployment(cluster, "shop", labels=labels_b)
    a = [seed_pod(cluster, rs_a, 450, age_seconds=1000 + i) for i in range(3)]
    b = [seed_pod(cluster, rs_b, 450, age_seconds=1000 + i) for i in range(3)]
    b_big = seed_pod(cluster, rs_b, 600)

    op = operator(selector="app.kubernetes.io/component=crawler", budget_bytes=500 * MiB, max_concurrent=1)
    report = op.reconcile()

    by_owner = {str(g.owner): g for g in report.groups}
    assert by_owner["Deployment/news"].policy.budget_bytes == 400 * MiB
    assert by_owner["Deployment/news"].policy.max_concurrent == 2
    # news: 450Mi is over its 400Mi budget; two at once, oldest first.
    assert by_owner["Deployment/news"].evicted == [a[2], a[1]]
    # shop: 450Mi is under the default 500Mi; only the 600Mi pod, one at a time.
    assert by_owner["Deployment/shop"].evicted == [b_big]
    assert not set(b) & set(cluster.evicted())


def test_invalid_annotation_leaves_the_deployment_alone_and_says_so_once(cluster, operator):
    _, rs = seed_deployment(cluster, annotations={"hermit.dev/memory-budget": "lots"})
    seed_pod(cluster, rs, 5000)
    seed_pod(cluster, rs, 5000)
    op = operator()
    report = op.reconcile()
    op.reconcile()
    assert cluster.eviction_attempts() == []
    assert "hermit.dev/memory-budget='lots'" in report.groups[0].skipped
    warnings = [e for e in cluster.events() if e["reason"] == REASON_BAD_ANNOTATION]
    assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    assert warnings[0]["regarding"]["kind"] == "Deployment"


def test_without_a_default_budget_only_annotated_deployments_are_recycled(cluster, operator):
    labels_b = {**RELEASE_LABELS, "app.kubernetes.io/instance": "shop"}
    _, rs_a = seed_deployment(cluster, "news", annotations={"hermit.dev/memory-budget": "1Gi"})
    _, rs_b = seed_deployment(cluster, "shop", labels=labels_b)
    big_a = seed_pod(cluster, rs_a, 1100)
    seed_pod(cluster, rs_a, 10)
    seed_pod(cluster, rs_b, 5000)
    seed_pod(cluster, rs_b, 10)
    op = operator(selector="app.kubernetes.io/component=crawler", budget_bytes=None)
    report = op.reconcile()
    assert cluster.evicted() == [big_a]
    shop = next(g for g in report.groups if g.owner.name == "shop")
    assert shop.policy is None and "no memory budget" in shop.skipped


def test_pdb_refusal_is_respected_and_retried_later(cluster, operator):
    _, rs = seed_deployment(cluster)
    cluster.put(PDBS, pdb("crawler", RELEASE_LABELS, max_unavailable=1))
    first = seed_pod(cluster, rs, 900, age_seconds=9000)
    second = seed_pod(cluster, rs, 800, age_seconds=8000)
    seed_pod(cluster, rs, 10, age_seconds=7000)
    # The policy alone would recycle both at once; the budget allows one disruption.
    op = operator(max_concurrent=3, min_serving=0)

    report = op.reconcile()
    assert report.evicted == [first] and report.refused == [second]
    assert cluster.eviction_attempts() == [first, second]
    refusals = [e for e in cluster.events() if e["reason"] == REASON_REFUSED]
    assert len(refusals) == 1 and refusals[0]["regarding"]["name"] == second
    assert refusals[0]["type"] == "Warning" and "disruption budget crawler" in refusals[0]["note"]
    assert op.sample("hermit_operator_evictions_total", result="refused") == 1

    # While the first is still terminating the budget keeps refusing; no new Event.
    assert op.reconcile().refused == [second]
    assert len([e for e in cluster.events() if e["reason"] == REASON_REFUSED]) == 1

    # The first pod is gone and its replacement is Ready: the second goes now.
    cluster.delete(PODS, first)
    seed_pod(cluster, rs, 50, age_seconds=5)
    assert op.reconcile().evicted == [second]
    assert cluster.evicted() == [first, second]


def test_dry_run_evicts_nothing_and_reports_each_pod_once(cluster, operator):
    _, rs = seed_deployment(cluster)
    big = seed_pod(cluster, rs, 900, age_seconds=9000)
    seed_pod(cluster, rs, 800, age_seconds=100)
    seed_pod(cluster, rs, 10)
    op = operator(dry_run=True, max_concurrent=1)
    first = op.reconcile()
    second = op.reconcile()
    assert cluster.eviction_attempts() == []
    assert first.would_evict == [big] and second.would_evict == [big]
    dry = [e for e in cluster.events() if e["reason"] == REASON_DRY_RUN]
    assert {e["regarding"]["kind"] for e in dry} == {"Pod", "Deployment"} and len(dry) == 2
    assert op.sample("hermit_operator_evictions_total", result="dry_run") == 1
    assert op.sample("hermit_operator_recycles_total", reason="memory_budget") == 0


def test_cooldown_spaces_recycles_within_a_deployment(cluster, operator):
    _, rs = seed_deployment(cluster)
    a = seed_pod(cluster, rs, 900, age_seconds=9000)
    b = seed_pod(cluster, rs, 900, age_seconds=8000)
    seed_pod(cluster, rs, 10)
    now = [1000.0]
    op = operator(max_concurrent=3, cooldown_seconds=60, monotonic=lambda: now[0])
    assert op.reconcile().evicted == [a]
    now[0] += 30
    cluster.delete(PODS, a)
    report = op.reconcile()
    assert report.evicted == [] and report.groups[0].decision.deferred == {b: "cooling down after the last recycle"}
    now[0] += 31
    assert op.reconcile().evicted == [b]


def test_pods_without_metrics_or_with_odd_fields_never_crash_it(cluster, operator):
    _, rs = seed_deployment(cluster)
    victim = seed_pod(cluster, rs, 900)
    seed_pod(cluster, rs, None)  # no PodMetrics yet
    seed_pod(cluster, rs, 10)
    odd = pod(rs, name="crawler-odd-metrics")
    cluster.put(PODS, odd)
    bad_metrics = pod_metrics(odd, MiB)
    bad_metrics["containers"][0]["usage"]["memory"] = "a lot"
    cluster.put(POD_METRICS, bad_metrics)
    # Pods of no Deployment with broken or missing fields, in groups of their own.
    for name, mangle in [
        ("no-status", lambda p: p.pop("status")),
        ("odd-owner", lambda p: p["metadata"].__setitem__("ownerReferences", "ReplicaSet/x")),
        ("odd-times", lambda p: p["status"].__setitem__("startTime", "yesterday")),
        ("no-spec", lambda p: p.__setitem__("spec", None)),
        ("odd-conditions", lambda p: p["status"].__setitem__("conditions", [None, 3, "Ready"])),
        ("odd-labels", lambda p: p["metadata"].__setitem__("labels", {**RELEASE_LABELS, "x": None})),
    ]:
        obj = pod(None, name=name)
        mangle(obj)
        cluster.put(PODS, obj)
        metrics = pod_metrics(obj, 9000 * MiB)
        metrics["containers"] = [{"name": "crawler", "usage": None}] if name == "odd-times" else metrics["containers"]
        cluster.put(POD_METRICS, metrics)
    broken_metrics = {"kind": "PodMetrics", "metadata": {"name": "no-spec", "namespace": NAMESPACE,
                                                         "labels": RELEASE_LABELS}, "containers": "?"}
    cluster.put(POD_METRICS, broken_metrics)

    op = operator(max_concurrent=1)
    report = op.reconcile()
    assert cluster.evicted() == [victim]
    crawler = next(g for g in report.groups if str(g.owner) == "Deployment/crawler")
    assert crawler.evicted == [victim]
    assert op.sample("hermit_operator_pods_without_memory") >= 2


def test_a_pod_without_a_controller_is_never_recycled(cluster, operator):
    _, rs = seed_deployment(cluster)
    seed_pod(cluster, rs, 10)
    bare = cluster.put(PODS, pod(None, name="crawler-debug", age_seconds=99999))
    cluster.put(POD_METRICS, pod_metrics(bare, 9000 * MiB))
    cluster.put(PODS, pod(None, name="crawler-debug-2", age_seconds=99999))
    report = operator(min_serving=0).reconcile()
    assert cluster.eviction_attempts() == []
    [ownerless] = [g for g in report.groups if not g.owner.name]
    assert ownerless.policy is None and "nothing would replace them" in ownerless.skipped


def test_without_access_to_replicasets_pods_are_grouped_by_their_template_hash(cluster, operator):
    # The chart's Role grants deployments but not replicasets: owners come from the names.
    _, rs = seed_deployment(cluster, annotations={"hermit.dev/memory-budget": "300Mi"})
    big = seed_pod(cluster, rs, 400)
    seed_pod(cluster, rs, 10)
    cluster.fail("GET", r"/replicasets$", [403] * 2, message='replicasets.apps is forbidden: User '
                 '"system:serviceaccount:crawl:crawl-hermit-operator" cannot list resource "replicasets"')
    op = operator(budget_bytes=500 * MiB)
    for _ in range(2):
        report = op.reconcile()
        assert str(report.groups[0].owner) == "Deployment/crawler"
        assert report.groups[0].policy.budget_bytes == 300 * MiB  # the Deployment's annotation applies
    assert cluster.evicted() == [big]
