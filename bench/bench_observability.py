"""Observability benchmark: what metrics and diagnostics cost a worker.

1. Crawl throughput with and without them, in the same run. One Hermit worker
   (``hermit worker demo``, ``CONCURRENT_REQUESTS=16``) crawls the demo site served
   in its own process, against an embedded Redis, once with ``/metrics`` and
   diagnostics on — and /metrics scraped every second, 15 times as often as a usual
   Prometheus — and once with both off (``HERMIT_METRICS_ENABLED`` /
   ``HERMIT_DIAGNOSTICS_ENABLED`` False). Rounds alternate; medians are reported.
   Pages/s is measured from Redis: from the first acknowledged page to the crawl
   being done, so process start-up and the idle close are left out. The worker's
   CPU time per page (start-up included) is reported too: unlike a rate, it does not
   move with whatever else the machine runs.

2. The cost of a tracemalloc snapshot on a worker holding ~100 MB of traced Python
   heap: a spider that builds ~100 MB of small objects when it opens (traced from
   the start with ``PYTHONTRACEMALLOC=1``, as ``POST /tracemalloc/start`` would
   trace what is allocated after it), then idles. Through the real diagnostics
   endpoint: seconds for ``POST /tracemalloc/snapshot`` (the baseline),
   ``GET /tracemalloc/top`` (a snapshot and its statistics) and
   ``GET /tracemalloc/diff``, and of the ``take_snapshot()`` inside each (it holds the
   GIL throughout, so the crawl stalls that long; grouping the snapshot by site,
   the rest, shares the GIL with the crawl); the worker's RSS before, at its peak
   during each call (sampled every 5 ms) and after; and tracemalloc's own memory.

Writes ``bench/results/observability.json`` and prints a table. Run:

    .venv/bin/python bench/bench_observability.py            # 3,000 pages x 5 rounds, ~5 minutes
    .venv/bin/python bench/bench_observability.py --quick    # 1,000 pages, 2 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import psutil
import redis
from rich.console import Console
from rich.table import Table

from benchlib import machine_info, write_report
from hermit.crawl_status import read_crawl_status
from hermit.demo.process import DemoSiteProcess
from hermit.keys import CrawlKeys
from hermit.observability.endpoint_log import endpoints_in_log
from hermit.redis_server import EmbeddedRedis

RESULTS = Path(__file__).parent / "results" / "observability.json"
MIB = 2**20
SCRAPE_SECONDS = 1.0

HEAP_SPIDER = '''
import scrapy


class HeapSpider(scrapy.Spider):
    """Holds ~N small objects (a dict, a string and an int each), then waits."""

    name = "heap"

    def __init__(self, objects="200000", **kwargs):
        super().__init__(**kwargs)
        self.ballast = [{"url": f"https://example.com/catalog/{i}.html", "n": i} for i in range(int(objects))]

    async def start(self):
        return
        yield
'''


def wait_for_endpoints(log: Path, process: subprocess.Popen, diagnostics: bool, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        found = endpoints_in_log(log.read_text(errors="replace"))
        if found.metrics and (found.diagnostics or not diagnostics):
            return found
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start:\n{log.read_text()[-2000:]}")
        time.sleep(0.05)


def crawl_once(redis_url: str, site: DemoSiteProcess, crawl: str, observed: bool, workdir: Path) -> dict:
    """One worker crawls the whole site; pages/s from the first ack to the end."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    keys = CrawlKeys(crawl)
    switch = "True" if observed else "False"
    log = workdir / f"{crawl}.log"
    command = [
        sys.executable, "-m", "hermit.cli", "worker", "demo", "--redis", redis_url, "--crawl", crawl,
        "-a", f"url={site.url}", "-s", "CONCURRENT_REQUESTS=16", "-s", "LOG_LEVEL=INFO",
        "-s", "HERMIT_IDLE_CLOSE_SECONDS=0.5",
        "-s", f"HERMIT_METRICS_ENABLED={switch}", "-s", f"HERMIT_DIAGNOSTICS_ENABLED={switch}",
        "-s", "HERMIT_METRICS_PORT=0", "-s", "HERMIT_DIAGNOSTICS_PORT=0",
    ]
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    scrapes: list[float] = []
    stop = threading.Event()
    if observed:
        url = wait_for_endpoints(log, process, diagnostics=True).metrics

        def scrape() -> None:
            while not stop.wait(SCRAPE_SECONDS):
                started = time.perf_counter()
                try:
                    urllib.request.urlopen(url, timeout=10).read()
                except OSError:
                    return
                scrapes.append(time.perf_counter() - started)

        threading.Thread(target=scrape, daemon=True).start()
    pages = len(site.site.expected_urls(site.url))
    first_ack = done = None
    try:
        while done is None:
            status = read_crawl_status(client, keys)
            now = time.perf_counter()
            if first_ack is None and status.queue.counters.get("acked", 0) > 0:
                first_ack = now
            if first_ack is not None and status.queue.done and status.items >= pages:
                done = now
            if process.poll() is not None and done is None:
                raise RuntimeError(f"worker exited early:\n{log.read_text()[-2000:]}")
            time.sleep(0.02)
        code = process.wait(120)
    finally:
        stop.set()
        client.close()
        if process.poll() is None:  # interrupted: don't leave the worker behind
            process.kill()
            process.wait()
    if code != 0:
        raise RuntimeError(f"worker exited with {code}:\n{log.read_text()[-2000:]}")
    # CPU time of the worker process (start-up included), which other load on the
    # machine does not change the way it changes wall-clock rates.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
    return {"pages": pages, "seconds": done - first_ack, "pages_per_second": pages / (done - first_ack),
            "worker_cpu_seconds": cpu, "worker_cpu_ms_per_page": cpu * 1000 / pages,
            "scrapes": len(scrapes), "scrape_seconds_median": statistics.median(scrapes) if scrapes else None}


def throughput(pages: int, rounds: int, console: Console) -> dict:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as server, \
            DemoSiteProcess(pages=pages, slow_seconds=0.2, huge_bytes=300_000) as site:
        runs: dict[str, list[dict]] = {"observed": [], "plain": []}
        for round_ in range(rounds):
            for mode in ("observed", "plain") if round_ % 2 == 0 else ("plain", "observed"):
                run = crawl_once(server.url, site, f"bench-{round_}-{mode}", mode == "observed", Path(tmp))
                runs[mode].append(run)
                console.print(f"  round {round_ + 1} {mode}: {run['pages_per_second']:.0f} pages/s, "
                              f"{run['worker_cpu_ms_per_page']:.2f} CPU ms/page")
    medians = {mode: statistics.median(r["pages_per_second"] for r in result) for mode, result in runs.items()}
    cpu = {mode: statistics.median(r["worker_cpu_ms_per_page"] for r in result) for mode, result in runs.items()}
    return {
        "pages": pages, "rounds": rounds, "scrape_interval_seconds": SCRAPE_SECONDS, "runs": runs,
        "pages_per_second_median": medians,
        "ratio_observed_to_plain": medians["observed"] / medians["plain"],
        "worker_cpu_ms_per_page_median": cpu,
        "cpu_ratio_observed_to_plain": cpu["observed"] / cpu["plain"],
    }


class PeakRSS:
    """Samples a process's RSS every 5 ms while in use."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRSS:
        self.before = self.process.memory_info().rss
        self.peak = self.before
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.after = self.process.memory_info().rss
        self.peak = max(self.peak, self.after)


def timed_call(url: str, method: str, pid: int) -> dict:
    with PeakRSS(pid) as rss:
        started = time.perf_counter()
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=600) as response:
            answer = json.loads(response.read())
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "rss_before_mib": rss.before / MIB, "rss_peak_mib": rss.peak / MIB,
            "rss_after_mib": rss.after / MIB, "extra_peak_mib": (rss.peak - rss.before) / MIB,
            "retained_mib": (rss.after - rss.before) / MIB, "answer": answer}


def tracemalloc_cost(objects: int, console: Console) -> dict:
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as server:
        spider = Path(tmp) / "heap_spider.py"
        spider.write_text(HEAP_SPIDER)
        log = Path(tmp) / "heap.log"
        command = [
            sys.executable, "-m", "scrapy", "runspider", str(spider), "-a", f"objects={objects}",
            "-s", 'ADDONS={"hermit.addon.Addon": 0}', "-s", f"REDIS_URL={server.url}", "-s", "LOG_LEVEL=INFO",
            "-s", "HERMIT_METRICS_PORT=0", "-s", "HERMIT_DIAGNOSTICS_PORT=0",
        ]
        results: dict[str, dict] = {}
        for traced in (False, True):
            env = {**os.environ, "PYTHONTRACEMALLOC": "1"} if traced else dict(os.environ)
            with log.open("wb") as out:
                process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
            try:
                base = wait_for_endpoints(log, process, diagnostics=True).diagnostics
                rss = psutil.Process(process.pid).memory_info().rss
                if not traced:
                    results["untraced"] = {"rss_mib": rss / MIB}
                    continue
                status = json.loads(urllib.request.urlopen(base + "tracemalloc", timeout=60).read())
                results["traced"] = {"rss_mib": rss / MIB, "traced_mib": status["traced_bytes"] / MIB,
                                     "tracemalloc_overhead_mib": status["tracemalloc_overhead_bytes"] / MIB}
                for name, path, method in (
                    ("baseline_snapshot", "tracemalloc/snapshot", "POST"),
                    ("top_20", "tracemalloc/top?limit=20", "GET"),
                    ("diff_20", "tracemalloc/diff?limit=20", "GET"),
                ):
                    call = timed_call(base + path, method, process.pid)
                    call["take_snapshot_seconds"] = call.pop("answer")["snapshot_seconds"]
                    results[name] = call
                    console.print(f"  {name}: {call['seconds']:.2f}s, +{call['extra_peak_mib']:.0f} MiB at peak")
            finally:
                process.terminate()
                process.wait(60)
    traced = results["traced"]
    return {"objects": objects, **results,
            "tracing_extra_rss_mib": traced["rss_mib"] - results["untraced"]["rss_mib"]}


def print_table(report: dict, console: Console) -> None:
    t = report["throughput"]
    table = Table(title="Crawl throughput, one worker (medians)")
    for column in ("metrics + diagnostics", "pages/s", "worker CPU ms/page", "/metrics scrape"):
        table.add_column(column)
    observed_scrapes = [r["scrape_seconds_median"] for r in t["runs"]["observed"] if r["scrape_seconds_median"]]
    cpu = t["worker_cpu_ms_per_page_median"]
    table.add_row("on, scraped every 1 s", f"{t['pages_per_second_median']['observed']:.0f}", f"{cpu['observed']:.2f}",
                  f"{statistics.median(observed_scrapes) * 1000:.1f} ms" if observed_scrapes else "-")
    table.add_row("off", f"{t['pages_per_second_median']['plain']:.0f}", f"{cpu['plain']:.2f}", "-")
    table.add_row("ratio on/off", f"{t['ratio_observed_to_plain']:.3f}", f"{t['cpu_ratio_observed_to_plain']:.3f}", "")
    console.print(table)
    m = report["tracemalloc"]
    table = Table(title=f"tracemalloc on a worker with {m['traced']['traced_mib']:.0f} MiB traced")
    for column in ("call", "seconds", "of which take_snapshot (GIL held)", "extra RSS at peak", "RSS kept after"):
        table.add_column(column)
    for name in ("baseline_snapshot", "top_20", "diff_20"):
        call = m[name]
        table.add_row(name, f"{call['seconds']:.2f}", f"{call['take_snapshot_seconds']:.2f}",
                      f"{call['extra_peak_mib']:.0f} MiB", f"{call['retained_mib']:.0f} MiB")
    console.print(table)
    console.print(f"tracing itself: +{m['tracing_extra_rss_mib']:.0f} MiB RSS "
                  f"(tracemalloc reports {m['traced']['tracemalloc_overhead_mib']:.0f} MiB of its own)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 pages and 2 rounds")
    parser.add_argument("--objects", type=int, default=200_000, help="objects the heap spider holds (~100 MiB traced)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    pages, rounds = (1000, 2) if args.quick else (3000, 5)
    console = Console(width=None if sys.stdout.isatty() else 100)
    console.print("throughput:")
    report = {
        "machine": machine_info(),
        "versions": {name: version(name) for name in ("scrapy", "prometheus_client", "redis", "twisted")},
        "throughput": throughput(pages, rounds, console),
    }
    console.print("tracemalloc:")
    report["tracemalloc"] = tracemalloc_cost(args.objects, console)
    write_report(report, args.out)
    print_table(report, console)
    console.print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
