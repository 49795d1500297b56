"""Crawl-wide limits: the whole crawl stops after so many pages or items, over every worker.

Scrapy's ``CLOSESPIDER_PAGECOUNT`` and ``CLOSESPIDER_ITEMCOUNT`` count inside one
process, so on Hermit each worker stops at its own count. This extension counts in
the crawl's Redis instead: every worker adds its pages (responses received, what
``CLOSESPIDER_PAGECOUNT`` counts) and items (items that left the item pipelines,
what ``CLOSESPIDER_ITEMCOUNT`` counts) to the crawl's counters, atomically, and
stops once a total reaches ``HERMIT_CRAWL_PAGECOUNT`` or ``HERMIT_CRAWL_ITEMCOUNT``.
Stopping is Scrapy's own close: no new requests, in-flight ones finish, unstarted
ones go back to the queue. What is queued stays queued, and the counts stay in Redis,
so a later run with a higher limit carries on where this one stopped.

With a page limit each response is counted at once, before the worker can start
another request, so the crawl fetches at most what every worker had in flight when
the limit was reached (``CONCURRENT_REQUESTS`` per worker) beyond it. Items are
counted once per turn of the reactor. A worker that counts nothing itself learns of
the limit within ``CHECK_SECONDS``; one that starts after it closes at once, before
it takes a request.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import redis
from scrapy import signals

from hermit.redis_client import connect, worker_timeouts
from hermit.settings import crawl_limits
from hermit.worker import engine_hooks
from hermit.worker.redis_health import RedisHealth
from hermit.worker.exit_codes import CRAWL_LIMIT_REASONS
from hermit.worker.session import session_of

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from twisted.internet.task import LoopingCall

    from hermit.keys import CrawlKeys

logger = logging.getLogger(__name__)

#: The crawl's counters (fields of its stats HASH, shown by ``hermit status``).
PAGES = "pages_fetched"
ITEMS = "items_scraped"
#: Finish reasons, named as Scrapy names CLOSESPIDER_PAGECOUNT's ``closespider_pagecount``.
PAGECOUNT_REASON, ITEMCOUNT_REASON = CRAWL_LIMIT_REASONS
#: How often a worker with a limit reads the crawl's counts when it has none to add.
CHECK_SECONDS = 0.5
#: How often counts are added without a limit (they are only shown then).
COUNT_SECONDS = 1.0


class CrawlLimits:
    """Counts the crawl's pages and items in its Redis; stops the worker at a crawl-wide limit.

    Settings: ``HERMIT_CRAWL_PAGECOUNT``, ``HERMIT_CRAWL_ITEMCOUNT`` (0, the default: no
    limit; the counts are kept anyway). Needs the Hermit scheduler.

    Crawl-wide counters (``hermit status``): ``pages_fetched``, ``items_scraped``, and
    ``closed_crawl_pagecount`` / ``closed_crawl_itemcount``: workers that stopped at
    the limit. Stats: ``hermit/crawl/pages_fetched``, ``hermit/crawl/items_scraped``
    (the crawl's totals as this worker last read them). Finish reasons:
    ``crawl_pagecount``, ``crawl_itemcount``.
    """

    def __init__(self, crawler: Crawler, pagecount: int = 0, itemcount: int = 0) -> None:
        self.crawler = crawler
        self.limits = {PAGES: (pagecount, PAGECOUNT_REASON, "HERMIT_CRAWL_PAGECOUNT"),
                       ITEMS: (itemcount, ITEMCOUNT_REASON, "HERMIT_CRAWL_ITEMCOUNT")}
        self.limited = bool(pagecount or itemcount)
        self.pending = {PAGES: 0, ITEMS: 0}
        self.client: redis.Redis | None = None
        self.keys: CrawlKeys | None = None
        self.health = RedisHealth()
        self.stopping = False
        self._call: Any = None
        self._task: LoopingCall | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.response_received, signal=signals.response_received)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CrawlLimits:
        limits = crawl_limits(crawler.settings)
        return cls(crawler, limits.pagecount, limits.itemcount)

    def spider_opened(self, spider: Spider) -> None:
        session = session_of(self.crawler)
        if session is None:
            if self.limited:
                logger.error("HERMIT_CRAWL_PAGECOUNT and HERMIT_CRAWL_ITEMCOUNT need the Hermit scheduler; "
                             "they are ignored")
            return
        config = session.config
        # A client of its own: the last counts are added after the scheduler has closed.
        self.client = connect(config.redis_url, **worker_timeouts(config.redis_socket_timeout_seconds))
        self.keys = session.keys
        self.health = RedisHealth(config.redis_retry_max_seconds)
        if not self.limited:
            return
        from twisted.internet import reactor
        from twisted.internet.task import LoopingCall

        reached = self.add_counts(check=False)
        if reached:  # the crawl was at its limit before this worker started: take nothing
            logger.info("The crawl is at its limit (%s): this worker stops before it takes a request",
                        self._describe(reached))
            engine = self.crawler.engine
            if engine is not None:
                engine.pause()  # until the close starts, the engine leases nothing
            # Not while the engine is still opening the spider.
            reactor.callLater(0, self._close, reached)
        self._task = LoopingCall(self.add_counts)
        self._task.start(CHECK_SECONDS, now=False)

    def spider_closed(self, spider: Spider, reason: str) -> None:
        if self._task is not None and self._task.running:
            self._task.stop()
        if self._call is not None and self._call.active():
            self._call.cancel()
        if self.client is None:
            return
        self.health.retry_at = 0.0  # one last try, outage or not
        self.add_counts(check=False)
        if any(self.pending.values()):
            logger.warning("Redis unreachable at close: %d pages and %d items of this worker are not counted "
                           "in the crawl's totals", self.pending[PAGES], self.pending[ITEMS])
        self.client.close()

    def response_received(self, response: Response, request: Request, spider: Spider) -> None:
        self.pending[PAGES] += 1
        if self.limits[PAGES][0]:
            self.add_counts()  # at once: the engine must not start another request first
        else:
            self._schedule(CHECK_SECONDS if self.limited else COUNT_SECONDS)

    def item_scraped(self, item: Any, response: Response, spider: Spider) -> None:
        self.pending[ITEMS] += 1
        self._schedule(0.0 if self.limits[ITEMS][0] else CHECK_SECONDS if self.limited else COUNT_SECONDS)

    def _schedule(self, delay: float) -> None:
        if self.client is None:
            return
        if self._call is not None and self._call.active():
            if self._call.getTime() - self._call.seconds() > delay:
                self._call.reset(delay)
            return
        from twisted.internet import reactor

        self._call = reactor.callLater(delay, self.add_counts)

    def add_counts(self, check: bool = True) -> str | None:
        """Add this worker's new counts to the crawl's (one transaction) and read the totals.

        Return the finish reason of a limit the totals reached, else None; with
        *check*, a limit reached starts closing the spider. While Redis can't be
        reached the counts are kept for the next try (and None is returned).
        """
        if self.client is None or self.keys is None:
            return None
        if not self.health.available():
            self._schedule(self.health.delay())
            return None
        added = dict(self.pending)
        pipe = self.client.pipeline(transaction=True)
        for counter, amount in added.items():
            pipe.hincrby(self.keys.stats, counter, amount)
        try:
            totals = dict(zip(added, (int(total) for total in pipe.execute())))
        except redis.RedisError as exc:
            self._schedule(self.health.failed(exc, "adding to the crawl's page and item counts"))
            return None
        finally:
            pipe.reset()
        self.health.succeeded()
        for counter, amount in added.items():
            self.pending[counter] -= amount
            self.crawler.stats.set_value(f"hermit/crawl/{counter}", totals[counter])
        for counter, (limit, reason, _) in self.limits.items():
            if limit and totals[counter] >= limit:
                if check and not self.stopping:
                    logger.info("The crawl reached its limit (%s): this worker stops, what is queued stays queued",
                                self._describe(reason))
                    self._close(reason)
                return reason
        return None

    def _describe(self, reason: str) -> str:
        """``HERMIT_CRAWL_PAGECOUNT = 30, pages_fetched 34`` for the limit whose reason is *reason*."""
        counter, (limit, _, setting) = next((c, spec) for c, spec in self.limits.items() if spec[1] == reason)
        return f"{setting} = {limit}, {counter} {self.crawler.stats.get_value(f'hermit/crawl/{counter}')}"

    def _close(self, reason: str) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.client is not None and self.keys is not None:
            try:
                self.client.hincrby(self.keys.stats, f"closed_{reason}", 1)
            except redis.RedisError as exc:
                logger.warning("Could not count this worker's stop in Redis: %s", exc)
        engine = self.crawler.engine
        if engine is not None:
            # Scrapy starts the close on the next turn of the loop (asyncio reactor): the
            # engine must take no request in between. In-flight ones still finish.
            engine.pause()
        engine_hooks.close_spider(self.crawler, reason)
