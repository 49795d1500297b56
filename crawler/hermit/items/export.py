"""Export a crawl's durable item stream to a JSON Lines file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import IO

import redis

from hermit.keys import CrawlKeys

logger = logging.getLogger(__name__)


def export_items(
    client: redis.Redis,
    keys: CrawlKeys,
    out: IO[bytes],
    *,
    batch_size: int = 5000,
    after: bytes | str = "-",
    on_progress: Callable[[int], None] | None = None,
) -> tuple[int, bytes | None]:
    """Write every item of the stream after id *after* to *out*, one JSON per line.

    Returns ``(items written, id of the last one)``; pass that id as *after* to
    continue later. The stream is not modified.
    """
    written = 0
    last_id: bytes | None = None
    start: bytes | str = after if after == "-" else b"(" + (after.encode() if isinstance(after, str) else after)
    while True:
        entries = client.xrange(keys.items, min=start, max="+", count=batch_size)
        if not entries:
            return written, last_id
        for entry_id, fields in entries:
            out.write(fields[b"item"] + b"\n")
            last_id = entry_id
        written += len(entries)
        if on_progress is not None:
            on_progress(written)
        start = b"(" + last_id
