"""The loop: schedules, failures that don't stop it, shutdown that releases the Lease."""

from __future__ import annotations

import threading

from kubefake import LEASES, seed_crawler


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def reconciles(op, result="ok"):
    return op.sample("hermit_operator_reconciles_total", result=result)


def test_elections_and_reconciles_on_their_own_schedules(cluster, operator):
    seed_crawler(cluster)
    clock = Clock()
    op = operator(leader_election=True, lease_duration_seconds=15, interval_seconds=12, monotonic=clock)
    assert op.runner.turn() == 5  # next election round in a third of the Lease
    assert reconciles(op) == 1 and len(cluster.evicted()) == 1
    gets = lambda: len([r for r in cluster.requests() if r.url.path.endswith("/leases/hermit-operator")])  # noqa: E731
    before = gets()
    clock.now += 5
    assert op.runner.turn() == 5 and reconciles(op) == 1 and gets() > before  # renewed only
    clock.now += 5
    assert op.runner.turn() == 2  # the reconcile is due before the next round
    clock.now += 2
    op.runner.turn()
    assert reconciles(op) == 2


def test_a_failed_reconcile_is_counted_and_the_next_one_works(cluster, operator):
    victim = seed_crawler(cluster)[0]
    op = operator()
    cluster.stop_server()
    assert op.runner.reconcile() is None
    assert reconciles(op, "error") == 1 and op.runner.health.ready()[0] is False
    assert op.sample("hermit_operator_api_errors_total", verb="list") == 5
    cluster.start_server()
    assert op.runner.reconcile().evicted == [victim]
    assert reconciles(op) == 1 and op.runner.health.ready()[0] is True
    assert op.sample("hermit_operator_last_reconcile_timestamp_seconds") > 0
    assert op.sample("hermit_operator_reconcile_duration_seconds_count") == 2


def test_an_unexpected_error_is_logged_not_fatal(cluster, operator, caplog):
    seed_crawler(cluster)
    op = operator()

    class Broken:
        def read(self, *args):
            raise RuntimeError("a bug")

    working, op.reconciler.memory = op.reconciler.memory, Broken()
    assert op.runner.reconcile() is None
    assert "reconcile failed unexpectedly" in caplog.text and "a bug" in caplog.text
    op.reconciler.memory = working
    assert op.runner.reconcile() is not None
    assert reconciles(op, "error") == 1 and reconciles(op) == 1


def test_runs_until_stopped_then_releases_the_lease(cluster, operator):
    victim = seed_crawler(cluster)[0]
    op = operator(leader_election=True, interval_seconds=0.05, lease_duration_seconds=3)
    thread = threading.Thread(target=op.runner.run)
    thread.start()
    try:
        reconciled = threading.Event()
        for _ in range(400):  # a guard against hanging, not a measurement
            if reconciles(op) >= 3:
                reconciled.set()
                break
            op.runner.stop.wait(0.05)
        assert reconciled.is_set()
        assert cluster.get(LEASES, "hermit-operator")["spec"]["holderIdentity"] == op.settings.identity
    finally:
        op.runner.stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert cluster.evicted() == [victim]  # once: afterwards it is terminating
    assert not cluster.get(LEASES, "hermit-operator")["spec"].get("holderIdentity")


def test_a_standby_only_takes_part_in_elections(cluster, operator):
    seed_crawler(cluster)
    holder = operator(leader_election=True, identity="a")
    assert holder.elector.try_acquire_or_renew()
    standby = operator(leader_election=True, identity="b")
    standby.runner.turn()
    assert reconciles(standby) == 0 and standby.runner.last_report is None
    assert standby.runner.health.ready()[0] is True  # it reached the API
