"""A local crawl's state directory: what makes ``hermit crawl`` resumable, like Scrapy's JOBDIR.

Layout::

    STATE/redis/       the embedded Redis' data (append-only file): queue, leases, filter, items
    STATE/state.json   what the crawl was started with, and how far the items file is written
    STATE/lock         held (flock) by the one ``hermit crawl`` using the directory

``state.json`` is replaced whole (write, fsync, rename), so a crash leaves the old
or the new one, never half of either. A crawl that finishes removes the directory:
the next run of the same command starts a new crawl. One interrupted (Ctrl-C,
SIGTERM, a fatal error, SIGKILL) keeps it, and the same command resumes it.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

logger = logging.getLogger(__name__)

#: Where ``hermit crawl`` keeps a crawl's state unless told (relative to the working directory).
DEFAULT_STATE_ROOT = Path(".hermit")
FORMAT_VERSION = 1


class StateError(RuntimeError):
    """The state directory can't be used as asked (in use, or from another kind of crawl)."""


@dataclass
class ItemsCursor:
    """How far the items file is written: *size* bytes of *path*, holding the stream up to *last_id*."""

    path: str
    last_id: str | None = None
    size: int = 0
    items: int = 0


@dataclass
class SavedCrawl:
    """The contents of ``state.json``."""

    crawl: str
    spider: str
    version: int = FORMAT_VERSION
    demo_pages: int | None = None  # the demo site served, if any: same size and port on resume
    demo_port: int | None = None
    redis_pid: int | None = None  # the embedded Redis, with its start time (pids are reused)
    redis_started: float | None = None
    items: ItemsCursor | None = None
    runs: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SavedCrawl:
        items = data.pop("items", None)
        known = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        saved = cls(**known)
        saved.items = ItemsCursor(**items) if items else None
        return saved


class StateDir:
    """One crawl's state directory; :meth:`lock` before anything else."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock: IO[bytes] | None = None

    @property
    def redis_dir(self) -> Path:
        return self.path / "redis"

    @property
    def state_file(self) -> Path:
        return self.path / "state.json"

    def lock(self) -> None:
        """Take the directory for this process; StateError if another ``hermit crawl`` has it.

        The kernel drops the lock when this process ends however it ends, so a crash
        never leaves the directory locked. Children don't inherit it (close_fds).
        """
        self.path.mkdir(parents=True, exist_ok=True)
        handle = (self.path / "lock").open("a+b")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().decode(errors="replace").strip() or "?"
            handle.close()
            raise StateError(f"another hermit crawl (pid {holder}) is using {self.path}") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._lock = handle

    def unlock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def load(self) -> SavedCrawl | None:
        """The saved crawl, or None when the directory holds none (a new crawl)."""
        try:
            data = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(f"{self.state_file} is unreadable ({exc}); --fresh starts over") from None
        if data.get("version") != FORMAT_VERSION:
            raise StateError(f"{self.state_file} is of another Hermit version; --fresh starts over")
        return SavedCrawl.from_json(data)

    def save(self, saved: SavedCrawl) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        partial = self.state_file.with_name(self.state_file.name + ".tmp")
        with partial.open("w") as out:
            json.dump(asdict(saved), out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, self.state_file)

    def clear(self) -> None:
        """Remove what the directory holds (a new crawl starts here), keeping the lock."""
        if not self.path.exists():
            return
        for child in self.path.iterdir():
            if child.name == "lock":
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    def remove(self) -> None:
        """Remove the whole directory (the crawl finished), and the lock with it."""
        self.unlock()
        shutil.rmtree(self.path, ignore_errors=True)
