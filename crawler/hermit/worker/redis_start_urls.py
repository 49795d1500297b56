"""scrapy-redis spiders' start URLs, read by Hermit workers while they crawl.

A scrapy-redis ``RedisSpider`` / ``RedisCrawlSpider`` reads its start-URL key
(``redis_key``, by default ``<name>:start_urls``, fed with LPUSH) only from its
``spider_idle`` handler, and from ``start_requests()``, which Scrapy 2.19's default
``start()`` no longer calls. On Hermit's scheduler the engine is idle only once the
whole crawl has been empty for ``HERMIT_IDLE_CLOSE_SECONDS`` (never, when it is 0),
so such a spider would never read its list; its idle handler would also keep the
worker open forever (``MAX_IDLE_TIME_BEFORE_CLOSE = 0``) and its requests skip the
duplicate filter (scrapy-redis makes them with ``dont_filter=True``).

This extension takes over: every ``HERMIT_REDIS_START_URLS_POLL_SECONDS`` it pops
batches from the spider's key with the spider's own ``fetch_data`` (so the list, set
or zset settings of scrapy-redis hold) and turns each entry into requests with the
spider's own ``make_request_from_data`` (so JSON and plain-URL entries, and any
override of it, behave as in scrapy-redis), then schedules them, through Hermit's
Bloom filter unless ``HERMIT_REDIS_START_URLS_DEDUP`` is off, and writes them to the
shared queue at once. The spider's own idle handler is disconnected: the worker
closes as any Hermit worker does (``HERMIT_IDLE_CLOSE_SECONDS``), once the key is
empty too. Spiders that are not scrapy-redis spiders are left alone.

Settings: ``HERMIT_REDIS_START_URLS_ENABLED`` (True), ``HERMIT_REDIS_START_URLS_POLL_SECONDS``
(1.0 s), ``HERMIT_REDIS_START_URLS_DEDUP`` (True). Stats:
``hermit/redis_start_urls/requests`` (requests scheduled from the key),
``hermit/redis_start_urls/invalid`` (entries no request could be made from; each is
logged and skipped).

An entry is popped before its requests reach the queue, as in scrapy-redis; they
are written in the same turn of the reactor, so only a worker killed in between
(or a Redis outage longer than the worker lives) loses that batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from scrapy import Request, signals
from scrapy.exceptions import DontCloseSpider, NotConfigured
from twisted.internet.task import LoopingCall

from hermit.setting_spec import Boolean, InvalidValue, Number, Setting
from hermit.worker import engine_hooks
from hermit.worker.session import session_of

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

ENABLED = Setting(
    "HERMIT_REDIS_START_URLS_ENABLED", True,
    "with the `RedisStartUrls` extension on, read a scrapy-redis spider's start-URL key while crawling "
    "([scrapy-redis](scrapy-redis.md))",
    parser=Boolean(),
)
POLL_SECONDS = Setting(
    "HERMIT_REDIS_START_URLS_POLL_SECONDS", 1.0, "how often the start-URL key is read",
    parser=Number(float, minimum=0.01, note="at most 100 reads a second"),
)
DEDUP = Setting(
    "HERMIT_REDIS_START_URLS_DEDUP", True,
    "start URLs go through the duplicate filter (a URL pushed again is not crawled again); False: each "
    "push is crawled, as scrapy-redis does",
    parser=Boolean(),
)
#: Most requests made from the key per poll, so one poll never holds a huge batch in memory.
MAX_REQUESTS_PER_POLL = 1000


def is_scrapy_redis_spider(spider: Spider) -> bool:
    """Whether *spider* reads start URLs the scrapy-redis way (its ``RedisMixin``)."""
    return all(callable(getattr(spider, name, None))
               for name in ("fetch_data", "make_request_from_data", "count_size", "spider_idle")) \
        and isinstance(getattr(spider, "redis_key", None), str)


class RedisStartUrls:
    """Reads a scrapy-redis spider's start-URL key into the crawl while the worker runs."""

    def __init__(self, crawler: Crawler, poll_seconds: float, dedup: bool) -> None:
        self.crawler = crawler
        self.poll_seconds = poll_seconds
        self.dedup = dedup
        self.stats = crawler.stats
        self.spider: Spider | None = None
        self._ticker: LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> RedisStartUrls:
        settings = crawler.settings
        try:
            enabled, poll_seconds, dedup = (setting.read(settings) for setting in (ENABLED, POLL_SECONDS, DEDUP))
        except InvalidValue as exc:
            raise NotConfigured(str(exc)) from None
        if not enabled:
            raise NotConfigured(f"{ENABLED.name} is off")
        extension = cls(crawler, poll_seconds, dedup)
        crawler.signals.connect(extension.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(extension.spider_closed, signal=signals.spider_closed)
        return extension

    def spider_opened(self, spider: Spider) -> None:
        if not is_scrapy_redis_spider(spider):
            logger.debug("%s is not a scrapy-redis spider: no start-URL key to read", spider.name)
            return
        self.spider = spider
        # Hermit decides when the worker is idle; the spider's handler would keep it open.
        self.crawler.signals.disconnect(spider.spider_idle, signal=signals.spider_idle)
        self.crawler.signals.connect(self.spider_idle, signal=signals.spider_idle)
        # Scrapy < 2.14 also starts the spider through scrapy-redis' start_requests(),
        # which pops the same key and ends its batch at the first bad entry: this
        # extension alone reads the key (start() has not been iterated yet here).
        spider.start_requests = lambda: iter(())
        self._ticker = LoopingCall(self.read)
        self._ticker.start(self.poll_seconds, now=True)
        logger.info("Reading start URLs from Redis key %r every %.1fs (%s)", spider.redis_key,
                    self.poll_seconds, "deduplicated" if self.dedup else "each push crawled")

    def spider_closed(self, spider: Spider) -> None:
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()

    def spider_idle(self, spider: Spider) -> None:
        """Keep the worker open while its key still holds entries."""
        if self.read():
            raise DontCloseSpider

    def read(self) -> int:
        """Pop and schedule what the key holds (up to MAX_REQUESTS_PER_POLL); return how many."""
        spider = self.spider
        if spider is None or engine_hooks.is_closing(self.crawler):
            return 0
        scheduled = 0
        try:
            while scheduled < MAX_REQUESTS_PER_POLL:
                entries = spider.fetch_data(spider.redis_key, spider.redis_batch_size)
                if not entries:
                    break
                for entry in entries:
                    for request in self._requests(spider, entry):
                        self.crawler.engine.crawl(request)
                        scheduled += 1
        except Exception as exc:  # Redis down: the next poll tries again
            logger.warning("Could not read start URLs from %r: %s", spider.redis_key, exc)
        if scheduled:
            self.stats.inc_value("hermit/redis_start_urls/requests", scheduled)
            self._write_now()
        return scheduled

    def _requests(self, spider: Spider, entry: bytes) -> Iterable[Request]:
        try:
            made: Any = spider.make_request_from_data(entry)
            requests = [made] if isinstance(made, Request) else list(made or ())
        except Exception as exc:
            requests = [exc]
        if not requests:
            requests = [ValueError("no request made from it (no URL?)")]
        for request in requests:
            if not isinstance(request, Request):
                self.stats.inc_value("hermit/redis_start_urls/invalid")
                logger.warning("Skipped start-URL entry %r of %r: %s", entry[:200], spider.redis_key,
                               request if isinstance(request, Exception) else f"made {request!r}, not a request")
                continue
            yield request.replace(dont_filter=False) if self.dedup and request.dont_filter else request

    def _write_now(self) -> None:
        """Send the scheduled requests to Redis now rather than a moment later."""
        session = session_of(self.crawler)
        if session is not None:
            session.outbox.flush()
