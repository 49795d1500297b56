"""The leaky spider: it keeps every response it parses, and follows the demo site's content pages only."""

from __future__ import annotations

import asyncio

import scrapy
from scrapy.http import HtmlResponse

from hermit.demo.leaky_spider import LeakySpider
from hermit.demo.site import DemoSite

URL = "http://127.0.0.1:8123/"


def page(path: str) -> HtmlResponse:
    return HtmlResponse(URL.rstrip("/") + path, body=DemoSite().render(path, "127.0.0.1:8123").body, status=200)


def start_requests(spider: LeakySpider) -> list[scrapy.Request]:
    async def collect() -> list[scrapy.Request]:
        return [request async for request in spider.start()]

    return asyncio.run(collect())


def test_keeps_every_response_and_follows_the_content_pages(monkeypatch):
    monkeypatch.setattr(LeakySpider, "kept", [])
    spider = LeakySpider(url=URL)
    assert [request.url for request in start_requests(spider)] == [URL]
    responses = [page("/"), page("/p/3.html")]
    for response in responses:
        results = list(spider.parse(response))
        assert results[0] == {"url": response.url}
        followed = [r.url for r in results[1:]]
        assert followed and all(url.startswith(URL + "p/") and "?" not in url and "#" not in url for url in followed)
    assert LeakySpider.kept == responses  # the leak


def test_without_a_url_it_starts_nothing_and_parses_only_what_is_queued(monkeypatch):
    monkeypatch.setattr(LeakySpider, "kept", [])
    spider = LeakySpider()
    assert start_requests(spider) == []
    response = page("/p/3.html")
    assert list(spider.parse(response)) == [{"url": response.url}]
    assert LeakySpider.kept == [response]
