"""Crawl throughput benchmark: Hermit, plain Scrapy and scrapy-redis crawl the same demo site.

Six crawlers crawl the demo site (served in its own process on 127.0.0.1, one site
for the whole benchmark; ``slow_seconds=0.2``, ``huge_bytes=300_000``), in the same run:

- ``plain Scrapy``: one ``scrapy crawl demo`` process with Scrapy's own in-memory
  scheduler and dupefilter;
- ``2 plain Scrapy crawls at once``: two such processes started together, each
  crawling the whole site on its own (pages/s: their pages summed). They share
  nothing, so what two of them do over one is what this machine gives two crawler
  processes: the ceiling for two workers of any shared-queue crawler;
- ``Hermit, 1 worker`` and ``Hermit, 2 workers``: ``hermit worker demo`` processes on
  one crawl, with Hermit's defaults (items also go to the crawl's Redis stream,
  metrics and diagnostics endpoints on, bound to 127.0.0.1 on free ports) and
  ``HERMIT_IDLE_CLOSE_SECONDS=0.5``;
- ``scrapy-redis, 1 worker`` and ``scrapy-redis, 2 workers``: ``scrapy crawl demo``
  processes with ``SCHEDULER = "scrapy_redis.scheduler.Scheduler"``,
  ``DUPEFILTER_CLASS = "scrapy_redis.dupefilter.RFPDupeFilter"``, ``REDIS_URL`` of the
  same Redis and scrapy-redis' defaults otherwise (a ``PriorityQueue`` ZSET of pickled
  requests, a SET of fingerprints), except ``SCHEDULER_PERSIST = True``: without it
  the first worker to close deletes the queue and the fingerprints while the other
  one still crawls.

Every process runs the same spider class (``hermit.demo.spider.DemoSpider``) from the
same generated Scrapy project in a temporary directory (``SPIDER_MODULES =
["hermit.demo.spider"]``; ``hermit worker`` reads a project's settings when started
inside it), with the same settings: ``CONCURRENT_REQUESTS`` and
``CONCURRENT_REQUESTS_PER_DOMAIN`` both 16 (``--concurrency``; the per-domain default of
8 would otherwise be the real limit, the site being one host), ``LOG_LEVEL=INFO``,
the telnet console and remote control off (as Hermit's add-on does) and Scrapy's
defaults otherwise. So each crawler keeps its own order (Scrapy's in-memory LIFO,
Hermit's FIFO, scrapy-redis' priority ZSET); all fetch the same set of URLs. A Hermit
worker also writes every item to the crawl's Redis stream (its default); the others
keep items only as far as the Probe (below) does.

Closing when done. Plain Scrapy closes when its engine is idle, and a Hermit worker
once the crawl's queue and every lease have been empty for 0.5 s. A plain spider on
scrapy-redis' scheduler would close the moment its own engine is idle, even while
the other worker's responses are about to queue more requests, and an idle worker
looks at the queue again only on Scrapy's 5 s engine heartbeat. The generated
project therefore has a small ``IdleClose`` extension, on in the scrapy-redis runs
only: on ``spider_idle`` it keeps the spider open until it has been idle (nothing in
flight, the Redis queue empty) for 2 s, like scrapy-redis' own ``RedisSpider`` with
``MAX_IDLE_TIME_BEFORE_CLOSE``, and while idle it wakes the engine every 0.2 s
(Hermit's ``HERMIT_IDLE_POLL_SECONDS``) so the worker picks up new requests as soon
as a Hermit worker would. Close-time does not enter pages/s (below).

Measured, per run (Redis flushed before each; rounds interleaved, the order reversed
every other round; medians reported):

- Pages/s: a ``Probe`` extension in every process records when its first and last
  responses arrived (``time.time()``, one clock) and the URL of every item. Pages/s =
  distinct pages (summed over the processes of independent crawls) / (last response
  of any worker - first response of any worker), so
  process start-up and closing are left out. Start-up (launch -> first response) is
  reported apart.
- Completeness: the items' URLs against the site's ground truth
  (``DemoSite.expected_urls``: 3,015 pages for 3,000 content pages); missing,
  unexpected and duplicate items, exit codes and finish reasons are recorded, and a
  run that missed pages is reported as such in the table.
- Crawler CPU: user + system seconds of every crawler process from ``wait4`` (exact,
  start-up and close included), per page; the part spent between the first and the
  last response (psutil samples every 0.1 s, interpolated), per page; and the cores
  each process kept busy over that window.
- The demo site's and redis-server's CPU over the same window (cores busy) and over
  the whole run, the machine's busy cores and what other processes used, so the
  table says which side limits the crawl. A process that keeps >= 85 % of one core
  busy is named as the bottleneck (each is one Python or Redis thread), and "all
  CPUs" when the machine as a whole is >= 90 % busy. "others" is what processes
  outside the benchmark (or the hypervisor: steal) used meanwhile: a run with more than 0.1 core of it is called
  out, and ``--wait-quiet SECONDS`` waits for idle CPUs before each run.
- Redis calls, per page: round trips (the Probe counts redis-py's socket writes in
  each crawler: one per command, pipeline or MULTI) and the wall time the crawler's
  main (reactor) thread spent inside redis-py calls (encoding, the round trip,
  parsing), plus the commands Redis executed by name (``CONFIG RESETSTAT`` before the
  run, ``INFO commandstats`` after; this counts the commands inside Hermit's Lua
  scripts too).

Writes ``bench/results/crawl_throughput.json`` and prints two tables. Run:

    .venv/bin/python bench/bench_crawl_throughput.py            # 3,000 pages x 3 rounds, ~8 minutes on 2 cores
    .venv/bin/python bench/bench_crawl_throughput.py --quick    # 500 pages, 1 round, ~35 s
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import redis
from rich.console import Console
from rich.table import Table

from benchlib import (
    machine_busy_seconds,
    machine_info,
    memory_mib,
    wait_for_quiet,
    write_report,
)
from hermit.demo.process import DemoSiteProcess
from hermit.redis_server import EmbeddedRedis

RESULTS = Path(__file__).parent / "results" / "crawl_throughput.json"
SITE_OPTIONS = {"slow_seconds": 0.2, "huge_bytes": 300_000}
SAMPLE_SECONDS = 0.1
IDLE_POLL_SECONDS = 0.2  # HERMIT_IDLE_POLL_SECONDS' default; the scrapy-redis runs' IdleClose wakes as often
HERMIT_IDLE_CLOSE_SECONDS = 0.5
SCRAPY_REDIS_IDLE_CLOSE_SECONDS = 2.0
RUN_TIMEOUT_SECONDS = 600.0
SATURATED_CORE = 0.85  # of one core: a single-threaded process at its limit
SATURATED_MACHINE = 0.90  # of all cores
PROJECT = "throughputbench"


# -- the generated project -------------------------------------------------------------

SETTINGS = '''
BOT_NAME = "throughputbench"
SPIDER_MODULES = ["hermit.demo.spider"]  # the demo spider itself, unchanged
ROBOTSTXT_OBEY = False
CONCURRENT_REQUESTS = {concurrency}
CONCURRENT_REQUESTS_PER_DOMAIN = {concurrency}
LOG_LEVEL = "INFO"
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
EXTENSIONS = {{"throughputbench.probe.Probe": 0, "throughputbench.probe.IdleClose": 0}}
'''

PROBE = '''
"""Benchmark instruments: Probe (every run) and IdleClose (the scrapy-redis runs)."""

import json
import threading
import time

from scrapy import signals
from scrapy.exceptions import DontCloseSpider, NotConfigured
from twisted.internet.task import LoopingCall

STATS = ("finish_reason", "downloader/request_count", "downloader/response_count",
         "downloader/response_status_count/200", "downloader/response_status_count/404",
         "downloader/exception_count", "retry/count", "dupefilter/filtered", "item_scraped_count",
         "log_count/ERROR", "log_count/WARNING", "scheduler/enqueued", "scheduler/dequeued",
         "scheduler/enqueued/redis", "scheduler/dequeued/redis", "elapsed_time_seconds")


class RedisCalls:
    """Counts redis-py's socket writes (one per command, pipeline or MULTI: a round trip each)
    and the wall time the main (reactor) thread spends inside redis-py calls."""

    def __init__(self):
        self.sends = 0
        self.seconds = 0.0
        self.depth = 0
        try:
            from redis.client import Pipeline, Redis
            from redis.connection import AbstractConnection
        except ImportError:
            return
        AbstractConnection.send_packed_command = self.counted(AbstractConnection.send_packed_command)
        Redis.execute_command = self.timed(Redis.execute_command)
        Pipeline.execute = self.timed(Pipeline.execute)

    def counted(self, method):
        def send_packed_command(*args, **kwargs):
            self.sends += 1
            return method(*args, **kwargs)
        return send_packed_command

    def timed(self, method):
        main = threading.main_thread()

        def call(*args, **kwargs):
            if self.depth or threading.current_thread() is not main:
                return method(*args, **kwargs)
            self.depth += 1
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started
                self.depth -= 1
        return call


class Probe:
    """Records the first and last response times, every item's URL and the Redis calls; writes them at close."""

    def __init__(self, crawler, path):
        self.crawler = crawler
        self.path = path
        self.first = self.last = None
        self.responses = 0
        self.items = []
        self.redis = RedisCalls()
        crawler.signals.connect(self.response_received, signal=signals.response_received)
        crawler.signals.connect(self.item_scraped, signal=signals.item_scraped)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        path = crawler.settings.get("BENCH_PROBE_FILE")
        if not path:
            raise NotConfigured
        return cls(crawler, path)

    def response_received(self):
        now = time.time()
        if self.first is None:
            self.first = now
        self.last = now
        self.responses += 1

    def item_scraped(self, item):
        self.items.append(item["url"])

    def spider_closed(self, reason):
        stats = self.crawler.stats.get_stats()
        with open(self.path, "w") as out:
            json.dump({"first_response": self.first, "last_response": self.last, "responses": self.responses,
                       "items": self.items, "reason": reason,
                       "redis_round_trips": self.redis.sends, "redis_call_seconds": self.redis.seconds,
                       "stats": {name: stats[name] for name in STATS if name in stats}}, out)


class IdleClose:
    """Keeps an idle spider open until it has been idle for BENCH_IDLE_CLOSE_SECONDS,
    waking the engine every BENCH_IDLE_POLL_SECONDS meanwhile (Scrapy's own heartbeat is 5 s)."""

    def __init__(self, crawler, seconds, poll):
        self.crawler = crawler
        self.seconds = seconds
        self.poll = poll
        self.idle_since = None
        self.ticker = LoopingCall(self.wake)
        crawler.signals.connect(self.spider_idle, signal=signals.spider_idle)
        crawler.signals.connect(self.busy, signal=signals.request_scheduled)
        crawler.signals.connect(self.busy, signal=signals.response_received)
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)

    @classmethod
    def from_crawler(cls, crawler):
        seconds = crawler.settings.getfloat("BENCH_IDLE_CLOSE_SECONDS")
        if seconds <= 0:
            raise NotConfigured
        return cls(crawler, seconds, crawler.settings.getfloat("BENCH_IDLE_POLL_SECONDS", 0.2))

    def spider_opened(self):
        self.ticker.start(self.poll, now=False)

    def spider_closed(self):
        if self.ticker.running:
            self.ticker.stop()

    def busy(self):
        self.idle_since = None

    def spider_idle(self):
        now = time.monotonic()
        if self.idle_since is None:
            self.idle_since = now
        if now - self.idle_since < self.seconds:
            raise DontCloseSpider

    def wake(self):
        if self.idle_since is None:
            return
        slot = getattr(self.crawler.engine, "_slot", None)  # what the engine's own heartbeat calls
        if slot is not None and slot.closing is None:
            slot.nextcall.schedule()
'''


def write_project(root: Path, concurrency: int) -> Path:
    package = root / PROJECT
    package.mkdir(parents=True)
    (root / "scrapy.cfg").write_text(f"[settings]\ndefault = {PROJECT}.settings\n")
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS.format(concurrency=concurrency).lstrip())
    (package / "probe.py").write_text(PROBE.lstrip())
    return root


# -- the crawlers ----------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    kind: str  # "scrapy", "hermit" or "scrapy-redis"
    workers: int
    #: Each process crawls the whole site on its own (pages/s: their pages summed).
    independent: bool = False


VARIANTS = (
    Variant("scrapy", "plain Scrapy", "scrapy", 1),
    Variant("scrapy-2", "2 plain Scrapy crawls at once", "scrapy", 2, independent=True),
    Variant("hermit-1", "Hermit, 1 worker", "hermit", 1),
    Variant("hermit-2", "Hermit, 2 workers", "hermit", 2),
    Variant("scrapy-redis-1", "scrapy-redis, 1 worker", "scrapy-redis", 1),
    Variant("scrapy-redis-2", "scrapy-redis, 2 workers", "scrapy-redis", 2),
)


def worker_command(variant: Variant, site_url: str, redis_url: str, crawl: str, probe: Path,
                   profile: Path | None = None) -> list[str]:
    """The crawler's command line; with *profile*, run under cProfile writing to that file."""
    python = [sys.executable] if profile is None else [sys.executable, "-m", "cProfile", "-o", str(profile)]
    common = ["-a", f"url={site_url}", "-s", f"BENCH_PROBE_FILE={probe}"]
    if variant.kind == "hermit":
        return [*python, "-m", "hermit.cli", "worker", "demo", "--redis", redis_url, "--crawl", crawl,
                *common, "-s", f"HERMIT_IDLE_CLOSE_SECONDS={HERMIT_IDLE_CLOSE_SECONDS}",
                "-s", "HERMIT_METRICS_HOST=127.0.0.1", "-s", "HERMIT_METRICS_PORT=0",
                "-s", "HERMIT_DIAGNOSTICS_PORT=0"]
    command = [*python, "-m", "scrapy", "crawl", "demo", *common]
    if variant.kind == "scrapy-redis":
        command += ["-s", "SCHEDULER=scrapy_redis.scheduler.Scheduler",
                    "-s", "DUPEFILTER_CLASS=scrapy_redis.dupefilter.RFPDupeFilter",
                    "-s", f"REDIS_URL={redis_url}", "-s", "SCHEDULER_PERSIST=True",
                    "-s", f"BENCH_IDLE_CLOSE_SECONDS={SCRAPY_REDIS_IDLE_CLOSE_SECONDS}",
                    "-s", f"BENCH_IDLE_POLL_SECONDS={IDLE_POLL_SECONDS}"]
    return command


# -- CPU sampling ----------------------------------------------------------------------


def process_cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class Sampler(threading.Thread):
    """Every SAMPLE_SECONDS: (time.time(), CPU seconds) of each watched process and of the machine."""

    def __init__(self, processes: dict[str, psutil.Process]) -> None:
        super().__init__(name="cpu-sampler", daemon=True)
        self.processes = processes
        self.series: dict[str, list[tuple[float, float]]] = {name: [] for name in [*processes, "machine", "steal"]}
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.gone: set[str] = set()
        self.sample()

    def sample(self) -> None:
        now = time.time()
        with self.lock:
            for name, process in self.processes.items():
                if name in self.gone:
                    continue
                try:
                    self.series[name].append((now, process_cpu(process)))
                except psutil.Error:  # exited: its last point comes from wait4
                    self.gone.add(name)
            self.series["machine"].append((now, machine_busy_seconds()))
            self.series["steal"].append((now, getattr(psutil.cpu_times(), "steal", 0.0)))

    def exited(self, name: str, when: float, cpu_seconds: float) -> None:
        with self.lock:
            self.gone.add(name)
            self.series[name].append((when, cpu_seconds))

    def run(self) -> None:
        while not self.stop_event.wait(SAMPLE_SECONDS):
            self.sample()

    def stop(self) -> None:
        self.stop_event.set()
        self.join()
        self.sample()


def value_at(series: list[tuple[float, float]], when: float) -> float:
    """A cumulative series' value at *when*, interpolated between samples."""
    if not series:
        return 0.0
    if when <= series[0][0]:
        return series[0][1]
    for (t0, v0), (t1, v1) in zip(series, series[1:]):
        if t0 <= when <= t1:
            return v0 + (v1 - v0) * (when - t0) / max(1e-9, t1 - t0)
    return series[-1][1]


def cores_busy(series: list[tuple[float, float]], start: float, end: float) -> float:
    return (value_at(series, end) - value_at(series, start)) / max(1e-9, end - start)


# -- one run ---------------------------------------------------------------------------


def start_sampler(processes: list[subprocess.Popen[bytes]], others: dict[str, Any], launched: float) -> Sampler:
    """A started Sampler of *others* and every worker process (``worker<i>``), whose CPU starts at 0 at *launched*."""
    watched = dict(others)
    for i, process in enumerate(processes):
        try:
            watched[f"worker{i}"] = psutil.Process(process.pid)
        except psutil.Error:
            pass
    sampler = Sampler(watched)
    for i in range(len(processes)):  # a worker's CPU starts at 0 when it is launched
        sampler.series.setdefault(f"worker{i}", []).insert(0, (launched, 0.0))
    sampler.start()
    return sampler


def wait_all(processes: list[subprocess.Popen[bytes]], sampler: Sampler,
             timeout_seconds: float = RUN_TIMEOUT_SECONDS) -> tuple[dict[int, dict[str, Any]], bool]:
    """Wait for every process (wait4: exact CPU); kill those left after *timeout_seconds*."""
    exits: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_seconds
    timed_out = False
    while len(exits) < len(processes):
        for i, process in enumerate(processes):
            if i in exits:
                continue
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                when = time.time()
                process.returncode = os.waitstatus_to_exitcode(status)
                cpu = usage.ru_utime + usage.ru_stime
                exits[i] = {"exit_code": process.returncode, "exited_at": when, "cpu_seconds": round(cpu, 3),
                            "max_rss_mib": round(usage.ru_maxrss / 1024, 1)}
                sampler.exited(f"worker{i}", when, cpu)
        if len(exits) < len(processes) and time.monotonic() > deadline and not timed_out:
            timed_out = True
            for i, process in enumerate(processes):
                if i not in exits:
                    process.kill()
        time.sleep(0.02)
    return exits, timed_out


def run_once(variant: Variant, round_: int, site: DemoSiteProcess, server: EmbeddedRedis, project: Path,
             workdir: Path, profile_dir: Path | None = None) -> dict[str, Any]:
    client = redis.Redis.from_url(server.url)
    client.execute_command("FLUSHALL", "SYNC")
    client.config_resetstat()  # commandstats from zero: the crawlers' commands only
    crawl = f"bench-{round_}-{variant.key}"
    expected = site.site.expected_urls(site.url)
    assert site.process is not None and server.process is not None
    others = {"site": psutil.Process(site.process.pid), "redis": psutil.Process(server.process.pid),
              "bench": psutil.Process()}
    before = {name: process_cpu(p) for name, p in others.items()}
    probes = [workdir / f"{crawl}-{i}.json" for i in range(variant.workers)]
    logs = [workdir / f"{crawl}-{i}.log" for i in range(variant.workers)]
    processes: list[subprocess.Popen[bytes]] = []
    launched = time.time()
    try:
        for probe, log in zip(probes, logs):
            profile = None if profile_dir is None else profile_dir / f"{probe.stem}.prof"
            with log.open("wb") as out:
                processes.append(subprocess.Popen(
                    worker_command(variant, site.url, server.url, crawl, probe, profile),
                    cwd=project, stdout=out, stderr=subprocess.STDOUT))
        sampler = start_sampler(processes, others, launched)
        exits, timed_out = wait_all(processes, sampler)
        sampler.stop()
    finally:
        for process in processes:  # interrupted: leave no worker behind
            if process.returncode is None:
                process.kill()
                process.wait()
    after = {name: process_cpu(p) for name, p in others.items()}
    finished = max(e["exited_at"] for e in exits.values())
    commands = {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}
    for ours in ("info", "config|resetstat"):
        commands.pop(ours, None)
    client.close()

    workers = []
    items: list[str] = []
    own_items: list[list[str]] = []  # per process
    for i, (probe, log) in enumerate(zip(probes, logs)):
        data = json.loads(probe.read_text()) if probe.exists() else None
        worker = {**exits[i], "exited_at": round(exits[i]["exited_at"] - launched, 3),
                  "probe_written": data is not None}
        own_items.append(data["items"] if data is not None else [])
        if data is not None:
            items.extend(data["items"])
            worker.update(responses=data["responses"], items=len(data["items"]), reason=data["reason"],
                          first_response=data["first_response"], last_response=data["last_response"],
                          redis_round_trips=data["redis_round_trips"],
                          redis_call_seconds=round(data["redis_call_seconds"], 3), stats=data["stats"])
        if worker["exit_code"] != 0 or data is None:
            worker["log_tail"] = log.read_text(errors="replace")[-3000:]
        workers.append(worker)
    firsts = [w["first_response"] for w in workers if w.get("first_response")]
    lasts = [w["last_response"] for w in workers if w.get("last_response")]
    distinct = set(items)
    fetched = distinct & expected
    missing = sorted(expected - distinct)
    unexpected = sorted(distinct - expected)
    duplicates = len(items) - len(distinct)
    pages = len(fetched)
    if variant.independent:  # every process a whole crawl of its own: each must be complete
        mine = [set(own) for own in own_items]
        missing = sorted({url for own in mine for url in expected - own})
        pages = sum(len(own & expected) for own in mine)
        duplicates = sum(len(own) - len(set(own)) for own in own_items)
    start, end = (min(firsts), max(lasts)) if firsts else (launched, finished)
    window = max(1e-9, end - start)
    series = sampler.series
    worker_names = [f"worker{i}" for i in range(len(processes))]
    worker_cores = [cores_busy(series[name], start, end) for name in worker_names]
    crawler_cpu = sum(e["cpu_seconds"] for e in exits.values())
    crawler_cpu_window = sum(value_at(series[n], end) - value_at(series[n], start) for n in worker_names)
    own = {name: cores_busy(series[name], start, end) for name in ("site", "redis", "bench")}
    machine = cores_busy(series["machine"], start, end)
    for worker in workers:  # absolute times -> seconds since launch
        for key in ("first_response", "last_response"):
            if worker.get(key):
                worker[key] = round(worker[key] - launched, 3)
    for worker, cores in zip(workers, worker_cores):
        worker["cores_busy_in_window"] = round(cores, 3)
    return {
        "round": round_ + 1, "variant": variant.key, "crawl": crawl, "workers": variant.workers,
        "pages_expected": len(expected), "pages_fetched": pages, "complete": not missing,
        "missing": len(missing), "missing_examples": missing[:10],
        "unexpected": len(unexpected), "unexpected_examples": unexpected[:10],
        "duplicate_items": duplicates,
        "exit_codes": [w["exit_code"] for w in workers], "timed_out": timed_out,
        "requests": sum(w.get("stats", {}).get("downloader/request_count", 0) for w in workers),
        "window_seconds": round(window, 3),
        "pages_per_second": round(pages / window, 1),
        "startup_seconds": round(start - launched, 3),
        "tail_seconds": round(finished - end, 3),
        "run_seconds": round(finished - launched, 3),
        "crawler_cpu_seconds": round(crawler_cpu, 3),
        "crawler_cpu_ms_per_page": round(1000 * crawler_cpu / max(1, pages), 3),
        "crawler_cpu_ms_per_page_in_window": round(1000 * crawler_cpu_window / max(1, pages), 3),
        "cores_busy_in_window": {
            "crawler": round(sum(worker_cores), 3), "busiest_worker": round(max(worker_cores), 3),
            "site": round(own["site"], 3), "redis": round(own["redis"], 3), "bench": round(own["bench"], 3),
            "machine": round(machine, 3), "steal": round(cores_busy(series["steal"], start, end), 3),
            "others": round(max(0.0, machine - sum(worker_cores) - sum(own.values())), 3),
        },
        "cpu_seconds_whole_run": {name: round(after[name] - before[name], 3) for name in ("site", "redis", "bench")},
        "site_cpu_ms_per_page": round(1000 * (after["site"] - before["site"]) / max(1, pages), 3),
        "redis_cpu_ms_per_page": round(1000 * (after["redis"] - before["redis"]) / max(1, pages), 3),
        "redis_round_trips_per_page": round(sum(w.get("redis_round_trips", 0) for w in workers) / max(1, pages), 2),
        "redis_call_ms_per_page": round(1000 * sum(w.get("redis_call_seconds", 0.0) for w in workers)
                                        / max(1, pages), 3),
        "redis_commands": sum(commands.values()),
        "redis_commands_per_page": round(sum(commands.values()) / max(1, pages), 2),
        "redis_commands_by_name": dict(sorted(commands.items(), key=lambda kv: -kv[1])),
        "worker_details": workers,
    }


# -- summary and output ----------------------------------------------------------------


def bottleneck(cores: dict[str, float], cpus: int) -> str:
    found = []
    if cores["busiest_worker"] >= SATURATED_CORE:
        found.append("crawler CPU")
    if cores["site"] >= SATURATED_CORE:
        found.append("demo site CPU")
    if cores["redis"] >= SATURATED_CORE:
        found.append("Redis CPU")
    if cores["machine"] >= SATURATED_MACHINE * cpus:
        found.append("all CPUs")
    return ", ".join(found) or "no CPU saturated"


def summarize(runs: list[dict[str, Any]], cpus: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant.key]
        if not mine:
            continue

        def median(key: str, runs: list[dict[str, Any]] = mine) -> float:
            return round(statistics.median(r[key] for r in runs), 3)

        cores = {name: round(statistics.median(r["cores_busy_in_window"][name] for r in mine), 3)
                 for name in mine[0]["cores_busy_in_window"]}
        summary[variant.key] = {
            "label": variant.label, "workers": variant.workers, "runs": len(mine),
            "complete_runs": sum(1 for r in mine if r["complete"]),
            "clean_runs": sum(1 for r in mine if r["complete"] and not r["timed_out"]
                              and not any(r["exit_codes"]) and not r["duplicate_items"] and not r["unexpected"]),
            "pages_fetched_min": min(r["pages_fetched"] for r in mine), "pages_expected": mine[0]["pages_expected"],
            "pages_per_second": median("pages_per_second"),
            "pages_per_second_range": [min(r["pages_per_second"] for r in mine),
                                       max(r["pages_per_second"] for r in mine)],
            "crawler_cpu_ms_per_page": median("crawler_cpu_ms_per_page"),
            "crawler_cpu_ms_per_page_in_window": median("crawler_cpu_ms_per_page_in_window"),
            "site_cpu_ms_per_page": median("site_cpu_ms_per_page"),
            "redis_cpu_ms_per_page": median("redis_cpu_ms_per_page"),
            "redis_commands_per_page": median("redis_commands_per_page"),
            "redis_round_trips_per_page": median("redis_round_trips_per_page"),
            "redis_call_ms_per_page": median("redis_call_ms_per_page"),
            "startup_seconds": median("startup_seconds"),
            "window_seconds": median("window_seconds"),
            "cores_busy_in_window": cores,
            "bottleneck": bottleneck(cores, cpus),
        }
    base = summary.get("scrapy")
    for one, two in (("scrapy", "scrapy-2"), ("hermit-1", "hermit-2"), ("scrapy-redis-1", "scrapy-redis-2")):
        if one in summary and two in summary:
            summary[two]["pages_per_second_vs_one"] = round(
                summary[two]["pages_per_second"] / summary[one]["pages_per_second"], 3)
    plain_by_round = {r["round"]: r["pages_per_second"] for r in runs if r["variant"] == "scrapy"}
    for key, entry in summary.items():
        if base:
            entry["pages_per_second_vs_scrapy"] = round(entry["pages_per_second"] / base["pages_per_second"], 3)
            # Each round's rate over plain Scrapy's in the same round: the machine's speed
            # drifts between rounds (by up to ~15 % here), far less within one.
            paired = [r["pages_per_second"] / plain_by_round[r["round"]] for r in runs
                      if r["variant"] == key and r["round"] in plain_by_round]
            entry["pages_per_second_vs_scrapy_same_round"] = round(statistics.median(paired), 3) if paired else None
            entry["crawler_cpu_per_page_vs_scrapy"] = round(
                entry["crawler_cpu_ms_per_page"] / base["crawler_cpu_ms_per_page"], 3)
    return summary


# -- where the crawlers' CPU goes (--profile) ------------------------------------------

_C_FUNCTION_OWNER = re.compile(r"(?:of '|built-in method )_?([A-Za-z0-9]+)")


def code_owner(filename: str, function: str) -> str:
    """The package a profiled function belongs to: ``scrapy``, ``twisted``, ``hermit``,
    ``lxml``..., ``python:<module>`` for the standard library."""
    if filename == "~":  # a C function: its type's or module's name says whose it is
        match = _C_FUNCTION_OWNER.search(function)
        return match.group(1) if match else "builtins"
    path = filename.replace("\\", "/")
    if "/site-packages/" in path:
        return path.split("/site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    if "/hermit/" in path:
        return "hermit"
    if f"/{PROJECT}/" in path:
        return "this benchmark's probe"
    if "/lib/python" in path:
        return "python:" + path.split("/lib/python", 1)[1].split("/", 2)[1].removesuffix(".py")
    return "other"


def cpu_by_owner(profiles: Sequence[Path]) -> dict[str, float]:
    """Seconds spent in each package's own code (cProfile's tottime), over *profiles*."""
    totals: dict[str, float] = {}
    for path in profiles:
        for (filename, _, function), (_, _, own_seconds, _, _) in pstats.Stats(str(path)).stats.items():
            owner = code_owner(filename, function)
            totals[owner] = totals.get(owner, 0.0) + own_seconds
    return totals


def profile_summary(runs: Sequence[dict[str, Any]], profile_dir: Path) -> dict[str, dict[str, float]]:
    """Per crawler: ms of CPU per page in each package's own code, summed over its runs' workers."""
    summary: dict[str, dict[str, float]] = {}
    for key in dict.fromkeys(run["variant"] for run in runs):
        own = [run for run in runs if run["variant"] == key]
        pages = sum(run["pages_fetched"] for run in own)
        profiles = [profile_dir / f"{run['crawl']}-{i}.prof" for run in own for i in range(run["workers"])]
        profiles = [path for path in profiles if path.exists()]
        seconds = cpu_by_owner(profiles)
        summary[key] = {owner: round(1000 * value / max(1, pages), 3)
                        for owner, value in sorted(seconds.items(), key=lambda kv: -kv[1])}
    return summary


def print_profile(summary: dict[str, dict[str, float]], console: Console, rows: int = 14) -> None:
    keys = list(summary)
    totals: dict[str, float] = {}
    for per_owner in summary.values():
        for owner, ms in per_owner.items():
            totals[owner] = max(totals.get(owner, 0.0), ms)
    table = Table(title="CPU ms per page in each package's own code (cProfile; slows every crawler alike)")
    table.add_column("package")
    for key in keys:
        table.add_column(key, justify="right")
    for owner in sorted(totals, key=lambda o: -totals[o])[:rows]:
        table.add_row(owner, *(f"{summary[key].get(owner, 0.0):.2f}" for key in keys))
    table.add_row("all", *(f"{sum(summary[key].values()):.2f}" for key in keys))
    console.print(table)


def print_tables(report: dict[str, Any], console: Console) -> None:
    p = report["params"]
    summary = report["summary"]
    table = Table(title=f"Crawl throughput, demo site of {p['pages']:,} pages, CONCURRENT_REQUESTS={p['concurrency']}"
                        f" (medians of {p['rounds']} round{'s' if p['rounds'] > 1 else ''})")
    for name in ("crawler", "all pages fetched", "pages/s (range)", "vs Scrapy", "vs Scrapy, same round",
                 "crawler CPU ms/page", "vs Scrapy", "of which first→last resp.", "start-up s"):
        table.add_column(name, justify="left" if name == "crawler" else "right")

    def ratio(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}×"

    for entry in summary.values():
        complete = f"{entry['complete_runs']}/{entry['runs']} runs"
        if entry["complete_runs"] < entry["runs"]:
            complete = f"[red]{complete} (min {entry['pages_fetched_min']:,}/{entry['pages_expected']:,})[/]"
        low, high = entry["pages_per_second_range"]
        rate = f"{entry['pages_per_second']:.0f}" + (f" ({low:.0f}–{high:.0f})" if entry["runs"] > 1 else "")
        table.add_row(entry["label"], complete, rate,
                      ratio(entry.get("pages_per_second_vs_scrapy")),
                      ratio(entry.get("pages_per_second_vs_scrapy_same_round")), f"{entry['crawler_cpu_ms_per_page']:.2f}",
                      ratio(entry.get("crawler_cpu_per_page_vs_scrapy")),
                      f"{entry['crawler_cpu_ms_per_page_in_window']:.2f}", f"{entry['startup_seconds']:.2f}")
    console.print(table)
    twos = {key: entry["pages_per_second_vs_one"] for key, entry in summary.items() if "pages_per_second_vs_one" in entry}
    if twos:
        console.print("Two processes over one: " + ", ".join(
            f"{summary[key]['label']} {value:.2f}×" for key, value in twos.items())
            + " (two plain crawls at once share nothing: what this machine gives two crawler processes).")
    table = Table(title="CPU between the first and the last response, in cores busy"
                        f" (machine: {report['machine']['cpus']} CPUs; medians)")
    for name in ("crawler", "crawler processes", "busiest worker", "demo site", "redis-server", "machine", "others",
                 "saturated", "Redis round trips/page", "ms/page in Redis calls"):
        table.add_column(name, justify="left" if name in ("crawler", "saturated") else "right")
    for entry in summary.values():
        c = entry["cores_busy_in_window"]
        table.add_row(entry["label"], f"{c['crawler']:.2f}", f"{c['busiest_worker']:.2f}", f"{c['site']:.2f}",
                      f"{c['redis']:.2f}", f"{c['machine']:.2f}", f"{c['others']:.2f}", entry["bottleneck"],
                      f"{entry['redis_round_trips_per_page']:.1f}", f"{entry['redis_call_ms_per_page']:.2f}")
    console.print(table)
    console.print(f"saturated: a process >= {SATURATED_CORE:.0%} of one core, or the machine >= "
                  f"{SATURATED_MACHINE:.0%} of its CPUs. others: the machine minus the crawlers, site, Redis and"
                  " this script. Redis round trips (redis-py socket writes: a command, a pipeline or a MULTI each)"
                  " and the crawler's main-thread time inside redis-py calls: whole run, all workers, per page.")
    shared = [r["cores_busy_in_window"] for r in report["runs"] if r["cores_busy_in_window"]["others"] > 0.1]
    if shared:
        worst = max(shared, key=lambda c: c["others"])
        console.print(f"[yellow]{len(shared)} of {len(report['runs'])} runs shared the machine with other processes or"
                      f" the hypervisor (up to {worst['others']:.2f} cores, of which {worst['steal']:.2f} steal):"
                      " their rates are less comparable; see --wait-quiet[/]")
    bad = [r for r in report["runs"] if not r["complete"] or r["timed_out"] or any(r["exit_codes"])
           or r["duplicate_items"] or r["unexpected"]]
    for r in bad:
        console.print(f"[red]round {r['round']} {r['variant']}:[/] {r['pages_fetched']:,}/{r['pages_expected']:,}"
                      f" pages, {r['missing']} missing, {r['unexpected']} unexpected,"
                      f" {r['duplicate_items']} duplicate items, exit codes {r['exit_codes']}"
                      f"{', timed out' if r['timed_out'] else ''}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="500 pages and 1 round")
    parser.add_argument("--pages", type=int, help="content pages of the demo site (default 3,000; --quick 500)")
    parser.add_argument("--rounds", type=int, help="rounds of every crawler (default 3; --quick 1)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="CONCURRENT_REQUESTS and CONCURRENT_REQUESTS_PER_DOMAIN (default 16)")
    parser.add_argument("--only", help="comma-separated crawlers to run (of: "
                        + ", ".join(v.key for v in VARIANTS) + ")")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep-logs", type=Path, help="copy the workers' logs and probe files to this directory")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="run every crawler under cProfile, keep the profiles in DIR and print the CPU per page"
                             " of each package (profiling slows the crawlers: its rates are not the benchmark's)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="on a shared machine: before each run, wait up to SECONDS for 5 s of idle CPUs")
    args = parser.parse_args(argv)
    pages = args.pages or (500 if args.quick else 3000)
    rounds = args.rounds or (1 if args.quick else 3)
    variants = VARIANTS
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {v.key for v in VARIANTS}
        if unknown:
            parser.error(f"unknown crawlers: {', '.join(sorted(unknown))}")
        variants = tuple(v for v in VARIANTS if v.key in wanted)
    console = Console(width=None if sys.stdout.isatty() else 130)
    cpus = os.cpu_count() or 1
    bench_started = time.monotonic()
    runs: list[dict[str, Any]] = []
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hermit-bench-throughput-") as tmp, EmbeddedRedis() as server, \
            DemoSiteProcess(pages=pages, **SITE_OPTIONS) as site:
        project = write_project(Path(tmp) / "project", args.concurrency)
        workdir = Path(tmp) / "runs"
        workdir.mkdir()
        info = redis.Redis.from_url(server.url).info("server")
        server_name = (f"{'valkey' if 'valkey_version' in info else 'redis'} "
                       f"{info.get('valkey_version') or info['redis_version']}")
        console.print(f"{server_name} on {server.url}; demo site {site.url} "
                      f"({len(site.site.expected_urls(site.url)):,} pages to find); {rounds} round(s)")
        for round_ in range(rounds):
            for variant in variants if round_ % 2 == 0 else tuple(reversed(variants)):
                waited = wait_for_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
                if waited and not waited["quiet"]:
                    console.print(f"    [yellow]the machine was not quiet within {args.wait_quiet:.0f}s;"
                                  " crawling anyway[/]")
                run = run_once(variant, round_, site, server, project, workdir, args.profile)
                run["waited_for_quiet"] = waited
                runs.append(run)
                c = run["cores_busy_in_window"]
                flag = "" if run["complete"] and not any(run["exit_codes"]) else "  [red]INCOMPLETE or FAILED[/]"
                console.print(f"  round {round_ + 1} {variant.label}:"
                              f" {run['pages_fetched']:,}/{run['pages_expected']:,} pages,"
                              f" {run['pages_per_second']:.0f} pages/s,"
                              f" {run['crawler_cpu_ms_per_page']:.2f} crawler CPU ms/page;"
                              f" cores: crawler {c['crawler']:.2f}, site {c['site']:.2f},"
                              f" redis {c['redis']:.2f}, machine {c['machine']:.2f}{flag}")
                if c["others"] > 0.25:
                    console.print(f"    [yellow]other processes kept {c['others']:.2f} cores busy meanwhile[/]")
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for path in workdir.iterdir():
                (args.keep_logs / path.name).write_bytes(path.read_bytes())
    report = {
        "redis_server": server_name,
        "machine": machine_info(cpus=cpus, memory_mib=memory_mib()),
        "versions": {name: version(name) for name in
                     ("hermit-crawler", "scrapy", "scrapy-redis", "twisted", "redis", "hiredis", "aiohttp", "psutil")},
        "params": {
            "quick": args.quick, "pages": pages, "rounds": rounds, "concurrency": args.concurrency,
            "wait_quiet": args.wait_quiet,
            "crawlers": [v.key for v in variants], "site": SITE_OPTIONS,
            "hermit_idle_close_seconds": HERMIT_IDLE_CLOSE_SECONDS,
            "scrapy_redis_idle_close_seconds": SCRAPY_REDIS_IDLE_CLOSE_SECONDS,
            "idle_poll_seconds": IDLE_POLL_SECONDS, "sample_seconds": SAMPLE_SECONDS,
            "pages_per_second_means": "distinct pages / (last response - first response, over all workers)",
            "crawler_cpu_means": "user + system seconds of the crawler processes (wait4), start-up included",
            "cores_busy_means": "CPU seconds / wall seconds between the first and the last response (psutil, 0.1 s)",
        },
        "summary": summarize(runs, cpus),
        "runs": runs,
        "profile_cpu_ms_per_page": profile_summary(runs, args.profile) if args.profile else None,
        "bench_seconds": round(time.monotonic() - bench_started, 1),
    }
    write_report(report, args.out)
    print_tables(report, console)
    if report["profile_cpu_ms_per_page"]:
        print_profile(report["profile_cpu_ms_per_page"], console)
    console.print(f"written to {args.out} in {report['bench_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
