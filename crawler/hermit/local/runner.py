"""``hermit crawl`` on one machine: Redis, target, seeds, a worker pool, progress, items.

The supervisor owns every process it starts — an embedded Redis when no URL is given,
the demo site when no target is given, the workers — each in its own session, so a
terminal's Ctrl-C reaches only this process. It restarts what dies, ends on what a
restart can't fix (:class:`CrawlFailed`, with the cause), and answers SIGINT/SIGTERM:
the first drains the workers, the second stops them at once.

With a state directory (``hermit crawl`` always has one) the crawl is resumable: the
embedded Redis keeps its data there (append-only file), the items file is written as
items come, and the same command started again carries on where the crawl stopped.
A crawl that finishes removes its state, so the next run starts afresh; one whose
workers stopped at a limit (crawl-wide, or Scrapy's per-worker ``CLOSESPIDER_*``) with
requests still queued keeps it, so the same command with a higher limit carries on.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import redis
from hermit_recycling import RecyclePolicy, WorkerState, decide
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings

from hermit.crawl_status import CrawlStatus, read_crawl_status
from hermit.keys import CrawlKeys
from hermit.local.crawl_options import CrawlFailed, LocalCrawlOptions, LocalCrawlResult
from hermit.local.embedded import demo_site, embedded_redis
from hermit.local.items_file import ItemsFile
from hermit.local.live_view import Progress
from hermit.local.pool import ConfigurationError, WorkerCrashLoop, WorkerPool
from hermit.local.prometheus_targets import PROMETHEUS_TARGETS_FILE, write_prometheus_targets
from hermit.local.services import ServiceFailed, SupervisedService
from hermit.local.state import ItemsCursor, SavedCrawl, StateDir, StateError
from hermit.local.stop_signals import StopSignals
from hermit.local.worker_command import check_workers_can_run, worker_command, worker_options
from hermit.queue.frontier import Frontier
from hermit.queue.shards import open_shards
from hermit.redis_client import connect
from hermit.redis_server import EmbeddedRedis
from hermit.redis_url import redact_url
from hermit.seeding import InvalidSeed, SeedReport, check_seed_url, push_seeds
from hermit.settings import queue_shards
from hermit.worker.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_REDIS_UNAVAILABLE
from hermit.worker.run import DEMO_SPIDER

__all__ = ["CrawlFailed", "LocalCrawl", "LocalCrawlOptions", "LocalCrawlResult", "write_prometheus_targets"]

logger = logging.getLogger(__name__)

#: How long past the drain timeout the supervisor waits for draining workers before it kills them.
DRAIN_GRACE_SECONDS = 3.0
#: The supervisor's own Redis client never blocks longer than this, so signals are answered.
CLIENT_TIMEOUT_SECONDS = 2.0
#: How long the supervisor keeps trying to write the last items once the workers are gone.
LAST_ITEMS_SECONDS = 4.0


class LocalCrawl:
    """Runs one crawl locally; :meth:`run` blocks until it ends and returns a summary.

    ``on_refresh(status, pool, progress, rss)`` is called every ``refresh_seconds``
    for the live view. :meth:`run` raises :class:`CrawlFailed` when the crawl can't
    go on: before anything starts (bad spider, settings or state, Redis unreachable),
    or once the workers run (a crash loop, a dead service) — then after the workers
    were drained and the items written, with the summary in its ``result``.
    """

    def __init__(self, options: LocalCrawlOptions, on_refresh: Callable[..., None] | None = None) -> None:
        self.options = options
        self.on_refresh = on_refresh
        self.pool: WorkerPool | None = None
        self.targets_path: Path | None = None  # the Prometheus targets file, once the crawl runs
        self.stop = StopSignals()
        self.redis_server: EmbeddedRedis | None = None  # the embedded one, while it runs
        self.events: list[str] = []
        self._services: list[SupervisedService] = []

    # -- what the crawl starts with -------------------------------------------------

    def _uses_demo_site(self) -> bool:
        o = self.options
        return not (o.seeds or "url" in o.spider_args or o.spider != DEMO_SPIDER)

    def _open_state(self, state: StateDir, crawl: str) -> SavedCrawl | None:
        """Lock the state directory; the crawl it holds (to resume), or None."""
        try:
            state.lock()
            if self.options.fresh:
                state.clear()
            saved = state.load()
        except StateError as exc:
            raise CrawlFailed(str(exc)) from None
        if saved is None:
            state.clear()  # leftovers of a crawl whose state.json never got written
            return None
        demo_pages = self.options.demo_pages if self._uses_demo_site() else None
        if (saved.crawl, saved.spider, saved.demo_pages) != (crawl, self.options.spider, demo_pages):
            what = f"crawl {saved.crawl!r} of spider {saved.spider!r}" + (
                f" on a {saved.demo_pages}-page demo site" if saved.demo_pages else "")
            raise CrawlFailed(f"{state.path} holds another crawl ({what}); --fresh starts over there, "
                              "--state-dir keeps both")
        return saved

    def _event(self, text: str) -> None:
        logger.warning("%s", text)
        self.events.append(text)

    # -- the run ---------------------------------------------------------------------

    def run(self) -> LocalCrawlResult:
        state = StateDir(self.options.state_dir) if self.options.state_dir is not None else None
        try:
            return self._run(state)
        except CrawlFailed:
            # A crawl that failed before it saved anything leaves no state behind.
            if state is not None and not state.state_file.exists():
                state.remove()
            raise

    def _run(self, state: StateDir | None) -> LocalCrawlResult:
        options = self.options
        crawl = options.crawl or options.spider
        keys = CrawlKeys(crawl)
        started = time.monotonic()
        with contextlib.ExitStack() as stack, self.stop:
            saved = None
            if state is not None:
                stack.callback(state.unlock)
                saved = self._open_state(state, crawl)
            resumed = saved is not None
            check_workers_can_run(worker_options(options, crawl, None, dict(options.spider_args)))
            log_dir = options.log_dir or Path(tempfile.mkdtemp(prefix=f"hermit-{crawl}-"))
            if options.redis_url:
                redis_url = options.redis_url
            else:
                data_dir = state.redis_dir if state is not None else None
                self.redis_server = stack.enter_context(embedded_redis(data_dir, saved, self._services, self._event))
                redis_url = self.redis_server.url
            try:
                client = connect(redis_url, socket_timeout=CLIENT_TIMEOUT_SECONDS,
                                 connect_timeout=CLIENT_TIMEOUT_SECONDS)
                stack.callback(client.close)
                client.ping()
            except redis.RedisError as exc:
                raise CrawlFailed(f"cannot reach Redis at {redact_url(redis_url)}: {exc}",
                                  EXIT_REDIS_UNAVAILABLE) from None
            if options.fresh and options.redis_url:
                _forget_crawl(client, keys)
            if self._uses_demo_site():
                # A resumed crawl's queued requests name the old port: serve the site there again.
                port = saved.demo_port if saved is not None and saved.demo_port else 0
                target_url = stack.enter_context(demo_site(options.demo_pages, port, self._services, self._event))
            else:
                target_url = options.spider_args.get("url")
            if state is not None:
                saved = saved or SavedCrawl(crawl=crawl, spider=options.spider,
                                            demo_pages=options.demo_pages if self._uses_demo_site() else None)
                saved.runs += 1
                saved.demo_port = urlsplit(target_url).port if self._uses_demo_site() and target_url else None
                self._record_redis(saved)
                state.save(saved)
            items = None
            if options.output is not None:
                items = ItemsFile(options.output, on_cursor=lambda cursor: self._save_cursor(state, saved, cursor))
                items.open(saved.items if saved is not None else None)
                stack.callback(items.close)
            seed_report = self._push_seeds(client, keys)
            spider_args = dict(options.spider_args)
            if options.spider == DEMO_SPIDER:
                # The demo spider follows links within its start URL's site.
                start = target_url or _first_valid(options.seeds)
                if start:
                    spider_args.setdefault("url", start)
            command = worker_command(worker_options(options, crawl, redis_url, spider_args))
            self.pool = pool = WorkerPool(
                command, options.workers, log_dir, drain_timeout_seconds=options.drain_timeout_seconds,
                warm_spare=options.warm_spare,
            )
            progress = Progress(started=started)
            self.targets_path = log_dir / PROMETHEUS_TARGETS_FILE
            write_prometheus_targets(self.targets_path, pool)
            logger.info("Worker logs in %s; Prometheus targets (file_sd_configs) in %s", log_dir, self.targets_path)
            failure: CrawlFailed | None = None
            try:
                pool.start()
                self._supervise(client, keys, pool, progress, items, state, saved)
            except ConfigurationError as exc:
                failure = CrawlFailed(str(exc), EXIT_CONFIG)
            except WorkerCrashLoop as exc:
                failure = CrawlFailed(str(exc), EXIT_FAILED)
            except ServiceFailed as exc:
                failure = CrawlFailed(str(exc), EXIT_REDIS_UNAVAILABLE if "Redis" in str(exc) else EXIT_FAILED)
            finally:
                self._drain(pool)
                pool.refresh_endpoints()
                write_prometheus_targets(self.targets_path, pool)  # no worker serves any more
            status = self._write_last_items(client, keys, items)
            finished = failure is None and not self.stop.requested and pool.all_finished
        # Workers stopped at a limit (HERMIT_CRAWL_PAGECOUNT, CLOSESPIDER_ITEMCOUNT, ...) finish
        # with requests still queued: the state keeps them for a run with a higher limit.
        queued_left = finished and status is not None and status.queue.queued > 0
        if state is not None and finished and not queued_left:
            state.remove()  # done: the same command starts a new crawl
        result = LocalCrawlResult(
            crawl=crawl,
            status=status,
            seconds=time.monotonic() - started,
            items_written=items.items if items is not None else 0,
            output=options.output,
            log_dir=log_dir,
            seed_report=seed_report,
            restarts=sum(slot.restarts for slot in pool.slots),
            peak_rss_bytes=progress.peak_rss or {},
            events=[*self.events, *pool.events],
            target_url=target_url,
            recycles=list(pool.recycles),
            exit_codes={slot.index: list(slot.exits) for slot in pool.slots},
            outcome="finished" if finished else "interrupted",
            stopped_by=self.stop.first,
            failure=failure,
            state_dir=state.path if state is not None and (not finished or queued_left) else None,
            resumed=resumed,
            service_restarts={service.name: service.restarts for service in self._services},
        )
        if failure is not None:
            failure.result = result
            raise failure
        return result

    def _wanted_shards(self) -> int:
        """HERMIT_QUEUE_SHARDS of the workers' settings (0: not set)."""
        try:
            return queue_shards(Settings(self.options.settings))
        except NotConfigured as exc:
            raise CrawlFailed(str(exc)) from None

    def _push_seeds(self, client: redis.Redis, keys: CrawlKeys) -> SeedReport | None:
        seeds = self.options.seeds
        if not seeds:
            return None
        try:
            shards = open_shards(client, keys, self._wanted_shards())
            report = push_seeds(Frontier(client, keys, "local-seed", shards=shards), seeds)
        except redis.RedisError as exc:
            raise CrawlFailed(f"cannot push the seeds to Redis: {exc}", EXIT_REDIS_UNAVAILABLE) from None
        if not report.queued and not report.duplicates:
            raise CrawlFailed(f"none of the {len(seeds)} seed URLs is valid")
        return report

    def _record_redis(self, saved: SavedCrawl) -> bool:
        """Note the embedded Redis' pid in *saved*; True if it changed (a restart)."""
        server = self.redis_server
        if server is None or server.process is None or saved.redis_pid == server.process.pid:
            return False
        saved.redis_pid = server.process.pid
        with contextlib.suppress(psutil.Error):
            saved.redis_started = psutil.Process(saved.redis_pid).create_time()
        return True

    @staticmethod
    def _save_cursor(state: StateDir | None, saved: SavedCrawl | None, cursor: ItemsCursor) -> None:
        if state is not None and saved is not None:
            saved.items = cursor
            state.save(saved)

    def _check_services(self) -> None:
        for service in self._services:
            service.check()

    def _supervise(
        self, client: redis.Redis, keys: CrawlKeys, pool: WorkerPool, progress: Progress,
        items: ItemsFile | None, state: StateDir | None, saved: SavedCrawl | None,
    ) -> None:
        """Until the crawl ends or a stop is asked for: restart what died, write new items, refresh."""
        outage = False
        while not self.stop.requested:
            self._check_services()
            if state is not None and saved is not None and self._record_redis(saved):
                state.save(saved)
            pool.poll()
            rss = pool.rss_bytes()
            try:
                status = read_crawl_status(client, keys)
                if items is not None:
                    items.catch_up(client, keys)
            except redis.RedisError as exc:
                if not outage:
                    outage = True
                    self._event(f"Redis unreachable ({exc}); the workers keep what they must write and retry")
                time.sleep(self.options.refresh_seconds)
                continue
            if outage:
                outage = False
                self._event("Redis reachable again")
            progress.update(status, rss)
            if pool.refresh_endpoints():
                write_prometheus_targets(self.targets_path, pool)
            if self.policy is not None:
                self._recycle_over_budget(pool, rss)
            if self.on_refresh is not None:
                self.on_refresh(status, pool, progress, rss)
            if pool.all_finished:
                return
            time.sleep(self.options.refresh_seconds)

    def _drain(self, pool: WorkerPool) -> None:
        """SIGTERM every worker and wait for them, the drain timeout at most; a second signal kills them."""
        pool.terminate_all()
        deadline = time.monotonic() + self.options.drain_timeout_seconds + DRAIN_GRACE_SECONDS
        while pool.any_running:
            if self.stop.forced or time.monotonic() > deadline:
                pool.kill_all()
                break
            # Draining workers write their results and return their leases: keep Redis up for them.
            with contextlib.suppress(ServiceFailed):
                self._check_services()
            pool.poll()
            time.sleep(0.1)
        pool.poll()

    def _write_last_items(self, client: redis.Redis, keys: CrawlKeys, items: ItemsFile | None) -> CrawlStatus | None:
        """Bring the items file up to date once the workers are gone; the crawl's status, None if unreadable."""
        error: Exception | None = None
        deadline = time.monotonic() + LAST_ITEMS_SECONDS
        while time.monotonic() < deadline:
            try:
                self._check_services()
                if items is not None:
                    items.catch_up(client, keys)
                return read_crawl_status(client, keys)
            except (redis.RedisError, ServiceFailed) as exc:
                error = exc
                time.sleep(0.5)
        self._event(f"Could not write the last items ({error}); they are kept in Redis, and the next run writes them")
        return None

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
        # Replaced workers still draining (warm spare) are extra processes: they use up
        # the recycles allowed at once until they are gone.
        workers += [WorkerState(f"replaced-{old.index}", None, now - old.started_at, True)
                    for old in pool.retiring if old.running]
        since = None if pool.last_recycle_at is None else now - pool.last_recycle_at
        for worker in decide(workers, self.policy, seconds_since_last_recycle=since).recycle:
            pool.recycle(int(worker.name), "over the pool's memory budget", worker.memory_bytes)


def _forget_crawl(client: redis.Redis, keys: CrawlKeys) -> None:
    """Delete every key of the crawl (``--fresh`` on a shared Redis)."""
    deleted = 0
    for pattern in keys.patterns():
        for batch in _batched(client.scan_iter(match=pattern, count=1000), 500):
            deleted += client.delete(*batch)
    logger.info("Started over: deleted %d keys of crawl %r", deleted, keys.crawl)


def _batched(iterable, size: int):
    batch = []
    for value in iterable:
        batch.append(value)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _first_valid(seeds: list[tuple[int, str]]) -> str | None:
    for _, url in seeds:
        try:
            return check_seed_url(url)
        except InvalidSeed:
            continue
    return None
