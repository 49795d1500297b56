"""Scripts in a Redis Cluster pipeline by SHA, their text sent only to a node that lacks
them, on a real 3-master cluster; and a frontier's writes across a SCRIPT FLUSH."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest

from hermit.keys import CrawlKeys
from hermit.queue import script_calls
from hermit.queue.frontier import Frontier
from hermit.queue.redis_queue import Politeness, QueuedRequest
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
