"""Crawls over TLS: Scrapy workers given a ``rediss://`` URL (with a password, and the
CA that signed the server's certificate) by the environment, as the chart gives it,
against a real TLS-only Redis and a real TLS Redis Cluster (clients, cluster bus and
replication all over TLS); the command-line reads too. A plain URL to a TLS port, or
a URL that doesn't trust the CA, fails with a clear error instead of hanging."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from hermit.cli import main
from hermit.demo.many_hosts import ManyHostsProcess
from hermit.keys import CrawlKeys
from hermit.queue.redis_queue import read_status
from hermit.queue.shards import crawl_shards
from hermit.redis_client import connect
from hermit.redis_server import EmbeddedRedis, RedisServerError
from hermit.testing.redis_cluster import LocalRedisCluster
from hermit.testing.tls import issue_server_tls, tls_server_binary
from tests.crawler.worker.many_hosts_crawl import POLITE, SPIDERS, expected_pages, fetched_pages, worker_logs

pytestmark = pytest.mark.slow

PASSWORD = "tls-s3cret"


@pytest.fixture(scope="module")
def server_binary() -> str:
    try:
        return tls_server_binary()
    except RedisServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def tls(tmp_path):
    return issue_server_tls(tmp_path / "tls")


def worker_command(site) -> list[str]:
    """The chart's worker command (``hermit worker SPIDER``) for the many-hosts spider."""
    return [sys.executable, "-m", "hermit.cli", "worker", "many-hosts", "-a", f"url={site.url}",
            "-s", "HERMIT_CRAWL=hosts", "-s", "HERMIT_REDIS_RETRY_MAX_SECONDS=1"]


def start_worker(project, site, url: str) -> subprocess.CompletedProcess[str]:
    """One worker that is expected to fail at start."""
    return subprocess.run(worker_command(site), cwd=project.root, capture_output=True, text=True, timeout=120,
                          env={**project.env(False), "HERMIT_REDIS_URL": url})


def crawl_with_url_in_environment(project, site, url: str, tmp_path, workers: int) -> list[subprocess.Popen]:
    """*workers* worker processes given the Redis URL as the chart gives it: HERMIT_REDIS_URL
    in the environment (from a Secret there)."""
    env = {**project.env(False), "HERMIT_REDIS_URL": url}
    procs = []
    for n in range(workers):
        log = (tmp_path / f"worker{n}.log").open("wb")
        procs.append(subprocess.Popen(worker_command(site), cwd=project.root, env=env,
                                      stdout=log, stderr=subprocess.STDOUT))
    for proc in procs:
        proc.wait(timeout=300)
    return procs


def test_workers_crawl_over_a_tls_redis_and_a_plain_url_fails_clearly(
        scrapy_project, server_binary, tls, tmp_path):
    project = scrapy_project("tls", SPIDERS, POLITE + "CONCURRENT_REQUESTS_PER_DOMAIN = 2\n")
    with EmbeddedRedis(binary=server_binary, password=PASSWORD, tls=tls) as server, \
            ManyHostsProcess(4, 10, tmp_path / "requests.log") as site:
        assert server.url.startswith("rediss://") and "ssl_ca_certs=" in server.url
        plain = server.url.replace("rediss://", "redis://").split("?")[0]
        refused = start_worker(project, site, plain)
        untrusted = start_worker(project, site, server.url.split("?")[0])
        procs = crawl_with_url_in_environment(project, site, server.url, tmp_path, 2)
        records = site.records()
        client = connect(server.url)
        status = read_status(client, CrawlKeys("hosts"))
        runner = CliRunner()
        shown = runner.invoke(main, ["status", "--redis", server.url, "--crawl", "hosts", "--json"])
    for failed in (refused, untrusted):
        assert failed.returncode != 0
        assert "cannot reach Redis at rediss://:***@" in failed.stderr or "cannot reach Redis at redis://:***@" \
            in failed.stderr, failed.stderr[-2000:]
        assert "Traceback" not in failed.stderr, failed.stderr[-2000:]
        assert PASSWORD not in failed.stdout + failed.stderr
    assert "certificate verify failed" in untrusted.stderr, untrusted.stderr[-2000:]
    assert [p.returncode for p in procs] == [0, 0], worker_logs(tmp_path)
    assert set(fetched_pages(records)) == expected_pages(site)
    assert status.done and status.counters["enqueued"] == len(expected_pages(site)) + 1
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["queue"]["counters"]["enqueued"] == len(expected_pages(site)) + 1


def test_workers_crawl_over_a_tls_redis_cluster(scrapy_project, server_binary, tls, tmp_path):
    project = scrapy_project("tlscluster", SPIDERS, POLITE + "CONCURRENT_REQUESTS_PER_DOMAIN = 2\n")
    with LocalRedisCluster(masters=3, replicas=1, binary=server_binary, password=PASSWORD, tls=tls) as cluster, \
            ManyHostsProcess(6, 10, tmp_path / "requests.log") as site:
        assert cluster.url.startswith("rediss://")
        # The replicas replicate over TLS too: each has its master's link up.
        for master in cluster.masters():
            (replica,) = cluster.replicas_of(master)
            assert replica.command("INFO", "replication")["master_link_status"] == "up"
        procs = crawl_with_url_in_environment(project, site, cluster.url, tmp_path, 2)
        records = site.records()
        client = cluster.client()
        keys = CrawlKeys("hosts")
        shards = crawl_shards(client, keys)
        status = read_status(client, keys)
        runner = CliRunner()
        seeded = runner.invoke(main, ["seed", "--redis", cluster.url, "--crawl", "more", "--url", site.url])
        info = runner.invoke(main, ["dedup", "info", "--redis", cluster.url, "--crawl", "hosts"])
    assert [p.returncode for p in procs] == [0, 0], worker_logs(tmp_path)
    assert set(fetched_pages(records)) == expected_pages(site)
    assert shards == 16 and status.done
    assert seeded.exit_code == 0 and "1 queued" in seeded.output, seeded.output
    assert info.exit_code == 0 and "over 16 shards" in info.output, info.output
