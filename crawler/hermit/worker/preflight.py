"""What is checked before a worker's engine opens, so a mistake is one clear line.

A worker that can't run — a spider name the project doesn't have, a Hermit setting
with a value it can't use — must say so once and exit with the configuration status,
not fail halfway through opening the engine (where Scrapy reports only "Engine slot
not assigned") and be restarted forever. The same checks run in three places: the
add-on (``scrapy crawl`` and ``hermit worker``), :func:`run_worker`, and ``hermit
crawl`` before it starts anything.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING

from scrapy.exceptions import NotConfigured

from hermit.settings import InvalidSetting, WorkerConfig, crawl_limits, memory_limits

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.settings import BaseSettings

    from hermit.worker.run import WorkerOptions

logger = logging.getLogger(__name__)


class UnknownSpider(LookupError):
    """The spider name is not one of the project's (the message lists them)."""


def check_settings(settings: BaseSettings, spider_name: str) -> None:
    """Raise :class:`InvalidSetting` naming the setting, its value and what is expected.

    Checks every Hermit setting the scheduler, the memory budget and the crawl-wide
    limits read, the way they read them, so a value they would refuse is refused here first.
    """
    try:
        WorkerConfig.from_settings(settings, spider_name)
    except NotConfigured as exc:
        raise InvalidSetting(str(exc)) from None
    memory_limits(settings)
    crawl_limits(settings)


def find_spider(settings: BaseSettings, name: str) -> type[Spider]:
    """The spider class called *name*: the project's, else the built-in demo spider.

    Raise :class:`UnknownSpider` listing the names there are.
    """
    from hermit.worker.run import DEMO_SPIDER

    try:
        from scrapy.spiderloader import get_spider_loader  # Scrapy >= 2.14
    except ImportError:  # Scrapy 2.13: what get_spider_loader does
        from scrapy.utils.misc import load_object

        loader = load_object(settings.get("SPIDER_LOADER_CLASS")).from_settings(settings.frozencopy())
    else:
        loader = get_spider_loader(settings)
    try:
        return loader.load(name)
    except KeyError:
        pass
    if name == DEMO_SPIDER:
        from hermit.demo.spider import DemoSpider

        return DemoSpider
    names = sorted(set(loader.list()) | {DEMO_SPIDER})
    where = "this project's spiders" if settings.getlist("SPIDER_MODULES") else "no Scrapy project here; spiders"
    raise UnknownSpider(f"unknown spider {name!r} ({where}: {', '.join(names)})")


def preflight(options: WorkerOptions) -> None:
    """Check what a worker started with *options* would check; raise UnknownSpider or InvalidSetting.

    Leaves this process's environment and import path as it found them.
    """
    from hermit.worker.run import build_settings

    # Scrapy's project lookup sets SCRAPY_SETTINGS_MODULE and sys.path for the whole
    # process; the workers started after this must find their project themselves.
    environ, path = dict(os.environ), list(sys.path)
    try:
        settings = build_settings(options)
        spidercls = find_spider(settings, options.spider)
        # The spider's custom_settings take part, as they do in a worker.
        spidercls.update_settings(settings)
        check_settings(settings, spidercls.name)
    finally:
        os.environ.clear()
        os.environ.update(environ)
        sys.path[:] = path
