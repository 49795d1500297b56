"""The items file of a local crawl, written while it runs: each new item of the stream, once.

Workers make items durable in the crawl's Redis stream (with the ack of their page);
this appends the stream's new entries to a JSON Lines file as they come, and keeps a
cursor — the last entry written and the file's size then — in the state directory.
Lines reach the disk (fsync) before the cursor that counts them, so after any crash
the file holds at least what the cursor says; a resumed crawl cuts the file back to
the cursor's size (dropping lines written after the last cursor, which it writes
again) and appends from the entry after it. So the file never holds an entry twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO

import redis

from hermit.items.export import export_items
from hermit.keys import CrawlKeys
from hermit.local.state import ItemsCursor

logger = logging.getLogger(__name__)


class ItemsFile:
    """Appends a crawl's items to *path*; ``on_cursor(cursor)`` is called after each write reached the disk."""

    def __init__(self, path: Path, on_cursor: Callable[[ItemsCursor], None] | None = None) -> None:
        self.path = path
        self.on_cursor = on_cursor
        self.cursor = ItemsCursor(path=str(path.resolve()))
        self._out: IO[bytes] | None = None

    @property
    def items(self) -> int:
        """Items in the file (this run's and, when resumed, earlier runs')."""
        return self.cursor.items

    def open(self, resume_from: ItemsCursor | None) -> None:
        """Start a new file, or continue *resume_from* when it describes this very file."""
        if resume_from is not None and resume_from.path == self.cursor.path and self.path.exists():
            size = self.path.stat().st_size
            if size < resume_from.size:
                # Someone cut the file: what it lacks can't be told apart, so write it all again.
                logger.warning("%s is shorter than this crawl wrote it; writing every item again", self.path)
            else:
                self.cursor = ItemsCursor(**vars(resume_from))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        out = self.path.open("r+b" if self.path.exists() else "wb")
        out.truncate(self.cursor.size)
        out.seek(self.cursor.size)
        self._out = out

    def catch_up(self, client: redis.Redis, keys: CrawlKeys) -> int:
        """Append the stream's entries after the cursor; return how many.

        A Redis error leaves the file as the cursor says (what this call wrote is cut
        off again) and propagates.
        """
        out = self._out
        assert out is not None, "open() first"
        try:
            written, last_id = export_items(client, keys, out, after=self.cursor.last_id or "-")
        except BaseException:
            out.truncate(self.cursor.size)
            out.seek(self.cursor.size)
            raise
        if not written:
            return 0
        out.flush()
        os.fsync(out.fileno())
        self.cursor.last_id = last_id.decode() if isinstance(last_id, bytes) else last_id
        self.cursor.size = out.tell()
        self.cursor.items += written
        if self.on_cursor is not None:
            self.on_cursor(self.cursor)
        return written

    def close(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
