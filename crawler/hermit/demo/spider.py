"""``demo``: the spider that crawls the demo site completely, once, and steps around its traps.

It yields one item per page and follows every link that stays on the start URL's
scheme, host and port, after dropping the fragment and the ``sid`` session parameter
(so the request dedup sees one URL per page) and skipping calendar months outside its
window (the calendar never ends). It keeps no seen-set of its own: duplicates are the
scheduler's dedup to drop, which in a Hermit worker lives in Redis.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import SplitResult, urlsplit

import scrapy
from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Response, TextResponse
from w3lib.url import url_query_cleaner

from hermit.demo.site import calendar_month, calendar_window
from hermit.setting_spec import Setting

#: The demo spider's start URL when none is given as a spider argument.
START_URL = Setting(
    "HERMIT_DEMO_URL", None, "the demo spider's start URL when it is not given as `-a url=…`",
    "None (then `-a url=…` is needed)",
)
START_URL_SETTING = START_URL.name
SESSION_PARAMETERS = ("sid",)
_DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int | None]


def url_origin(url: str | SplitResult) -> Origin:
    """(scheme, host, port) with the default port filled in; ValueError on a malformed port."""
    parts = urlsplit(url) if isinstance(url, str) else url
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


class DemoSpider(scrapy.Spider):
    """Arguments: ``url`` (the start URL; default: setting ``HERMIT_DEMO_URL``) and
    ``calendar_months`` (how many months of the calendar to follow from 2026/01; default 12).
    """

    name = "demo"

    def __init__(self, url: str | None = None, calendar_months: int | str = 12, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calendar_months = int(calendar_months)
        if self.calendar_months < 0:
            raise ValueError(f"calendar_months must not be negative, not {self.calendar_months}")
        self._calendar_window = calendar_window(self.calendar_months)
        self.url: str | None = None
        self._origin: Origin | None = None
        if url:
            self._set_start_url(url)

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> DemoSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        # Settings only reach a spider after __init__, so the fallback URL is read here.
        if spider.url is None:
            fallback = crawler.settings.get(START_URL_SETTING)
            if not fallback:
                raise NotConfigured(
                    f"the demo spider needs a start URL: pass -a url=http://HOST:PORT/ "
                    f"or set {START_URL_SETTING}"
                )
            spider._set_start_url(fallback)
        return spider

    def _set_start_url(self, url: str) -> None:
        try:
            origin = url_origin(url)
        except ValueError as exc:
            raise NotConfigured(f"invalid demo start URL {url!r}: {exc}") from exc
        if origin[0] not in _DEFAULT_PORTS or not origin[1]:
            raise NotConfigured(f"invalid demo start URL {url!r}: want http(s)://HOST[:PORT]/")
        self.url, self._origin = url, origin

    async def start(self) -> AsyncIterator[scrapy.Request]:
        if self.url is None:
            raise NotConfigured(f"the demo spider needs a start URL (-a url=... or {START_URL_SETTING})")
        yield scrapy.Request(self.url)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[Any]:
        if not isinstance(response, TextResponse):
            yield {"url": response.url, "title": None, "status": response.status, "links": 0}
            return
        hrefs = response.css("a::attr(href)").getall()
        yield {
            "url": response.url,
            "title": (response.css("title::text").get() or "").strip() or None,
            "status": response.status,
            "links": len(hrefs),
        }
        for href in hrefs:
            url = self.url_to_follow(response.urljoin(href.strip()))
            if url is not None:
                yield scrapy.Request(url)

    def url_to_follow(self, url: str) -> str | None:
        """``url`` as the spider requests it (no fragment, no session id), or None to skip it."""
        # url_query_cleaner drops the fragment too.
        cleaned = url_query_cleaner(url, SESSION_PARAMETERS, remove=True)
        parts = urlsplit(cleaned)
        try:
            if url_origin(parts) != self._origin:
                return None
        except ValueError:
            return None
        month = calendar_month(parts.path)
        if month is not None and month not in self._calendar_window:
            return None
        return cleaned
