"""What spiders carry in requests crosses the shared queue: a real crawl passing scrapy Items
and dataclass items through ``cb_kwargs`` across three callbacks, two Hermit workers
against plain Scrapy, on the demo site."""

from __future__ import annotations

import json

import pytest
import redis

from hermit.keys import CrawlKeys

ITEMS = '''
import dataclasses
import datetime as dt
import decimal
import enum

import scrapy


class Section(enum.Enum):
    LOW = "low"
    HIGH = "high"


@dataclasses.dataclass(frozen=True)
class Link:
    url: str
    number: int
    found: dt.datetime
    tags: frozenset


@dataclasses.dataclass
class Step:
    section: Section
    price: decimal.Decimal
    after: dt.timedelta
    trail: tuple


class PageItem(scrapy.Item):
    url = scrapy.Field()
    title = scrapy.Field()
    link = scrapy.Field()
    step = scrapy.Field()
    received = scrapy.Field()
'''

SPIDER = '''
import datetime as dt
import decimal
import re

import scrapy
from w3lib.url import url_query_cleaner

from payloads.items import Link, PageItem, Section, Step


class PayloadSpider(scrapy.Spider):
    """home --(Link)--> parse_page --(PageItem, Step)--> parse_detail --> the item.

    Every value passed on is a function of the page's own URL, so items don't depend
    on the crawl's order.
    """

    name = "payloads"

    async def start(self):
        yield scrapy.Request(self.url, callback=self.parse_home)

    def follow_pages(self, response):
        for href in response.css("a::attr(href)").getall():
            url = url_query_cleaner(response.urljoin(href), ("sid",), remove=True)
            match = re.fullmatch(re.escape(self.url) + r"p/(\\d+)\\.html", url)
            if match:
                number = int(match[1])
                link = Link(url, number, dt.datetime(2026, 1, 1) + dt.timedelta(hours=number),
                            frozenset({"page", f"n{number % 3}"}))
                yield scrapy.Request(url, callback=self.parse_page, cb_kwargs={"link": link})

    def parse_home(self, response):
        yield from self.follow_pages(response)

    def parse_page(self, response, link):
        item = PageItem(url=response.url, title=response.css("title::text").get(), link=link)
        step = Step(Section.HIGH if link.number % 2 else Section.LOW,
                    decimal.Decimal(link.number) / 100, dt.timedelta(seconds=link.number), ("a", link.number))
        yield response.follow(response.url + "?view=detail", callback=self.parse_detail,
                              cb_kwargs={"item": item, "step": step})
        yield from self.follow_pages(response)

    def parse_detail(self, response, item, step):
        link = item["link"]
        item["received"] = [type(value).__qualname__ for value in (
            item, link, link.found, link.tags, step, step.section, step.price, step.after, step.trail)]
        # What came through, in values Scrapy's feed exporter writes the same way every time.
        item["link"] = {"url": link.url, "number": link.number, "found": link.found, "tags": sorted(link.tags)}
        item["step"] = {"section": step.section.value, "price": step.price,
                        "after": step.after.total_seconds(), "trail": step.trail}
        yield item
'''

RECEIVED = ["PageItem", "Link", "datetime", "frozenset", "Step", "Section", "Decimal", "timedelta", "tuple"]


@pytest.mark.parametrize("demo_site", [120], indirect=True)
def test_items_and_dataclasses_in_cb_kwargs_reach_every_page_as_in_plain_scrapy(
        scrapy_project, redis_url, demo_site, tmp_path):
    project = scrapy_project(
        "payloads", {"items.py": ITEMS, "spiders/payloads.py": SPIDER},
        f'REDIS_URL = "{redis_url}"\nHERMIT_IDLE_CLOSE_SECONDS = 1\nCONCURRENT_REQUESTS = 4\n',
    )
    args = ("-a", f"url={demo_site.url}")
    workers = [project.start("payloads", *args, "-o", f"worker{i}.jsonl", log=tmp_path / f"worker{i}.log")
               for i in range(2)]
    for i, worker in enumerate(workers):
        assert worker.wait(timeout=300) == 0, (tmp_path / f"worker{i}.log").read_text()[-4000:]
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert all("'scheduler/dequeued/redis'" in log for log in logs)
    assert not any("hermit/requests/unserializable" in log or "hermit/dead_letters" in log for log in logs)
    hermit_items = project.feed("worker0.jsonl") + project.feed("worker1.jsonl")

    project.crawl("payloads", *args, "-o", "plain.jsonl", plain=True)
    plain_items = project.feed("plain.jsonl")

    pages = {f"{demo_site.url}p/{n}.html" for n in range(demo_site.site.pages)}
    assert sorted(item["url"] for item in plain_items) == sorted(pages)  # the spider itself is right
    assert all(item["received"] == RECEIVED for item in plain_items)
    by_url = {item["url"]: item for item in hermit_items}
    assert len(by_url) == len(hermit_items) == len(pages)  # every page once
    assert sorted(hermit_items, key=lambda i: i["url"]) == sorted(plain_items, key=lambda i: i["url"])
    # The durable stream holds the same items.
    client = redis.Redis.from_url(redis_url)
    streamed = [json.loads(fields[b"item"]) for _, fields in client.xrange(CrawlKeys("payloads").items)]
    client.close()
    assert sorted(i["url"] for i in streamed) == sorted(pages)
