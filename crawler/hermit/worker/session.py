"""What one crawler's Hermit parts share while its spider runs: its checked settings,
its crawl's keys and Redis client, the outbox that writes for it, and the few things
the scheduler does on the others' behalf.

The scheduler opens the session when the spider opens and ends it when it closes;
the item sink, the metrics, the memory budget, the crawl limits, the host signals and
the exit-now code look the session up by crawler (None while no Hermit scheduler
runs) instead of reaching into the scheduler.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis
    from scrapy import Request
    from scrapy.crawler import Crawler

    from hermit.keys import CrawlKeys
    from hermit.settings import WorkerConfig
    from hermit.worker.outbox import Outbox


@dataclass(frozen=True)
class WorkerSession:
    """The shared parts of one open Hermit worker (see the module's doc).

    ``download_finished(request, outcome, retry_after_seconds)``: frees the request's
    host slot fleet-wide; ``count_crawl_wide(counter, amount)``: adds to a counter of
    the whole crawl (best effort); ``close(reason)``: writes what is pending and
    gives the leases back, before the process exits at once.
    """

    config: WorkerConfig
    keys: CrawlKeys
    client: redis.Redis
    outbox: Outbox
    download_finished: Callable[[Request, str, float], None]
    count_crawl_wide: Callable[..., None]
    close: Callable[[str], None]


_SESSIONS: weakref.WeakKeyDictionary[Crawler, WorkerSession] = weakref.WeakKeyDictionary()


def open_session(crawler: Crawler, session: WorkerSession) -> None:
    _SESSIONS[crawler] = session


def end_session(crawler: Crawler) -> None:
    _SESSIONS.pop(crawler, None)


def session_of(crawler: Crawler) -> WorkerSession | None:
    """The open session of *crawler*, if a Hermit scheduler runs it."""
    return _SESSIONS.get(crawler)
