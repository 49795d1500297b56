"""Redis key names of one crawl.

Every key carries the crawl name as a Redis Cluster hash tag (``hermit:{crawl}:...``),
so all keys of a crawl live on one cluster slot (multi-key scripts stay legal) and
several crawls can share one Redis or one cluster.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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

    def __post_init__(self) -> None:
        validate_crawl_name(self.crawl)

    @property
    def base(self) -> str:
        """The common part: ``<prefix>:{<crawl>}``."""
        return f"{self.prefix}:{{{self.crawl}}}"

    # request queue
    @property
    def priorities(self) -> str:
        """ZSET of the priorities that have a non-empty queue list (score = priority)."""
        return f"{self.base}:priorities"

    def queue(self, priority: int) -> str:
        """LIST of encoded requests of one priority."""
        return f"{self.base}:queue:{priority}"

    @property
    def workers(self) -> str:
        """ZSET of live workers, score = lease deadline in milliseconds (Redis TIME)."""
        return f"{self.base}:workers"

    def leases(self, worker: str) -> str:
        """HASH of one worker's leased requests: lease id -> '<priority> <payload>'."""
        return f"{self.base}:leases:{worker}"

    def flushed(self, worker: str) -> str:
        """STRING: sequence number of the last write batch of one worker that landed."""
        return f"{self.base}:flushed:{worker}"

    @property
    def lease_seq(self) -> str:
        """Counter giving unique lease ids."""
        return f"{self.base}:lease-seq"

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

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this crawl."""
        # Braces are literal in glob patterns; only the crawl name needs escaping.
        escaped = re.sub(r"([*?\[\]\\])", r"\\\1", self.crawl)
        return f"{self.prefix}:{{{escaped}}}:*"
