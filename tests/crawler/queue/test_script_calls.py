"""Scripts in a Redis Cluster pipeline by SHA, their text sent only to a node that lacks
them, on a real 3-master cluster; a single Redis' pipelines and transactions by SHA
without asking SCRIPT EXISTS; and a frontier's writes across a SCRIPT FLUSH on both."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
import redis

from hermit.keys import CrawlKeys
from hermit.queue import script_calls
from hermit.queue.frontier import Frontier
from hermit.queue.redis_queue import Ack, Politeness, QueuedRequest
from hermit.queue.shards import crawl_shards
from hermit.testing.redis_cluster import LocalRedisCluster

INCREMENT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRedisCluster]:
    with LocalRedisCluster(masters=3, replicas=0) as started:
        yield started


def command_calls(cluster: LocalRedisCluster, command: str) -> int:
    """How often every master ran *command* (INFO commandstats)."""
    total = 0
    for node in cluster.masters():
        stats = node.command("INFO", "commandstats")
        total += int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))
    return total


def flush_scripts(cluster: LocalRedisCluster) -> None:
    for node in cluster.masters():
        node.command("SCRIPT", "FLUSH")


def test_a_pipeline_sends_text_once_per_node_then_only_shas(cluster: LocalRedisCluster) -> None:
    keys = [f"{{s{i}}}:n" for i in range(30)]  # tags over all three masters
    with cluster.client() as client:
        flush_scripts(cluster)
        script = client.register_script(INCREMENT)
        evals_before, shas_before = command_calls(cluster, "eval"), command_calls(cluster, "evalsha")
        getkeys_before = command_calls(cluster, "command|getkeys")
        for round_ in range(3):
            pipe = script_calls.pipeline(client)
            for key in keys:
                script_calls.run_script(script, [key], [1], pipe)
            assert script_calls.execute(pipe) == [round_ + 1] * len(keys)
        assert [int(client.get(key)) for key in keys] == [3] * len(keys)
        # Round 1: 30 EVALSHA answered NOSCRIPT, and sent again as text; then SHAs only.
        assert command_calls(cluster, "eval") - evals_before == len(keys)
        assert command_calls(cluster, "evalsha") - shas_before == 3 * len(keys)
        # Routed by their keys, without asking a node for them (COMMAND GETKEYS).
        assert command_calls(cluster, "command|getkeys") == getkeys_before


def test_errors_come_back_in_place_or_raise(cluster: LocalRedisCluster) -> None:
    with cluster.client() as client:
        flush_scripts(cluster)
        script = client.register_script(INCREMENT)
        client.set("{e}:text", "not a number")
        pipe = script_calls.pipeline(client)
        script_calls.run_script(script, ["{e}:ok"], [5], pipe)
        script_calls.run_script(script, ["{e}:text"], [5], pipe)
        replies = script_calls.execute(pipe, raise_on_error=False)
        assert replies[0] == 5
        assert isinstance(replies[1], Exception) and "not an integer" in str(replies[1])
        script_calls.run_script(script, ["{e}:text"], [5], pipe)
        with pytest.raises(Exception, match="not an integer"):
            script_calls.execute(pipe)


def test_a_cluster_transaction_sends_the_text(cluster: LocalRedisCluster) -> None:
    """In MULTI a NOSCRIPT would fail one command while the rest ran: no SHA there."""
    with cluster.client() as client:
        flush_scripts(cluster)
        script = client.register_script(INCREMENT)
        shas_before = command_calls(cluster, "evalsha")
        pipe = client.pipeline(transaction=True)
        script_calls.run_script(script, ["{t}:a"], [2], pipe)
        pipe.incr("{t}:b")
        assert script_calls.execute(pipe) == [2, 1]
        assert command_calls(cluster, "evalsha") == shas_before


def test_a_sharded_frontier_writes_across_a_script_flush(cluster: LocalRedisCluster) -> None:
    """Every master forgets its scripts (as a promoted replica or a restarted master
    would) between two writes: the second still queues every request once."""
    def request(n: int) -> QueuedRequest:
        url = f"http://h{n % 7}.example/{n}".encode()
        return QueuedRequest(url, 0, hashlib.sha1(url).digest(), f"h{n % 7}.example")

    with cluster.client() as client:
        keys = CrawlKeys("flush")
        front = Frontier(client, keys, "w1", shards=crawl_shards(client, keys, 8),
                         politeness=Politeness(concurrency=100))
        assert front.shards == 8
        assert front.push_many([request(n) for n in range(40)]) == [1] * 40
        flush_scripts(cluster)
        assert front.push_many([request(n) for n in range(20, 80)]) == [0] * 20 + [1] * 40
        assert front.status().queued == 80


def server_calls(client: redis.Redis, command: str) -> int:
    return int(client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


@pytest.mark.parametrize("transaction", [True, False], ids=["transaction", "pipeline"])
def test_a_single_redis_pipeline_goes_by_sha_and_loads_what_the_server_lacks(
    redis_client: redis.Redis, transaction: bool,
) -> None:
    """redis-py's own pipeline asks SCRIPT EXISTS before every execute: a round trip
    per write batch. Here the scripts go by SHA, loaded only when the server lacks them."""
    redis_client.script_flush()
    script = redis_client.register_script(INCREMENT)
    other = redis_client.register_script("return redis.call('SET', KEYS[1], ARGV[1])")
    exists_before, loads_before = server_calls(redis_client, "script|exists"), server_calls(redis_client, "script|load")
    for round_ in range(3):
        pipe = script_calls.pipeline(redis_client, transaction=transaction)
        script_calls.run_script(script, ["single:n"], [1], pipe)
        pipe.incr("single:plain")
        script_calls.run_script(other, ["single:s"], [round_], pipe)
        assert script_calls.execute(pipe) == [round_ + 1, round_ + 1, b"OK"]
        if round_ == 1:
            redis_client.script_flush()  # as a restarted server would: both fail, both are loaded again
    assert int(redis_client.get("single:n")) == 3 and int(redis_client.get("single:plain")) == 3
    assert redis_client.get("single:s") == b"2"
    assert server_calls(redis_client, "script|exists") == exists_before
    # Each script loaded twice (the first round and after the flush), not once per execute.
    assert server_calls(redis_client, "script|load") - loads_before == 4


def test_a_transaction_runs_again_only_the_script_the_server_lacked(redis_client: redis.Redis) -> None:
    """One script of a MULTI missing (another client had loaded the other): it alone
    runs again, after the rest, and nothing runs twice."""
    redis_client.script_flush()
    loaded = redis_client.register_script(INCREMENT)
    missing = redis_client.register_script("return redis.call('INCRBY', KEYS[1], ARGV[1]) * 10")
    redis_client.script_load(INCREMENT)
    pipe = script_calls.pipeline(redis_client, transaction=True)
    script_calls.run_script(loaded, ["part:a"], [1], pipe)
    script_calls.run_script(missing, ["part:b"], [2], pipe)
    script_calls.run_script(loaded, ["part:c"], [3], pipe)
    assert script_calls.execute(pipe) == [1, 20, 3]
    assert [int(redis_client.get(key)) for key in ("part:a", "part:b", "part:c")] == [1, 2, 3]


def test_a_worker_write_batch_lands_across_a_script_flush(redis_client: redis.Redis) -> None:
    """A frontier on one Redis writes pushes, items and acks in one MULTI by SHA; after
    the server forgot its scripts, the next batch still lands whole."""
    keys = CrawlKeys("single-flush")
    front = Frontier(redis_client, keys, "w1", politeness=Politeness(concurrency=100))
    urls = [f"http://h{n % 3}.example/{n}".encode() for n in range(30)]
    pushes = [QueuedRequest(url, 0, hashlib.sha1(url).digest(), f"h{n % 3}.example") for n, url in enumerate(urls)]
    exists_before = server_calls(redis_client, "script|exists")
    assert front.write(0, pushes[:10], [b'{"n": 0}'], [], [], {}) == [1] * 10
    leases = front.lease(5)
    assert len(leases) == 5
    redis_client.script_flush()
    assert front.write(1, pushes[5:], [b'{"n": 1}'], [], [Ack(lease.id, lease.host) for lease in leases], {}) == (
        [0] * 5 + [1] * 20)
    status = front.status()
    assert (status.queued, status.leased, redis_client.xlen(keys.items)) == (25, 0, 2)
    assert server_calls(redis_client, "script|exists") == exists_before
