"""The diagnostics extension: its settings, and hunting a real leak in a running worker."""

from __future__ import annotations

import inspect
import logging
import re
import socket
import time
import tracemalloc

import pytest
import redis
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler

from hermit.crawl_status import read_crawl_status
from hermit.demo.leaky_spider import LeakySpider
from hermit.keys import CrawlKeys
from hermit.observability.diagnostics import DiagnosticsExtension
from hermit.observability.endpoints import TOKEN_ENVIRONMENT_VARIABLE
from hermit.queue.redis_queue import RedisRequestQueue
from hermit.seeding import push_seeds
from hermit.settings import DEFAULT_SETTINGS

TOKEN = "leak-hunter"


def extension(**settings) -> DiagnosticsExtension:
    crawler = get_crawler(Spider, {**DEFAULT_SETTINGS, "HERMIT_DIAGNOSTICS_PORT": 0, **settings})
    return DiagnosticsExtension.from_crawler(crawler)


@pytest.fixture(autouse=True)
def no_token_in_environment(monkeypatch):
    monkeypatch.delenv(TOKEN_ENVIRONMENT_VARIABLE, raising=False)


def test_refuses_a_public_address_without_a_token():
    with pytest.raises(NotConfigured, match="not a loopback address: set HERMIT_DIAGNOSTICS_TOKEN"):
        extension(HERMIT_DIAGNOSTICS_HOST="0.0.0.0")
    assert extension(HERMIT_DIAGNOSTICS_HOST="0.0.0.0", HERMIT_DIAGNOSTICS_TOKEN="t").endpoint.token == "t"


def test_starts_with_the_spider_and_stops_with_it_and_its_tracemalloc(client):
    diagnostics = extension()
    diagnostics.spider_opened(Spider(name="probe"))
    url = diagnostics.server.url("/")
    assert client.fetch_json(url + "refs")[0] == 200
    assert client.fetch_json(url + "tracemalloc/start?frames=1", method="POST")[1]["tracing"] is True
    diagnostics.stop()
    assert diagnostics.server is None and not tracemalloc.is_tracing()
    diagnostics.stop()


def test_a_taken_port_logs_an_error(caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        diagnostics = extension(HERMIT_DIAGNOSTICS_PORT=taken.getsockname()[1])
        with caplog.at_level(logging.ERROR):
            diagnostics.spider_opened(Spider(name="probe"))
    assert diagnostics.server is None and "runs without them" in caplog.text


def wait_for_acked(client: redis.Redis, keys: CrawlKeys, count: int, worker, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while read_crawl_status(client, keys).queue.counters.get("acked", 0) < count:
        assert worker.process.poll() is None, worker.log()[-3000:]
        assert time.monotonic() < deadline, f"fewer than {count} pages crawled:\n{worker.log()[-3000:]}"
        time.sleep(0.05)


def wait_for_metric(client, url: str, name: str, value: float, worker, timeout: float = 60.0):
    """Scrape until this worker's series *name* has *value*; return that scrape."""
    deadline = time.monotonic() + timeout
    while True:
        samples = client.scrape(url)
        if samples.get((name, frozenset({"crawl": "leaky"}.items()))) == value:
            return samples
        assert worker.process.poll() is None, worker.log()[-3000:]
        assert time.monotonic() < deadline, f"{name} never reached {value}"
        time.sleep(0.1)


@pytest.mark.scrapy_versions  # a real crawl: also on the oldest supported Scrapy
@pytest.mark.parametrize("demo_site", [400], indirect=True)
def test_a_leaking_worker_shows_its_leak(redis_url, demo_site, start_worker, client):
    # The leaky spider keeps every response alive; without a url argument it crawls
    # only the requests pushed here.
    worker = start_worker(
        "-m", "scrapy", "runspider", inspect.getfile(LeakySpider), "-s", 'ADDONS={"hermit.addon.Addon": 0}',
        "-s", f"REDIS_URL={redis_url}", "-s", "HERMIT_METRICS_PORT=0", "-s", "HERMIT_DIAGNOSTICS_PORT=0",
        "-s", "CONCURRENT_REQUESTS=4", "-s", "LOG_LEVEL=INFO",
        env={TOKEN_ENVIRONMENT_VARIABLE: TOKEN},
    )
    endpoints = worker.endpoints()
    diagnostics = endpoints.diagnostics
    redis_client = redis.Redis.from_url(redis_url)
    keys = CrawlKeys("leaky")
    queue = RedisRequestQueue(redis_client, keys, "test-seeder")

    def live_responses() -> float:
        return client.value(client.scrape(endpoints.metrics), "hermit_live_objects", crawl="leaky",
                            **{"class": "HtmlResponse"})

    def crawl(first: int, last: int, other_requests: int = 0) -> None:
        push_seeds(queue, [(n, f"{demo_site.url}p/{n}.html") for n in range(first, last)])
        wait_for_acked(redis_client, keys, last + other_requests, worker)

    # p/0 alone first, so it is certainly the oldest response; then more, in steps.
    live = []
    for first, last in [(0, 1), (1, 150), (150, 300)]:
        crawl(first, last)
        live.append(live_responses())
    assert live == [1, 150, 300]  # every response ever received is still alive

    # A request in flight: a page that never answers holds its lease, and the metrics show it.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        push_seeds(queue, [(1, f"http://127.0.0.1:{silent.getsockname()[1]}/never")])
        in_flight = wait_for_metric(client, endpoints.metrics, "hermit_leased_requests", 1, worker)
        assert client.value(in_flight, "hermit_crawl_leased_requests", crawl="leaky") == 1
    # Closed: its download fails, and the request ends (acked) without an item.
    wait_for_acked(redis_client, keys, 301, worker)

    # Bad requests get clear answers, and disturb nothing.
    assert client.fetch_json(diagnostics + "refs")[0] == 401
    assert client.fetch_json(diagnostics + "refs", token="wrong")[0] == 403
    assert client.fetch_json(diagnostics + "refs/NoSuchThing/oldest", token=TOKEN)[0] == 404
    status, body = client.fetch_json(diagnostics + "refs/HtmlResponse?limit=99999999", token=TOKEN)
    assert status == 400 and "limit must be between" in body["error"]
    status, body = client.fetch_json(diagnostics + "tracemalloc/start?frames=100000", method="POST", token=TOKEN)
    assert status == 400 and "frames must be between" in body["error"]
    assert client.fetch_json(diagnostics + "tracemalloc", token=TOKEN)[1]["tracing"] is False

    # The diagnostics name the leaking class and the oldest response's URL.
    assert client.fetch_json(diagnostics + "gc", method="POST", token=TOKEN)[0] == 200
    status, refs = client.fetch_json(diagnostics + "refs", token=TOKEN)
    assert status == 200
    by_class = {entry["class"]: entry for entry in refs["classes"]}
    assert by_class["HtmlResponse"]["live"] == 300
    # Each kept response keeps its request too; nothing else piles up.
    assert sorted(name for name, entry in by_class.items() if entry["live"] >= 300) == ["HtmlResponse", "Request"]
    status, oldest = client.fetch_json(diagnostics + "refs/HtmlResponse/oldest", token=TOKEN)
    assert status == 200 and oldest["url"] == f"{demo_site.url}p/0.html"
    assert oldest["age_seconds"] >= by_class["HtmlResponse"]["oldest_age_seconds"] > 0
    status, listed = client.fetch_json(diagnostics + "refs/HtmlResponse?limit=3", token=TOKEN)
    assert status == 200 and listed["live"] == 300 and listed["objects"][0]["url"] == oldest["url"]

    # tracemalloc on demand, while the leak goes on.
    status, started = client.fetch_json(diagnostics + "tracemalloc/start?frames=5", method="POST", token=TOKEN)
    assert status == 200 and started["tracing"] is True
    assert client.fetch_json(diagnostics + "tracemalloc/snapshot", method="POST", token=TOKEN)[0] == 200
    crawl(300, 400, other_requests=1)  # the request that failed is acked too
    status, diff = client.fetch_json(diagnostics + "tracemalloc/diff?limit=10&group_by=filename", token=TOKEN)
    assert status == 200 and len(diff["diff"]) == 10
    assert diff["total_diff_bytes"] > 100 * 1000  # a hundred more kept pages of ~2.4 KB
    status, top = client.fetch_json(diagnostics + "tracemalloc/top?limit=5", token=TOKEN)
    assert status == 200 and len(top["top"]) == 5
    assert live_responses() == 400

    # The crawl was not disturbed: every page was scraped once, and the worker drains on SIGTERM.
    assert redis_client.xlen(keys.items) == 400
    assert worker.stop() == 0  # scrapy runspider's status after a graceful stop
    log = worker.log()
    assert "Spider closed (shutdown)" in log
    # No error from the endpoints, whatever they were asked (the page that never answered
    # has Scrapy log its own).
    assert "hermit/observability" not in log
    assert not re.search(r"\[hermit\.observability[.\w]*\] (ERROR|WARNING)", log)
