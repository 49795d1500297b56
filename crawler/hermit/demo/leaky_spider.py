"""``leaky``: a spider that leaks memory on purpose, to show what recycling and the leak
diagnostics do about it (the recycling tests and benchmark, the diagnostics tests).

It keeps every response it parses alive in a list it never reads, the classic leak:
each kept response holds its body, its parsed tree and its request, so a worker's
memory only grows. (Keeping responses in ``request.meta``, as Scrapy's docs warn, can't
happen in a Hermit worker: such a request can't be queued in Redis and is dropped as
unserializable.)

It is no project's spider: a worker finds it with
``-s SPIDER_MODULES=hermit.demo.leaky_spider`` (``scrapy runspider`` takes this file).

Argument ``url``: the demo site's start page. The spider requests it and follows the
site's content pages (``<url>p/N.html``), one item each. Without it the spider starts
nothing and follows nothing: it parses the requests already queued (``hermit seed``),
one item each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import scrapy
from scrapy.http import Response


class LeakySpider(scrapy.Spider):
    """Follows the demo site's content pages and never lets go of a response."""

    name = "leaky"
    url: str | None = None  # the spider argument
    kept: ClassVar[list[Response]] = []

    async def start(self) -> AsyncIterator[scrapy.Request]:
        if self.url:
            yield scrapy.Request(self.url)

    def parse(self, response: Response, **kwargs: Any) -> Iterator[dict[str, str] | scrapy.Request]:
        self.kept.append(response)  # the leak
        yield {"url": response.url}
        if not self.url:
            return
        for href in response.css("a::attr(href)").getall():
            url = response.urljoin(href).split("#")[0].split("?")[0]
            if url.startswith(self.url + "p/"):
                yield scrapy.Request(url)
