"""Scrapy add-on that turns a project's spiders into Hermit workers.

``ADDONS = {"hermit.addon.Addon": 0}`` plus ``HERMIT_REDIS_URL`` (or scrapy-redis'
``REDIS_URL``) is all a project needs; ``scrapy crawl myspider`` then runs as a
worker of the crawl named after the spider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hermit.settings import DEFAULT_SETTINGS

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.settings import BaseSettings

SCHEDULER = "hermit.worker.scheduler.HermitScheduler"
# Late in the item pipeline, so items are stored as the user's pipelines left them.
ITEM_SINK_ORDER = 900
# Next to the download handlers, so it sees each raw response and error before the
# retry and redirect middlewares act on them.
HOST_SIGNALS_ORDER = 950


class Addon:
    """Sets the scheduler, the item sink and Hermit's defaults at "addon" priority.

    Then checks Hermit's settings (:func:`hermit.worker.preflight.check_settings`):
    a value a component would refuse raises ``InvalidSetting`` here, before the engine
    opens, so ``scrapy crawl`` and ``hermit worker`` fail at once with the setting's
    name, its value and what is expected.
    """

    def __init__(self, crawler: Crawler | None = None) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> Addon:
        return cls(crawler)

    def update_settings(self, settings: BaseSettings) -> None:
        settings.set("SCHEDULER", SCHEDULER, "addon")
        from hermit.items.sink import RedisItemSink
        from hermit.settings import read

        if read(settings, "HERMIT_ITEMS_ENABLED"):
            settings.set_in_component_priority_dict("ITEM_PIPELINES", RedisItemSink, ITEM_SINK_ORDER)
        # The telnet console and Scrapy 2.19's remote control are remote Python shells
        # (the latter also writes a job file under $HOME, which a read-only container
        # root doesn't allow); a project can still turn them on explicitly.
        settings.set("TELNETCONSOLE_ENABLED", False, "addon")
        settings.set("REMOTE_CONTROL_ENABLED", False, "addon")
        # Metrics and leak diagnostics over HTTP take the telnet console's place.
        from hermit.observability.diagnostics import DiagnosticsExtension
        from hermit.observability.metrics import MetricsExtension

        settings.set_in_component_priority_dict("EXTENSIONS", MetricsExtension, 0)
        settings.set_in_component_priority_dict("EXTENSIONS", DiagnosticsExtension, 0)
        from hermit.worker.drain_deadline import DrainDeadline
        from hermit.worker.memory_budget import MemoryBudget

        settings.set_in_component_priority_dict("EXTENSIONS", MemoryBudget, 0)
        settings.set_in_component_priority_dict("EXTENSIONS", DrainDeadline, 0)
        # Fleet-wide politeness: what responses say about their hosts (429/503, errors)
        # and robots.txt Crawl-delay reach every worker through the frontier.
        from hermit.worker.host_signals import HostSignalsMiddleware, RobotsCrawlDelay

        settings.set_in_component_priority_dict("DOWNLOADER_MIDDLEWARES", HostSignalsMiddleware, HOST_SIGNALS_ORDER)
        settings.set_in_component_priority_dict("EXTENSIONS", RobotsCrawlDelay, 0)
        # scrapy-redis spiders (RedisSpider, RedisCrawlSpider) read their start URLs'
        # key through Hermit's dedup and queue; other spiders are left alone.
        from hermit.worker.redis_start_urls import RedisStartUrls

        settings.set_in_component_priority_dict("EXTENSIONS", RedisStartUrls, 0)
        # Crawl-wide page and item counts in Redis, and the limits on them.
        from hermit.worker.crawl_limits import CrawlLimits

        settings.set_in_component_priority_dict("EXTENSIONS", CrawlLimits, 0)
        for name, value in DEFAULT_SETTINGS.items():
            settings.set(name, value, "default")
        # Scrapy creates the spider before it applies add-ons, so its name (the
        # default crawl name) is known here.
        spider = getattr(self.crawler, "spider", None)
        if spider is not None:
            from hermit.worker.preflight import check_settings

            check_settings(settings, spider.name)
