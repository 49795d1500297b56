"""The Lua scripts use the key names of :class:`hermit.keys.CrawlKeys` and no others.

A crawl over several shards does everything its scripts do (push with dedup and
handoffs, lease, ack with a backoff, items, a dead worker's leases requeued, host
settings, the Bloom filter's own scripts). Every key a script is passed, and every
key in Redis afterwards (some are named by the scripts themselves: a Bloom filter's
chunks), must be a name CrawlKeys gives; and every script must have run, so a new
script is covered once the work below calls it.
"""

from __future__ import annotations

import hashlib
import time
from importlib import resources

import pytest
from redis.commands.core import Script

from hermit.dedup.bloom import RedisBloomFilter
from hermit.keys import CrawlKeys
from hermit.queue.frontier import Frontier
from hermit.queue.hosts import HostControl
from hermit.queue.redis_queue import Ack, Politeness, QueuedRequest
from hermit.queue.shards import crawl_shards

SHARDS = 3
HOSTS = [f"h{i}.example" for i in range(6)]
PRIORITIES = (0, 5)
WORKERS = ("w1", "w2", "dead")


def _lua_files(package: str, folder: str = "") -> dict[str, str]:
    root = resources.files(package)
    if folder:
        root = root.joinpath(folder)
    return {entry.name: entry.read_text() for entry in root.iterdir() if entry.name.endswith(".lua")}


#: The Lua files that are scripts of their own; the others are libraries they start with.
SCRIPT_FILES = {
    **{name: text for name, text in _lua_files("hermit.queue", "scripts").items() if name != "hosts.lua"},
    **{name: text for name, text in _lua_files("hermit.dedup").items() if name != "bloom.lua"},
    **_lua_files("hermit.items"),
}


@pytest.fixture
def script_calls(monkeypatch) -> list[tuple[str, list[str]]]:
    """(script text, keys) of every script call, on a client or in a pipeline."""
    calls: list[tuple[str, list[str]]] = []
    original = Script.__call__

    def recording(self, keys=(), args=(), client=None):
        calls.append((self.script, [key.decode() if isinstance(key, bytes) else key for key in keys]))
        return original(self, keys=keys, args=args, client=client)

    monkeypatch.setattr(Script, "__call__", recording)
    return calls


def crawl_key_names(keys: CrawlKeys, bloom_chunks: list[str]) -> set[str]:
    """Every name CrawlKeys gives one shard of the crawl, for the hosts, priorities and
    workers used here (*bloom_chunks*: its filter's chunk keys, from CrawlKeys.bloom_chunk)."""
    names = {getattr(keys, name) for name, member in vars(CrawlKeys).items()
             if isinstance(member, property) and name != "base"}
    names |= {keys.host_queue(host, priority) for host in HOSTS for priority in PRIORITIES}
    names |= {keys.host_priorities(host) for host in HOSTS}
    names |= {name for worker in WORKERS for name in (keys.leases(worker), keys.flushed(worker))}
    names |= {name for target in range(SHARDS) for name in (keys.handoff(target), keys.handoff_seq(target))}
    return names | set(bloom_chunks)


def request(host: str, path: str, priority: int) -> QueuedRequest:
    url = f"http://{host}/{path}"
    return QueuedRequest(url.encode(), priority, hashlib.sha1(url.encode()).digest(), host)


def run_every_script(client) -> list[CrawlKeys]:
    """A crawl's life in small; returns the keys of its shards, and of the small filters' crawls."""
    crawl = CrawlKeys("c")
    crawl_shards(client, crawl, SHARDS)
    control = HostControl(client, crawl)
    control.update(HOSTS[0], delay_ms=500)  # host_settings.lua
    front = Frontier(client, crawl, "w1", shards=SHARDS, politeness=Politeness(concurrency=100))
    requests = [request(host, f"p{i}", priority) for host in HOSTS for i in range(8) for priority in PRIORITIES]
    front.push_many(requests)  # push.lua (with bloom.lua), receive.lua and trim_handoff.lua
    leases = []
    while batch := front.lease(20):  # pick.lua, lease.lua
        leases += batch
    front.ack([Ack(lease.id, lease.host, outcome="429") for lease in leases[:5]])  # ack.lua
    front.add_items([b'{"n": 1}', b'{"n": 2}'], batch=0)  # add_items.lua
    front.release(leases[5:])  # requeue.lua

    dead = Frontier(client, crawl, "dead", shards=SHARDS, politeness=Politeness(concurrency=100),
                    lease_timeout_seconds=0.1)
    assert dead.lease(10)
    time.sleep(0.3)  # its leases are past their deadline
    reaped, _ = Frontier(client, crawl, "w2", shards=SHARDS).heartbeat()  # heartbeat.lua, requeue.lua
    assert reaped == 1

    # The filter's own scripts, on a filter (of a crawl of its own) of several layers of several chunks.
    small_keys = CrawlKeys("small")
    small = RedisBloomFilter(client, small_keys, capacity=50, max_chunk_bits=2**13)
    fingerprints = [hashlib.sha1(str(i).encode()).digest() for i in range(400)]
    small.add_many(fingerprints)  # bloom_add.lua
    assert all(small.contains_many(fingerprints))  # bloom_contains.lua
    info = small.info()
    assert info.layers > 1 and len(small.chunk_keys()) > info.layers
    gone_keys = CrawlKeys("gone")
    gone = RedisBloomFilter(client, gone_keys, capacity=50, max_chunk_bits=2**13)
    gone.add_many(fingerprints)
    assert gone.delete() > 2  # bloom_delete.lua
    return [queue.keys for queue in front.queues] + [small_keys, gone_keys]


def test_scripts_use_the_key_names_of_crawl_keys(redis_client, script_calls):
    used_keys = run_every_script(redis_client)
    bloom_chunks = [chunk for keys in used_keys for chunk in RedisBloomFilter(redis_client, keys).chunk_keys()]
    names = set().union(*(crawl_key_names(keys, bloom_chunks) for keys in used_keys))

    ran = {name for name, text in SCRIPT_FILES.items() if any(script.endswith(text) for script, _ in script_calls)}
    assert ran == set(SCRIPT_FILES), f"scripts never run here: {sorted(set(SCRIPT_FILES) - ran)}"

    passed = {key for _, keys in script_calls for key in keys}
    assert passed - names == set(), "keys passed to scripts that CrawlKeys does not name"
    in_redis = {key.decode() for key in redis_client.scan_iter(count=1000)}
    assert any(key in bloom_chunks for key in in_redis)
    assert in_redis - names == set(), "keys in Redis that CrawlKeys does not name"


def test_the_bloom_scripts_build_chunk_names_as_crawl_keys_does(redis_client):
    # bloom.lua names a layer's chunks from the meta key it is passed, and
    # bloom_delete.lua finds them the same way: both must give CrawlKeys.bloom_chunk.
    keys = CrawlKeys("c").shard(2)
    bloom = RedisBloomFilter(redis_client, keys, capacity=50, max_chunk_bits=2**13)
    bloom.add_many([hashlib.sha1(str(i).encode()).digest() for i in range(400)])
    meta = redis_client.hgetall(keys.bloom_meta)
    layers = int(meta[b"layers"])
    expected = {keys.bloom_meta} | {
        keys.bloom_chunk(layer, chunk)
        for layer in range(layers)
        for chunk in range(-(-int(meta[f"bits:{layer}".encode()]) // int(meta[f"chunk_bits:{layer}".encode()])))
    }
    assert layers > 1 and len(expected) > layers + 1
    assert {key.decode() for key in redis_client.scan_iter(count=1000)} == expected
    assert bloom.delete() == len(expected)
    assert list(redis_client.scan_iter()) == []
