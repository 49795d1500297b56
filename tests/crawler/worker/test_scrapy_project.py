"""A user's own Scrapy project turns Hermit on with settings only, and `scrapy crawl` works."""

from __future__ import annotations

import json
import subprocess

import redis

from hermit.items.export import export_items
from hermit.keys import CrawlKeys
from tests.scrapy_project import ScrapyProject

SPIDER = '''
import scrapy
from w3lib.url import url_query_cleaner


class ShopSpider(scrapy.Spider):
    name = "shop"

    async def start(self):
        yield scrapy.Request(self.url, callback=self.parse_page, errback=self.failed,
                             cb_kwargs={"hops": 0})

    def parse_page(self, response, hops):
        yield {"url": response.url, "hops": hops}
        for href in response.css("a::attr(href)").getall():
            url = url_query_cleaner(response.urljoin(href).split("#")[0], ("sid",), remove=True)
            if url.startswith(self.url) and "/calendar/" not in url:
                yield scrapy.Request(url, callback=self.parse_page, errback=self.failed,
                                     cb_kwargs={"hops": hops + 1})

    def failed(self, failure):
        self.logger.info("failed: %s", failure.request.url)
'''
MODULES = {"spiders/shop.py": SPIDER}


def expected(site, url: str) -> set[str]:
    return {u for u in site.expected_urls(url) if "/calendar/" not in u}


def run_scrapy(project: ScrapyProject, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return project.run("shop", "-a", f"url={url}", *extra)


def test_addon_in_settings_makes_scrapy_crawl_a_hermit_worker(scrapy_project, tmp_path, redis_url, demo_site):
    project = scrapy_project(
        "shop", MODULES,
        f'ADDONS = {{"hermit.addon.Addon": 0}}\nREDIS_URL = "{redis_url}"\nHERMIT_IDLE_CLOSE_SECONDS = 1\n',
        addon=False,
    )
    proc = run_scrapy(project, demo_site.url, "-o", "feed.jsonl")
    assert proc.returncode == 0, proc.stderr[-3000:]
    want = expected(demo_site.site, demo_site.url)
    # Scrapy's FEEDS keep working...
    feed = [item["url"] for item in project.feed("feed.jsonl")]
    assert set(feed) == want and len(feed) == len(want)
    # ...and every item is in the crawl's durable stream (crawl name = spider name).
    client = redis.Redis.from_url(redis_url)
    out = tmp_path / "stream.jsonl"
    with out.open("wb") as f:
        export_items(client, CrawlKeys("shop"), f)
    assert {json.loads(line)["url"] for line in out.read_text().splitlines()} == want
    # cb_kwargs survived the trip through Redis.
    assert max(json.loads(line)["hops"] for line in out.read_text().splitlines()) >= 2
    # The remote Python shells stay off.
    assert "TelnetConsole" not in proc.stderr
    assert "Remote control HTTP server" not in proc.stderr
    assert "'scheduler/dequeued/redis'" in proc.stderr


def test_scrapy_redis_style_settings_work_without_the_addon(scrapy_project, redis_url, demo_site):
    project = scrapy_project(
        "shop", MODULES,
        f"""
        SCHEDULER = "hermit.worker.scheduler.HermitScheduler"
        ITEM_PIPELINES = {{"hermit.items.sink.RedisItemSink": 900}}
        REDIS_URL = "{redis_url}"
        HERMIT_CRAWL = "from-settings"
        HERMIT_IDLE_CLOSE_SECONDS = 1
        """,
        addon=False,
    )
    proc = run_scrapy(project, demo_site.url)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = redis.Redis.from_url(redis_url)
    assert client.xlen(CrawlKeys("from-settings").items) == len(expected(demo_site.site, demo_site.url))


def test_invalid_setting_is_a_clear_error(scrapy_project, redis_url, demo_site):
    project = scrapy_project(
        "shop", MODULES,
        f'ADDONS = {{"hermit.addon.Addon": 0}}\nREDIS_URL = "{redis_url}"\nHERMIT_QUEUE_ORDER = "random"\n',
        addon=False,
    )
    proc = run_scrapy(project, demo_site.url)
    assert "HERMIT_QUEUE_ORDER must be one of" in proc.stderr
