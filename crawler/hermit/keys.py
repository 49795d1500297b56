"""Redis key names of one crawl.

Every key carries a Redis Cluster hash tag: the crawl name (``hermit:{crawl}:...``)
for the crawl's first shard and for what the crawl has once (its layout, its items),
``{crawl~i}`` for its shard i > 0 (``~`` can't occur in a crawl name), or, in a crawl
whose layout spreads its shards (:func:`spread_tag`), ``{crawl~i.s}``. A shard is a
whole frontier and Bloom filter of its own on one cluster slot, so every script
stays atomic, and several crawls can share one Redis or one cluster
(:mod:`hermit.queue.shards` says what goes where).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

_CRAWL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def validate_crawl_name(name: str) -> str:
    """Return *name* if it is a usable crawl name, else raise ``ValueError``.

    Braces or spaces would break the hash tag, so only ``[A-Za-z0-9_.-]`` is allowed.
    """
    if not _CRAWL_NAME.match(name or ""):
        raise ValueError(
            f"invalid crawl name {name!r}: use 1-100 characters of letters, digits, '_', '.', '-'"
        )
    return name


@dataclass(frozen=True)
class CrawlKeys:
    """The key names of one crawl, under one prefix (default ``hermit``)."""

    crawl: str
    prefix: str = "hermit"
    #: Which shard of the crawl these keys name (0: the first, whose tag is the crawl name).
    shard_index: int = 0
    #: Whether the crawl's shards > 0 have tags spread over the cluster's slots
    #: (:func:`spread_tag`; its layout says so) or the plain ``{crawl~i}`` of crawls before.
    spread_shards: bool = False

    def __post_init__(self) -> None:
        validate_crawl_name(self.crawl)
        if self.shard_index < 0:
            raise ValueError(f"shard index must not be negative, got {self.shard_index}")

    @property
    def base(self) -> str:
        """The common part: ``<prefix>:{<crawl>}``, or ``<prefix>:{<crawl>~<i>}`` for shard i > 0."""
        if self.shard_index == 0:
            tag = self.crawl
        elif self.spread_shards:
            tag = spread_tag(self.crawl, self.shard_index)
        else:
            tag = f"{self.crawl}~{self.shard_index}"
        return f"{self.prefix}:{{{tag}}}"

    def shard(self, index: int) -> CrawlKeys:
        """The keys of shard *index* of this crawl."""
        return CrawlKeys(self.crawl, self.prefix, index, self.spread_shards)

    @property
    def layout(self) -> str:
        """HASH of how the crawl is laid out (``shards``: its number of shards), set
        once when the crawl is created; absent for crawls made before shards (one shard).
        Always on the first shard's tag."""
        return f"{self.prefix}:{{{self.crawl}}}:layout"

    # request queue: one queue per politeness key ("host"), a schedule of hosts
    def host_queue(self, host: str, priority: int) -> str:
        """LIST of encoded requests of one host at one priority."""
        return f"{self.base}:q:{host}:{priority}"

    def host_priorities(self, host: str) -> str:
        """ZSET of the priorities that have a non-empty queue list for *host* (score = priority)."""
        return f"{self.base}:qp:{host}"

    @property
    def ready(self) -> str:
        """ZSET of hosts that may be leased from: score = when (Redis TIME, ms) they may next be fetched.

        A host is here while it has queued requests, is not paused and has free
        concurrency; a worker that picks it holds it for a moment (its score moves to
        a claim time a little ahead) so that workers pick different hosts.
        """
        return f"{self.base}:ready"

    @property
    def host_waits(self) -> str:
        """ZSET of hosts outside ``ready`` whose next fetch time is still ahead (ms):
        saturated, backed off or emptied hosts remember it here until it passes."""
        return f"{self.base}:waits"

    @property
    def host_top(self) -> str:
        """HASH host -> its highest queued priority; a host is here iff it has queued requests."""
        return f"{self.base}:hosts:top"

    @property
    def host_active(self) -> str:
        """HASH host -> leases held on it fleet-wide (its requests in progress)."""
        return f"{self.base}:hosts:active"

    @property
    def host_settings(self) -> str:
        """HASH host -> JSON of what ``hermit hosts`` set: delay, concurrency, paused, blocked."""
        return f"{self.base}:hosts:settings"

    @property
    def host_robots_delay(self) -> str:
        """HASH host -> robots.txt Crawl-delay in ms (already capped)."""
        return f"{self.base}:hosts:robots-delay"

    @property
    def host_backoff(self) -> str:
        """HASH host -> JSON backoff state ({"level", "until" ms, "reason"}) after 429/503/errors."""
        return f"{self.base}:hosts:backoff"

    @property
    def host_backoff_until(self) -> str:
        """ZSET host -> when its backoff ends (ms): settled backoffs are forgotten from it."""
        return f"{self.base}:hosts:backoff-until"

    @property
    def queued_count(self) -> str:
        """STRING counter of requests queued (not leased) crawl-wide."""
        return f"{self.base}:queued"

    # the layout before host-aware queues (read only by ``hermit queue migrate``)
    @property
    def legacy_priorities(self) -> str:
        """ZSET of the priorities with a queue list, in the one-queue layout."""
        return f"{self.base}:priorities"

    def legacy_queue(self, priority: int) -> str:
        """LIST of encoded requests of one priority, in the one-queue layout."""
        return f"{self.base}:queue:{priority}"

    @property
    def workers(self) -> str:
        """ZSET of live workers, score = lease deadline in milliseconds (Redis TIME)."""
        return f"{self.base}:workers"

    def leases(self, worker: str) -> str:
        """HASH of one worker's leased requests: lease id -> '<priority> <host>\\n<entry>'."""
        return f"{self.base}:leases:{worker}"

    def flushed(self, worker: str) -> str:
        """STRING: sequence number of the last write batch of one worker that landed."""
        return f"{self.base}:flushed:{worker}"

    @property
    def lease_seq(self) -> str:
        """Counter giving unique lease ids."""
        return f"{self.base}:lease-seq"

    # requests handed from the shard whose Bloom filter saw them first to their host's shard
    def handoff(self, target: int) -> str:
        """LIST of requests new to this shard's filter whose host lives on shard
        *target*, each ``'<seq> <priority> <host>\\n<entry>'``, until delivered there."""
        return f"{self.base}:handoff:{target}"

    def handoff_seq(self, target: int) -> str:
        """Counter numbering this shard's handoffs to shard *target*."""
        return f"{self.base}:handoff-seq:{target}"

    @property
    def handoff_targets(self) -> str:
        """SET of the shards this shard has handoffs waiting for."""
        return f"{self.base}:handoff-targets"

    @property
    def handoffs_received(self) -> str:
        """HASH source shard -> the last handoff sequence number applied here."""
        return f"{self.base}:handoffs-received"

    @property
    def blocked_hosts(self) -> str:
        """SET of hosts `hermit hosts` blocked, on every shard: a shard's push sees a
        host blocked whichever shard the host lives on."""
        return f"{self.base}:hosts:blocked"

    @property
    def dead_letters(self) -> str:
        """LIST of undecodable entries, each a JSON object with the reason."""
        return f"{self.base}:dead-letters"

    @property
    def stats(self) -> str:
        """HASH of crawl-wide counters (pages, items, dedup results, dead letters...)."""
        return f"{self.base}:stats"

    # dedup
    @property
    def bloom_meta(self) -> str:
        """HASH describing the Bloom filter's layers."""
        return f"{self.base}:bloom"

    def bloom_chunk(self, layer: int, chunk: int) -> str:
        """STRING bitmap: one chunk of one layer."""
        return f"{self.base}:bloom:{layer}:{chunk}"

    # items
    @property
    def items(self) -> str:
        """STREAM of scraped items (JSON), the durable item sink."""
        return f"{self.base}:items"

    def patterns(self) -> tuple[str, str]:
        """SCAN patterns that together match every key of this crawl: its first
        shard's tag, then every other shard's."""
        # Braces are literal in glob patterns; only the crawl name needs escaping.
        escaped = re.sub(r"([*?\[\]\\])", r"\\\1", self.crawl)
        return f"{self.prefix}:{{{escaped}}}:*", f"{self.prefix}:{{{escaped}~*}}:*"


@functools.lru_cache(maxsize=4096)
def spread_tag(crawl: str, index: int) -> str:
    """The hash tag of shard *index* > 0 of a crawl whose shards are spread:
    ``crawl~index.s``, the first ``s`` whose slot lies at the start of shard *index*'s
    part of the slot space, counted from shard 0's slot (its tag is the crawl name).
    The parts follow the bit-reversed shard numbers (shard 1 half-way round, 2 and
    3 at a quarter and three quarters, ...), so the first N shards, whatever N, sit
    at nearly even distances round the 16,384 slots; a cluster whose masters hold
    equal runs of slots (as ``redis-cli --cluster create`` makes them) then gets
    nearly equal numbers of shards, where plain tags fall where their hash puts
    them. Computed once per process; every client computes the same."""
    level = index.bit_length()  # shards 2**(level-1) .. 2**level - 1 share a level
    reversed_index = int(f"{index:0{level}b}"[::-1], 2)
    width = REDIS_CLUSTER_HASH_SLOTS >> level  # the parts of this level, one per shard
    low = key_slot(f"{{{crawl}}}".encode()) + reversed_index * width
    # Near the start of its part (its first half, at most 512 slots: 1/32 of them),
    # so that even the first shards keep their distances; 16 slots at least.
    window = max(min(width // 2, 512), 16)
    salt = 0
    while (key_slot(f"{{{crawl}~{index}.{salt}}}".encode()) - low) % REDIS_CLUSTER_HASH_SLOTS >= window:
        salt += 1
    return f"{crawl}~{index}.{salt}"
