"""Which shard of a crawl holds a host, and which checks a fingerprint.

A crawl's frontier and Bloom filter are split over a fixed number of shards, chosen
when the crawl is created and recorded in its layout (:attr:`CrawlKeys.layout`;
a crawl made before shards has none and one shard). Each shard is a whole frontier
and filter under its own hash tag (:meth:`CrawlKeys.shard`), so on a Redis Cluster
the shards spread over slots and nodes while every script still touches one slot;
on a single Redis the same layout works unchanged.

- A host's queues, schedule, leases and settings live on the shard of its name
  (:func:`host_shard`): politeness stays one atomic script per host.
- A fingerprint is checked on the shard of its hash
  (:func:`hermit.dedup.bloom.fingerprint_shard`, beside the filter it routes to):
  duplicates, most of a crawl's checks, spread evenly however few the hosts.

The two may differ. Then the script that finds a request new to its filter also
appends it, numbered, to a *handoff* list on that same shard (push.lua): the mark
and the handoff land together or not at all, and the request counts as queued from
then on. Delivering it to its host's shard (receive.lua) is a second step, done
by the worker that pushed it right after the push, and by any worker that finds
handoffs waiting (a pusher that died in between): the host's shard remembers the
last number it applied from each source shard, so a handoff delivered twice is
queued once, and the source forgets handoffs only once applied
(trim_handoff.lua). So nothing is marked seen without being queued.
"""

from __future__ import annotations

import dataclasses
import zlib

import redis

from hermit.keys import CrawlKeys
from hermit.redis_client import is_cluster

#: Most shards a crawl may have.
MAX_SHARDS = 1024

#: Shards of a new crawl on a Redis Cluster when HERMIT_QUEUE_SHARDS doesn't say:
#: enough to spread over 16 masters (a crawl's shards are fixed when it is created).
CLUSTER_DEFAULT_SHARDS = 16


def check_shards(shards: object) -> int:
    """*shards* if it is a usable number of shards, else ValueError."""
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"the number of shards must be an integer from 1 to {MAX_SHARDS}, got {shards!r}")
    return shards


def host_shard(host: str, shards: int) -> int:
    """The shard holding *host*'s queues (a stable hash of its name)."""
    if shards == 1:
        return 0
    return zlib.crc32(host.encode()) % shards


#: The layout's ``tags`` of a crawl whose shards' tags are spread over the slots
#: (:func:`hermit.keys.spread_tag`); crawls made before it have plain ``{crawl~i}`` tags.
SPREAD_TAGS = "spread"

# A new crawl's layout, both fields at once, unless a first writer made one already.
_CREATE_LAYOUT = """
if redis.call('HEXISTS', KEYS[1], 'shards') == 0 then
  redis.call('HSET', KEYS[1], 'shards', ARGV[1], 'tags', ARGV[2])
end
"""


def crawl_shards(client: redis.Redis, keys: CrawlKeys, wanted: int | None = None) -> int:
    """The number of shards of the crawl *keys*.

    A crawl that has no layout yet gets *wanted* shards, their tags spread over the
    slots (first writer wins: workers starting together agree) — unless it already
    has keys of its own, made before shards, which keep their one shard. With
    *wanted* None, a crawl without a layout has one shard and nothing is written.
    """
    recorded = client.hget(keys.layout, "shards")
    if recorded is None and wanted is not None and wanted > 1:
        if client.exists(keys.queued_count, keys.stats, keys.bloom_meta):
            wanted = 1  # a crawl from before shards: its keys are shard 0's
        client.eval(_CREATE_LAYOUT, 1, keys.layout, check_shards(wanted), SPREAD_TAGS)
        recorded = client.hget(keys.layout, "shards")
    if recorded is None:
        return 1
    try:
        return check_shards(int(recorded))
    except ValueError as exc:
        raise ValueError(f"crawl {keys.crawl!r} has an unreadable layout ({keys.layout}): {exc}") from None


def layout_keys(client: redis.Redis, keys: CrawlKeys) -> CrawlKeys:
    """*keys* naming the crawl's shards as its layout says: spread tags or plain."""
    spread = client.hget(keys.layout, "tags") in (SPREAD_TAGS, SPREAD_TAGS.encode())
    return keys if keys.spread_shards == spread else dataclasses.replace(keys, spread_shards=spread)


def shard_keys(client: redis.Redis, keys: CrawlKeys) -> list[CrawlKeys]:
    """The keys of every shard of the crawl *keys*, named as its layout says."""
    named = layout_keys(client, keys)
    return [named.shard(i) for i in range(crawl_shards(client, keys))]


def open_shards(client: redis.Redis, keys: CrawlKeys, wanted: int = 0) -> int:
    """:func:`crawl_shards`, *wanted* 0 meaning 1 on a single Redis and
    :data:`CLUSTER_DEFAULT_SHARDS` on a Redis Cluster (``HERMIT_QUEUE_SHARDS``)."""
    return crawl_shards(client, keys, wanted or (CLUSTER_DEFAULT_SHARDS if is_cluster(client) else 1))
