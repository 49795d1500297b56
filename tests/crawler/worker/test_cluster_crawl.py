"""One crawl spread over shards: Scrapy workers on a many-hosts site, on a single Redis
with the sharded layout and on a real Redis Cluster (three masters with replicas on
loopback), a master killed mid-crawl included. Every page is fetched; none is lost."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter

import pytest
from click.testing import CliRunner
from scrapy import Request

from hermit.cli import main
from hermit.crawl_status import read_crawl_status
from hermit.demo.many_hosts import ManyHostsProcess, highest_rates
from hermit.keys import CrawlKeys
from hermit.queue.hosts import HostControl, politeness_key
from hermit.observability.crawl_metrics import CrawlStatusCollector, status_client
from hermit.queue.redis_queue import read_status
from hermit.queue.shards import crawl_shards, shard_keys
from hermit.redis_client import connect
from hermit.testing.redis_cluster import LocalRedisCluster
from tests.crawler.worker.many_hosts_crawl import (
    POLITE, SHORT_LEASES, SPIDERS, expected_pages, fetched_pages, run_workers, worker_logs,
)

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster():
    with LocalRedisCluster(masters=3, replicas=1) as started:
        yield started


def test_three_workers_on_a_sharded_frontier_keep_each_hosts_delay(scrapy_project, redis_url, tmp_path):
    project = scrapy_project("sharded", SPIDERS, POLITE + "DOWNLOAD_DELAY = 0.2\nCONCURRENT_REQUESTS_PER_DOMAIN = 1\n")
    with ManyHostsProcess(8, 12, tmp_path / "requests.log") as site:
        procs = run_workers(project, site, redis_url, tmp_path, 3, {"HERMIT_QUEUE_SHARDS": "4"})
        records = site.records()
    assert [p.returncode for p in procs] == [0, 0, 0], worker_logs(tmp_path)
    client = connect(redis_url)
    assert crawl_shards(client, CrawlKeys("hosts")) == 4
    pages = fetched_pages(records)
    assert set(pages) == expected_pages(site)
    # Each host's delay holds fleet-wide with its queue on one shard: at most 5 a second, plus one.
    assert max(highest_rates(records, 1.0).values()) <= 6
    status = read_status(client, CrawlKeys("hosts"))
    assert status.done and status.counters["enqueued"] == len(expected_pages(site)) + 1  # and the start page


def test_workers_crawl_every_page_over_a_redis_cluster(scrapy_project, cluster, tmp_path):
    project = scrapy_project("cluster", SPIDERS, POLITE + "CONCURRENT_REQUESTS_PER_DOMAIN = 2\n")
    with ManyHostsProcess(8, 15, tmp_path / "requests.log") as site:
        procs = run_workers(project, site, cluster.url, tmp_path, 2)
        records = site.records()
    assert [p.returncode for p in procs] == [0, 0], worker_logs(tmp_path)
    pages = fetched_pages(records)
    assert set(pages) == expected_pages(site)
    client = cluster.client()
    keys = CrawlKeys("hosts")
    assert crawl_shards(client, keys) == 16  # the default on a cluster
    # The crawl's keys are spread over every master.
    masters_used = {cluster.node_for_slot(cluster.slot_of(shard.ready)).port for shard in shard_keys(client, keys)}
    assert masters_used == {m.port for m in cluster.masters()}
    assert read_status(client, keys).done

    # The command-line reads work against the cluster: status adds up every shard,
    # the items come out of shard 0's stream, the filter over its 16 shards.
    runner = CliRunner()
    status = runner.invoke(main, ["status", "--redis", cluster.url, "--crawl", "hosts", "--json"])
    assert status.exit_code == 0, status.output
    shown = json.loads(status.output)
    assert shown["queue"]["counters"]["enqueued"] == len(expected_pages(site)) + 1
    assert shown["bloom"]["shards"] == 16 and shown["bloom"]["items"] == len(expected_pages(site)) + 1
    items = tmp_path / "items.jsonl"
    exported = runner.invoke(main, ["items", "export", "--redis", cluster.url, "--crawl", "hosts", "-o", str(items)])
    assert exported.exit_code == 0, exported.output
    assert len(items.read_text().splitlines()) == len(expected_pages(site))
    info = runner.invoke(main, ["dedup", "info", "--redis", cluster.url, "--crawl", "hosts"])
    assert info.exit_code == 0 and "over 16 shards" in info.output, info.output


# Slow enough (6 hosts, 40 pages each, 0.2 s apart) that the crawl goes on for a while
# after the cluster is disrupted.
DISRUPTED = POLITE + SHORT_LEASES + """
CONCURRENT_REQUESTS_PER_DOMAIN = 1
DOWNLOAD_DELAY = 0.2
HERMIT_REDIS_RETRY_MAX_SECONDS = 1
HERMIT_IDLE_CLOSE_SECONDS = 3
"""


def crawl_through(scrapy_project, cluster, tmp_path, disrupt) -> list[tuple[str, str]]:
    """Two workers crawl over *cluster*, which *disrupt()* changes once 30 pages are
    fetched; checks that every page was fetched and that the crawl went on after, and
    returns the pages fetched."""
    project = scrapy_project("disrupted", SPIDERS, DISRUPTED)
    disrupted_at = []

    with ManyHostsProcess(6, 40, tmp_path / "requests.log") as site:
        def while_running(procs):
            deadline = time.monotonic() + 120
            while len(site.log.read_text().splitlines()) < 30 and time.monotonic() < deadline:
                time.sleep(0.05)
            disrupt()
            disrupted_at.append(time.time())

        procs = run_workers(project, site, cluster.url, tmp_path, 2, while_running=while_running)
        records = site.records()
    assert disrupted_at, "the cluster was not disrupted"
    assert [p.returncode for p in procs] == [0, 0], worker_logs(tmp_path)
    pages = fetched_pages(records)
    assert set(pages) == expected_pages(site)
    assert sum(r.time > disrupted_at[0] for r in records) >= 20  # it was not over before
    assert read_status(cluster.client(), CrawlKeys("hosts")).done
    return pages


def test_a_master_killed_mid_crawl_fails_over_and_no_page_is_lost(scrapy_project, cluster, tmp_path):
    promoted = []

    def kill_a_master():
        victim = cluster.masters()[1]
        cluster.kill(victim)
        promoted.append(cluster.wait_for_failover(victim))

    pages = crawl_through(scrapy_project, cluster, tmp_path, kill_a_master)
    assert promoted and promoted[0].role == "master"
    # Fetched again at most what was in flight around the failover (and what its
    # replica had not received yet: replication is asynchronous).
    again = sum(n - 1 for n in Counter(pages).values())
    assert again <= 2 * 16, again


def test_a_master_without_replica_restarted_mid_crawl_loses_no_page(scrapy_project, tmp_path):
    # No replica to take over: its slots are down until it is back (with its
    # append-only file), and the workers wait for it, retrying.
    with LocalRedisCluster(masters=3, replicas=0) as bare:
        def restart_a_master():
            victim = bare.masters()[1]
            bare.kill(victim)
            time.sleep(2)
            bare.restart(victim)

        crawl_through(scrapy_project, bare, tmp_path, restart_a_master)


def test_slots_migrated_mid_crawl_lose_no_page(scrapy_project, cluster, tmp_path):
    moved = []

    def reshard():
        keys = CrawlKeys("hosts")
        # The slots of four shards (shard 0, with the layout and the items, among them),
        # each moved to the next master while the workers write to it.
        for shard in shard_keys(cluster.client(), keys)[:4]:
            slot = cluster.slot_of(shard.ready)
            source = cluster.node_for_slot(slot)
            masters = cluster.masters()
            target = masters[(masters.index(source) + 1) % len(masters)]
            cluster.migrate_slots([slot], source, target)
            moved.append((slot, target.port))

    crawl_through(scrapy_project, cluster, tmp_path, reshard)
    assert len(moved) == 4
    assert all(cluster.node_for_slot(slot).port == port for slot, port in moved)


def test_sigkill_of_a_worker_on_a_cluster_loses_no_page(scrapy_project, cluster, tmp_path):
    project = scrapy_project("chaos", SPIDERS, POLITE + SHORT_LEASES + "CONCURRENT_REQUESTS_PER_DOMAIN = 2\n")
    client = cluster.client()
    keys = CrawlKeys("hosts")
    with ManyHostsProcess(12, 15, tmp_path / "requests.log") as site:
        def held_by_w0() -> int:
            return sum(client.hlen(shard.leases("w0")) for shard in shard_keys(client, keys))

        def kill_one(procs):
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if len(site.log.read_text().splitlines()) >= 40 and held_by_w0() > 0:
                    # Frozen, it can ack nothing more: killed only while it still holds leases.
                    procs[0].send_signal(signal.SIGSTOP)
                    if held_by_w0() > 0:
                        break
                    procs[0].send_signal(signal.SIGCONT)
                time.sleep(0.05)
            procs[0].send_signal(signal.SIGKILL)  # while it holds leases, on some shards

        procs = run_workers(project, site, cluster.url, tmp_path, 2, while_running=kill_one)
        records = site.records()
    assert procs[0].returncode == -signal.SIGKILL
    assert procs[1].returncode == 0, worker_logs(tmp_path)
    pages = fetched_pages(records)
    assert set(pages) == expected_pages(site)
    counters = read_status(client, keys).counters
    # Fetched twice only what the killed worker held: its leases, which expired.
    assert len(pages) - len(set(pages)) <= counters.get("expired", 0)
    assert counters.get("expired", 0) >= 1


def test_a_cluster_that_asks_for_a_password_is_crawled_with_it_in_the_url(scrapy_project, tmp_path):
    project = scrapy_project("auth", SPIDERS, POLITE + "CONCURRENT_REQUESTS_PER_DOMAIN = 2\n")
    with LocalRedisCluster(masters=3, replicas=0, password="s3cret/+") as cluster, \
            ManyHostsProcess(4, 10, tmp_path / "requests.log") as site:
        assert "s3cret%2F%2B@" in cluster.url
        wrong = subprocess.run(
            project.command("many-hosts", "-a", f"url={site.url}", "-s",
                            f"HERMIT_REDIS_URL={cluster.url.replace('s3cret', 'wrong')}"),
            cwd=project.root, capture_output=True, text=True, timeout=120, env=project.env(False))
        procs = run_workers(project, site, cluster.url, tmp_path, 1)
        records = site.records()
    assert wrong.returncode != 0 and "invalid username-password pair" in wrong.stderr
    assert "wrong" not in wrong.stdout + wrong.stderr  # the password is not printed
    assert procs[0].returncode == 0, worker_logs(tmp_path)
    assert set(fetched_pages(records)) == expected_pages(site)


def test_seeds_status_and_metrics_against_a_cluster(cluster):
    # hermit seed spreads the seeds over the new crawl's shards (16 on a cluster), and
    # the readers - hermit status, the crawl-wide metrics - add every shard up.
    urls = [f"http://127.0.0.{2 + i % 5}:8000/p/{i}.html" for i in range(60)]
    runner = CliRunner()
    seeded = runner.invoke(main, ["seed", "--redis", cluster.url, "--crawl", "seeded", *sum((["--url", u] for u in urls), [])])
    assert seeded.exit_code == 0 and "60 queued, 0 already seen, 0 rejected" in seeded.output, seeded.output
    again = runner.invoke(main, ["seed", "--redis", cluster.url, "--crawl", "seeded", "--url", urls[0]])
    assert "0 queued, 1 already seen" in again.output, again.output
    client = cluster.client()
    keys = CrawlKeys("seeded")
    assert crawl_shards(client, keys) == 16
    hosts = sorted({politeness_key(Request(url)) for url in urls})
    assert sum(info.queued for info in HostControl(client, keys).describe(hosts)) == 60  # each on its shard

    status = json.loads(runner.invoke(main, ["status", "--redis", cluster.url, "--crawl", "seeded", "--json"]).output)
    assert status["queue"]["queued"] == 60 and status["queue"]["hosts"]["with_queue"] == 5
    reads = status_client(cluster.url)
    collector = CrawlStatusCollector(lambda: read_crawl_status(reads.get(), keys), "seeded", "w1")
    values = {(s.name, s.labels.get("result", "")): s.value for family in collector.collect() for s in family.samples}
    assert values[("hermit_crawl_queued_requests", "")] == 60
    assert values[("hermit_crawl_dedup_checks_total", "new")] == 60
    assert values[("hermit_crawl_dedup_checks_total", "duplicate")] == 1
    assert values[("hermit_crawl_bloom_fingerprints", "")] == 60
    reads.close()
