"""LocalRedisCluster against real valkey/redis servers: start, failover, live resharding, stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psutil
import pytest
import redis

from hermit.redis_server import RedisServerError
from hermit.testing.redis_cluster import SLOTS, LocalRedisCluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRedisCluster]:
    """One 3-master, 1-replica cluster for the tests that leave its topology as it was."""
    with LocalRedisCluster(masters=3, replicas=1) as started:
        yield started


def every_slot_served(cluster: LocalRedisCluster) -> bool:
    """Whether every running node says all 16384 slots are assigned and served."""
    infos = [node.command("CLUSTER INFO") for node in cluster.nodes if node.alive]
    return all(int(info["cluster_slots_assigned"]) == int(info["cluster_slots_ok"]) == SLOTS for info in infos)


def test_cluster_serves_every_slot_keys_and_scripts(cluster: LocalRedisCluster) -> None:
    assert [node.role for node in cluster.nodes] == ["master"] * 3 + ["replica"] * 3
    assert all(node.alive for node in cluster.nodes)
    assert len({node.node_id for node in cluster.nodes}) == 6
    assert all(len(cluster.replicas_of(master)) == 1 for master in cluster.masters())
    assert every_slot_served(cluster)
    assert cluster.url == f"redis://127.0.0.1:{cluster.masters()[0].port}"

    with cluster.client(decode_responses=True) as client:
        keys = [f"key:{i}" for i in range(300)]
        assert len({cluster.node_for_slot(cluster.slot_of(key)).port for key in keys[:30]}) == 3
        for i, key in enumerate(keys):
            client.set(key, i)
        assert [client.get(key) for key in keys] == [str(i) for i in range(300)]

        tagged = ["{t}:a", "{t}:b", "{t}:c"]
        assert client.eval("for i, k in ipairs(KEYS) do redis.call('SET', k, ARGV[1]) end return #KEYS",
                           3, *tagged, "x") == 3
        total = client.register_script(
            "local n = 0 for i, k in ipairs(KEYS) do n = n + redis.call('INCRBY', k, ARGV[1]) end return n")
        client.mset({"{t}:a": 1, "{t}:b": 2, "{t}:c": 3})
        assert total(keys=tagged, args=[10]) == 36


def test_failover_keeps_replicated_keys_and_the_killed_master_rejoins_as_replica() -> None:
    with LocalRedisCluster(masters=3, replicas=1) as cluster:
        keys = [f"before:{i}" for i in range(200)]
        by_master: dict[int, list[str]] = {}
        for key in keys:
            by_master.setdefault(cluster.node_for_slot(cluster.slot_of(key)).port, []).append(key)
        for master in cluster.masters():
            with redis.Redis(host="127.0.0.1", port=master.port) as direct:
                for key in by_master[master.port]:
                    direct.set(key, key)
                assert direct.wait(1, 5000) == 1  # every write above reached the replica

        victim = cluster.node_for_slot(cluster.slot_of(keys[0]))
        cluster.kill(victim)
        assert not victim.alive
        promoted = cluster.wait_for_failover(victim)
        assert promoted.role == "master"
        assert cluster.node_for_slot(cluster.slot_of(keys[0])) is promoted
        with cluster.client(decode_responses=True) as client:
            assert [client.get(key) for key in keys] == keys
            client.set(keys[0], "after")
            assert client.get(keys[0]) == "after"

        cluster.restart(victim)
        assert victim.role == "replica"
        assert cluster.replicas_of(promoted) == [victim]
        assert cluster.node_for_slot(cluster.slot_of(keys[0])) is promoted


def test_slot_moves_live_without_losing_writes(cluster: LocalRedisCluster) -> None:
    slot = cluster.slot_of("{m}")
    source = cluster.node_for_slot(slot)
    target = next(master for master in cluster.masters() if master is not source)
    with cluster.client() as client:
        client.mset({f"{{m}}:old:{i}": i for i in range(2000)})  # many MIGRATE batches

    writes = 0
    errors: list[Exception] = []
    stop = threading.Event()

    def write() -> None:
        nonlocal writes
        with cluster.client() as writer:
            while not stop.is_set():
                try:
                    writer.rpush("{m}:list", writes)
                    writer.incr("{m}:count")
                except Exception as exc:  # any failed write fails the test
                    errors.append(exc)
                    return
                writes += 1

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while writes < 20 and thread.is_alive():
            time.sleep(0.01)
        before = writes
        cluster.migrate_slots([slot], source, target)
        during = writes - before
        settled = writes
        while writes < settled + 20 and thread.is_alive():  # and some after it
            time.sleep(0.01)
    finally:
        stop.set()
        thread.join()

    assert not errors
    assert during > 0  # the writes really raced the migration
    assert cluster.node_for_slot(slot) is target
    with redis.Redis(host="127.0.0.1", port=target.port) as direct:  # the keys live on the target now
        assert direct.llen("{m}:list") == writes
        assert int(direct.get("{m}:count")) == writes
        assert direct.exists(*(f"{{m}}:old:{i}" for i in range(2000))) == 2000
    with redis.Redis(host="127.0.0.1", port=source.port) as direct:
        assert direct.execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0


def test_single_master_cluster_and_stop_leaves_no_process() -> None:
    cluster = LocalRedisCluster(masters=1, replicas=0).start()
    try:
        (only,) = cluster.nodes
        assert cluster.masters() == [only] and cluster.replicas_of(only) == []
        assert cluster.startup_nodes == [("127.0.0.1", only.port)]
        assert every_slot_served(cluster)
        with cluster.client() as client:
            client.set("a", 1)
            assert client.get("a") == b"1"
        pids = [node.pid for node in cluster.nodes]
    finally:
        cluster.stop()
    assert not any(psutil.pid_exists(pid) for pid in pids)
    assert not cluster.data_dir.exists()


def test_failed_start_leaves_no_process() -> None:
    cluster = LocalRedisCluster(masters=3, replicas=1)
    try:
        # A master says ok 2 s after its start at the earliest: 0.3 s stops the start half way.
        with pytest.raises(RedisServerError, match="(?s)did not start.*--- node"):
            cluster.start(timeout=0.3)
    finally:
        cluster.stop()
    assert not any(str(cluster.data_dir) in " ".join(proc.info["cmdline"] or [])
                   for proc in psutil.process_iter(["cmdline"]))
    assert not cluster.data_dir.exists()
