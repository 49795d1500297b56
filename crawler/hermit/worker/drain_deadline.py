"""A drain that takes too long ends at once, with nothing lost.

Scrapy's graceful close (SIGTERM, the memory budget, CloseSpider) waits for every
in-flight request, and a download can hang for DOWNLOAD_TIMEOUT (3 minutes by
default) — longer than a pod's grace period or a supervisor's patience. Once the
engine has been closing for ``HERMIT_DRAIN_TIMEOUT_SECONDS``, the worker writes what is
pending, returns every lease it still holds and exits with status 8.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from scrapy import signals

from hermit.settings import memory_limits
from hermit.worker import engine_hooks
from hermit.worker.exit_now import exit_now
from hermit.worker.exit_codes import EXIT_DRAIN_TIMEOUT

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from twisted.internet.task import LoopingCall

logger = logging.getLogger(__name__)

CHECK_SECONDS = 0.5


class DrainDeadline:
    def __init__(self, crawler: Crawler, timeout_seconds: float) -> None:
        self.crawler = crawler
        self.timeout_seconds = timeout_seconds
        self.closing_since: float | None = None
        self._task: LoopingCall | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DrainDeadline:
        return cls(crawler, memory_limits(crawler.settings).drain_timeout_seconds)

    def spider_opened(self, spider: object) -> None:
        from twisted.internet.task import LoopingCall

        self._task = LoopingCall(self.check)
        self._task.start(CHECK_SECONDS, now=False)

    def spider_closed(self, spider: object) -> None:
        if self._task is not None and self._task.running:
            self._task.stop()

    def check(self) -> None:
        if not engine_hooks.is_closing(self.crawler):
            return
        now = time.monotonic()
        if self.closing_since is None:
            self.closing_since = now
            logger.info("Draining: in-flight requests have %.0fs to finish", self.timeout_seconds)
        elif now - self.closing_since >= self.timeout_seconds:
            self.crawler.stats.inc_value("hermit/recycles/drain_timeout")
            exit_now(self.crawler, EXIT_DRAIN_TIMEOUT,
                     f"The drain did not end within {self.timeout_seconds:.0f}s")
