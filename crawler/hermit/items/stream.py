"""A worker's write batch of items appended to the crawl's stream, once however often
it is sent (``add_items.lua``): the queue runs it in the same transaction as the
acks of the requests that produced the items."""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources

from hermit.keys import CrawlKeys

ADD_ITEMS_LUA = resources.files("hermit.items").joinpath("add_items.lua").read_text()

#: How long the number of a worker's last landed write batch is kept.
FLUSH_MARKER_SECONDS = 7 * 24 * 3600


def add_items_call(keys: CrawlKeys, worker_id: str, items: Sequence[bytes],
                   batch: int) -> tuple[list[str], list[object]]:
    """KEYS and ARGV of ``add_items.lua`` for *worker_id*'s write batch number *batch*."""
    return [keys.items, keys.flushed(worker_id)], [batch, FLUSH_MARKER_SECONDS, *items]
