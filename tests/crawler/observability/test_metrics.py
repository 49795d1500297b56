"""The metrics extension: in a process of its own, and on a real crawl of the demo site."""

from __future__ import annotations

import logging
import socket
import time
import urllib.error
import urllib.request

import pytest
import redis
from scrapy import Spider
from scrapy.exceptions import NotConfigured
from scrapy.utils.test import get_crawler
from twisted.internet.task import Clock

import hermit
from hermit.crawl_status import read_crawl_status
from hermit.keys import CrawlKeys
from hermit.observability.metrics import MetricsExtension
from hermit.settings import DEFAULT_SETTINGS


def make_extension(redis_url: str, clock: Clock | None = None, **settings) -> tuple[MetricsExtension, Spider]:
    crawler = get_crawler(Spider, {**DEFAULT_SETTINGS, "HERMIT_REDIS_URL": redis_url, "HERMIT_CRAWL": "m",
                                   "HERMIT_METRICS_HOST": "127.0.0.1", "HERMIT_METRICS_PORT": 0, **settings})
    extension = MetricsExtension.from_crawler(crawler)
    extension.clock = clock
    return extension, Spider(name="probe")


def test_serves_worker_and_process_metrics_on_a_free_port(redis_url, client):
    extension, spider = make_extension(redis_url)
    extension.spider_opened(spider)
    try:
        samples = client.scrape(extension.server.url("/metrics"))
        assert client.value(samples, "hermit_build_info", crawl="m", version=hermit.__version__,
                            scrapy_version=__import__("scrapy").__version__) == 1
        # RSS comes from prometheus-client's default process collector, once.
        assert sum(1 for name, _ in samples if name == "process_resident_memory_bytes") == 1
        assert client.value(samples, "hermit_crawl_queued_requests", crawl="m") == 0
        assert client.value(samples, "hermit_metrics_collect_errors_total", crawl="m", collector="crawl_status") == 0
    finally:
        url = extension.server.url("/metrics")
        assert extension.spider_closed(spider, "finished") is None  # no final-scrape wait by default
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(url, timeout=5)


def test_a_taken_port_logs_an_error_and_the_crawl_goes_on(redis_url, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        extension, spider = make_extension(redis_url, HERMIT_METRICS_PORT=taken.getsockname()[1])
        with caplog.at_level(logging.ERROR):
            extension.spider_opened(spider)
    assert extension.server is None
    assert "this worker runs without /metrics" in caplog.text and "HERMIT_METRICS_PORT=0" in caplog.text
    extension.spider_closed(spider, "finished")


def test_invalid_settings_disable_it(redis_url):
    with pytest.raises(NotConfigured, match="HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS"):
        make_extension(redis_url, HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS="-1")
    with pytest.raises(NotConfigured, match="HERMIT_METRICS_ENABLED"):
        make_extension(redis_url, HERMIT_METRICS_ENABLED=False)


def test_a_closing_worker_waits_for_a_last_scrape_or_the_timeout(redis_url, client):
    clock = Clock()
    extension, spider = make_extension(redis_url, clock, HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS=30)
    extension.spider_opened(spider)
    url = extension.server.url("/metrics")
    done = extension.spider_closed(spider, "finished")
    clock.advance(1)
    assert not done.called and extension.server is not None
    client.scrape(url)  # began after the close
    for _ in range(500):  # the server thread marks it answered just after the client has read it
        clock.advance(0.1)
        if done.called:
            break
        time.sleep(0.01)
    assert done.called and extension.server is None

    extension, spider = make_extension(redis_url, clock, HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS=30)
    extension.spider_opened(spider)
    done = extension.spider_closed(spider, "finished")
    clock.advance(29.9)
    assert not done.called
    clock.advance(0.2)
    assert done.called and extension.server is None


@pytest.mark.scrapy_versions  # a real crawl: also on the oldest supported Scrapy
@pytest.mark.parametrize("demo_site", [200], indirect=True)
def test_metrics_of_a_real_crawl_agree_with_what_happened(redis_url, demo_site, start_worker, client):
    worker = start_worker(
        "-m", "hermit.cli", "worker", "demo", "--redis", redis_url, "--crawl", "m", "-a", f"url={demo_site.url}",
        "-s", "HERMIT_METRICS_PORT=0", "-s", "HERMIT_DIAGNOSTICS_ENABLED=False", "-s", "LOG_LEVEL=INFO",
        "-s", "HERMIT_IDLE_CLOSE_SECONDS=0.5", "-s", "CONCURRENT_REQUESTS=8",
        # The worker waits for one scrape that began after its spider closed: scraping
        # until it stops serving, the last answer holds its final counts.
        "-s", "HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS=120",
    )
    url = worker.endpoints(diagnostics=False).metrics
    answers = []
    while True:
        try:
            answers.append(client.scrape(url))
        except (urllib.error.URLError, ConnectionError):
            break
        time.sleep(0.05)
    assert worker.wait() == 0, worker.log()[-3000:]
    assert "Final metrics scraped" in worker.log()
    final = answers[-1]

    def value(name: str, **labels: str) -> float:
        return client.value(final, name, crawl="m", **labels)

    assert value("hermit_spider_closing") == 1
    pages = len(demo_site.site.expected_urls(demo_site.url))  # every page, and the traps' pages once
    requests = pages + 1  # and the one 404
    assert value("hermit_items_scraped_total") == pages
    assert value("hermit_responses_total", status_class="2xx") == pages
    assert value("hermit_responses_total", status_class="4xx") == 1
    assert value("hermit_responses_total", status_class="3xx") == value("hermit_responses_total", status_class="5xx") == 0
    assert value("hermit_download_requests_total") == requests
    assert value("hermit_download_latency_seconds_count") == requests
    assert value("hermit_response_bytes_total") > demo_site.site.huge_bytes
    assert value("hermit_requests_leased_total") == requests
    assert value("hermit_leases_released_total", result="acked") == requests
    assert sum(value("hermit_errors_total", kind=kind)
               for kind in ("download", "spider", "redis", "unserializable_request")) == 0
    # Dedup: this worker was the crawl's only one, so its checks are the crawl's.
    counters = read_crawl_status(redis.Redis.from_url(redis_url), CrawlKeys("m")).queue.counters
    assert value("hermit_dedup_checks_total", result="new") == counters["enqueued"] == requests
    # Duplicates: the ones Redis found, and the ones the worker dropped itself (their
    # fingerprints already confirmed in the filter), which never reached Redis.
    known_locally = value("hermit_dedup_known_locally_total")
    assert value("hermit_dedup_checks_total", result="duplicate") == counters["duplicates"] + known_locally > pages
    assert known_locally > counters["duplicates"]  # the demo site repeats its links a lot
    assert value("hermit_crawl_dedup_checks_total", result="duplicate") == counters["duplicates"]
    assert value("hermit_crawl_items") == pages
    assert value("hermit_crawl_queued_requests") == value("hermit_crawl_leased_requests") == 0
    assert value("hermit_crawl_requests_acked_total") == requests
    assert value("hermit_crawl_bloom_fingerprints") == requests
    # Counters only grow from one scrape to the next.
    items = [a[("hermit_items_scraped_total", frozenset({"crawl": "m"}.items()))] for a in answers]
    assert items == sorted(items)
