"""Item pipeline that makes items durable in the crawl's Redis stream.

Each item is appended (as JSON) to ``hermit:{crawl}:items`` through the worker's
outbox, in the same transaction as — and before — the ack of the request that
produced it; a worker killed at any point therefore loses no item (at worst an
item is written twice, when its page is fetched again). Export the stream with
``hermit items export``. Scrapy's ``FEEDS`` keep working beside it.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured
from scrapy.utils.serialize import ScrapyJSONEncoder

from hermit.settings import read
from hermit.worker.session import session_of

if TYPE_CHECKING:
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class RedisItemSink:
    """Appends every item to the crawl's Redis stream.

    Settings: ``HERMIT_ITEMS_ENABLED`` (default True). Needs the Hermit scheduler.
    Stats: ``hermit/items/written``.
    """

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler
        self.encoder = ScrapyJSONEncoder(ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedisItemSink:
        if not read(crawler.settings, "HERMIT_ITEMS_ENABLED"):
            raise NotConfigured("HERMIT_ITEMS_ENABLED is off")
        return cls(crawler)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        session = session_of(self.crawler)
        if session is None:
            raise RuntimeError(
                "RedisItemSink needs SCHEDULER = 'hermit.worker.scheduler.HermitScheduler'"
            )
        # The encoder turns any item (and items nested in it) into its fields, as
        # ItemAdapter(item).asdict() would, without copying a dict item first.
        session.outbox.add_item(self.encoder.encode(item).encode())
        self.crawler.stats.inc_value("hermit/items/written")
        return item


def decode_item(fields: dict[bytes, bytes]) -> dict[str, Any]:
    """The item of one stream entry."""
    return json.loads(fields[b"item"])
