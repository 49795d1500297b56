"""Clients of the crawl's Redis: a single server or a Redis Cluster, told apart by asking it.

A cluster node's URL gives a ``redis.cluster.RedisCluster`` (it learns the other
nodes from that one, and follows MOVED and ASK redirections during resharding and
failover); any other gives a ``redis.Redis``. Both use hiredis when installed.
"""

from __future__ import annotations

from typing import Any, Final, TypedDict

import redis
from redis.cluster import RedisCluster


class Timeouts(TypedDict):
    """How long a client waits, in seconds: for a reply, and to connect (keyword
    arguments of :func:`connect`: ``connect(url, **COMMAND_TIMEOUTS)``)."""

    socket_timeout: float
    connect_timeout: float


#: What :func:`connect` waits unless told otherwise.
DEFAULT_TIMEOUTS: Final[Timeouts] = {"socket_timeout": 5.0, "connect_timeout": 2.0}
#: A ``hermit`` command (status, seed, hosts, queue, items): someone waits for it.
COMMAND_TIMEOUTS: Final[Timeouts] = {"socket_timeout": 10.0, "connect_timeout": 3.0}
#: ``hermit dedup``: a migration adds a whole page of fingerprints (--batch-size) per call.
DEDUP_COMMAND_TIMEOUTS: Final[Timeouts] = {"socket_timeout": 30.0, "connect_timeout": 3.0}
#: The worker's check that its Redis answers, before the crawl starts.
WORKER_PREFLIGHT_TIMEOUTS: Final[Timeouts] = {"socket_timeout": 10.0, "connect_timeout": 10.0}


def worker_timeouts(socket_timeout: float) -> Timeouts:
    """The crawling worker's clients (its scheduler, its crawl limits): replies within
    *socket_timeout* (HERMIT_REDIS_SOCKET_TIMEOUT_SECONDS), connecting as by default."""
    return {"socket_timeout": socket_timeout, "connect_timeout": DEFAULT_TIMEOUTS["connect_timeout"]}


def connect(
    url: str, *, socket_timeout: float = DEFAULT_TIMEOUTS["socket_timeout"],
    connect_timeout: float = DEFAULT_TIMEOUTS["connect_timeout"], **options: Any,
) -> redis.Redis:
    """A client of the Redis at *url*; raises ``redis.RedisError`` if it can't be reached.

    Every Redis client of Hermit is made here. *options* are redis-py connection
    options (``redis_connect_func``, ...).
    """
    timeouts = {"socket_timeout": socket_timeout, "socket_connect_timeout": min(connect_timeout, socket_timeout)}
    client = redis.Redis.from_url(url, **timeouts, **options)
    if not is_cluster(client):
        return client
    client.close()
    return RedisCluster.from_url(url, **timeouts, **options)


def is_cluster(client: redis.Redis) -> bool:
    """Whether *client*'s server is a Redis Cluster node (``INFO cluster``)."""
    if isinstance(client, RedisCluster):
        return True
    try:
        return bool(client.info("cluster").get("cluster_enabled"))
    except redis.ResponseError as exc:
        if "DB index" in str(exc):  # the URL's database (SELECT at connection)
            raise redis.ResponseError(f"{exc} (a Redis Cluster has database 0 only: end the URL with /0)") from None
        return False  # INFO refused (a restricted user): not a cluster we can use


class OnDemandClient:
    """A client of *url* made by :func:`connect` at its first use, not before, and made
    again at the next use after an attempt failed: for readers (metrics) that must not
    fail when they are set up while Redis is away, only when they read."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        self.options = options
        self._client: redis.Redis | None = None

    def get(self) -> redis.Redis:
        """The client; raises ``redis.RedisError`` if Redis can't be reached to make it."""
        if self._client is None:
            self._client = connect(self.url, **self.options)
        return self._client

    def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()
