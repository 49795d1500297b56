"""Clients of a single Redis and of a Redis Cluster, told apart by asking the server."""

import pytest
import redis
from redis.cluster import RedisCluster

from hermit.redis_client import (
    COMMAND_TIMEOUTS, DEFAULT_TIMEOUTS, OnDemandClient, connect, is_cluster, worker_timeouts,
)
from hermit.testing.redis_cluster import LocalRedisCluster


@pytest.fixture(scope="module")
def cluster():
    with LocalRedisCluster(masters=1, replicas=0) as started:
        yield started


def test_a_single_redis_gets_a_plain_client(redis_url):
    client = connect(redis_url)
    assert type(client) is redis.Redis and not is_cluster(client) and client.ping()


def test_a_cluster_node_gets_a_cluster_client(cluster):
    client = connect(cluster.url + "/0")
    assert isinstance(client, RedisCluster) and is_cluster(client)
    client.set("{t}a", 1)
    assert client.get("{t}a") == b"1"


def test_a_cluster_url_naming_another_database_says_so(cluster):
    with pytest.raises(redis.ResponseError, match="database 0 only"):
        connect(cluster.url + "/2")


def test_an_on_demand_client_connects_at_its_first_use_and_again_after_a_failure(redis_server):
    unreachable = OnDemandClient("redis://127.0.0.1:9/0")  # made without Redis
    with pytest.raises(redis.ConnectionError):
        unreachable.get()
    with pytest.raises(redis.ConnectionError):
        unreachable.get()  # tried again, not a client kept from the failure
    reachable = OnDemandClient(redis_server.url)
    assert reachable.get() is reachable.get() and reachable.get().ping()
    reachable.close()


def test_named_timeouts_reach_the_connections(redis_url):
    def timeouts(client):
        options = client.connection_pool.connection_kwargs
        return options["socket_timeout"], options["socket_connect_timeout"]

    assert timeouts(connect(redis_url)) == (5.0, 2.0) == tuple(DEFAULT_TIMEOUTS.values())
    assert timeouts(connect(redis_url, **COMMAND_TIMEOUTS)) == (10.0, 3.0)
    # The worker's socket timeout is a setting; connecting never waits longer than it.
    assert timeouts(connect(redis_url, **worker_timeouts(30.0))) == (30.0, 2.0)
    assert timeouts(connect(redis_url, **worker_timeouts(0.5))) == (0.5, 0.5)
