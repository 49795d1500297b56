"""Recycling benchmark: what replacing a worker costs, and what recycling buys, in a local pool.

Every crawl here is ``hermit crawl``'s local pool (``LocalCrawl``) of 3 workers on the
demo site (its own process on 127.0.0.1, a fresh one per crawl; ``slow_seconds=0.2``,
``huge_bytes=100_000``) and one embedded Redis started here (flushed between crawls). Four crawls, in this order:

1. ``leaky, no budget``: the leaky spider (``hermit.demo.leaky_spider``; it keeps
   every response alive, so a worker's RSS only grows) crawls N_leaky pages.
2. ``leaky, budget``: the same crawl with ``memory_budget_bytes`` (default 150 MiB),
   the pool's defaults otherwise (one recycle at a time, none younger than 10 s).
3. ``demo, steady``: the built-in ``demo`` spider (not leaky) crawls N_demo pages,
   no recycling.
4. ``demo, rolling``: the same crawl; once 20% of the pages are done, ``on_refresh``
   recycles worker 0, 1 and 2 one after another (``pool.recycle(i, "rolling", None)``),
   each only once the previous one's replacement has leased a request. The pool's
   warm spare is on (the default): each replacement starts as its predecessor is
   told to drain.
5. ``demo, rolling, no spare``: the same rolling recycle with the warm spare off
   (``warm_spare=False``): each replacement starts only once its predecessor exited.

Measured:

- Time from crossing the budget to a fresh worker taking requests, for every recycle
  of crawl 2 (and, separately, the rolling recycles of crawl 4). A thread here watches
  the pool every 20 ms: each worker's RSS (every 100 ms: when it first exceeds the
  budget), ``slot.draining_since`` (when the pool decided), the process turning into
  a zombie (when it exited, before the pool reaps it) and the replacement's lease hash
  ``hermit:{crawl}:leases:local-<slot>-<restarts>`` in Redis (when it first took a
  request). Workers log with ``LOG_FORMAT`` ``%(created).3f ...``; their logs give the
  start-up's parts (Scrapy's "started" line: interpreter and imports; the scheduler's
  "Hermit worker ... on crawl" line: crawler set up and connected). Reported: median
  and max of decision -> exit (drain), exit -> first lease (start-up, including the
  pool's respawn delay: it notices exits every ``refresh_seconds`` = 0.5 s) and
  decision -> first lease (total), plus crossing -> decision (the policy's wait).
- Throughput during the rolling recycle vs steady state: pages (acked requests, read
  from Redis every 100 ms) per second in crawl 4 over the window from the first
  recycle decision to the last replacement's first lease, and in crawl 3 over the
  same window of time since the crawl's start; their ratio. Crawl 4's rates before its
  rolling recycle (from 10% of the pages on) and after it (up to 90%) are recorded too.
- RSS with and without recycling: each worker's RSS as ``on_refresh`` sees it (every
  0.5 s) in crawls 1 and 2, downsampled in the JSON, their peaks and final values and
  the pages/s of each crawl (pages / seconds from the start to the last page acked).

Each crawl also records CPU time: its own (this process, the workers and demo site it
waited for, and Redis), per page, and how busy other processes kept the machine's CPUs
meanwhile (psutil's machine-wide times minus its own): the numbers are only comparable
when that share is small (``--wait-quiet SECONDS`` waits for idle CPUs before each crawl).

Writes ``bench/results/recycling.json`` and prints tables. The plot
(``docs/images/recycling-rss.png``) is drawn from the JSON by ``bench/plot_recycling.py``
with a matplotlib that is not one of Hermit's dependencies; pass ``--plotlib DIR`` (a
``pip install --target DIR matplotlib``) to draw it at the end. Run:

    .venv/bin/python bench/bench_recycling.py            # 20,000 + 8,000 pages, ~6.5 minutes on 2 cores
    .venv/bin/python bench/bench_recycling.py --quick    # 3,000 + 3,000 pages, ~1.5 minutes
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
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
from hermit.demo import leaky_spider
from hermit.demo.process import DemoSiteProcess
from hermit.keys import CrawlKeys
from hermit.local.pool import WorkerPool
from hermit.local.runner import LocalCrawl, LocalCrawlOptions
from hermit.redis_server import EmbeddedRedis

BENCH = Path(__file__).parent
RESULTS = BENCH / "results" / "recycling.json"
PLOT = BENCH.parent / "docs" / "images" / "recycling-rss.png"
MIB = 2**20
WORKERS = 3
REFRESH_SECONDS = 0.5  # LocalCrawlOptions' default, which `hermit crawl` uses
WATCH_SECONDS = 0.02
LOG_FORMAT = "%(created).3f [%(name)s] %(levelname)s: %(message)s"
SERIES_POINTS = 240  # per crawl, in the JSON

#: Where the workers find the leaky spider (no Scrapy project needed).
LEAKY_SETTINGS = {"SPIDER_MODULES": leaky_spider.__name__}


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Workers inherit the cwd: one without scrapy.cfg, so no project's settings apply."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


# -- watching a pool ------------------------------------------------------------------


@dataclass
class Life:
    """One worker process, from spawn to exit (wall-clock times, time.time())."""

    slot: int
    worker_id: str
    pid: int
    spawned: float
    crossed: float | None = None  # RSS first seen over the budget
    decided: float | None = None  # the pool told it to drain (slot.draining_since)
    exited: float | None = None  # became a zombie
    first_lease: float | None = None  # its lease hash first existed in Redis
    exit_code: int | None = None
    # from its log
    scrapy_started: float | None = None
    scheduler_open: float | None = None
    over_own_budget: float | None = None  # its own soft budget made it drain


class Watcher(threading.Thread):
    """Polls one LocalCrawl's pool (read only) and Redis every WATCH_SECONDS."""

    def __init__(self, crawl: LocalCrawl, client: redis.Redis, keys: CrawlKeys, budget_bytes: int | None) -> None:
        super().__init__(name="bench-watcher", daemon=True)
        self.crawl = crawl
        self.client = client
        self.keys = keys
        self.budget_bytes = budget_bytes
        self.stop_event = threading.Event()
        self.lives: list[Life] = []
        self.acked: list[tuple[float, int]] = []  # (time, acked) every 100 ms
        # (time, machine's busy CPU seconds, this process tree's CPU seconds) every 500 ms
        self.cpu: list[tuple[float, float, float]] = []
        self._tree_cpu: dict[int, float] = {}  # last CPU seconds seen of each descendant
        self._me = psutil.Process()
        self._by_pid: dict[int, tuple[Life, psutil.Process | None]] = {}
        self._slot_started: dict[int, float] = {}
        self.mono_to_wall = time.time() - time.monotonic()
        self.errors: list[str] = []

    def by_worker(self, worker_id: str) -> Life | None:
        return next((life for life in self.lives if life.worker_id == worker_id), None)

    def run(self) -> None:
        tick = 0
        while not self.stop_event.wait(WATCH_SECONDS):
            try:
                self._tick(tick)
            except Exception as exc:  # noqa: BLE001 - a watcher must not die mid-crawl
                self.errors.append(repr(exc))
            tick += 1

    def _tick(self, tick: int) -> None:
        pool: WorkerPool | None = self.crawl.pool
        if pool is None:
            return
        now = time.time()
        for slot in list(pool.slots):
            process, started_at, draining_since = slot.process, slot.started_at, slot.draining_since
            if process is None:
                continue
            known = self._by_pid.get(process.pid)
            if known is None:
                # slot.started_at is set just after Popen returns: wait until it is this process's.
                if started_at == self._slot_started.get(slot.index, 0.0):
                    continue
                self._slot_started[slot.index] = started_at
                life = Life(slot.index, pool.worker_id(slot.index, slot.restarts), process.pid,
                            spawned=started_at + self.mono_to_wall)
                try:
                    handle: psutil.Process | None = psutil.Process(process.pid)
                except psutil.Error:
                    handle = None
                self.lives.append(life)
                self._by_pid[process.pid] = known = (life, handle)
            life, _ = known
            if draining_since is not None and life.decided is None:
                life.decided = draining_since + self.mono_to_wall
        for old in list(pool.retiring):  # replaced by a warm spare, draining beside it
            known = self._by_pid.get(old.process.pid)
            if known is not None and known[0].decided is None:
                known[0].decided = old.draining_since + self.mono_to_wall
        pipe = self.client.pipeline(transaction=False)
        waiting = []
        for life, handle in self._by_pid.values():
            if life.exited is None:
                try:
                    if handle is None or handle.status() == psutil.STATUS_ZOMBIE:
                        life.exited = now
                    elif self.budget_bytes and life.crossed is None and tick % 5 == 0:
                        if handle.memory_info().rss > self.budget_bytes:
                            life.crossed = now
                except psutil.Error:
                    life.exited = now
            if life.first_lease is None and life.exited is None:
                pipe.exists(self.keys.leases(life.worker_id))
                waiting.append(life)
        if tick % 5 == 0:
            pipe.hget(self.keys.stats, "acked")
        results = pipe.execute()
        for life, leased in zip(waiting, results):
            if leased:
                life.first_lease = now
        if tick % 5 == 0:
            self.acked.append((now, int(results[-1] or 0)))
        if tick % 25 == 0:
            self.cpu.append((now, machine_busy_seconds(), self._own_cpu_seconds()))

    def _own_cpu_seconds(self) -> float:
        """CPU of this process and its descendants (workers, demo site, Redis), exited ones included
        as last seen (so a worker's last <= 500 ms are missed, never counted twice)."""
        for child in self._me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                times = child.cpu_times()
                self._tree_cpu[child.pid] = max(self._tree_cpu.get(child.pid, 0.0), times.user + times.system)
        mine = self._me.cpu_times()
        return mine.user + mine.system + sum(self._tree_cpu.values())


_LOG_LINE = re.compile(r"^(\d{9,}\.\d{3}) \[([^\]]+)\] (\w+): (.*)$")
_HERMIT_WORKER = re.compile(r"Hermit worker (\S+) on crawl")


def read_worker_logs(log_dir: Path, lives: list[Life]) -> None:
    """Fill in each life's log times; a slot's log holds its processes one after another."""
    by_id = {life.worker_id: life for life in lives}
    for path in sorted(log_dir.glob("worker-*.log")):
        scrapy_started = None
        life = None
        for line in path.read_text(errors="replace").splitlines():
            match = _LOG_LINE.match(line)
            if not match:
                continue
            created, message = float(match[1]), match[4]
            if message.startswith("Scrapy ") and " started" in message:
                scrapy_started, life = created, None
            elif (worker := _HERMIT_WORKER.search(message)) and worker[1] in by_id:
                life = by_id[worker[1]]
                life.scrapy_started, life.scheduler_open = scrapy_started, created
            elif life is not None and "is over the memory budget" in message and life.over_own_budget is None:
                life.over_own_budget = created


# -- one crawl ------------------------------------------------------------------------


@dataclass
class CrawlRun:
    name: str
    pages: int  # of the demo site
    started: float
    seconds: float
    lives: list[Life]
    acked: list[tuple[float, int]]
    cpu: list[tuple[float, float, float]]
    refreshes: list[dict[str, Any]]  # on_refresh: t, acked, rss by slot
    recycles: list[dict[str, Any]]
    events: list[str]
    exit_codes: dict[int, list[int]]
    cpu_busy_fraction: float = 0.0  # of the machine's CPUs, anyone's work
    cpu_own_seconds: float = 0.0  # this bench, its workers, demo site and Redis
    cpu_other_fraction: float = 0.0  # of the machine's CPUs, busy with other processes
    waited_for_quiet: dict[str, Any] | None = None
    watcher_errors: list[str] = field(default_factory=list)

    @property
    def total_acked(self) -> int:
        return self.acked[-1][1] if self.acked else 0

    @property
    def all_acked_at(self) -> float:
        total = self.total_acked
        return next(t for t, n in self.acked if n >= total)

    def acked_at(self, when: float) -> float:
        """Acked requests at time *when*, interpolated between the 100 ms readings."""
        points = self.acked
        if when <= points[0][0]:
            return float(points[0][1])
        for (t0, n0), (t1, n1) in zip(points, points[1:]):
            if t0 <= when <= t1:
                return n0 + (n1 - n0) * (when - t0) / max(1e-9, t1 - t0)
        return float(points[-1][1])

    def rate(self, start: float, end: float) -> float:
        return (self.acked_at(end) - self.acked_at(start)) / max(1e-9, end - start)

    def cpu_shares(self, start: float, end: float) -> tuple[float, float] | tuple[None, None]:
        """Shares of the machine's CPUs this crawl and other processes used between *start* and *end*."""
        inside = [x for x in self.cpu if start <= x[0] <= end]
        if len(inside) < 2:
            return None, None
        (t0, busy0, own0), (t1, busy1, own1) = inside[0], inside[-1]
        capacity = (t1 - t0) * (os.cpu_count() or 1)
        return (own1 - own0) / capacity, max(0.0, (busy1 - busy0) - (own1 - own0)) / capacity

    def window(self, start: float, end: float) -> dict[str, float | None]:
        """Pages/s and CPU shares between *start* and *end* seconds since the crawl's start."""
        a, b = self.started + start, self.started + end
        own, other = self.cpu_shares(a, b)
        return {"start_seconds": round(start, 2), "end_seconds": round(end, 2),
                "pages_per_second": round(self.rate(a, b), 1),
                "own_cpu_share": None if own is None else round(own, 3),
                "other_cpu_share": None if other is None else round(other, 3)}

    def time_of_acked(self, count: float) -> float:
        return next(t for t, n in self.acked if n >= count)


def run_crawl(
    name: str, *, spider: str, pages: int, server: EmbeddedRedis, log_root: Path,
    cwd: Path, settings: dict[str, str] | None = None, budget_bytes: int | None = None,
    on_refresh: Callable[[Any, WorkerPool, Any, dict[int, int], Watcher], None] | None = None,
    console: Console, wait_quiet: float = 0.0, warm_spare: bool = True,
) -> CrawlRun:
    waited = wait_for_quiet(wait_quiet) if wait_quiet > 0 else None
    if waited is not None and not waited["quiet"]:
        console.print(f"    [yellow]the machine was not quiet within {wait_quiet:.0f}s; crawling anyway[/]")
    redis_process = psutil.Process(server.process.pid) if server.process else None

    def own_cpu_seconds() -> float:
        # Workers and the demo site are children of this process, waited for by the end of the crawl.
        mine = os.times()
        redis_cpu = redis_process.cpu_times() if redis_process else None
        return (mine.user + mine.system + mine.children_user + mine.children_system
                + (redis_cpu.user + redis_cpu.system if redis_cpu else 0.0))

    machine_before, own_before, started = machine_busy_seconds(), own_cpu_seconds(), time.monotonic()
    with DemoSiteProcess(pages=pages, slow_seconds=0.2, huge_bytes=100_000) as site:  # a fresh one per crawl
        run = _run_crawl(name, spider=spider, site=site, pages=pages, server=server, log_root=log_root, cwd=cwd,
                         settings=settings or {}, budget_bytes=budget_bytes, on_refresh=on_refresh,
                         console=console, warm_spare=warm_spare)
    machine_after, own_after, seconds = machine_busy_seconds(), own_cpu_seconds(), time.monotonic() - started
    capacity = seconds * (os.cpu_count() or 1)
    busy = machine_after - machine_before
    run.cpu_busy_fraction = busy / capacity
    run.cpu_own_seconds = own_after - own_before
    run.cpu_other_fraction = max(0.0, busy - run.cpu_own_seconds) / capacity
    run.waited_for_quiet = waited
    if run.cpu_other_fraction > 0.05:
        console.print(f"    [yellow]other processes kept {run.cpu_other_fraction:.0%} of the CPUs busy[/]")
    return run


def _run_crawl(
    name: str, *, spider: str, site: DemoSiteProcess, pages: int, server: EmbeddedRedis, log_root: Path,
    cwd: Path, settings: dict[str, str], budget_bytes: int | None, on_refresh: Callable[..., None] | None,
    console: Console, warm_spare: bool = True,
) -> CrawlRun:
    client = redis.Redis.from_url(server.url)
    client.execute_command("FLUSHALL", "SYNC")
    crawl_name = re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")
    keys = CrawlKeys(crawl_name)
    log_dir = log_root / crawl_name
    options = LocalCrawlOptions(
        spider=spider, workers=WORKERS, redis_url=server.url, crawl=crawl_name, output=None, log_dir=log_dir,
        idle_close_seconds=2.0, spider_args={"url": site.url}, refresh_seconds=REFRESH_SECONDS,
        settings={"LOG_FORMAT": LOG_FORMAT, **settings}, memory_budget_bytes=budget_bytes, warm_spare=warm_spare,
    )
    refreshes: list[dict[str, Any]] = []
    crawl = LocalCrawl(options)
    watcher = Watcher(crawl, redis.Redis.from_url(server.url), keys, budget_bytes)

    def refresh(status, pool, progress, rss) -> None:
        refreshes.append({"t": time.time(), "acked": status.queue.counters.get("acked", 0),
                          "rss": {slot: rss.get(slot) for slot in range(WORKERS)}})
        if on_refresh is not None:
            on_refresh(status, pool, progress, rss, watcher)

    crawl.on_refresh = refresh
    console.print(f"  {name}: crawling {pages:,} pages...")
    started = time.time()
    watcher.start()
    with working_directory(cwd):
        result = crawl.run()
    watcher.stop_event.set()
    watcher.join()
    if result.failure is not None:
        raise RuntimeError(f"crawl {name!r} failed: {result.failure}")
    seconds = time.time() - started
    read_worker_logs(log_dir, watcher.lives)
    for slot, codes in result.exit_codes.items():
        for life, code in zip([life for life in watcher.lives if life.slot == slot], codes):
            life.exit_code = code
    client.close()
    watcher.client.close()
    run = CrawlRun(
        name=name, pages=pages, started=started, seconds=seconds, lives=watcher.lives, acked=watcher.acked,
        cpu=watcher.cpu,
        refreshes=refreshes, recycles=[asdict(r) for r in result.recycles], events=result.events,
        exit_codes=result.exit_codes,
        watcher_errors=watcher.errors,
    )
    console.print(f"    {run.total_acked:,} requests acked in {seconds:.1f}s"
                  f" ({run.total_acked / (run.all_acked_at - started):.0f}/s), {len(result.recycles)} recycles")
    return run


# -- analysis -------------------------------------------------------------------------


def recycle_timings(run: CrawlRun) -> list[dict[str, Any]]:
    """One row per worker that was recycled (by the pool or by itself), with its replacement."""
    rows = []
    for life in run.lives:
        decided = life.decided or life.over_own_budget
        if decided is None or life.exit_code == 0:
            continue
        restarts = int(life.worker_id.rsplit("-", 1)[1])
        replacement = life.worker_id.rsplit("-", 1)[0] + f"-{restarts + 1}"
        new = next((x for x in run.lives if x.worker_id == replacement), None)

        def delta(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round(b - a, 3)

        rows.append({
            "slot": life.slot, "old_worker": life.worker_id, "new_worker": new.worker_id if new else None,
            "by": "pool" if life.decided is not None else "own budget", "exit_code": life.exit_code,
            "at_seconds": round(decided - run.started, 3),
            "policy_wait_seconds": delta(life.crossed, decided) if life.decided is not None else None,
            "drain_seconds": delta(decided, life.exited),
            "respawn_seconds": delta(life.exited, new.spawned if new else None),
            "interpreter_imports_seconds": delta(new.spawned, new.scrapy_started) if new else None,
            "crawler_setup_seconds": delta(new.scrapy_started, new.scheduler_open) if new else None,
            "to_first_lease_seconds": delta(new.scheduler_open, new.first_lease) if new else None,
            "startup_seconds": delta(life.exited, new.first_lease if new else None),
            "total_seconds": delta(decided, new.first_lease if new else None),
        })
    return rows


def recycle_window(rows: list[dict[str, Any]]) -> tuple[float, float]:
    """Seconds since the crawl's start: first recycle decision -> the last recycle over.

    A recycle is over when its replacement has leased a request and its old process
    has exited (with a warm spare the replacement may lease first).
    """
    if not rows:
        return 0.0, 0.0
    start = min(r["at_seconds"] for r in rows)
    ends = [r["at_seconds"] + max(r["total_seconds"], r["drain_seconds"] or 0.0)
            for r in rows if r["total_seconds"] is not None]
    return start, max(ends, default=start)


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ("policy_wait_seconds", "drain_seconds", "respawn_seconds", "interpreter_imports_seconds",
            "crawler_setup_seconds", "to_first_lease_seconds", "startup_seconds", "total_seconds")
    out: dict[str, Any] = {"recycles": len(rows),
                           "complete": sum(1 for r in rows if r["total_seconds"] is not None)}
    for key in keys:
        values = [r[key] for r in rows if r[key] is not None]
        out[key] = ({"median": round(statistics.median(values), 3), "max": round(max(values), 3),
                     "min": round(min(values), 3), "n": len(values)} if values else None)
    return out


def rss_series(run: CrawlRun) -> dict[str, Any]:
    readings = [p for p in run.refreshes if any(p["rss"].values())]  # not after the last worker exited
    stride = max(1, -(-len(readings) // SERIES_POINTS))
    points = readings[::stride]
    if points[-1] is not readings[-1]:
        points.append(readings[-1])
    return {
        "every_seconds": REFRESH_SECONDS * stride,
        "t_seconds": [round(p["t"] - run.started, 2) for p in points],
        "acked": [p["acked"] for p in points],
        "rss_mib_by_worker": {str(slot): [None if p["rss"][slot] is None else round(p["rss"][slot] / MIB, 1)
                                          for p in points] for slot in range(WORKERS)},
        "rss_mib_total": [round(sum(v for v in p["rss"].values() if v) / MIB, 1) for p in points],
    }


def rss_summary(run: CrawlRun) -> dict[str, Any]:
    done = run.all_acked_at
    # "final": the last reading before the last page was acked, when every worker still ran.
    final = [p for p in run.refreshes if p["t"] <= done and all(v for v in p["rss"].values())][-1]
    totals = [sum(v for v in p["rss"].values() if v) for p in run.refreshes]
    per_worker = [v for p in run.refreshes for v in p["rss"].values() if v]
    return {
        "requests_acked": run.total_acked,
        "seconds_to_last_page": round(done - run.started, 2),
        "pages_per_second": round(run.total_acked / (done - run.started), 1),
        "crawl_seconds": round(run.seconds, 2),
        "peak_rss_mib_total": round(max(totals) / MIB, 1),
        "peak_rss_mib_worker": round(max(per_worker) / MIB, 1),
        "final_rss_mib_total": round(sum(final["rss"].values()) / MIB, 1),
        "final_rss_mib_by_worker": {str(k): round(v / MIB, 1) for k, v in final["rss"].items()},
        "final_at_seconds": round(final["t"] - run.started, 2),
        "recycles": len(run.recycles),
        "cpu_ms_per_page": round(1000 * run.cpu_own_seconds / run.total_acked, 2),
        "cpu_busy_fraction": round(run.cpu_busy_fraction, 3),
        "cpu_other_fraction": round(run.cpu_other_fraction, 3),
    }


def lives_json(run: CrawlRun) -> list[dict[str, Any]]:
    def rel(value: float | None) -> float | None:
        return None if value is None else round(value - run.started, 3)

    return [{key: (rel(value) if isinstance(value, float) else value) for key, value in asdict(life).items()}
            for life in run.lives]


# -- the rolling recycle ------------------------------------------------------------


class RollingRecycle:
    """on_refresh: from *start_at* acked requests, recycle each worker once, one after another."""

    def __init__(self, start_at: int) -> None:
        self.start_at = start_at
        self.next_slot = 0
        self.waiting_for: str | None = None  # the replacement that must take a request first
        self.done = False

    def __call__(self, status, pool: WorkerPool, progress, rss, watcher: Watcher) -> None:
        if self.done or status.queue.counters.get("acked", 0) < self.start_at:
            return
        if self.waiting_for is not None:
            life = watcher.by_worker(self.waiting_for)
            if life is None or life.first_lease is None:
                return
            self.waiting_for = None
        if self.next_slot == WORKERS:
            self.done = True
            return
        slot = pool.slots[self.next_slot]
        if not slot.running or slot.draining_since is not None:
            return
        if any(old.running for old in pool.retiring):
            return  # one recycle at a time, as the policy's max_concurrent = 1: one extra process at most
        self.waiting_for = pool.worker_id(slot.index, slot.restarts + 1)  # before: a warm spare starts at once
        pool.recycle(slot.index, "rolling", None)
        self.next_slot += 1


# -- output ---------------------------------------------------------------------------


def print_tables(report: dict[str, Any], console: Console) -> None:
    p = report["params"]
    s = report["budget_to_fresh_worker"]["summary"]
    table = Table(title=f"Budget crossed -> fresh worker taking requests: leaky crawl of {p['leaky_pages']:,} pages,"
                        f" budget {p['budget_mib']} MiB, {s['complete']} of {s['recycles']} recycles")
    for name in ("interval", "median s", "max s"):
        table.add_column(name, justify="left" if name == "interval" else "right")
    rows = (
        ("RSS over budget -> pool decides (policy wait)", "policy_wait_seconds"),
        ("decision -> old process exits (drain)", "drain_seconds"),
        ("exit -> fresh worker's first lease (start-up)", "startup_seconds"),
        ("  of which exit -> spawn (pool's 0.5 s poll)", "respawn_seconds"),
        ("  of which spawn -> Scrapy started (imports)", "interpreter_imports_seconds"),
        ("  of which -> scheduler open (crawler set-up)", "crawler_setup_seconds"),
        ("  of which -> first lease", "to_first_lease_seconds"),
        ("decision -> first lease (total)", "total_seconds"),
    )
    for label, key in rows:
        value = s.get(key)
        style = "bold" if key in ("drain_seconds", "startup_seconds", "total_seconds") else ""
        table.add_row(label, *(f"{value[m]:.2f}" if value else "-" for m in ("median", "max")), style=style)
    console.print(table)
    console.print(f"Processes outside this benchmark kept {report['crawls']['leaky budget']['cpu_other_fraction']:.0%}"
                  " of the CPUs busy during that crawl.")

    t = report["rolling_vs_steady"]
    table = Table(title=f"Throughput, demo spider, {p['demo_pages']:,} pages, {WORKERS} workers:"
                        " steady crawl vs rolling-recycle crawl")
    for name in ("window (s since start)", "steady pages/s", "rolling pages/s", "ratio", "others' CPU"):
        table.add_column(name, justify="left" if name.startswith("window") else "right")

    def share(value: float | None) -> str:
        return "?" if value is None else f"{value:.0%}"

    for label, steady, rolling in (
        ("before", t["before_window"]["steady"], t["before_window"]["rolling"]),
        ("[bold]during the rolling recycle[/]", t["steady"], t["rolling"]),
        ("after", t["after_window"]["steady"], t["after_window"]["rolling"]),
    ):
        table.add_row(f"{label} {steady['start_seconds']:.1f}-{steady['end_seconds']:.1f}",
                      f"{steady['pages_per_second']:.0f}", f"{rolling['pages_per_second']:.0f}",
                      # The steady crawl may be over before the rolling one's "after" window.
                      f"{rolling['pages_per_second'] / steady['pages_per_second']:.2f}"
                      if steady["pages_per_second"] else "-",
                      f"{share(steady['other_cpu_share'])} / {share(rolling['other_cpu_share'])}")
    console.print(table)
    console.print("others' CPU: share of the machine's CPUs that processes outside this benchmark kept busy"
                  " in that window, steady / rolling crawl.")
    c = t["without_warm_spare"]
    if c["ratio"] is not None:
        console.print(f"The same rolling recycle without the warm spare: {c['rolling']['pages_per_second']:.0f} vs"
                      f" {c['steady']['pages_per_second']:.0f} pages/s ({c['ratio']:.2f}x) over"
                      f" {c['window_start_seconds']:.1f}-{c['window_end_seconds']:.1f} s.")
    rs = t["recycle_summary"]
    console.print(f"Rolling recycles: drain median {rs['drain_seconds']['median']:.2f}s,"
                  f" start-up median {rs['startup_seconds']['median']:.2f}s,"
                  f" total median {rs['total_seconds']['median']:.2f}s (max {rs['total_seconds']['max']:.2f}s)."
                  if rs["total_seconds"] else "Rolling recycles: incomplete")

    r = report["rss_with_and_without_recycling"]
    table = Table(title=f"Leaky crawl of {p['leaky_pages']:,} pages: RSS without and with a"
                        f" {p['budget_mib']} MiB budget")
    columns = ("crawl", "pages/s", "peak total MiB", "peak worker MiB", "final total MiB", "recycles",
               "CPU ms/page", "others' CPU")
    for name in columns:
        table.add_column(name, justify="left" if name == "crawl" else "right")
    for label, key in (("no budget", "no_budget"), (f"budget {p['budget_mib']} MiB", "budget")):
        x = r[key]["summary"]
        table.add_row(label, f"{x['pages_per_second']:.0f}", f"{x['peak_rss_mib_total']:.0f}",
                      f"{x['peak_rss_mib_worker']:.0f}", f"{x['final_rss_mib_total']:.0f}", str(x["recycles"]),
                      f"{x['cpu_ms_per_page']:.1f}", f"{x['cpu_other_fraction']:.0%}")
    console.print(table)
    console.print(f"pages/s with budget / without: {r['ratios']['pages_per_second']:.2f};"
                  f" peak total RSS: {r['ratios']['peak_rss_total']:.2f}")


def draw_plot(plotlib: Path, results: Path, out: Path, console: Console) -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plotlib), env.get("PYTHONPATH")]))
    command = [sys.executable, str(BENCH / "plot_recycling.py"), str(results), str(out)]
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode:
        console.print(f"[red]plot failed[/] ({completed.returncode}); draw it later with:"
                      f" PYTHONPATH={plotlib} {' '.join(command)}")


# -- main -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3,000 + 3,000 pages (115 MiB budget)")
    parser.add_argument("--leaky-pages", type=int, help="pages of the leaky crawls (default 20,000; --quick 3,000)")
    parser.add_argument("--demo-pages", type=int, help="pages of the demo crawls (default 8,000; --quick 3,000)")
    parser.add_argument("--budget-mib", type=int, help="the pool's memory budget (default 150; --quick 115)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--plot", type=Path, default=PLOT)
    parser.add_argument("--plotlib", type=Path, help="a directory with matplotlib in it (pip install --target)")
    parser.add_argument("--keep-logs", type=Path, help="keep the workers' logs in this directory")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="on a shared machine: before each crawl, wait up to SECONDS for 5 s of idle CPUs")
    args = parser.parse_args(argv)
    leaky_pages = args.leaky_pages or (3_000 if args.quick else 20_000)
    demo_pages = args.demo_pages or (3_000 if args.quick else 8_000)
    budget_mib = args.budget_mib or (115 if args.quick else 150)
    console = Console(width=None if sys.stdout.isatty() else 120)
    bench_started = time.monotonic()

    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hermit-bench-recycling-")))
        log_root = (args.keep_logs or scratch / "logs").resolve()  # crawls run in other directories
        if args.keep_logs:
            shutil.rmtree(log_root, ignore_errors=True)
        plain = scratch / "plain"  # no scrapy.cfg: the spiders as `hermit crawl` runs them
        plain.mkdir()
        server = stack.enter_context(EmbeddedRedis())
        info = redis.Redis.from_url(server.url).info("server")
        server_name = (f"{'valkey' if 'valkey_version' in info else 'redis'} "
                       f"{info.get('valkey_version') or info['redis_version']}")
        console.print(f"{server_name} on {server.url}; {WORKERS} workers; measuring...")
        common = {"server": server, "log_root": log_root, "console": console, "wait_quiet": args.wait_quiet}

        no_budget = run_crawl("leaky no budget", spider="leaky", pages=leaky_pages, cwd=plain,
                              settings=LEAKY_SETTINGS, **common)
        budget = run_crawl("leaky budget", spider="leaky", pages=leaky_pages, cwd=plain, settings=LEAKY_SETTINGS,
                           budget_bytes=budget_mib * MIB, **common)
        steady = run_crawl("demo steady", spider="demo", pages=demo_pages, cwd=plain, **common)
        rolling_state = RollingRecycle(start_at=demo_pages // 5)
        rolling = run_crawl("demo rolling", spider="demo", pages=demo_pages, cwd=plain, on_refresh=rolling_state,
                            **common)
        cold_state = RollingRecycle(start_at=demo_pages // 5)
        cold = run_crawl("demo rolling no spare", spider="demo", pages=demo_pages, cwd=plain,
                         on_refresh=cold_state, warm_spare=False, **common)

    budget_rows = recycle_timings(budget)
    rolling_rows = recycle_timings(rolling)
    complete_rolling = [r for r in rolling_rows if r["total_seconds"] is not None]
    if not rolling_state.done and len(complete_rolling) < WORKERS:
        console.print(f"[red]the rolling recycle did not complete[/] ({len(complete_rolling)} of {WORKERS});"
                      " use more --demo-pages")
    window_start, window_end = recycle_window(rolling_rows)
    cold_rows = recycle_timings(cold)
    cold_start, cold_end = recycle_window(cold_rows)
    cold_steady, cold_window = steady.window(cold_start, cold_end), cold.window(cold_start, cold_end)
    before_start = rolling.time_of_acked(demo_pages // 10) - rolling.started
    after_end = max(window_end, rolling.time_of_acked(0.9 * rolling.total_acked) - rolling.started)
    steady_window, rolling_window = (run.window(window_start, window_end) for run in (steady, rolling))
    report = {
        "redis_server": server_name,
        "machine": machine_info(memory_mib=memory_mib()),
        "versions": {name: version(name) for name in
                     ("hermit-crawler", "hermit-recycling", "scrapy", "twisted", "redis", "psutil")},
        "params": {
            "quick": args.quick, "workers": WORKERS, "leaky_pages": leaky_pages, "demo_pages": demo_pages,
            "budget_mib": budget_mib, "worker_soft_budget_mib": budget_mib * 1.25,
            "worker_hard_limit_mib": budget_mib * 1.5, "max_concurrent_recycles": 1,
            "min_worker_age_seconds": LocalCrawlOptions.min_worker_age_seconds,
            "refresh_seconds": REFRESH_SECONDS, "watch_seconds": WATCH_SECONDS, "wait_quiet": args.wait_quiet,
            "idle_close_seconds": 2.0, "site": {"slow_seconds": 0.2, "huge_bytes": 100_000},
            "rolling_starts_at_acked": rolling_state.start_at,
            "pages_means": "requests acked in Redis (hermit:{crawl}:stats acked), as the live view counts pages",
            "first_lease_means": "hermit:{crawl}:leases:<worker id> exists (polled every watch_seconds)",
        },
        "budget_to_fresh_worker": {"summary": summarize(budget_rows), "recycles": budget_rows},
        "rolling_vs_steady": {
            "window_start_seconds": round(window_start, 2), "window_end_seconds": round(window_end, 2),
            "window_means": "first recycle decision -> last replacement's first lease, seconds since crawl start",
            "steady": steady_window,
            "rolling": rolling_window,
            "ratio": (round(rolling_window["pages_per_second"] / steady_window["pages_per_second"], 3)
                      if steady_window["pages_per_second"] else None),
            "steady_crawl_pages_per_second": round(steady.total_acked / (steady.all_acked_at - steady.started), 1),
            "rolling_crawl_pages_per_second":
                round(rolling.total_acked / (rolling.all_acked_at - rolling.started), 1),
            "before_window": {"seconds": [round(before_start, 2), round(window_start, 2)],
                              "steady": steady.window(before_start, window_start),
                              "rolling": rolling.window(before_start, window_start)},
            "after_window": {"seconds": [round(window_end, 2), round(after_end, 2)],
                             "steady": steady.window(window_end, after_end),
                             "rolling": rolling.window(window_end, after_end)},
            "recycle_summary": summarize(rolling_rows),
            "recycles": rolling_rows,
            "without_warm_spare": {
                "window_start_seconds": round(cold_start, 2), "window_end_seconds": round(cold_end, 2),
                "steady": cold_steady, "rolling": cold_window,
                "ratio": (round(cold_window["pages_per_second"] / cold_steady["pages_per_second"], 3)
                          if cold_steady["pages_per_second"] else None),
                "rolling_crawl_pages_per_second": round(cold.total_acked / (cold.all_acked_at - cold.started), 1),
                "recycle_summary": summarize(cold_rows),
                "recycles": cold_rows,
                "completed": cold_state.done,
            },
            "acked_series": {
                name: {"t_seconds": [round(t - run.started, 2) for t, _ in run.acked[::5]],
                       "acked": [n for _, n in run.acked[::5]]}
                for name, run in (("steady", steady), ("rolling", rolling))
            },
        },
        "rss_with_and_without_recycling": {
            "no_budget": {"summary": rss_summary(no_budget), "series": rss_series(no_budget)},
            "budget": {"summary": rss_summary(budget), "series": rss_series(budget)},
        },
        "crawls": {
            run.name: {"seconds": round(run.seconds, 2), "requests_acked": run.total_acked,
                       "cpu_busy_fraction": round(run.cpu_busy_fraction, 3),
                       "cpu_own_seconds": round(run.cpu_own_seconds, 2),
                       "cpu_ms_per_page": round(1000 * run.cpu_own_seconds / run.total_acked, 2),
                       "cpu_other_fraction": round(run.cpu_other_fraction, 3),
                       "waited_for_quiet": run.waited_for_quiet, "events": run.events,
                       "exit_codes": run.exit_codes, "pool_recycles": run.recycles, "lives": lives_json(run),
                       "watcher_errors": run.watcher_errors}
            for run in (no_budget, budget, steady, rolling, cold)
        },
    }
    r = report["rss_with_and_without_recycling"]
    r["ratios"] = {
        "pages_per_second": round(r["budget"]["summary"]["pages_per_second"]
                                  / r["no_budget"]["summary"]["pages_per_second"], 3),
        "peak_rss_total": round(r["budget"]["summary"]["peak_rss_mib_total"]
                                / r["no_budget"]["summary"]["peak_rss_mib_total"], 3),
    }
    report["bench_seconds"] = round(time.monotonic() - bench_started, 1)
    write_report(report, args.out)
    print_tables(report, console)
    console.print(f"written to {args.out} in {report['bench_seconds']:.0f}s")
    if args.plotlib:
        draw_plot(args.plotlib, args.out, args.plot, console)
    else:
        console.print(f"plot: PYTHONPATH=<dir with matplotlib> {sys.executable} {BENCH / 'plot_recycling.py'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
