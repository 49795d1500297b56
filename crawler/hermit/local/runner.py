"""``hermit crawl`` on one machine: Redis, target, seeds, a worker pool, progress, items.

The pieces it starts itself (an embedded Redis when no URL is given, the demo site
when no target is given) are stopped when the crawl ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import redis
from hermit_recycling import RecyclePolicy, WorkerState, decide

from hermit.crawl_status import CrawlStatus, read_crawl_status
from hermit.items_export import export_items
from hermit.keys import CrawlKeys
from hermit.local.live_view import Progress
from hermit.local.pool import ConfigurationError, Recycle, WorkerPool
from hermit.queue.redis_queue import RedisRequestQueue
from hermit.redis_server import EmbeddedRedis
from hermit.seeding import InvalidSeed, SeedReport, check_seed_url, push_seeds
from hermit.worker.run import DEMO_SPIDER

logger = logging.getLogger(__name__)

WORKER_SOFT_BUDGET_RATIO = 1.25
WORKER_HARD_LIMIT_RATIO = 1.5
#: In the log directory: every running worker's /metrics, for Prometheus' file_sd_configs.
PROMETHEUS_TARGETS_FILE = "prometheus-targets.json"


@dataclass
class LocalCrawlOptions:
    spider: str = DEMO_SPIDER
    workers: int = 3
    redis_url: str | None = None
    crawl: str | None = None
    seeds: list[tuple[int, str]] = field(default_factory=list)
    demo_pages: int = 3000
    output: Path | None = Path("items.jsonl")
    log_dir: Path | None = None
    idle_close_seconds: float = 3.0
    lease_timeout_seconds: float = 10.0
    spider_args: dict[str, str] = field(default_factory=dict)
    settings: dict[str, str] = field(default_factory=dict)
    refresh_seconds: float = 0.5
    # Recycling: the pool recycles workers whose RSS is over memory_budget_bytes
    # (None: no budget), at most max_concurrent_recycles at once, none younger than
    # min_worker_age_seconds. Each worker also gets its own soft budget and hard limit
    # above the pool's budget (WORKER_SOFT_BUDGET_RATIO, WORKER_HARD_LIMIT_RATIO): the
    # safety net while the pool holds a recycle back.
    memory_budget_bytes: int | None = None
    max_concurrent_recycles: int = 1
    min_worker_age_seconds: float = 10.0
    drain_timeout_seconds: float = 60.0


@dataclass
class LocalCrawlResult:
    crawl: str
    status: CrawlStatus
    seconds: float
    items_written: int
    output: Path | None
    log_dir: Path
    seed_report: SeedReport | None
    restarts: int
    peak_rss_bytes: dict[int, int]
    events: list[str]
    target_url: str | None
    recycles: list[Recycle] = field(default_factory=list)
    exit_codes: dict[int, list[int]] = field(default_factory=dict)  # per worker slot


class LocalCrawl:
    """Runs one crawl locally; :meth:`run` blocks until it ends and returns a summary.

    ``on_refresh(status, pool, progress, rss)`` is called every ``refresh_seconds``
    for the live view.
    """

    def __init__(self, options: LocalCrawlOptions, on_refresh: Callable[..., None] | None = None) -> None:
        self.options = options
        self.on_refresh = on_refresh
        self.pool: WorkerPool | None = None
        self.targets_path: Path | None = None  # the Prometheus targets file, once the crawl runs
        self._stop_requested = False

    @contextlib.contextmanager
    def _redis(self) -> Iterator[str]:
        if self.options.redis_url:
            yield self.options.redis_url
            return
        with EmbeddedRedis() as server:
            logger.info("Embedded Redis (%s) at %s", Path(server.binary).name, server.url)
            yield server.url

    @contextlib.contextmanager
    def _target(self) -> Iterator[str | None]:
        if self.options.seeds or "url" in self.options.spider_args or self.options.spider != DEMO_SPIDER:
            yield self.options.spider_args.get("url")
            return
        from hermit.demo.process import DemoSiteProcess

        with DemoSiteProcess(pages=self.options.demo_pages) as site:
            logger.info("Demo site (%d pages) at %s", self.options.demo_pages, site.url)
            yield site.url

    def run(self) -> LocalCrawlResult:
        options = self.options
        crawl = options.crawl or options.spider
        keys = CrawlKeys(crawl)
        log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix=f"hermit-{crawl}-"))
        started = time.monotonic()
        with self._redis() as redis_url, self._target() as target_url:
            client = redis.Redis.from_url(redis_url)
            seed_report = None
            if options.seeds:
                queue = RedisRequestQueue(client, keys, worker_id="local-seed")
                seed_report = push_seeds(queue, options.seeds)
                if not seed_report.queued and not seed_report.duplicates:
                    raise ConfigurationError(f"none of the {len(options.seeds)} seed URLs is valid")
            spider_args = dict(options.spider_args)
            if options.spider == DEMO_SPIDER:
                # The demo spider follows links within its start URL's site.
                start = target_url or _first_valid(options.seeds)
                if start:
                    spider_args.setdefault("url", start)
            command = [
                sys.executable, "-m", "hermit.cli", "worker", options.spider,
                "--redis", redis_url, "--crawl", crawl,
                "-s", f"HERMIT_IDLE_CLOSE_SECONDS={options.idle_close_seconds}",
                "-s", f"HERMIT_LEASE_TIMEOUT_SECONDS={options.lease_timeout_seconds}",
                "-s", "LOG_LEVEL=INFO",
                # Several workers on one host: each serves metrics/diagnostics on a free port (logged).
                "-s", "HERMIT_METRICS_PORT=0", "-s", "HERMIT_DIAGNOSTICS_PORT=0",
            ]
            command += ["-s", f"HERMIT_DRAIN_TIMEOUT_SECONDS={options.drain_timeout_seconds}"]
            if options.memory_budget_bytes:
                budget = options.memory_budget_bytes
                command += [
                    "-s", f"HERMIT_MEMORY_BUDGET_BYTES={int(budget * WORKER_SOFT_BUDGET_RATIO)}",
                    "-s", f"HERMIT_MEMORY_HARD_LIMIT_BYTES={int(budget * WORKER_HARD_LIMIT_RATIO)}",
                ]
            for name, value in spider_args.items():
                command += ["-a", f"{name}={value}"]
            for name, value in options.settings.items():
                command += ["-s", f"{name}={value}"]
            self.pool = pool = WorkerPool(
                command, options.workers, log_dir, drain_timeout_seconds=options.drain_timeout_seconds,
            )
            progress = Progress(started=started)
            self.targets_path = log_dir / PROMETHEUS_TARGETS_FILE
            write_prometheus_targets(self.targets_path, pool)
            logger.info("Worker logs in %s; Prometheus targets (file_sd_configs) in %s", log_dir, self.targets_path)
            previous = signal.signal(signal.SIGTERM, self._request_stop)
            try:
                pool.start()
                status = self._supervise(client, keys, pool, progress)
            except KeyboardInterrupt:
                logger.warning("Interrupted: draining workers (their unfinished requests stay queued)")
                status = read_crawl_status(client, keys)
            finally:
                signal.signal(signal.SIGTERM, previous)
                pool.stop()
                pool.refresh_endpoints()
                write_prometheus_targets(self.targets_path, pool)  # no worker serves any more
            status = read_crawl_status(client, keys)
            written = 0
            if options.output is not None:
                with options.output.open("wb") as out:
                    written, _ = export_items(client, keys, out)
            client.close()
        return LocalCrawlResult(
            crawl=crawl,
            status=status,
            seconds=time.monotonic() - started,
            items_written=written,
            output=options.output,
            log_dir=log_dir,
            seed_report=seed_report,
            restarts=sum(slot.restarts for slot in pool.slots),
            peak_rss_bytes=progress.peak_rss or {},
            events=pool.events,
            target_url=target_url,
            recycles=list(pool.recycles),
            exit_codes={slot.index: list(slot.exits) for slot in pool.slots},
        )

    @property
    def policy(self) -> RecyclePolicy | None:
        options = self.options
        if not options.memory_budget_bytes:
            return None
        return RecyclePolicy(
            budget_bytes=options.memory_budget_bytes,
            max_concurrent=options.max_concurrent_recycles,
            min_age_seconds=options.min_worker_age_seconds,
            min_serving=1 if options.workers > 1 else 0,
        )

    def _recycle_over_budget(self, pool: WorkerPool, rss: dict[int, int]) -> None:
        now = time.monotonic()
        workers = [
            WorkerState(str(slot.index), rss.get(slot.index), now - slot.started_at, slot.draining_since is not None)
            for slot in pool.slots if slot.running
        ]
        since = None if pool.last_recycle_at is None else now - pool.last_recycle_at
        for worker in decide(workers, self.policy, seconds_since_last_recycle=since).recycle:
            pool.recycle(int(worker.name), "over the pool's memory budget", worker.memory_bytes)

    def _request_stop(self, signum: int, frame: object) -> None:
        self._stop_requested = True

    def _supervise(self, client: redis.Redis, keys: CrawlKeys, pool: WorkerPool, progress: Progress) -> CrawlStatus:
        while True:
            pool.poll()
            rss = pool.rss_bytes()
            try:
                status = read_crawl_status(client, keys)
            except redis.RedisError as exc:
                logger.warning("Cannot read the crawl status (%s); workers keep going", exc)
                time.sleep(self.options.refresh_seconds)
                continue
            progress.update(status, rss)
            if pool.refresh_endpoints():
                write_prometheus_targets(self.targets_path, pool)
            if self.policy is not None:
                self._recycle_over_budget(pool, rss)
            if self.on_refresh is not None:
                self.on_refresh(status, pool, progress, rss)
            if pool.all_finished or self._stop_requested:
                return status
            time.sleep(self.options.refresh_seconds)


def write_prometheus_targets(path: Path, pool: WorkerPool) -> None:
    """Write every running worker's metrics address as a Prometheus file_sd target group.

    Prometheus re-reads the file when it changes: point a ``file_sd_configs`` job at it
    and it scrapes each worker, replacements included. Written whole, then renamed, so a
    reader never sees half of it. The workers' series carry their own ``crawl`` label;
    the target adds only the pool slot.
    """
    targets = []
    for slot in pool.slots:
        if slot.endpoints.metrics:
            parts = urlsplit(slot.endpoints.metrics)
            targets.append({"targets": [parts.netloc], "labels": {"slot": str(slot.index)}})
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(targets, indent=2) + "\n")
    os.replace(partial, path)


def _first_valid(seeds: list[tuple[int, str]]) -> str | None:
    for _, url in seeds:
        try:
            return check_seed_url(url)
        except InvalidSeed:
            continue
    return None
