"""Hosts of the shared frontier: politeness keys, and what ``hermit hosts`` reads and sets.

A request's politeness key is the queue it waits in and the unit the fleet-wide
delay, concurrency and backoff apply to. It is Scrapy's download slot: the
request's ``meta["download_slot"]`` when set, else its URL's host name (the
downloader's own choice, so a worker's local slots and the fleet's agree).

Per-host settings (delay, concurrency, paused, blocked) live in the crawl's
``hosts:settings`` hash and are read by every lease, so every worker obeys a
change at once.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

from scrapy.utils.httpobj import urlparse_cached

from hermit.keys import CrawlKeys
from hermit.queue.shards import crawl_shards, host_shard, layout_keys

if TYPE_CHECKING:
    import redis
    from scrapy import Request

logger = logging.getLogger(__name__)

#: Longest politeness key kept as it is; longer ones (a spider's own download_slot
#: values) are cut, which only merges such slots.
MAX_KEY_LENGTH = 253

#: Settings ``hermit hosts set`` may change, with their JSON field.
HOST_FIELDS = ("delay_ms", "concurrency", "paused", "blocked")


def clean_key(key: str) -> str:
    """*key* made safe for the frontier's keys and lease values (no newline, bounded)."""
    if "\n" in key or "\r" in key:
        key = key.replace("\n", " ").replace("\r", " ")
    return key[:MAX_KEY_LENGTH]


def politeness_key(request: Request) -> str:
    """The download slot Scrapy would use for *request*, without a running downloader."""
    slot = request.meta.get("download_slot")
    if slot is not None:
        return clean_key(str(slot))
    return clean_key(urlparse_cached(request).hostname or "")


@dataclass
class HostInfo:
    """One host as ``hermit hosts list`` shows it."""

    host: str
    queued: int
    active: int
    next_fetch_in_seconds: float | None  # None: not scheduled (no queue, paused or saturated)
    settings: dict[str, Any]
    robots_delay_seconds: float | None
    backoff: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class HostControl:
    """Reads and changes per-host state of one crawl (the ``hermit hosts`` command),
    each host on its shard (:func:`hermit.queue.shards.host_shard`)."""

    def __init__(self, client: redis.Redis, keys: CrawlKeys) -> None:
        self.client = client
        self.shards = crawl_shards(client, keys)
        self.keys = layout_keys(client, keys) if self.shards > 1 else keys
        scripts = resources.files("hermit.queue").joinpath("scripts")
        self._set = client.register_script(
            scripts.joinpath("hosts.lua").read_text() + "\n" + scripts.joinpath("host_settings.lua").read_text()
        )

    def _keys(self, host: str) -> CrawlKeys:
        """The keys of the shard *host* lives on."""
        return self.keys.shard(host_shard(host, self.shards))

    def _all_shards(self) -> list[CrawlKeys]:
        return [self.keys.shard(i) for i in range(self.shards)]

    def update(self, host: str, **changes: Any) -> dict[str, Any]:
        """Set (or with None, clear) fields of :data:`HOST_FIELDS` for *host*; return its settings."""
        unknown = set(changes) - set(HOST_FIELDS)
        if unknown:
            raise ValueError(f"unknown host settings: {', '.join(sorted(unknown))}")
        host = clean_key(host)
        k = self._keys(host)
        result = json.loads(self._set(
            keys=[k.host_settings, k.ready, k.host_waits, k.host_top, k.host_active],
            # The concurrency to assume is generous: a lease takes a saturated host out again.
            args=[host, json.dumps(changes), 10**9],
        ))
        if self.shards > 1 and "blocked" in changes:
            # Every shard's push checks its own copy (a request's filter may be on any shard).
            for shard in self._all_shards():
                if result.get("blocked") is True:
                    self.client.sadd(shard.blocked_hosts, host)
                else:
                    self.client.srem(shard.blocked_hosts, host)
        return result

    def clear(self, host: str) -> dict[str, Any]:
        """Forget every setting of *host*."""
        return self.update(host, **{name: None for name in HOST_FIELDS})

    def _queued(self, hosts: list[str]) -> dict[str, int]:
        pipe = self.client.pipeline(transaction=False)
        for host in hosts:
            pipe.zrange(self._keys(host).host_priorities(host), 0, -1)
        priorities = pipe.execute()
        pipe = self.client.pipeline(transaction=False)
        for host, ps in zip(hosts, priorities):
            for p in ps:
                pipe.llen(self._keys(host).host_queue(host, int(p)))
        lengths = iter(pipe.execute())
        return {host: sum(next(lengths) for _ in ps) for host, ps in zip(hosts, priorities)}

    def describe(self, hosts: list[str]) -> list[HostInfo]:
        """What is known of each of *hosts*."""
        if not hosts:
            return []
        seconds, micros = self.client.time()
        now_ms = seconds * 1000 + micros // 1000
        pipe = self.client.pipeline(transaction=False)
        for host in hosts:
            k = self._keys(host)
            pipe.hget(k.host_active, host)
            pipe.zscore(k.ready, host)
            pipe.zscore(k.host_waits, host)
            pipe.hget(k.host_settings, host)
            pipe.hget(k.host_robots_delay, host)
            pipe.hget(k.host_backoff, host)
        values = pipe.execute()
        queued = self._queued(hosts)
        infos = []
        for i, host in enumerate(hosts):
            active, ready_at, wait_at, settings, robots, backoff = values[i * 6:(i + 1) * 6]
            at = ready_at if ready_at is not None else wait_at
            infos.append(HostInfo(
                host=host,
                queued=queued[host],
                active=int(active or 0),
                next_fetch_in_seconds=None if at is None else max(0.0, (at - now_ms) / 1000),
                settings=_json(settings) or {},
                robots_delay_seconds=None if robots is None else int(robots) / 1000,
                backoff=_json(backoff),
            ))
        return infos

    def busiest(self, limit: int) -> list[str]:
        """Hosts with the most requests in flight."""
        active: dict[bytes, bytes] = {}
        for k in self._all_shards():
            active.update(self.client.hgetall(k.host_active))
        ranked = sorted(active.items(), key=lambda kv: -int(kv[1]))
        return [host.decode() for host, _ in ranked[:limit]]

    def most_delayed(self, limit: int) -> list[str]:
        """Hosts with queued requests whose next fetch is furthest ahead."""
        return self._top_scored(lambda k: k.ready, limit)

    def backed_off(self, limit: int) -> list[str]:
        """Hosts whose backoff ends last."""
        return self._top_scored(lambda k: k.host_backoff_until, limit)

    def _top_scored(self, zset: Callable[[CrawlKeys], str], limit: int) -> list[str]:
        scored: list[tuple[float, str]] = []
        for k in self._all_shards():
            scored += [(score, host.decode())
                       for host, score in self.client.zrevrange(zset(k), 0, limit - 1, withscores=True)]
        return [host for _, host in sorted(scored, reverse=True)[:limit]]

    def with_settings(self) -> list[str]:
        """Hosts with settings of their own (set by hand, so few)."""
        return sorted(host.decode() for k in self._all_shards() for host in self.client.hkeys(k.host_settings))

    def set_robots_delay(self, host: str, delay_seconds: float) -> None:
        """Record a robots.txt Crawl-delay (0 forgets it); every lease of *host* then waits as long."""
        host = clean_key(host)
        if delay_seconds > 0:
            self.client.hset(self._keys(host).host_robots_delay, host, int(delay_seconds * 1000))
        else:
            self.client.hdel(self._keys(host).host_robots_delay, host)


def _json(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return {"unreadable": raw.decode(errors="replace")}
    return value if isinstance(value, dict) else {"value": value}
