"""Everything ``hermit status`` and the live view show about a crawl, read at once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import redis

from hermit.dedup.bloom import BloomInfo, ShardedBloomFilter
from hermit.keys import CrawlKeys
from hermit.queue.redis_queue import QueueStatus, read_status
from hermit.queue.shards import crawl_shards


@dataclass
class CrawlStatus:
    queue: QueueStatus
    bloom: BloomInfo | None
    items: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "queue": asdict(self.queue),
            "bloom": asdict(self.bloom) if self.bloom else None,
            "items": self.items,
        }


def read_crawl_status(client: redis.Redis, keys: CrawlKeys) -> CrawlStatus:
    bloom = ShardedBloomFilter(client, keys, crawl_shards(client, keys)).info()
    return CrawlStatus(queue=read_status(client, keys), bloom=bloom, items=client.xlen(keys.items))
