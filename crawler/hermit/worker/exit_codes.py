"""A worker process's exit codes, and the finish reasons of its spider that decide them.

The local pool and the operator tell from the code whether a worker is done, must be
replaced, or can't run as configured.
"""

from __future__ import annotations

EXIT_FINISHED = 0
EXIT_FAILED = 1
EXIT_REDIS_UNAVAILABLE = 3
EXIT_CONFIG = 4
#: Stopped before the crawl ended (SIGTERM, SIGINT): a replacement should take over.
EXIT_STOPPED = 5
#: Drained and stopped because it went over its memory budget: replace it.
EXIT_MEMORY_BUDGET = 6
#: Stopped at once over its hard memory limit (leases returned): replace it.
EXIT_MEMORY_HARD_LIMIT = 7
#: A drain did not end within HERMIT_DRAIN_TIMEOUT_SECONDS (leases returned).
EXIT_DRAIN_TIMEOUT = 8

#: The finish reason of a spider closed by the memory budget.
MEMORY_BUDGET_REASON = "memory_budget"
#: The finish reasons of a worker stopped at a crawl-wide limit (HERMIT_CRAWL_PAGECOUNT,
#: HERMIT_CRAWL_ITEMCOUNT): its part is done, like a worker whose crawl finished.
CRAWL_LIMIT_REASONS = ("crawl_pagecount", "crawl_itemcount")
#: Scrapy's finish reasons of a spider closed at a CLOSESPIDER_* limit start with this:
#: that worker's part is done too (the limits are per worker).
CLOSESPIDER_REASON_PREFIX = "closespider_"


def reached_a_limit(reason: str | None) -> bool:
    """True if *reason* says the spider closed at a crawl-wide or a CLOSESPIDER_* limit."""
    return reason in CRAWL_LIMIT_REASONS or (reason or "").startswith(CLOSESPIDER_REASON_PREFIX)

