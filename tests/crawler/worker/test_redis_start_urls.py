"""scrapy-redis spiders run as Hermit workers by settings alone: the real scrapy-redis
``RedisSpider`` and ``RedisCrawlSpider``, fed through their ``<name>:start_urls`` list."""

from __future__ import annotations

import json
import signal
import time

import pytest
import redis

from hermit.keys import CrawlKeys

SETTINGS = """
REDIS_URL = "{redis_url}"
EXTENSIONS = {{"hermit.worker.redis_start_urls.RedisStartUrls": 0}}
HERMIT_REDIS_START_URLS_POLL_SECONDS = 0.2
"""

REDIS_SPIDER = '''
from scrapy_redis.spiders import RedisSpider


class FedSpider(RedisSpider):
    """The scrapy-redis example spider: one item per start URL, links not followed."""

    name = "fed"

    def parse(self, response):
        yield {"url": response.url, "job": response.meta.get("job"), "title": response.css("title::text").get()}
'''

CRAWL_SPIDER = '''
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import Rule
from scrapy_redis.spiders import RedisCrawlSpider
from w3lib.url import url_query_cleaner


class SiteSpider(RedisCrawlSpider):
    name = "site"
    redis_key = "site:seeds"
    rules = (
        Rule(LinkExtractor(allow=r"/p/\\d+\\.html", process_value=lambda v: url_query_cleaner(v, ("sid",), remove=True)),
             callback="parse_page", follow=True),
    )

    def parse_page(self, response):
        yield {"url": response.url}
'''


def items_of(client: redis.Redis, crawl: str) -> list[dict]:
    return [json.loads(fields[b"item"]) for _, fields in client.xrange(CrawlKeys(crawl).items)]


def wait_for_items(client: redis.Redis, crawl: str, count: int, worker, log) -> list[dict]:
    """The crawl's items once it has *count* (the worker must stay up meanwhile)."""
    deadline = time.monotonic() + 120
    while len(items := items_of(client, crawl)) < count:
        assert worker.poll() is None, log.read_text()[-4000:]
        assert time.monotonic() < deadline, f"{len(items)} of {count} items; log:\n{log.read_text()[-4000:]}"
        time.sleep(0.1)
    return items


@pytest.mark.parametrize("demo_site", [40], indirect=True)
def test_redis_spider_reads_its_list_while_running_plain_and_json(scrapy_project, redis_url, demo_site, tmp_path):
    project = scrapy_project("fed", {"spiders/fed.py": REDIS_SPIDER}, SETTINGS.format(redis_url=redis_url))
    client = redis.Redis.from_url(redis_url)
    page = [f"{demo_site.url}p/{n}.html" for n in range(40)]
    # Before the worker starts: plain URLs (more than one batch of CONCURRENT_REQUESTS),
    # a duplicate, and entries no request can be made from.
    client.lpush("fed:start_urls", *page[:30], page[0], "not a url", json.dumps({"no": "url"}))
    log = tmp_path / "worker.log"
    # A long-running worker (HERMIT_IDLE_CLOSE_SECONDS = 0): its engine is never idle.
    worker = project.start("fed", log=log)
    try:
        wait_for_items(client, "fed", 30, worker, log)
        # While it runs, another system pushes JSON entries (scrapy-redis' format with meta).
        client.lpush("fed:start_urls", *(json.dumps({"url": url, "meta": {"job": "j2"}}) for url in page[30:]))
        items = wait_for_items(client, "fed", 40, worker, log)
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text()[-4000:]
    text = log.read_text()
    assert sorted(item["url"] for item in items) == sorted(page)  # each once: the duplicate was filtered
    assert {item["url"]: item["job"] for item in items} == {url: None if n < 30 else "j2" for n, url in enumerate(page)}
    assert client.llen("fed:start_urls") == 0
    assert "'hermit/redis_start_urls/requests': 41" in text
    assert "'hermit/redis_start_urls/invalid': 2" in text
    assert "'dupefilter/filtered': 1" in text
    assert "Skipped start-URL entry b'not a url'" in text
    client.close()


@pytest.mark.parametrize("demo_site", [60], indirect=True)
def test_redis_crawl_spider_follows_its_rules_and_closes_when_the_crawl_is_done(
        scrapy_project, redis_url, demo_site, tmp_path):
    project = scrapy_project(
        "sitecrawl", {"spiders/site.py": CRAWL_SPIDER},
        SETTINGS.format(redis_url=redis_url) + "HERMIT_IDLE_CLOSE_SECONDS = 1\n",
    )
    client = redis.Redis.from_url(redis_url)
    client.lpush("site:seeds", demo_site.url)
    # Two workers; they close by themselves (scrapy-redis' own idle handler would keep them open).
    workers = [project.start("site", log=tmp_path / f"w{i}.log") for i in range(2)]
    for i, worker in enumerate(workers):
        assert worker.wait(timeout=300) == 0, (tmp_path / f"w{i}.log").read_text()[-4000:]
    urls = [item["url"] for item in items_of(client, "site")]
    assert sorted(urls) == sorted(f"{demo_site.url}p/{n}.html" for n in range(60))
    client.close()


@pytest.mark.newest_scrapy
def test_only_scrapy_redis_spiders_are_taken_over_and_the_setting_turns_it_off(redis_url):
    from scrapy.utils.test import get_crawler
    from scrapy_redis.spiders import RedisSpider

    from hermit.worker.redis_start_urls import RedisStartUrls, is_scrapy_redis_spider

    class Fed(RedisSpider):
        name = "fed"

    crawler = get_crawler(Fed, {"REDIS_URL": redis_url})
    crawler.spider = Fed.from_crawler(crawler)
    assert is_scrapy_redis_spider(crawler.spider)
    assert not is_scrapy_redis_spider(type("Plain", (), {"name": "p"})())
    with pytest.raises(Exception, match="HERMIT_REDIS_START_URLS_ENABLED is off"):
        RedisStartUrls.from_crawler(get_crawler(Fed, {"HERMIT_REDIS_START_URLS_ENABLED": False}))
