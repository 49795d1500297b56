"""Worker RSS benchmark: plain Scrapy vs a Hermit worker with N requests pending.

The same spider runs four times, each in its own ``scrapy runspider`` subprocess:
plain Scrapy (default in-memory scheduler) and a Hermit worker (``ADDONS =
{"hermit.addon.Addon": 0}``, ``REDIS_URL`` of an embedded Redis started here),
each with ``start()`` yielding N requests and yielding none. The requests point at
a socket on 127.0.0.1 that accepts connections and never answers, and
``CONCURRENT_REQUESTS = 1``, so one request is in flight and the rest wait: in the
scheduler's memory for plain Scrapy, in Redis for Hermit.

Once ``start()`` is exhausted and every request is scheduled (stats
``scheduler/enqueued``, or ``scheduler/enqueued/redis`` + ``dupefilter/filtered``
for Hermit, whose enqueues are confirmed by Redis), the spider reads its own RSS
with psutil, writes it to a file and exits. It also records its RSS after
yielding 1/4, 1/2 and 3/4 of the requests, so a queue-size-independent RSS shows
as a flat line. Bytes per pending request = (RSS with N - RSS with 0) / N.

Writes ``bench/results/worker_rss.json`` and prints a table. Run:

    .venv/bin/python bench/bench_worker_rss.py            # 1,000,000 requests, a few minutes
    .venv/bin/python bench/bench_worker_rss.py --quick    # 100,000 requests
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from hermit.keys import CrawlKeys
from hermit.queue.redis_queue import read_status
from hermit.redis_server import EmbeddedRedis

RESULTS = Path(__file__).parent / "results" / "worker_rss.json"
MIB = 2**20

SPIDER = '''
import json, os, time

import psutil
import scrapy
from scrapy import signals
from scrapy.exceptions import DontCloseSpider
from twisted.internet.task import LoopingCall

CATEGORIES = ("books", "garden-tools", "kitchen", "electronics", "toys")


class PendingSpider(scrapy.Spider):
    """Yields `count` requests that are never answered; reports its RSS once all are scheduled."""

    name = "pending"

    @classmethod
    def from_crawler(cls, crawler, *args, **kwargs):
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.count, spider.started_all, spider.samples = int(spider.count), False, {}
        crawler.signals.connect(spider.opened, signals.spider_opened)
        crawler.signals.connect(spider.idle, signals.spider_idle)
        return spider

    async def start(self):
        milestones = {self.count * k // 4: k / 4 for k in (1, 2, 3)} if self.count >= 4 else {}
        for i in range(self.count):
            if i in milestones:
                self.samples[milestones[i]] = psutil.Process().memory_info().rss
            yield scrapy.Request(
                f"{self.url}catalog/{CATEGORIES[i % 5]}/{100000 + i}.html?page={1 + i % 40}",
                meta={"depth": 1},
            )
        self.started_all = True

    def opened(self, spider):
        self.opened_at = time.monotonic()
        LoopingCall(self.check).start(0.2)

    def idle(self, spider):
        raise DontCloseSpider  # the N = 0 runs must live until measured

    def check(self):
        stats = self.crawler.stats
        scheduled = sum(stats.get_value(name, 0) for name in
                        ("scheduler/enqueued", "scheduler/enqueued/redis", "dupefilter/filtered"))
        if not self.started_all or scheduled < self.count:
            return
        result = {
            "rss": psutil.Process().memory_info().rss,
            "rss_at_fraction": self.samples,
            "scheduled": scheduled,
            "seconds_to_schedule": time.monotonic() - self.opened_at,
            "stats": {k: v for k, v in stats.get_stats().items()
                      if k.startswith(("scheduler/", "dupefilter/"))},
        }
        with open(self.out, "w") as f:
            json.dump(result, f)
        os._exit(0)  # measured; nothing else to wait for (the one download never ends)

    def parse(self, response):
        pass
'''

COMMON_SETTINGS = {
    "CONCURRENT_REQUESTS": "1",
    "DOWNLOAD_TIMEOUT": "3600",
    "LOG_LEVEL": "WARNING",
    "TELNETCONSOLE_ENABLED": "False",
    "REMOTE_CONTROL_ENABLED": "False",
}


def run_spider(spider_file: Path, url: str, count: int, settings: dict[str, str], timeout: float) -> dict:
    """Run the spider in its own process; return what it reported."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as out:
        out_path = Path(out.name)
    command = [sys.executable, "-m", "scrapy", "runspider", str(spider_file),
               "-a", f"url={url}", "-a", f"count={count}", "-a", f"out={out_path}"]
    for name, value in {**COMMON_SETTINGS, **settings}.items():
        command += ["-s", f"{name}={value}"]
    try:
        proc = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=timeout)
        report = out_path.read_text()
        if proc.returncode != 0 or not report:
            raise RuntimeError(f"spider exited {proc.returncode}: {proc.stderr.decode()[-3000:]}")
        return json.loads(report)
    finally:
        out_path.unlink(missing_ok=True)


def print_table(report: dict, console: Console) -> None:
    p, s, h = report["params"], report["plain_scrapy"], report["hermit"]
    table = Table(title=f"Worker RSS with {p['requests']:,} pending requests ({report['redis_server']})")
    for name in ("measure", "plain Scrapy", "Hermit worker", "plain / Hermit"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    table.add_row("RSS, 0 requests (MiB)", f"{s['rss_0_mib']:.1f}", f"{h['rss_0_mib']:.1f}",
                  f"{s['rss_0_mib'] / h['rss_0_mib']:.2f}")
    for fraction in ("0.25", "0.5", "0.75"):
        table.add_row(f"RSS after yielding {float(fraction):.0%} (MiB)",
                      f"{s['rss_at_fraction_mib'].get(fraction, 0):.1f}",
                      f"{h['rss_at_fraction_mib'].get(fraction, 0):.1f}", "")
    table.add_row(f"RSS, {p['requests']:,} requests (MiB)", f"{s['rss_n_mib']:.1f}", f"{h['rss_n_mib']:.1f}",
                  f"{report['ratios']['rss_n']:.1f}x")
    table.add_row("bytes per pending request", f"{s['bytes_per_pending_request']:,.0f}",
                  f"{h['bytes_per_pending_request']:,.1f}", "")
    table.add_row("seconds to schedule all", f"{s['seconds_to_schedule']:.1f}",
                  f"{h['seconds_to_schedule']:.1f}", "")
    console.print(table)
    console.print(f"Hermit's queue in Redis meanwhile: {h['redis_queued']:,} requests queued,"
                  f" {h['redis_used_memory_mib']:.1f} MiB used_memory (Bloom filter included).")


def summarize(at_zero: dict, at_n: dict, n: int) -> dict:
    return {
        "rss_0_mib": at_zero["rss"] / MIB,
        "rss_n_mib": at_n["rss"] / MIB,
        "rss_at_fraction_mib": {k: v / MIB for k, v in at_n["rss_at_fraction"].items()},
        "bytes_per_pending_request": (at_n["rss"] - at_zero["rss"]) / n,
        "seconds_to_schedule": at_n["seconds_to_schedule"],
        "scheduled": at_n["scheduled"],
        "stats": at_n["stats"],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="100,000 requests instead of 1,000,000")
    parser.add_argument("--requests", type=int, help="number of pending requests (overrides --quick)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per spider run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n = args.requests or (100_000 if args.quick else 1_000_000)
    console = Console(width=None if sys.stdout.isatty() else 100)

    # Accepts connections (the kernel does, from the backlog) and never answers.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/"

    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as server:
        spider_file = Path(tmp) / "pending_spider.py"
        spider_file.write_text(SPIDER)
        client = redis.Redis.from_url(server.url)
        info = client.info("server")
        server_name = (f"{'valkey' if 'valkey_version' in info else 'redis'} "
                       f"{info.get('valkey_version') or info['redis_version']}")
        hermit_settings = {"ADDONS": json.dumps({"hermit.addon.Addon": 0}), "REDIS_URL": server.url,
                           "HERMIT_CRAWL": "bench"}
        runs: dict[str, dict] = {}
        for name, settings, count in (
            ("plain_0", {}, 0), ("plain_n", {}, n),
            ("hermit_0", hermit_settings, 0), ("hermit_n", hermit_settings, n),
        ):
            client.flushall()
            started = time.perf_counter()
            runs[name] = run_spider(spider_file, url, count, settings, args.timeout)
            console.print(f"  {name}: RSS {runs[name]['rss'] / MIB:.1f} MiB"
                          f" ({time.perf_counter() - started:.0f}s)")
        redis_queued = read_status(client, CrawlKeys("bench")).queued
        redis_used = int(client.info("memory")["used_memory"])
        client.close()
    silent.close()

    plain = summarize(runs["plain_0"], runs["plain_n"], n)
    hermit = summarize(runs["hermit_0"], runs["hermit_n"], n)
    hermit.update(redis_queued=redis_queued, redis_used_memory_mib=redis_used / MIB)
    report = {
        "redis_server": server_name,
        "machine": {"python": platform.python_version(), "platform": platform.platform(),
                    "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count()},
        "versions": {name: version(name) for name in ("scrapy", "redis", "hiredis", "psutil")},
        "params": {"requests": n, "settings": COMMON_SETTINGS, "hermit_settings": hermit_settings | {
            "REDIS_URL": "redis://127.0.0.1:<port>/0"}},
        "plain_scrapy": plain,
        "hermit": hermit,
        "ratios": {"rss_n": plain["rss_n_mib"] / hermit["rss_n_mib"]},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print_table(report, console)
    console.print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
