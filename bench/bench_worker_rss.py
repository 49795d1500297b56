"""Worker RSS benchmark: plain Scrapy vs a Hermit worker vs scrapy-redis, by frontier size.

The same spider runs in its own ``scrapy runspider`` subprocess for each side and
each frontier size (and once with no requests at all, the baseline):

- plain Scrapy: Scrapy's default in-memory scheduler;
- Hermit worker: ``ADDONS = {"hermit.addon.Addon": 0}``, ``REDIS_URL`` of an
  embedded Redis started here;
- scrapy-redis: ``SCHEDULER = "scrapy_redis.scheduler.Scheduler"``,
  ``DUPEFILTER_CLASS = "scrapy_redis.dupefilter.RFPDupeFilter"``, ``REDIS_URL`` of
  the same Redis (its defaults otherwise: a ``PriorityQueue`` ZSET of pickled
  requests and a SET of fingerprints).

``start()`` yields N requests (``--sizes``, default 10,000, 100,000 and 1,000,000)
pointing at a socket on 127.0.0.1 that accepts connections and never answers, and
``CONCURRENT_REQUESTS = 1``, so one request is in flight and the rest wait: in the
scheduler's memory for plain Scrapy, in Redis for Hermit and scrapy-redis. Redis is
flushed before every run.

Once ``start()`` is exhausted and every request is scheduled (stats
``scheduler/enqueued`` or ``scheduler/enqueued/redis``, plus the duplicates
dropped: ``dupefilter/filtered`` for Hermit, whose enqueues are confirmed by Redis,
or the ``request_dropped`` signal), the spider reads its own RSS with psutil,
writes it to a file and exits. It also records its RSS after yielding 1/4, 1/2 and
3/4 of the requests, so a queue-size-independent RSS shows as a flat line. Bytes
per pending request = (RSS with N - RSS with 0) / N, per side.

After each Hermit and scrapy-redis run, with the spider gone, the requests still
queued are counted and Redis measured: ``used_memory`` (INFO memory) over that of
the empty server, per queued request, and the same split by key (``MEMORY USAGE``)
into the queue and the dedup (Hermit's Bloom filter, scrapy-redis' fingerprint
SET).

Writes ``bench/results/worker_rss.json`` and prints a table. Run:

    .venv/bin/python bench/bench_worker_rss.py            # 10k, 100k, 1M requests, ~15 minutes
    .venv/bin/python bench/bench_worker_rss.py --quick    # 10k, 50k requests
    .venv/bin/python bench/bench_worker_rss.py --sizes 20000,200000
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib.metadata import version
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table

from benchlib import machine_info, write_report
from hermit.keys import CrawlKeys
from hermit.queue.redis_queue import read_status
from hermit.redis_server import EmbeddedRedis

RESULTS = Path(__file__).parent / "results" / "worker_rss.json"
MIB = 2**20
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 50_000)
HERMIT_CRAWL = "bench"
SPIDER_NAME = "pending"  # scrapy-redis names its keys after the spider

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
        spider.dropped = 0
        crawler.signals.connect(spider.opened, signals.spider_opened)
        crawler.signals.connect(spider.idle, signals.spider_idle)
        crawler.signals.connect(spider.request_dropped, signals.request_dropped)
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

    def request_dropped(self, request, spider):
        self.dropped += 1  # the scheduler refused it (a duplicate)

    def check(self):
        stats = self.crawler.stats
        enqueued = sum(stats.get_value(name, 0) for name in ("scheduler/enqueued", "scheduler/enqueued/redis"))
        # Duplicates: Hermit counts the ones Redis filtered; the others refuse them in
        # enqueue_request (request_dropped), plain Scrapy's dupefilter counts them too.
        scheduled = enqueued + max(stats.get_value("dupefilter/filtered", 0), self.dropped)
        if not self.started_all or scheduled < self.count:
            return
        result = {
            "rss": psutil.Process().memory_info().rss,
            "rss_at_fraction": self.samples,
            "scheduled": scheduled,
            "dropped": self.dropped,
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

# side key in the JSON -> name in the table
SIDES = {"plain_scrapy": "plain Scrapy", "hermit": "Hermit worker", "scrapy_redis": "scrapy-redis"}
REDIS_SIDES = ("hermit", "scrapy_redis")


def side_settings(redis_url: str) -> dict[str, dict[str, str]]:
    return {
        "plain_scrapy": {},
        "hermit": {"ADDONS": json.dumps({"hermit.addon.Addon": 0}), "REDIS_URL": redis_url,
                   "HERMIT_CRAWL": HERMIT_CRAWL},
        "scrapy_redis": {"SCHEDULER": "scrapy_redis.scheduler.Scheduler",
                         "DUPEFILTER_CLASS": "scrapy_redis.dupefilter.RFPDupeFilter",
                         "REDIS_URL": redis_url},
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


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def flush(client: redis.Redis) -> None:
    client.execute_command("FLUSHALL", "SYNC")  # not lazily: used_memory must drop now


def hermit_key_kind(key: str) -> str:
    keys = CrawlKeys(HERMIT_CRAWL)
    if key == keys.bloom_meta or key.startswith(keys.bloom_meta + ":"):
        return "dedup"
    if key == keys.priorities or key.startswith(f"{keys.base}:queue:"):
        return "queue"
    return "other"  # leases of the one request in flight, workers, stats...


def scrapy_redis_key_kind(key: str) -> str:
    return {f"{SPIDER_NAME}:requests": "queue", f"{SPIDER_NAME}:dupefilter": "dedup"}.get(key, "other")


def queued_requests(client: redis.Redis, side: str) -> int:
    if side == "hermit":
        return read_status(client, CrawlKeys(HERMIT_CRAWL)).queued
    return int(client.zcard(f"{SPIDER_NAME}:requests"))  # scrapy-redis' default PriorityQueue


def redis_footprint(client: redis.Redis, side: str, empty_used: int) -> dict:
    """What one run left in Redis: queued requests, used_memory, bytes by kind of key."""
    kind_of: Callable[[str], str] = hermit_key_kind if side == "hermit" else scrapy_redis_key_kind
    by_kind = {"queue": 0, "dedup": 0, "other": 0}
    keys: dict[str, int] = {}
    for raw in client.scan_iter(count=1000):
        key = raw.decode()
        size = int(client.memory_usage(key, samples=0) or 0)  # SAMPLES 0: every element
        keys[key] = size
        by_kind[kind_of(key)] += size
    queued = queued_requests(client, side)
    used = used_memory(client)
    per = max(queued, 1)
    return {
        "queued": queued,
        "used_memory_mib": used / MIB,
        "used_memory_empty_mib": empty_used / MIB,
        "bytes_per_queued_request": (used - empty_used) / per,
        "queue_bytes_per_queued_request": by_kind["queue"] / per,
        "dedup_bytes_per_queued_request": by_kind["dedup"] / per,
        "memory_usage_bytes": {"queue": by_kind["queue"], "dedup": by_kind["dedup"], "other": by_kind["other"]},
        "keys": len(keys),
    }


def summarize_size(at_zero: dict, at_n: dict, n: int) -> dict:
    return {
        "rss_n_mib": at_n["rss"] / MIB,
        "rss_at_fraction_mib": {k: v / MIB for k, v in at_n["rss_at_fraction"].items()},
        "bytes_per_pending_request": (at_n["rss"] - at_zero["rss"]) / n,
        "seconds_to_schedule": at_n["seconds_to_schedule"],
        "scheduled": at_n["scheduled"],
        "dropped": at_n.get("dropped", 0),
        "stats": at_n["stats"],
    }


def ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 10 else f"{value:.1f}x"


def print_tables(report: dict, console: Console) -> None:
    sizes = report["params"]["sizes"]
    plain, hermit, sr = (report[side] for side in SIDES)

    table = Table(title=f"Worker RSS (MiB) by requests pending ({report['redis_server']})")
    for name in ("requests pending", *SIDES.values(), "plain / Hermit", "scrapy-redis / Hermit"):
        table.add_column(name, justify="left" if name == "requests pending" else "right")
    table.add_row("0", *(f"{report[side]['rss_0_mib']:.1f}" for side in SIDES),
                  ratio(plain["rss_0_mib"] / hermit["rss_0_mib"]), ratio(sr["rss_0_mib"] / hermit["rss_0_mib"]))
    for n in sizes:
        key, ratios = str(n), report["ratios"][str(n)]
        table.add_row(f"{n:,}", *(f"{report[side]['by_size'][key]['rss_n_mib']:,.1f}" for side in SIDES),
                      ratio(ratios["plain_over_hermit_rss"]), ratio(ratios["scrapy_redis_over_hermit_rss"]))
    console.print(table)

    table = Table(title="Bytes per pending request: worker RSS growth over the 0-request run;"
                        " Redis used_memory per queued request")
    table.add_column("requests pending")
    for name in ("RSS plain Scrapy", "RSS Hermit", "RSS scrapy-redis",
                 "Redis Hermit", "of which Bloom", "Redis scrapy-redis", "of which SET"):
        table.add_column(name, justify="right")
    for n in sizes:
        key = str(n)
        hr, srr = hermit["by_size"][key]["redis"], sr["by_size"][key]["redis"]
        table.add_row(
            f"{n:,}",
            *(f"{report[side]['by_size'][key]['bytes_per_pending_request']:,.1f}" for side in SIDES),
            f"{hr['bytes_per_queued_request']:,.1f}", f"{hr['dedup_bytes_per_queued_request']:,.1f}",
            f"{srr['bytes_per_queued_request']:,.1f}", f"{srr['dedup_bytes_per_queued_request']:,.1f}",
        )
    console.print(table)

    largest = str(sizes[-1])
    for side, name in SIDES.items():
        run = report[side]["by_size"][largest]
        steps = [run["rss_at_fraction_mib"].get(f, 0) for f in ("0.25", "0.5", "0.75")] + [run["rss_n_mib"]]
        console.print(f"{name}, RSS after yielding 25/50/75/100 % of {sizes[-1]:,}: "
                      + " / ".join(f"{v:,.1f}" for v in steps) + " MiB;"
                      f" {run['seconds_to_schedule']:.0f} s to schedule all")


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(part.replace("_", "")) for part in text.split(",") if part.strip()})
    if not sizes or sizes[0] <= 0:
        raise argparse.ArgumentTypeError("sizes must be positive integers, e.g. 10000,100000")
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=parse_sizes,
                        help="comma-separated numbers of pending requests (default 10000,100000,1000000)")
    parser.add_argument("--quick", action="store_true",
                        help=f"sizes {','.join(map(str, QUICK_SIZES))} (--sizes wins)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed per spider run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = args.sizes or list(QUICK_SIZES if args.quick else DEFAULT_SIZES)
    console = Console(width=None if sys.stdout.isatty() else 120)

    # Accepts connections (the kernel does, from the backlog) and never answers.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/"

    runs: dict[tuple[str, int], dict] = {}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedRedis() as server:
        spider_file = Path(tmp) / "pending_spider.py"
        spider_file.write_text(SPIDER)
        client = redis.Redis.from_url(server.url)
        info = client.info("server")
        server_name = (f"{'valkey' if 'valkey_version' in info else 'redis'} "
                       f"{info.get('valkey_version') or info['redis_version']}")
        settings = side_settings(server.url)
        for n in [0, *sizes]:
            for side in SIDES:
                flush(client)
                empty_used = used_memory(client)
                started = time.perf_counter()
                run = run_spider(spider_file, url, n, settings[side], args.timeout)
                line = f"  {side} {n:,}: RSS {run['rss'] / MIB:,.1f} MiB"
                if side in REDIS_SIDES and n:
                    time.sleep(0.2)  # let Redis notice the spider's connections closing
                    run["redis"] = redis_footprint(client, side, empty_used)
                    line += (f", Redis {run['redis']['queued']:,} queued,"
                             f" {run['redis']['bytes_per_queued_request']:.1f} B each")
                runs[side, n] = run
                console.print(line + f" ({time.perf_counter() - started:.0f}s)")
        flush(client)
        client.close()
    silent.close()

    report: dict = {
        "redis_server": server_name,
        "machine": machine_info(),
        "versions": {name: version(name) for name in ("scrapy", "scrapy-redis", "redis", "hiredis", "psutil")},
        "params": {
            "sizes": sizes,
            "settings": COMMON_SETTINGS,
            **{f"{side}_settings": {k: ("redis://127.0.0.1:<port>/0" if k == "REDIS_URL" else v)
                                    for k, v in settings[side].items()} for side in REDIS_SIDES},
        },
    }
    for side in SIDES:
        by_size = {}
        for n in sizes:
            by_size[str(n)] = summarize_size(runs[side, 0], runs[side, n], n)
            if "redis" in runs[side, n]:
                by_size[str(n)]["redis"] = runs[side, n]["redis"]
        report[side] = {"rss_0_mib": runs[side, 0]["rss"] / MIB, "by_size": by_size}
    report["ratios"] = {}
    for n in sizes:
        rss = {side: report[side]["by_size"][str(n)]["rss_n_mib"] for side in SIDES}
        redis_bytes = {side: report[side]["by_size"][str(n)]["redis"]["bytes_per_queued_request"]
                       for side in REDIS_SIDES}
        report["ratios"][str(n)] = {
            "plain_over_hermit_rss": rss["plain_scrapy"] / rss["hermit"],
            "scrapy_redis_over_hermit_rss": rss["scrapy_redis"] / rss["hermit"],
            "scrapy_redis_over_hermit_redis_bytes": redis_bytes["scrapy_redis"] / redis_bytes["hermit"],
        }
    write_report(report, args.out)
    print_tables(report, console)
    console.print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
