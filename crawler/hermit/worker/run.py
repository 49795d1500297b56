"""Run one Hermit worker in this process: a Scrapy crawl with the Hermit add-on on.

The spider is a name from the current Scrapy project (found through ``scrapy.cfg``,
as ``scrapy crawl`` does), or ``demo`` for the built-in demo spider.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from scrapy.crawler import CrawlerProcess
from scrapy.settings import Settings
from scrapy.utils.project import get_project_settings

from hermit.worker.exit_codes import (
    EXIT_CONFIG,
    EXIT_FAILED,
    EXIT_FINISHED,
    EXIT_MEMORY_BUDGET,
    EXIT_REDIS_UNAVAILABLE,
    EXIT_STOPPED,
    MEMORY_BUDGET_REASON,
    reached_a_limit,
)

logger = logging.getLogger(__name__)

DEMO_SPIDER = "demo"


@dataclass
class WorkerOptions:
    spider: str = DEMO_SPIDER
    redis_url: str | None = None
    crawl: str | None = None
    spider_args: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def build_settings(options: WorkerOptions) -> Settings:
    """Project settings (if any) + the Hermit add-on + command-line overrides."""
    settings = get_project_settings() if os.environ.get("SCRAPY_SETTINGS_MODULE") or _in_project() else Settings()
    addons = settings.getdict("ADDONS")
    addons.setdefault("hermit.addon.Addon", 0)
    settings.set("ADDONS", addons, "cmdline")
    if options.redis_url:
        settings.set("HERMIT_REDIS_URL", options.redis_url, "cmdline")
    if options.crawl:
        settings.set("HERMIT_CRAWL", options.crawl, "cmdline")
    for name, value in options.settings.items():
        settings.set(name, value, "cmdline")
    return settings


def _in_project() -> bool:
    from scrapy.utils.conf import closest_scrapy_cfg

    return bool(closest_scrapy_cfg())


def check_redis_reachable(settings: Settings) -> str | None:
    """None if the configured Redis answers a PING, else the error to report."""
    import redis

    from hermit.redis_client import WORKER_PREFLIGHT_TIMEOUTS, connect
    from hermit.redis_url import redact_url
    from hermit.settings import redis_url

    url = redis_url(settings)
    try:
        client = connect(url, **WORKER_PREFLIGHT_TIMEOUTS)
    except ValueError as exc:
        return f"invalid Redis URL {redact_url(url)}: {exc}"
    except redis.RedisError as exc:
        return f"cannot reach Redis at {redact_url(url)}: {exc}"
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"cannot reach Redis at {redact_url(url)}: {exc}"
    finally:
        client.close()
    return None


def run_worker(options: WorkerOptions) -> int:
    """Crawl until the spider closes; return the process exit code."""
    from hermit.worker.scheduler import RedisUnavailable

    settings = build_settings(options)
    process = CrawlerProcess(settings)
    from hermit.settings import InvalidSetting
    from hermit.worker.preflight import UnknownSpider, check_settings, find_spider

    # An unknown spider or a setting the worker can't use ends it here, with the
    # configuration status, before any engine opens.
    try:
        spider = find_spider(settings, options.spider)
        checked = settings.copy()
        spider.update_settings(checked)  # the spider's custom_settings take part
        check_settings(checked, spider.name)
    except UnknownSpider as exc:
        logger.error("%s", exc)
        return EXIT_CONFIG
    except InvalidSetting as exc:
        logger.error("Invalid settings: %s", exc)
        return EXIT_CONFIG
    # Checked before the crawl starts, so an unreachable Redis is one clear line
    # rather than an engine that opens and fails halfway.
    redis_error = check_redis_reachable(settings)
    if redis_error:
        logger.error("%s", redis_error)
        return EXIT_REDIS_UNAVAILABLE
    crawler = process.create_crawler(spider)
    failure_box: list[BaseException] = []

    def failed(failure: Any) -> None:
        failure_box.append(failure.value)

    process.crawl(crawler, **options.spider_args).addErrback(failed)
    process.start()
    if failure_box:
        error = failure_box[0]
        if isinstance(error, RedisUnavailable):
            logger.error("%s", error)
            return EXIT_REDIS_UNAVAILABLE
        from scrapy.exceptions import NotConfigured

        from hermit.worker.scheduler import OutdatedQueueLayout

        if isinstance(error, OutdatedQueueLayout):
            logger.error("%s", error)
            return EXIT_CONFIG
        if isinstance(error, (NotConfigured, InvalidSetting)):
            logger.error("Invalid settings: %s", error)
            return EXIT_CONFIG
        logger.error("Worker failed: %s: %s", type(error).__name__, error)
        return EXIT_FAILED
    reason = crawler.stats.get_value("finish_reason") if crawler.stats else None
    if reason == "finished" or reached_a_limit(reason):
        return EXIT_FINISHED
    if reason == MEMORY_BUDGET_REASON:
        return EXIT_MEMORY_BUDGET
    return EXIT_STOPPED if reason == "shutdown" else EXIT_FAILED
