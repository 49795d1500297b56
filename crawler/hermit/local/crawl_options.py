"""What a local crawl is started with (:class:`LocalCrawlOptions`) and what it reports (:class:`LocalCrawlResult`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from hermit.crawl_status import CrawlStatus
from hermit.local.pool import Recycle
from hermit.seeding import SeedReport
from hermit.worker.exit_codes import EXIT_FAILED
from hermit.worker.run import DEMO_SPIDER

logger = logging.getLogger(__name__)


@dataclass
class LocalCrawlOptions:
    spider: str = DEMO_SPIDER
    workers: int = 3
    redis_url: str | None = None
    crawl: str | None = None
    seeds: list[tuple[int, str]] = field(default_factory=list)
    demo_pages: int = 3000
    output: Path | None = Path("items.jsonl")
    log_dir: Path | None = None
    idle_close_seconds: float = 3.0
    lease_timeout_seconds: float = 10.0
    spider_args: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    refresh_seconds: float = 0.5
    # Recycling: the pool recycles workers whose RSS is over memory_budget_bytes
    # (None: no budget), at most max_concurrent_recycles at once, none younger than
    # min_worker_age_seconds. Each worker also gets its own soft budget and hard limit
    # above the pool's budget (WORKER_SOFT_BUDGET_RATIO, WORKER_HARD_LIMIT_RATIO): the
    # safety net while the pool holds a recycle back.
    memory_budget_bytes: int | None = None
    max_concurrent_recycles: int = 1
    min_worker_age_seconds: float = 10.0
    drain_timeout_seconds: float = 60.0
    # Start a recycled worker's replacement before the old one drains (one extra
    # process per recycle in progress, at most max_concurrent_recycles).
    warm_spare: bool = True
    # Where the crawl's state lives (see hermit.local.state); None: nowhere (an
    # embedded Redis then keeps nothing, and the crawl can't be resumed).
    state_dir: Path | None = None
    fresh: bool = False  # forget what state_dir holds and start over


class CrawlFailed(RuntimeError):
    """The crawl can't go on, for a reason a restart would not fix; ``exit_code`` for the shell."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        #: The crawl's summary when it failed after the workers ran (None: before anything started).
        self.result: LocalCrawlResult | None = None


@dataclass
class LocalCrawlResult:
    crawl: str
    status: CrawlStatus | None  # None when Redis could not be read at the end
    seconds: float
    items_written: int  # items in the output file, earlier runs' included
    output: Path | None
    log_dir: Path
    seed_report: SeedReport | None
    restarts: int
    peak_rss_bytes: dict[int, int]
    events: list[str]
    target_url: str | None
    recycles: list[Recycle] = field(default_factory=list)
    exit_codes: dict[int, list[int]] = field(default_factory=dict)  # per worker slot
    # How the crawl ended: "finished" (nothing left to do), or "interrupted" by
    # `stopped_by` (SIGINT/SIGTERM) or `failure`; an interrupted crawl with a
    # state directory resumes when run again.
    outcome: str = "finished"
    stopped_by: int | None = None
    failure: CrawlFailed | None = None
    state_dir: Path | None = None
    resumed: bool = False
    service_restarts: dict[str, int] = field(default_factory=dict)
