"""A worker's memory budget: drain over the soft budget, leave at once over the hard limit.

Scrapy's MEMUSAGE closes the spider over its limit; this does what a pool of
recyclable workers needs instead. Every ``HERMIT_MEMORY_CHECK_SECONDS`` it reads the
process's resident set size (what the kernel's OOM killer weighs):

- over ``HERMIT_MEMORY_BUDGET_BYTES`` (soft): the spider closes the way SIGTERM closes
  it — no new requests, unstarted ones go back to the queue at once, in-flight ones
  finish (within ``HERMIT_DRAIN_TIMEOUT_SECONDS``, see :mod:`drain_deadline`), items
  and acks are written — and the worker exits with status 6 so its supervisor starts a
  fresh one;
- over ``HERMIT_MEMORY_HARD_LIMIT_BYTES``: the last line before the OOM killer. The
  worker writes what is pending, returns every lease it holds and exits with status 7
  at once.

Each recycle is counted (stats ``hermit/recycles/<reason>`` and the crawl's shared
counter ``recycles_<reason>``) and logged with the RSS, the budget and the worker's age.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import psutil
from scrapy import signals
from scrapy.exceptions import NotConfigured

from hermit.settings import memory_limits
from hermit.worker import engine_hooks
from hermit.worker.exit_now import exit_now
from hermit.worker.exit_codes import EXIT_MEMORY_HARD_LIMIT, MEMORY_BUDGET_REASON
from hermit.worker.session import session_of

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from twisted.internet.task import LoopingCall

logger = logging.getLogger(__name__)

MiB = 2**20


class MemoryBudget:
    def __init__(self, crawler: Crawler, budget_bytes: int, hard_limit_bytes: int, check_seconds: float) -> None:
        self.crawler = crawler
        self.budget_bytes = budget_bytes
        self.hard_limit_bytes = hard_limit_bytes
        self.check_seconds = check_seconds
        self.process = psutil.Process()
        self.started = time.monotonic()
        self.draining = False
        self.peak_rss_bytes = 0
        self._task: LoopingCall | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MemoryBudget:
        limits = memory_limits(crawler.settings)
        if not limits.budget_bytes and not limits.hard_limit_bytes:
            raise NotConfigured("no memory budget set")
        return cls(crawler, limits.budget_bytes, limits.hard_limit_bytes, limits.check_seconds)

    def spider_opened(self, spider: object) -> None:
        from twisted.internet.task import LoopingCall

        stats = self.crawler.stats
        if self.budget_bytes:
            stats.set_value("hermit/memory/soft_budget_bytes", self.budget_bytes)
        if self.hard_limit_bytes:
            stats.set_value("hermit/memory/hard_limit_bytes", self.hard_limit_bytes)
        self._task = LoopingCall(self.check)
        self._task.start(self.check_seconds, now=False)

    def spider_closed(self, spider: object) -> None:
        if self._task is not None and self._task.running:
            self._task.stop()
        self.crawler.stats.set_value("hermit/memory/peak_rss_bytes", self.peak_rss_bytes)

    def check(self) -> None:
        rss = self.process.memory_info().rss
        self.peak_rss_bytes = max(self.peak_rss_bytes, rss)
        if self.hard_limit_bytes and rss > self.hard_limit_bytes:
            self._count("hard_limit")
            exit_now(
                self.crawler, EXIT_MEMORY_HARD_LIMIT,
                f"RSS {rss / MiB:.0f} MiB is over the hard limit {self.hard_limit_bytes / MiB:.0f} MiB "
                f"after {self._age():.0f}s",
            )
        elif self.budget_bytes and rss > self.budget_bytes and not self.draining:
            self.draining = True
            self._count("memory_budget")
            logger.warning(
                "RSS %.0f MiB is over the memory budget %.0f MiB after %.0fs: draining (no new requests, "
                "unstarted ones returned, in-flight ones finish) and exiting to be replaced",
                rss / MiB, self.budget_bytes / MiB, self._age(),
            )
            engine_hooks.close_spider(self.crawler, MEMORY_BUDGET_REASON)

    def _count(self, reason: str) -> None:
        self.crawler.stats.inc_value(f"hermit/recycles/{reason}")
        session = session_of(self.crawler)
        if session is not None:
            session.count_crawl_wide(f"recycles_{reason}")

    def _age(self) -> float:
        return time.monotonic() - self.started

