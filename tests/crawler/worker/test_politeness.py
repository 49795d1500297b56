"""Fleet-wide politeness in real crawls: several Scrapy workers on a many-hosts site that logs every request.

The site (127.0.0.2, .3, … on one port) records each request's time and host, so
what the hosts saw is counted directly: no host ever gets more than its limit from
all workers together (one request of slack per window), and nothing is lost.
"""

from __future__ import annotations

import signal
import time

import redis
from click.testing import CliRunner

from hermit.cli import main
from hermit.demo.many_hosts import ManyHostsProcess, highest_rates
from hermit.keys import CrawlKeys
from hermit.queue.redis_queue import read_status
from tests.crawler.worker.many_hosts_crawl import (
    POLITE, SHORT_LEASES, SPIDERS, expected_pages, fetched_pages, run_workers, worker_logs,
)

def test_three_workers_together_keep_each_hosts_delay(scrapy_project, redis_url, tmp_path):
    project = scrapy_project("polite", SPIDERS, POLITE + "DOWNLOAD_DELAY = 0.2\nCONCURRENT_REQUESTS_PER_DOMAIN = 1\n")
    with ManyHostsProcess(4, 25, tmp_path / "requests.log") as site:
        procs = run_workers(project, site, redis_url, tmp_path, 3)
        records = site.records()
    assert [p.returncode for p in procs] == [0, 0, 0], worker_logs(tmp_path)
    pages = fetched_pages(records)
    assert set(pages) == expected_pages(site)
    # 0.2 s between two fetches of a host, fleet-wide: at most 5 in any second, plus one of slack.
    rates = highest_rates(records, 1.0)
    assert max(rates.values()) <= 6, rates
    # Three workers each on its own would have allowed 15: all three did take part.
    assert all("'scheduler/dequeued/redis'" in (tmp_path / f"worker{i}.log").read_text() for i in range(3))


def test_a_slow_host_does_not_hold_a_worker_back(scrapy_project, redis_url, tmp_path):
    project = scrapy_project("slowhost", SPIDERS, POLITE + "CONCURRENT_REQUESTS_PER_DOMAIN = 2\n")
    with ManyHostsProcess(12, 10, tmp_path / "requests.log", slow=["127.0.0.3=3"]) as site:
        procs = run_workers(project, site, redis_url, tmp_path, 1)
        records = site.records()
    assert procs[0].returncode == 0, worker_logs(tmp_path)
    assert set(fetched_pages(records)) == expected_pages(site)
    fast = [r for r in records if r.host != "127.0.0.3" and r.path.startswith("/p/")]
    last_fast = max(r.time for r in fast)
    slow_before = [r for r in records if r.host == "127.0.0.3" and r.time <= last_fast]
    # The slow host (3 s a page, 2 at a time) kept at most its two slots busy while the
    # worker fetched the 110 pages of the other hosts: it never filled the worker's
    # prefetch with its own requests.
    assert len(slow_before) <= 6, (len(slow_before), len(fast))


def test_robots_delay_retry_after_and_timeouts_hold_for_the_fleet(scrapy_project, redis_url, tmp_path):
    project = scrapy_project("signals", SPIDERS, POLITE + """
CONCURRENT_REQUESTS_PER_DOMAIN = 1
ROBOTSTXT_OBEY = True
DOWNLOAD_TIMEOUT = 0.5
RETRY_TIMES = 1
HERMIT_HOST_BACKOFF_BASE_SECONDS = 0.2
HERMIT_HOST_BACKOFF_MAX_SECONDS = 0.5
""")
    with ManyHostsProcess(6, 8, tmp_path / "requests.log", robots_delay=["127.0.0.3=0.5"],
                          too_many=["127.0.0.4=1:1.5"], hang=["127.0.0.5"]) as site:
        procs = run_workers(project, site, redis_url, tmp_path, 2)
        records = site.records()
    assert [p.returncode for p in procs] == [0, 0], worker_logs(tmp_path)
    # Every page of the hosts that answer, the ones answered 429 at first included.
    assert set(fetched_pages(records)) == expected_pages(site)
    # robots.txt Crawl-delay 0.5 s, for both workers together: at most 2 a second, plus one.
    assert highest_rates([r for r in records if r.host == "127.0.0.3"], 1.0)["127.0.0.3"] <= 3
    # After the 429 (Retry-After 1.5 s, over the 0.5 s cap) no worker asked that host
    # again for the capped 0.5 s.
    throttled = sorted((r for r in records if r.host == "127.0.0.4" and r.path != "/robots.txt"),
                       key=lambda r: r.time)
    for answer, following in zip(throttled, throttled[1:]):
        if answer.status == 429:
            assert following.time - answer.time >= 0.4, (answer, following)
    client = redis.Redis.from_url(redis_url)
    counters = read_status(client, CrawlKeys("hosts")).counters
    assert counters["backoff:429"] == 1
    assert counters["backoff:timeout"] >= 1  # the host that never answers backed off
    assert client.hget(CrawlKeys("hosts").host_robots_delay, "127.0.0.3") == b"500"


def test_sigkill_of_a_worker_mid_crawl_loses_no_page(scrapy_project, redis_url, tmp_path):
    project = scrapy_project("chaos", SPIDERS, POLITE + SHORT_LEASES + "CONCURRENT_REQUESTS_PER_DOMAIN = 2\n")
    with ManyHostsProcess(20, 15, tmp_path / "requests.log") as site:
        def kill_one(procs):
            client, leases = redis.Redis.from_url(redis_url), CrawlKeys("hosts").leases("w0")
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (
                len(site.log.read_text().splitlines()) >= 60 and client.hlen(leases) > 0
            ):
                time.sleep(0.02)
            procs[0].send_signal(signal.SIGKILL)  # while it holds leases

        procs = run_workers(project, site, redis_url, tmp_path, 3, while_running=kill_one)
        records = site.records()
    assert procs[0].returncode == -signal.SIGKILL
    assert [p.returncode for p in procs[1:]] == [0, 0], worker_logs(tmp_path)
    pages = fetched_pages(records)
    assert set(pages) == expected_pages(site)
    counters = read_status(redis.Redis.from_url(redis_url), CrawlKeys("hosts")).counters
    # Fetched twice only what the killed worker held: its leases, which expired.
    assert len(pages) - len(set(pages)) <= counters.get("expired", 0)
    assert counters.get("expired", 0) >= 1


def test_a_host_paused_at_runtime_waits_and_resumes(scrapy_project, redis_url, tmp_path):
    project = scrapy_project("pause", SPIDERS, POLITE)
    hosts_cli = ["--redis", redis_url, "--crawl", "hosts"]
    assert CliRunner().invoke(main, ["hosts", "pause", *hosts_cli, "127.0.0.3"]).exit_code == 0
    with ManyHostsProcess(4, 10, tmp_path / "requests.log") as site:
        others = {page for page in expected_pages(site) if page[0] != "127.0.0.3"}

        def resume_when_the_others_are_done(procs):
            deadline = time.monotonic() + 120
            while not others <= set(fetched_pages(site.records())) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not [r for r in site.records() if r.host == "127.0.0.3"]  # not one request while paused
            shown = CliRunner().invoke(main, ["hosts", "show", *hosts_cli, "127.0.0.3"])
            host, queued, active = shown.output.splitlines()[1].split()[:3]
            assert '"paused": true' in shown.output and int(queued) >= 1 and active == "0"
            assert procs[0].poll() is None  # the crawl waits for the paused host
            assert CliRunner().invoke(main, ["hosts", "resume", *hosts_cli, "127.0.0.3"]).exit_code == 0

        procs = run_workers(project, site, redis_url, tmp_path, 1, while_running=resume_when_the_others_are_done)
        records = site.records()
    assert procs[0].returncode == 0, worker_logs(tmp_path)
    assert set(fetched_pages(records)) == expected_pages(site)
