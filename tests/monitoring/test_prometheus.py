"""A real Prometheus scrapes real workers: every dashboard query and alert rule finds its data."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import redis

from hermit.crawl_status import read_crawl_status
from hermit.keys import CrawlKeys
from hermit.observability.endpoint_log import endpoints_in_log
from hermit.queue.redis_queue import RedisRequestQueue
from hermit.seeding import push_seeds
from hermit.worker.run import EXIT_STOPPED

CRAWL = "prom"
WORKERS = 2
#: The namespace label Prometheus gives each worker, as the Prometheus Operator does for
#: two releases of the chart in two namespaces that run the same crawl name.
NAMESPACES = ["team-a", "team-b"]
#: A budget far above what the workers use: the memory-budget extension then exports it.
BUDGET_BYTES = 8 * 2**30
UNREACHABLE = "http://127.0.0.1:9/"
_METRIC = re.compile(r"\b((?:hermit|process)_[a-z0-9_]+)")


def start_workers(tmp_path: Path, redis_url: str, site_url: str) -> list[tuple[subprocess.Popen, Path]]:
    workers = []
    for index in range(WORKERS):
        log = tmp_path / f"worker-{index}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "hermit.cli", "worker", "demo", "--redis", redis_url, "--crawl", CRAWL,
                 "-a", f"url={site_url}", "-s", "HERMIT_METRICS_PORT=0", "-s", "HERMIT_DIAGNOSTICS_ENABLED=False",
                 "-s", "CONCURRENT_REQUESTS=4", "-s", "LOG_LEVEL=INFO",
                 "-s", f"HERMIT_MEMORY_BUDGET_BYTES={BUDGET_BYTES}",
                 # They stay up once the crawl is done, for Prometheus to see them.
                 "-s", "HERMIT_IDLE_CLOSE_SECONDS=0"],
                stdout=out, stderr=subprocess.STDOUT,
            )
        workers.append((process, log))
    return workers


def metrics_target(process: subprocess.Popen, log: Path, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while (url := endpoints_in_log(log.read_text()).metrics) is None:
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.05)
    return url.removeprefix("http://").removesuffix("/metrics")


def wait_until_crawled(client: redis.Redis, pages: int, workers, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status = read_crawl_status(client, CrawlKeys(CRAWL))
        if status.queue.done and status.items == pages:
            return
        for process, log in workers:
            assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"crawl not done: {status.as_dict()['queue']}"
        time.sleep(0.2)


def _metrics_of(expr: str) -> set[str]:
    """The series a query reads: histogram suffixes name the series Prometheus stores."""
    return set(_METRIC.findall(expr))


def for_prometheus(expr: str, namespace: str = ".*") -> str:
    """A dashboard query with Grafana's variables filled in."""
    return expr.replace("$namespace", namespace).replace("$crawl", CRAWL).replace("$__rate_interval", "1m")


def test_prometheus_scrapes_the_workers_and_every_query_finds_data(
    tmp_path, redis_url, demo_site, prometheus, alert_rules, dashboard_queries,
):
    client = redis.Redis.from_url(redis_url)
    # One seed nobody answers (the discard port): a download error, so the error panels have data too.
    push_seeds(RedisRequestQueue(client, CrawlKeys(CRAWL), "test-seeder"), [(1, UNREACHABLE)])
    workers = start_workers(tmp_path, redis_url, demo_site.url)
    try:
        server = prometheus([metrics_target(process, log) for process, log in workers], namespaces=NAMESPACES)
        pages = len(demo_site.site.expected_urls(demo_site.url))
        wait_until_crawled(client, pages, workers)

        # Once Prometheus has the final counts: the workers' own counts add up to the
        # crawl's, and the crawl-wide values, exported by each worker, are counted once with max.
        server.wait_for(f'sum(hermit_items_scraped_total{{crawl="{CRAWL}"}})', pages)
        server.wait_for(f'max(hermit_crawl_items{{crawl="{CRAWL}"}})', pages)
        assert len(server.query(f'hermit_crawl_items{{crawl="{CRAWL}"}}')) == WORKERS
        assert len(server.query('up{job="hermit-worker"} == 1')) == WORKERS
        assert server.query(f'sum(hermit_errors_total{{crawl="{CRAWL}", kind="download"}}) > 0')
        assert CRAWL in server.api("label/crawl/values", **{"match[]": "hermit_build_info"})["data"]
        # What the dashboards' namespace variable lists; the crawl-wide values stay one per namespace.
        assert server.api("label/namespace/values", **{"match[]": "hermit_build_info"})["data"] == NAMESPACES
        per_namespace = server.query(f'max by (namespace, crawl) (hermit_crawl_items{{crawl="{CRAWL}"}})')
        assert sorted((s["metric"]["namespace"], float(s["value"][1])) for s in per_namespace) == [
            (namespace, pages) for namespace in NAMESPACES]
        # rate() and deriv() need two samples of each series: a few more scrapes.
        server.wait_for('min(count_over_time(up{job="hermit-worker"}[1m]))', 3, at_least=True)

        # Every query finds data with all namespaces. With one chosen, it finds data exactly when
        # that namespace's workers export every metric it reads: the one download error fell to
        # whichever worker leased its host, so one namespace may have no download-exception series.
        no_data = [(title, expr) for title, expr in dashboard_queries if not server.query(for_prometheus(expr))]
        assert no_data == [], f"dashboard queries without data: {no_data}"
        for namespace in NAMESPACES:
            wrong = [(title, expr) for title, expr in dashboard_queries
                     if bool(server.query(for_prometheus(expr, namespace)))
                     != all(server.query(f'{name}{{namespace="{namespace}"}}') for name in _metrics_of(expr))]
            assert wrong == [], f"queries whose data in namespace {namespace} does not match its series: {wrong}"
        for title, expr in dashboard_queries:
            for series in server.query(for_prometheus(expr, "team-a")):
                assert series["metric"].get("namespace", "team-a") == "team-a", (title, series["metric"])

        missing = server.metrics_missing(alert_rules, _METRIC)
        assert missing == set(), f"alert rules on metrics no worker exports: {missing}"

        # Prometheus loaded and evaluated every rule without error; none fires on a healthy crawl
        # (a young worker's start-up growth may leave the memory-growth alert pending: it needs an hour).
        deadline = time.monotonic() + 30
        while True:
            loaded = [rule for group in server.api("rules")["data"]["groups"] for rule in group["rules"]]
            if loaded and all(rule.get("lastEvaluation", "").startswith("20") for rule in loaded):
                break
            assert time.monotonic() < deadline, loaded
            time.sleep(0.5)
        assert sorted(rule["name"] for rule in loaded) == sorted(rule["alert"] for rule in alert_rules)
        assert [rule["name"] for rule in loaded if rule["health"] != "ok"] == []
        assert [rule["name"] for rule in loaded if rule["state"] == "firing"] == []
    finally:
        for process, _ in workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes = [process.wait(60) for process, _ in workers]
    assert codes == [EXIT_STOPPED] * WORKERS


def test_prometheus_follows_a_local_crawls_workers_through_its_targets_file(tmp_path, redis_url, prometheus):
    """``hermit crawl`` lists every worker's /metrics in a file_sd targets file that a real Prometheus follows."""
    crawl, workers = "local-prom", 2
    logs = tmp_path / "logs"
    targets_file = logs / "prometheus-targets.json"
    command = [sys.executable, "-m", "hermit.cli", "crawl", "--workers", str(workers), "--redis", redis_url,
               "--crawl", crawl, "--pages", "150", "--log-dir", str(logs), "-o", str(tmp_path / "items.jsonl"),
               "--state-dir", str(tmp_path / "state"),
               # Workers stay up after the crawl is done, until stopped, for Prometheus to see them.
               "--idle-close-seconds", "0", "-s", "CONCURRENT_REQUESTS=4"]
    with (tmp_path / "crawl.log").open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (targets_file.exists() and len(json.loads(targets_file.read_text())) == workers):
            assert process.poll() is None, (tmp_path / "crawl.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the pool never listed its workers' metrics"
            time.sleep(0.1)
        groups = json.loads(targets_file.read_text())
        assert sorted(group["labels"]["slot"] for group in groups) == ["0", "1"]

        server = prometheus([], file_sd=targets_file)
        server.wait_for('count(up{job="hermit-worker"} == 1)', workers)
        assert sorted(series["metric"]["slot"] for series in server.query("up")) == ["0", "1"]
        # Each worker's own series, under the crawl's own label (not renamed by the target's labels).
        server.wait_for(f'count(hermit_build_info{{crawl="{crawl}"}})', workers)
        process.send_signal(signal.SIGTERM)  # the pool drains its workers and ends, as interrupted
        assert process.wait(180) == 128 + signal.SIGTERM, (tmp_path / "crawl.log").read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "Prometheus targets (file_sd_configs) in" in (tmp_path / "crawl.log").read_text()
    assert json.loads(targets_file.read_text()) == [], "stopped workers are still listed"
