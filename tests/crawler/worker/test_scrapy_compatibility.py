"""Scrapy features users rely on, each checked in a real crawl of a Hermit worker beside plain
Scrapy (the rows of docs/scrapy-compatibility.md)."""

from __future__ import annotations

import re

import pytest

SPIDER = '''
import datetime as dt
import json

import pydantic
import scrapy
from scrapy.http import FormRequest, JsonRequest
from scrapy.spidermiddlewares.httperror import HttpError

PLUGIN_META = {"playwright": True, "playwright_context": "ctx-1",
               "playwright_page_methods": [{"method": "wait_for_selector", "args": ["h1"], "kwargs": {}}]}


class Listing(pydantic.BaseModel):
    title: str
    seen: dt.datetime
    tags: frozenset[str] = frozenset()


class CompatSpider(scrapy.Spider):
    name = "compat"

    async def start(self):
        yield scrapy.Request(self.url, callback=self.parse_home)

    def parse_home(self, response):
        page = self.url + "p/0.html"
        # dont_filter: the same URL twice, both fetched.
        for n in range(2):
            yield scrapy.Request(page, callback=self.record, dont_filter=True, cb_kwargs={"case": f"dont_filter-{n}"})
        # Errbacks get their Failure: a 404, and the 405s of the demo site's answer to POST.
        yield scrapy.Request(self.url + "missing.html", callback=self.record, errback=self.failed,
                             cb_kwargs={"case": "errback-404"})
        yield FormRequest(self.url + "p/1.html", formdata={"q": "lamp", "n": "2"}, method="GET",
                          callback=self.record, cb_kwargs={"case": "form-get"})
        yield FormRequest(self.url + "p/2.html", formdata={"q": "lamp"}, callback=self.record,
                          errback=self.failed, cb_kwargs={"case": "form-post"})
        yield JsonRequest(self.url + "p/3.html", data={"q": ["lamp", 1]}, callback=self.record,
                          errback=self.failed, cb_kwargs={"case": "json-post"})
        # meta: a download slot of one's own, and a plugin's keys (scrapy-playwright's).
        yield scrapy.Request(self.url + "p/4.html", callback=self.record, cb_kwargs={"case": "download_slot"},
                             meta={"download_slot": "my-slot"})
        yield scrapy.Request(self.url + "p/5.html", callback=self.record, cb_kwargs={"case": "plugin-meta"},
                             meta=PLUGIN_META)
        # A pydantic model in cb_kwargs (a field left at its default: not in model_fields_set).
        listing = Listing(title="lamp", seen=dt.datetime(2026, 1, 2))
        yield scrapy.Request(self.url + "p/6.html", callback=self.record_model,
                             cb_kwargs={"case": "pydantic", "listing": listing})
        # follow_all under DEPTH_LIMIT.
        yield from response.follow_all(css="a[href*='/p/']", callback=self.deep)

    def record(self, response, case):
        request = response.request
        yield {"case": case, "url": response.url, "status": response.status, "class": type(request).__name__,
               "method": request.method, "slot": response.meta.get("download_slot"),
               "plugin": {k: v for k, v in response.meta.items() if k.startswith("playwright")}}

    def record_model(self, response, case, listing):
        yield {"case": case, "url": response.url, "class": type(listing).__qualname__,
               "fields": listing.model_dump(mode="json"), "set": sorted(listing.model_fields_set)}

    def failed(self, failure):
        request = failure.request  # errbacks get no cb_kwargs; the request still has them
        yield {"case": request.cb_kwargs["case"], "url": request.url, "failure": type(failure.value).__name__,
               "status": failure.value.response.status if failure.check(HttpError) else None,
               "class": type(request).__name__, "method": request.method,
               "body": request.body.decode(), "kwargs": failure.request.cb_kwargs}

    def deep(self, response):
        yield {"case": "follow_all", "url": response.url, "depth": response.meta["depth"]}
        yield from response.follow_all(css="a[href*='/p/']", callback=self.deep)
'''

DEPTH_LIMIT = 2


@pytest.mark.parametrize("demo_site", [40], indirect=True)
def test_features_behave_as_in_plain_scrapy(scrapy_project, redis_url, demo_site):
    project = scrapy_project(
        "compat", {"spiders/compat.py": SPIDER},
        f'REDIS_URL = "{redis_url}"\nHERMIT_IDLE_CLOSE_SECONDS = 1\nDEPTH_LIMIT = {DEPTH_LIMIT}\n',
    )
    args = ("-a", f"url={demo_site.url}")
    runs = {}
    for plain in (False, True):
        out = "plain.jsonl" if plain else "hermit.jsonl"
        proc = project.crawl("compat", *args, "-o", out, plain=plain)
        runs[plain] = (project.feed(out), proc.stderr)
    (hermit, hermit_log), (plain, plain_log) = runs[False], runs[True]

    def cases(items):
        return sorted((i for i in items if i["case"] != "follow_all"), key=lambda i: (i["case"], i["url"]))

    assert cases(hermit) == cases(plain)
    by_case = {item["case"]: item for item in cases(hermit)}
    assert {"dont_filter-0", "dont_filter-1"} <= set(by_case)
    assert by_case["errback-404"]["failure"] == "HttpError" and by_case["errback-404"]["status"] == 404
    assert by_case["form-get"]["url"].endswith("/p/1.html?q=lamp&n=2")
    assert (by_case["form-post"]["class"], by_case["form-post"]["status"], by_case["form-post"]["body"]) == (
        "FormRequest", 405, "q=lamp")
    assert by_case["json-post"]["class"] == "JsonRequest" and by_case["json-post"]["body"] == '{"q": ["lamp", 1]}'
    assert by_case["json-post"]["kwargs"] == {"case": "json-post"}
    assert by_case["download_slot"]["slot"] == "my-slot"
    assert by_case["plugin-meta"]["plugin"]["playwright_page_methods"][0]["args"] == ["h1"]
    assert (by_case["pydantic"]["class"], by_case["pydantic"]["fields"], by_case["pydantic"]["set"]) == (
        "Listing", {"title": "lamp", "seen": "2026-01-02T00:00:00", "tags": []}, ["seen", "title"])
    for items, log in ((hermit, hermit_log), (plain, plain_log)):
        depths = [i["depth"] for i in items if i["case"] == "follow_all"]
        assert max(depths) == DEPTH_LIMIT and min(depths) == 1, depths
        assert f"'request_depth_max': {DEPTH_LIMIT}," in log


LIMITS_SPIDER = '''
import re

import scrapy
from w3lib.url import url_query_cleaner


class LimitsSpider(scrapy.Spider):
    """One item per page, every page's links followed; with ``-a failing=1`` the callback
    of every fourth page raises once its item and links are out (a spider error)."""

    name = "limits"
    failing = ""

    async def start(self):
        yield scrapy.Request(self.url)

    def parse(self, response):
        yield {"url": response.url}
        for href in response.css("a[href*='/p/']::attr(href)").getall():
            yield scrapy.Request(url_query_cleaner(response.urljoin(href), ("sid",), remove=True))
        page = re.search(r"/p/(\\d+)\\.html$", response.url)
        if self.failing and page and int(page[1]) % 4 == 1:
            raise ValueError(f"page {page[1]} fails on purpose")
'''


@pytest.mark.parametrize("demo_site", [80], indirect=True)
def test_closespider_itemcount_is_per_worker_and_the_rest_stays_queued(scrapy_project, redis_url, demo_site):
    project = scrapy_project(
        "limits", {"spiders/limits.py": LIMITS_SPIDER},
        f'REDIS_URL = "{redis_url}"\nHERMIT_IDLE_CLOSE_SECONDS = 1\nCONCURRENT_REQUESTS = 2\n',
    )
    args = ("-a", f"url={demo_site.url}")
    first = project.crawl("limits", *args, "-o", "first.jsonl", "-s", "CLOSESPIDER_ITEMCOUNT=10")
    assert "'finish_reason': 'closespider_itemcount'" in first.stderr
    assert 10 <= len(project.feed("first.jsonl")) < 40
    # A second worker, without the limit, finishes the crawl from the shared queue.
    project.crawl("limits", *args, "-o", "second.jsonl")
    urls = [i["url"] for i in project.feed("first.jsonl") + project.feed("second.jsonl")]
    expected = {demo_site.url} | {f"{demo_site.url}p/{n}.html" for n in range(80)}
    assert set(urls) == expected
    assert len(urls) - len(expected) <= 4  # at most what the first had in flight is fetched again


#: CLOSESPIDER_* setting -> (first worker's settings, its finish reason, spider arguments).
CLOSESPIDER_CASES = {
    "pagecount": (("CLOSESPIDER_PAGECOUNT=10",), "closespider_pagecount", ()),
    "errorcount": (("CLOSESPIDER_ERRORCOUNT=2",), "closespider_errorcount", ("-a", "failing=1")),
    # The crawl's fleet-wide delay makes the whole site take far longer than the timeout.
    "timeout": (("CLOSESPIDER_TIMEOUT=4", "DOWNLOAD_DELAY=0.4"), "closespider_timeout", ()),
}


@pytest.mark.parametrize("demo_site", [80], indirect=True)
@pytest.mark.parametrize("case", sorted(CLOSESPIDER_CASES))
def test_closespider_limits_are_per_worker_and_the_rest_stays_queued(scrapy_project, redis_url, demo_site, case):
    limit_settings, reason, spider_args = CLOSESPIDER_CASES[case]
    project = scrapy_project(
        "limits", {"spiders/limits.py": LIMITS_SPIDER},
        f'REDIS_URL = "{redis_url}"\nHERMIT_IDLE_CLOSE_SECONDS = 1\nCONCURRENT_REQUESTS = 2\n',
    )
    args = ("-a", f"url={demo_site.url}", *spider_args)
    settings = [arg for setting in limit_settings for arg in ("-s", setting)]
    first = project.crawl("limits", *args, "-o", "first.jsonl", *settings)
    assert f"'finish_reason': '{reason}'" in first.stderr
    expected = {demo_site.url} | {f"{demo_site.url}p/{n}.html" for n in range(80)}
    assert 0 < len(project.feed("first.jsonl")) < len(expected) // 2, first.stderr[-3000:]
    if case == "errorcount":
        assert int(re.search(r"'spider_exceptions/ValueError': (\d+)", first.stderr)[1]) >= 2
    # A second worker, without the limit, finishes the crawl from the shared queue.
    second = project.crawl("limits", *args, "-o", "second.jsonl")
    assert "'finish_reason': 'finished'" in second.stderr
    urls = [i["url"] for i in project.feed("first.jsonl") + project.feed("second.jsonl")]
    assert set(urls) == expected
    assert len(urls) - len(expected) <= 4  # at most what the first had in flight is fetched again


def stat(log: str, name: str) -> int:
    """A stat from the dump Scrapy logs at the end (0 when absent)."""
    match = re.search(rf"'{re.escape(name)}': (\d+)", log)
    return int(match[1]) if match else 0


@pytest.mark.parametrize("demo_site", [40], indirect=True)
def test_http_cache_is_the_workers_directory_and_a_new_crawl_reads_it(scrapy_project, redis_url, demo_site, tmp_path):
    project = scrapy_project(
        "limits", {"spiders/limits.py": LIMITS_SPIDER},
        f'REDIS_URL = "{redis_url}"\nHERMIT_IDLE_CLOSE_SECONDS = 1\nHTTPCACHE_ENABLED = True\n',
    )
    expected = {demo_site.url} | {f"{demo_site.url}p/{n}.html" for n in range(40)}

    def crawl(crawl: str, cache: str, workers: int = 2) -> list[str]:
        """The logs of *workers* workers of *crawl* run at once, each with HTTPCACHE_DIR *cache*."""
        procs = [project.start("limits", "-a", f"url={demo_site.url}", "-o", f"{crawl}{i}.jsonl",
                               "-s", f"HERMIT_CRAWL={crawl}", "-s", f"HTTPCACHE_DIR={tmp_path / cache}",
                               log=tmp_path / f"{crawl}{i}.log") for i in range(workers)]
        logs = []
        for i, proc in enumerate(procs):
            proc.wait(timeout=300)
            logs.append((tmp_path / f"{crawl}{i}.log").read_text())
            assert proc.returncode == 0, logs[-1][-3000:]
        return logs

    def items(crawl: str, workers: int = 2) -> list[str]:
        return [item["url"] for i in range(workers) if (project.root / f"{crawl}{i}.jsonl").exists()
                for item in project.feed(f"{crawl}{i}.jsonl")]

    # Two workers on one machine share the project's cache directory.
    first = crawl("first", "shared")
    assert set(items("first")) == expected
    assert sum(stat(log, "httpcache/store") for log in first) >= len(expected)
    demo_site.stop()
    # The same crawl again fetches nothing, not even from the cache: its Bloom filter
    # has every URL (the start request too: it is not dont_filter).
    again = crawl("first", "shared", workers=1)[0]
    assert stat(again, "dupefilter/filtered") == 1 and stat(again, "httpcache/hit") == 0
    assert "'item_scraped_count'" not in again
    # A new crawl of the same site, the site down: every page comes from the cache.
    second = crawl("second", "shared")
    assert sorted(items("second")) == sorted(expected)  # every page once
    assert sum(stat(log, "httpcache/hit") for log in second) == len(expected)
    assert not any(stat(log, "httpcache/miss") or "downloader/exception_count" in log for log in second)
    # A worker with a cache directory of its own (another machine, another pod) has none of it.
    elsewhere = crawl("elsewhere", "elsewhere", workers=1)[0]
    assert stat(elsewhere, "httpcache/miss") >= 1 and stat(elsewhere, "httpcache/hit") == 0
    assert not items("elsewhere", workers=1)
