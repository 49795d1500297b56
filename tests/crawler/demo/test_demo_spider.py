"""The demo spider: follows exactly the site's pages once, and a real Scrapy crawl finds the ground truth."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
import scrapy
from scrapy.exceptions import NotConfigured
from scrapy.http import HtmlResponse, TextResponse
from scrapy.crawler import Crawler

from hermit.demo.process import DemoSiteProcess
from hermit.demo.site import DemoSite
from hermit.demo.spider import DemoSpider

pytestmark = pytest.mark.scrapy_versions

URL = "http://127.0.0.1:8123/"
HOST = "127.0.0.1:8123"


def response_for(path: str, site: DemoSite | None = None, body: bytes | None = None) -> HtmlResponse:
    site = site or DemoSite()
    if body is None:
        body = site.render(path, HOST).body
    return HtmlResponse(URL.rstrip("/") + path, body=body, status=200)


def outputs(spider: DemoSpider, response: TextResponse) -> tuple[list[dict], list[scrapy.Request]]:
    results = list(spider.parse(response))
    return [r for r in results if isinstance(r, dict)], [r for r in results if isinstance(r, scrapy.Request)]


def test_one_item_per_page_with_title_status_and_link_count():
    items, requests = outputs(DemoSpider(url=URL), response_for("/p/12.html"))
    assert items == [{"url": URL + "p/12.html", "title": "Page 12", "status": 200, "links": 20}]
    assert len(requests) == 20


def test_followed_urls_carry_no_session_id_or_fragment_and_match_the_link_model():
    site = DemoSite()
    spider = DemoSpider(url=URL)
    for path in ("/", "/p/0.html", "/p/7.html", "/p/250.html"):
        _, requests = outputs(spider, response_for(path, site))
        followed = [request.url for request in requests]
        assert all("sid=" not in url and "#" not in url for url in followed)
        wanted = [URL.rstrip("/") + target for target, _ in site.links(path, HOST) if "/calendar/" not in target]
        assert [url for url in followed if "/calendar/" not in url] == wanted


def test_links_off_the_start_origin_are_not_followed():
    body = b"""<html><head><title> Off </title></head><body>
        <a href="http://127.0.0.1:8124/p/1.html">other port</a>
        <a href="https://127.0.0.1:8123/p/1.html">other scheme</a>
        <a href="http://localhost:8123/p/1.html">other host</a>
        <a href="http://127.0.0.1:99999/p/1.html">broken port</a>
        <a href="mailto:someone@example.com">mail</a>
        <a href="javascript:void(0)">script</a>
        <a href="HTTP://127.0.0.1:8123/p/2.html?sid=x&amp;a=1#f">same origin</a>
        <a href=" p/3.html ">padded</a>
    </body></html>"""
    items, requests = outputs(DemoSpider(url=URL), response_for("/", body=body))
    assert items[0]["title"] == "Off" and items[0]["links"] == 8
    assert [request.url for request in requests] == ["http://127.0.0.1:8123/p/2.html?a=1", URL + "p/3.html"]


def test_default_ports_are_the_same_origin():
    spider = DemoSpider(url="http://example.test/")
    assert spider.url_to_follow("http://example.test:80/p/1.html") == "http://example.test:80/p/1.html"
    assert spider.url_to_follow("http://example.test:81/p/1.html") is None


@pytest.mark.parametrize(("months", "kept"), [
    (12, ["2026/01", "2026/03", "2026/04", "2026/12"]),
    ("3", ["2026/01", "2026/03"]),  # spider arguments from -a arrive as strings
    (0, []),
])
def test_calendar_is_followed_only_inside_the_window(months, kept):
    spider = DemoSpider(url=URL, calendar_months=months)
    candidates = ["2025/12", "2026/01", "2026/03", "2026/04", "2026/12", "2027/01"]
    assert [month for month in candidates if spider.url_to_follow(f"{URL}calendar/{month}.html")] == kept


def test_start_yields_one_request_for_the_url():
    spider = DemoSpider(url=URL)

    async def collect() -> list[scrapy.Request]:
        return [request async for request in spider.start()]

    requests = asyncio.run(collect())
    assert [request.url for request in requests] == [URL]


def test_start_url_falls_back_to_the_setting_and_is_required():
    # A bare Crawler: Scrapy 2.13's test helper wants an installed reactor.
    crawler = Crawler(DemoSpider, {"HERMIT_DEMO_URL": URL})
    assert DemoSpider.from_crawler(crawler).url == URL
    assert DemoSpider.from_crawler(crawler, url="http://127.0.0.1:1/").url == "http://127.0.0.1:1/"
    with pytest.raises(NotConfigured, match="HERMIT_DEMO_URL"):
        DemoSpider.from_crawler(Crawler(DemoSpider))
    with pytest.raises(NotConfigured, match="invalid demo start URL"):
        DemoSpider(url="ftp://127.0.0.1/")


def test_the_spider_keeps_no_response_after_its_callback():
    spider = DemoSpider(url=URL)
    outputs(spider, response_for("/p/3.html"))
    assert not any(isinstance(value, TextResponse) for value in vars(spider).values())


CRAWL_SCRIPT = textwrap.dedent(
    """
    import sys

    from scrapy.crawler import CrawlerProcess

    from hermit.demo.spider import DemoSpider

    url, feed = sys.argv[1], sys.argv[2]
    process = CrawlerProcess(settings={
        "TELNETCONSOLE_ENABLED": False,
        "LOG_LEVEL": "INFO",
        "ROBOTSTXT_OBEY": False,
        "CONCURRENT_REQUESTS": 16,
        "FEEDS": {feed: {"format": "jsonlines"}},
    })
    process.crawl(DemoSpider, url=url)
    process.start()
    """
)


def test_a_scrapy_crawl_yields_every_expected_page_exactly_once(tmp_path: Path):
    feed = tmp_path / "items.jsonl"
    with DemoSiteProcess(pages=300, slow_seconds=0.3, huge_bytes=300_000) as demo:
        crawl = subprocess.run(
            [sys.executable, "-c", CRAWL_SCRIPT, demo.url, feed.as_uri()],
            capture_output=True, text=True, timeout=120,
        )
        expected = demo.site.expected_urls(demo.url)
        base = demo.url
    assert crawl.returncode == 0, crawl.stderr[-3000:]
    items = [json.loads(line) for line in feed.read_text().splitlines()]
    urls = [item["url"] for item in items]
    assert [url for url, count in Counter(urls).items() if count > 1] == []
    assert sorted(set(urls) - expected) == [] and sorted(expected - set(urls)) == []
    assert all(item["status"] == 200 and item["title"] and item["links"] > 0 for item in items)
    assert {item["title"] for item in items if item["url"] == base + "p/42.html"} == {"Page 42"}
    # The traps were met, not just missed: a 404, and plenty of duplicate links dropped by the dedup.
    assert f"<404 {base}missing.html>" in crawl.stderr
    assert "'dupefilter/filtered'" in crawl.stderr
