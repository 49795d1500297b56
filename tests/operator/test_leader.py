"""Leader election through a real Lease on the mock API: taken, renewed, released,
taken over after expiry, never held by two."""

from __future__ import annotations

from hermit_operator.kube import KubeClient
from hermit_operator.leader import LeaderElector

from kubefake import DEPLOYMENTS, LEASES, NAMESPACE, POD_METRICS, PODS, REPLICASETS, MiB, deployment, pod, pod_metrics


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(kube, identity, clock=None, duration=15):
    return LeaderElector(kube, NAMESPACE, "hermit-operator", identity, duration, monotonic=clock or Clock())


def lease(cluster):
    return cluster.get(LEASES, "hermit-operator")


def test_first_takes_the_lease_second_waits_then_takes_it_when_released(cluster, kube):
    a, b = elector(kube, "operator-a"), elector(kube, "operator-b")
    assert a.try_acquire_or_renew() and a.is_leader
    spec = lease(cluster)["spec"]
    assert spec["holderIdentity"] == "operator-a" and spec["leaseDurationSeconds"] == 15
    assert spec["leaseTransitions"] == 0 and spec["acquireTime"] and spec["renewTime"]

    assert not b.try_acquire_or_renew() and not b.is_leader
    assert a.try_acquire_or_renew()  # renewing
    assert lease(cluster)["spec"]["holderIdentity"] == "operator-a"

    a.release()
    assert not a.is_leader
    released = lease(cluster)["spec"]
    assert "holderIdentity" not in released or not released["holderIdentity"]
    assert released["leaseDurationSeconds"] == 1

    assert b.try_acquire_or_renew() and b.is_leader  # at once: no waiting for expiry
    spec = lease(cluster)["spec"]
    assert spec["holderIdentity"] == "operator-b" and spec["leaseTransitions"] == 1
    holders = [v["spec"].get("holderIdentity") for v in cluster.history(LEASES, "hermit-operator") if v]
    assert holders == ["operator-a", "operator-a", None, "operator-b"]


def test_a_lease_not_renewed_for_its_duration_is_taken_over(cluster, kube):
    clock_a, clock_b = Clock(), Clock()
    a, b = elector(kube, "operator-a", clock_a), elector(kube, "operator-b", clock_b)
    assert a.try_acquire_or_renew()
    assert not b.try_acquire_or_renew()
    clock_b.now += 14  # b has seen the same record for 14 s: still held
    assert not b.try_acquire_or_renew()
    clock_b.now += 2  # 16 s unchanged: a is gone
    assert b.try_acquire_or_renew() and b.is_leader
    assert lease(cluster)["spec"]["holderIdentity"] == "operator-b"
    assert lease(cluster)["spec"]["leaseTransitions"] == 1

    # a comes back from a long pause: it stopped acting at its renew deadline, and
    # finds b holding the Lease.
    clock_a.now += 11
    assert not a.is_leader
    assert not a.try_acquire_or_renew()
    assert lease(cluster)["spec"]["holderIdentity"] == "operator-b"


def test_renewing_keeps_the_lease_from_expiring(cluster, kube):
    clock_a, clock_b = Clock(), Clock()
    a, b = elector(kube, "operator-a", clock_a), elector(kube, "operator-b", clock_b)
    a.try_acquire_or_renew()
    for _ in range(5):
        clock_a.now += 5
        clock_b.now += 5
        assert a.try_acquire_or_renew()
        assert not b.try_acquire_or_renew()  # each renew is a change b sees


def test_two_candidates_racing_for_an_expired_lease_one_wins(cluster, kube):
    clock = Clock()
    old = elector(kube, "operator-old", Clock())
    old.try_acquire_or_renew()
    a = elector(kube, "operator-a", clock)

    armed = []

    class Interleaving(KubeClient):
        """Once armed: between b's read of the Lease and its write, a takes the Lease."""

        def get_lease(self, namespace, name):
            read = super().get_lease(namespace, name)
            if armed:
                assert a.try_acquire_or_renew()
            return read

    b = elector(Interleaving(kube.api_client, backoff_seconds=0.01), "operator-b", clock)
    assert not a.try_acquire_or_renew() and not b.try_acquire_or_renew()  # both see it held
    clock.now += 16  # expired for both
    armed.append(True)
    assert not b.try_acquire_or_renew()  # its PUT carries a stale resourceVersion: 409
    assert a.is_leader and not b.is_leader
    assert lease(cluster)["spec"]["holderIdentity"] == "operator-a"
    assert any(r.method == "PUT" for r in cluster.requests())


def test_api_errors_make_the_leader_step_down_at_its_renew_deadline(cluster, kube):
    clock = Clock()
    a = elector(kube, "operator-a", clock)
    assert a.try_acquire_or_renew()
    cluster.fail("GET", r"/leases/hermit-operator$", [500] * 20)
    clock.now += 5
    assert a.try_acquire_or_renew()  # renew failed, but the last one is recent: still leading
    assert "500" in a.last_error
    clock.now += 6  # 11 s since the last renew, past 2/3 of 15 s
    assert not a.try_acquire_or_renew() and not a.is_leader


def test_a_standby_operator_evicts_nothing_while_the_first_holds_the_lease(cluster, operator):
    dep, rs = deployment("crawler")
    cluster.put(DEPLOYMENTS, dep)
    cluster.put(REPLICASETS, rs)
    pods = [cluster.put(PODS, pod(rs, age_seconds=1000 * (i + 1))) for i in range(4)]
    for obj in pods:
        cluster.put(POD_METRICS, pod_metrics(obj, 900 * MiB))

    clock = Clock()
    first = operator(leader_election=True, identity="operator-a", max_concurrent=1)
    second = operator(leader_election=True, identity="operator-b", max_concurrent=1, monotonic=clock)
    first.runner.turn()
    second.runner.turn()
    assert first.runner.last_report is not None and second.runner.last_report is None
    assert len(cluster.evicted()) == 1
    assert first.sample("hermit_operator_leader") == 1 and second.sample("hermit_operator_leader") == 0

    # The evicted pod is gone: there is room for the next recycle. The standby's
    # reconciler decides it if asked, and still may not evict.
    cluster.delete(PODS, cluster.evicted()[0])
    assert not second.reconciler.may_evict()
    report = second.runner.reconcile()
    assert report.groups[0].decision.recycle and report.evicted == []
    assert len(cluster.evicted()) == 1 and cluster.eviction_attempts() == cluster.evicted()

    first.runner.close()  # shutdown: the Lease is released
    clock.now += 15  # the standby's next election round and reconcile are due
    second.runner.turn()
    assert second.sample("hermit_operator_leader") == 1
    assert len(cluster.evicted()) == 2


def test_a_lease_with_odd_fields_is_taken_over_not_a_crash(cluster, kube):
    cluster.put(LEASES, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                         "metadata": {"name": "hermit-operator"},
                         "spec": {"leaseDurationSeconds": "soon", "renewTime": "never", "leaseTransitions": None}})
    a = elector(kube, "operator-a")
    assert a.try_acquire_or_renew()  # no holder: free to take
    spec = lease(cluster)["spec"]
    assert spec["holderIdentity"] == "operator-a" and spec["leaseTransitions"] == 1
