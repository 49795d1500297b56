"""The few places where Hermit reaches into Scrapy's execution engine.

Scrapy has no public signal for "this scheduled request is completely processed"
(its response went through the callback, every request it produced was scheduled
and every item it produced left the item pipelines; or a downloader middleware
replaced it with a new request, which is already scheduled). The engine's slot
knows: it drops the request from ``inprogress`` at exactly that point. Acking a
lease there is what makes delivery at-least-once without losing items.

These internals are the same from Scrapy 2.13 to 2.19 (both are tested); if a
future Scrapy changes them, :func:`check_supported` fails loudly at start-up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class UnsupportedScrapy(RuntimeError):
    """This Scrapy's engine lacks what Hermit hooks into."""


def _engine_slot(crawler: Crawler) -> Any:
    engine = getattr(crawler, "engine", None)
    slot = getattr(engine, "_slot", None)
    if slot is None:
        raise UnsupportedScrapy("the Scrapy engine has no open slot (is the spider open?)")
    return slot


def check_supported(crawler: Crawler) -> None:
    slot = _engine_slot(crawler)
    missing = [name for name in ("remove_request", "inprogress", "nextcall", "closing") if not hasattr(slot, name)]
    if missing:
        import scrapy

        raise UnsupportedScrapy(
            f"Scrapy {scrapy.__version__} is not supported by this Hermit: its engine slot "
            f"lacks {', '.join(missing)} (supported: Scrapy 2.13 to 2.19)"
        )


def on_request_finished(crawler: Crawler, callback: Callable[[Request], None]) -> None:
    """Call *callback(request)* when the engine is completely done with a scheduled request."""
    slot = _engine_slot(crawler)
    original = slot.remove_request

    def remove_request(request: Request) -> None:
        try:
            callback(request)
        except Exception:
            logger.exception("Hermit could not record the end of %s", request)
        original(request)

    slot.remove_request = remove_request


def wake_engine(crawler: Crawler) -> None:
    """Ask the engine to pull from the scheduler soon (it otherwise polls every 5 s)."""
    slot = getattr(getattr(crawler, "engine", None), "_slot", None)
    if slot is not None and slot.closing is None:
        slot.nextcall.schedule()


def is_closing(crawler: Crawler) -> bool:
    """True once the engine started closing the spider (SIGTERM, CloseSpider, ...)."""
    engine = getattr(crawler, "engine", None)
    slot = getattr(engine, "_slot", None)
    return slot is None or slot.closing is not None or not getattr(engine, "running", True)


def close_spider(crawler: Crawler, reason: str) -> None:
    """Start closing the spider gracefully, as Scrapy does on SIGTERM: no new requests,
    in-flight ones finish, then the scheduler gives back what it still holds."""
    engine = crawler.engine
    slot = getattr(engine, "_slot", None)
    if slot is None or slot.closing is not None:
        return  # not open yet, or already closing
    if hasattr(engine, "close_spider_async"):  # Scrapy >= 2.14
        from scrapy.utils.defer import deferred_from_coro

        deferred_from_coro(engine.close_spider_async(reason=reason))
    else:
        engine.close_spider(crawler.spider, reason)


def leave_delays_to_the_fleet(crawler: Crawler) -> None:
    """Make the worker's downloader add no default delay of its own.

    The frontier already spaces a host's leases by DOWNLOAD_DELAY for the whole
    fleet; a second, independent random delay in each worker would space them
    further (by about a sixth with the default jitter) and so fall short of the
    polite rate. Per-slot ``DOWNLOAD_SLOTS`` delays still apply locally.
    """
    downloader = getattr(getattr(crawler, "engine", None), "downloader", None)
    if downloader is None:
        return
    if hasattr(downloader, "_delay"):  # Scrapy >= 2.19: the default delay of new slots
        downloader._delay = 0.0
    elif getattr(crawler, "spider", None) is not None:  # older: read from the spider attribute
        crawler.spider.download_delay = 0.0
    for slot in getattr(downloader, "slots", {}).values():
        slot.delay = 0.0
