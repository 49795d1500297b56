"""A Scrapy scheduler backed by the crawl's shared Redis queue.

Turn it on with ``SCHEDULER = "hermit.worker.scheduler.HermitScheduler"`` (the add-on
does it). The worker keeps only a small prefetch of leased requests in memory;
every request the spider yields is deduplicated by the Bloom filter and pushed to
Redis, so memory does not grow with the crawl frontier.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import redis
from scrapy import signals
from scrapy.core.scheduler import BaseScheduler
from scrapy.exceptions import DontCloseSpider
from twisted.internet.task import LoopingCall

from hermit.keys import CrawlKeys
from hermit.queue.codec import UndecodableEntry, UnserializableRequest, decode_request, encode_request
from hermit.queue.frontier import Frontier
from hermit.queue.hosts import politeness_key
from hermit.queue.redis_queue import Ack, Lease, QueuedRequest, read_status
from hermit.queue.shards import open_shards
from hermit.redis_client import connect, worker_timeouts
from hermit.settings import WorkerConfig
from hermit.worker import engine_hooks
from hermit.worker.known_fingerprints import KnownFingerprints
from hermit.worker.leases import WorkerLeases
from hermit.worker.outbox import Outbox
from hermit.worker.redis_health import RedisHealth
from hermit.worker.session import WorkerSession, end_session, open_session
from hermit.redis_url import redact_url

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)

class RedisUnavailable(RuntimeError):
    """Redis could not be reached when the worker started."""


class OutdatedQueueLayout(RuntimeError):
    """The crawl's requests are queued in the layout before host-aware queues."""


class HermitScheduler(BaseScheduler):
    """Shared Redis request queue with leases, Bloom dedup and bounded prefetch.

    Politeness is fleet-wide: Scrapy's ``DOWNLOAD_DELAY`` (with its jitter) and
    ``CONCURRENT_REQUESTS_PER_DOMAIN`` apply to each host (download slot) across
    every worker of the crawl, through the leases; the worker's own downloader then
    adds no delay of its own (except with AutoThrottle, which adapts each worker's
    local delays on top). ``HERMIT_HOST_BACKOFF_*`` tune the backoff after 429,
    503 and connection errors.

    Settings (see :mod:`hermit.settings` for defaults): ``HERMIT_REDIS_URL`` (or
    ``REDIS_URL``), ``HERMIT_CRAWL``, ``HERMIT_KEY_PREFIX``, ``HERMIT_WORKER_ID``,
    ``HERMIT_PREFETCH_REQUESTS``, ``HERMIT_LEASE_TIMEOUT_SECONDS``,
    ``HERMIT_IDLE_POLL_SECONDS``, ``HERMIT_IDLE_CLOSE_SECONDS``, ``HERMIT_QUEUE_ORDER``,
    ``HERMIT_FLUSH_MAX_OPERATIONS``, ``HERMIT_REDIS_RETRY_MAX_SECONDS``,
    ``HERMIT_REDIS_SOCKET_TIMEOUT_SECONDS``, ``HERMIT_DEDUP_*``.

    Stats: ``scheduler/enqueued/redis``, ``scheduler/dequeued/redis``,
    ``dupefilter/filtered``, ``hermit/leases/acked``, ``hermit/leases/returned``,
    ``hermit/dead_letters``, ``hermit/requests/unserializable``,
    ``hermit/requests/blocked`` (its host is blocked), ``hermit/leases/empty``
    (a lease found no host that may be fetched now), ``hermit/redis/errors``, ``hermit/dedup/known_locally``. Duplicates are reported through Scrapy's
    ``request_dropped`` signal, as Scrapy's own scheduler does, and logged as its
    dupefilter logs them: the first one, or every one with ``DUPEFILTER_DEBUG``.
    """

    def __init__(self, crawler: Crawler, config: WorkerConfig) -> None:
        self.crawler = crawler
        self.config = config
        self.stats = crawler.stats
        self.keys = CrawlKeys(config.crawl, config.key_prefix)
        self.health = RedisHealth(config.redis_retry_max_seconds)
        self.spider: Spider | None = None
        self.client: redis.Redis | None = None
        self.queue: Frontier | None = None
        self.outbox: Outbox | None = None
        self.leases: WorkerLeases | None = None
        self._outbox_thread: ThreadPoolExecutor | None = None
        self._prefetched: deque[tuple[Lease, Request]] = deque()
        self._in_progress: dict[Request, Lease] = {}
        # Requests whose download ended: their host's slot is already freed.
        self._downloaded: set[Request] = set()
        self._wake_call: Any = None
        self._next_poll = 0.0
        self._done_since: float | None = None
        self._done_checked = -1e9
        self._crawl_has_work = True
        self._ticker: LoopingCall | None = None
        self._returned_on_close = False
        self._closed = False
        # As Scrapy's RFPDupeFilter: the first duplicate is logged, the rest only with DUPEFILTER_DEBUG.
        self._log_every_duplicate = crawler.settings.getbool("DUPEFILTER_DEBUG")
        self._known = KnownFingerprints(config.known_fingerprints)
        # Connections made to Redis, and Redis errors seen, when the known set was last trusted.
        self._connections = 0
        self._known_valid_for = (0, 0)
        self._duplicate_logged = False

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> HermitScheduler:
        assert crawler.spider is not None
        config = WorkerConfig.from_settings(crawler.settings, crawler.spider.name)
        spider_delay = getattr(crawler.spider, "download_delay", None)
        if isinstance(spider_delay, (int, float)) and spider_delay >= 0:
            # Scrapy < 2.19 reads a spider's download_delay attribute over DOWNLOAD_DELAY.
            config = dataclasses.replace(
                config, politeness=dataclasses.replace(config.politeness, delay_seconds=float(spider_delay))
            )
        return cls(crawler, config)

    # BaseScheduler interface -------------------------------------------------

    def open(self, spider: Spider) -> None:
        self.spider = spider
        config = self.config
        try:
            self.client = connect(
                config.redis_url, **worker_timeouts(config.redis_socket_timeout_seconds),
                redis_connect_func=self._connected,
            )
            self.client.ping()
            if self.client.exists(self.keys.legacy_priorities):
                raise OutdatedQueueLayout(
                    f"crawl {config.crawl!r} has requests queued in the layout before host-aware queues; "
                    f"move them with: hermit queue migrate --redis URL --crawl {config.crawl}"
                )
            shards = open_shards(self.client, self.keys, config.queue_shards)
        except redis.RedisError as exc:
            raise RedisUnavailable(
                f"cannot reach Redis at {redact_url(config.redis_url)}: {exc}"
            ) from None
        self.queue = Frontier(
            self.client, self.keys, config.worker_id, shards=shards, order=config.queue_order,
            lease_timeout_seconds=config.lease_timeout_seconds, bloom=config.bloom,
            politeness=config.politeness, idle_poll_seconds=config.idle_poll_seconds,
        )
        self.leases = WorkerLeases(self.queue, self.stats, self.health, config.lease_timeout_seconds)
        from twisted.internet import reactor  # the one Scrapy installed, not a default

        # The outbox sends from its own thread, so parsing goes on while Redis runs
        # the push and ack scripts.
        self._outbox_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hermit-outbox")
        self.outbox = Outbox(
            self.queue, health=self.health, call_later=reactor.callLater,
            max_operations=config.flush_max_operations, on_pushed=self._pushed,
            executor=self._outbox_thread, call_from_thread=reactor.callFromThread,
        )
        open_session(self.crawler, WorkerSession(
            config=config, keys=self.keys, client=self.client, outbox=self.outbox,
            download_finished=self.download_finished, count_crawl_wide=self.count_crawl_wide, close=self.close,
        ))
        engine_hooks.check_supported(self.crawler)
        engine_hooks.on_request_finished(self.crawler, self._request_finished)
        self.crawler.signals.connect(self._spider_idle, signal=signals.spider_idle)
        if not self.crawler.settings.getbool("AUTOTHROTTLE_ENABLED"):
            engine_hooks.leave_delays_to_the_fleet(self.crawler)
        self._heartbeat()
        self._ticker = LoopingCall(self._tick)
        self._ticker.start(config.idle_poll_seconds, now=False)
        logger.info(
            "Hermit worker %s on crawl %r at %s (prefetch %d, lease timeout %.1fs; per host, fleet-wide: "
            "delay %.2fs, concurrency %d)",
            config.worker_id, config.crawl, redact_url(config.redis_url),
            config.prefetch_requests, config.lease_timeout_seconds,
            config.politeness.delay_seconds, config.politeness.concurrency,
        )

    def close(self, reason: str) -> None:
        """Write what is pending, then give back every lease still held (prefetched or
        in progress). Also called directly before a worker exits at once (hard memory
        limit, drain deadline); a second call does nothing."""
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        if self._wake_call is not None and self._wake_call.active():
            self._wake_call.cancel()
        if self.leases is None or self.outbox is None or self.client is None or self._closed:
            return
        self._closed = True
        flushed = self._flush_before_exit()
        if flushed:
            self.leases.release_all()
        else:
            logger.warning(
                "Redis unreachable at close: %d writes not sent; this worker's leases return "
                "to the queue in %.0fs and their pages are fetched again",
                self.outbox.pending, self.config.lease_timeout_seconds,
            )
        self._prefetched.clear()
        self._in_progress.clear()
        self._downloaded.clear()
        end_session(self.crawler)
        if self._outbox_thread is not None:
            self._outbox_thread.shutdown(wait=False)
        self.client.close()

    def count_crawl_wide(self, counter: str, amount: int = 1) -> None:
        """Add to one of the crawl's shared counters (``hermit status``); best effort."""
        if self.client is None:
            return
        try:
            self.client.hincrby(self.keys.stats, counter, amount)
        except redis.RedisError as exc:
            logger.warning("Could not count %s in Redis: %s", counter, exc)

    def has_pending_requests(self) -> bool:
        """True while this worker holds requests the engine has not taken yet (prefetched,
        or produced and not yet written to Redis), or the crawl has requests queued or
        leased by other workers (which may produce more work). This worker's own
        requests in progress don't count: the engine waits for those itself.

        Whether an idle worker then closes is decided on ``spider_idle``: only once the
        whole crawl has had nothing queued or leased for ``HERMIT_IDLE_CLOSE_SECONDS``
        (never when it is 0: a long-running worker waits for new seeds).
        """
        if self._prefetched or (self.outbox is not None and self.outbox.pending):
            return True
        self._read_crawl_state()
        return self._crawl_has_work

    def enqueue_request(self, request: Request) -> bool:
        """Accept *request* for the shared queue; return False if it can't be queued.

        Dedup happens when the outbox writes (a moment later, batched); duplicates
        are then reported through ``request_dropped``. A request whose fingerprint
        Redis already confirmed (``HERMIT_DEDUP_KNOWN_FINGERPRINTS``) is a duplicate
        at once: False, and Scrapy's engine reports it.
        """
        assert self.outbox is not None
        fingerprint = None if request.dont_filter else self.crawler.request_fingerprinter.fingerprint(request)
        if fingerprint is not None and self._known_fingerprint(fingerprint):
            # Redis confirmed this fingerprint is in the filter: it would say duplicate.
            self.stats.inc_value("dupefilter/filtered")
            self.stats.inc_value("hermit/dedup/known_locally")
            self._log_duplicate(request)
            return False
        try:
            entry = encode_request(request, self.spider, codec=self.config.queue_codec)
        except UnserializableRequest as exc:
            self.stats.inc_value("hermit/requests/unserializable")
            logger.error("Dropped a request that can't be queued: %s", exc)
            return False
        self.outbox.push(
            QueuedRequest(entry, request.priority, fingerprint, politeness_key(request)), context=request
        )
        return True

    def next_request(self) -> Request | None:
        if not self._prefetched:
            self._refill()
        if not self._prefetched:
            return None
        lease, request = self._prefetched.popleft()
        self._in_progress[request] = lease
        self.stats.inc_value("scheduler/dequeued/redis")
        return request

    def __len__(self) -> int:
        """Requests that have not started: the crawl's queue (shared by every worker, read
        from Redis; left out while Redis can't be read), plus what this worker holds
        (prefetched, or pushed and not yet written to Redis)."""
        own = len(self._prefetched) + (self.outbox.pending_pushes if self.outbox is not None else 0)
        queued = 0
        if self.client is not None and self.health.available():
            try:
                queued = max(0, int(self.client.get(self.keys.queued_count) or 0))
            except redis.RedisError as exc:
                self.health.failed(exc, "reading the queue's length")
        return own + queued

    # internals ---------------------------------------------------------------

    def _refill(self) -> None:
        assert self.queue is not None
        now = time.monotonic()
        if now < self._next_poll or not self.health.available() or engine_hooks.is_closing(self.crawler):
            return
        if self.outbox is not None and self.outbox.pending:
            # Requests the spider produced before asking for the next one are in the
            # queue first, as they would be in Scrapy's own scheduler: priorities and
            # depth-first order then hold exactly.
            if not self.outbox.flush():
                return
        if not self._in_progress:
            assert self.leases is not None
            self.leases.return_stale()
        try:
            leases = self.queue.lease(self._lease_count(), self._in_flight_by_host())
        except redis.RedisError as exc:
            self.stats.inc_value("hermit/redis/errors")
            self.health.failed(exc, "leasing requests")
            return
        self.health.succeeded()
        if not leases:
            self._wait_for_next_host(now)
            return
        self._done_checked = -1e9  # the crawl's queue changed: has_pending_requests() reads it afresh
        for lease in leases:
            try:
                request = decode_request(lease.entry, self.spider, lease.priority, codec=self.config.queue_codec)
            except UndecodableEntry as exc:
                self._dead_letter(lease, str(exc))
                continue
            self._prefetched.append((lease, request))

    def _lease_count(self) -> int:
        """As many requests as the downloader can start now (a leased request waiting
        here would hold its host's slot and start later than the fleet scheduled it)."""
        prefetch = self.config.prefetch_requests
        downloader = getattr(getattr(self.crawler, "engine", None), "downloader", None)
        if downloader is None:
            return prefetch
        free = self.crawler.settings.getint("CONCURRENT_REQUESTS", 16) - len(downloader.active)
        return max(1, min(prefetch, free))

    def _in_flight_by_host(self) -> dict[str, int]:
        """This worker's leases per host whose download has not finished."""
        counts: dict[str, int] = {}
        for lease, _ in self._prefetched:
            counts[lease.host] = counts.get(lease.host, 0) + 1
        for request, lease in self._in_progress.items():
            if request not in self._downloaded:
                counts[lease.host] = counts.get(lease.host, 0) + 1
        return counts

    def _wait_for_next_host(self, now: float) -> None:
        """Nothing may be fetched now: look again when the next host is ready (the
        fleet's schedule says when), or after the idle poll if sooner or unknown."""
        wait = self.config.idle_poll_seconds
        ready_in = self.queue.next_ready_seconds if self.queue is not None else None
        if ready_in is not None:
            wait = min(wait, max(0.005, ready_in))
            self.stats.inc_value("hermit/leases/empty")
            self.stats.inc_value("hermit/leases/wait_seconds", wait, start=0.0)
            if self._wake_call is None or not self._wake_call.active():
                from twisted.internet import reactor

                self._wake_call = reactor.callLater(wait, self._wake)
        self._next_poll = now + wait

    def _wake(self) -> None:
        self._next_poll = 0.0
        if not engine_hooks.is_closing(self.crawler):
            engine_hooks.wake_engine(self.crawler)

    def download_finished(self, request: Request, outcome: str, retry_after_seconds: float = 0.0) -> None:
        """The download of leased *request* ended, saying *outcome* about its host
        (``"ok"``, a backoff reason, or ``""``): free the host's slot for the fleet now,
        as Scrapy's downloader does, and apply the outcome. The lease stays until the
        request is fully processed."""
        lease = self._in_progress.get(request)
        if lease is None or request in self._downloaded or self.outbox is None:
            return
        self._downloaded.add(request)
        self.outbox.downloaded(Ack(lease.id, lease.host, outcome, retry_after_seconds))
        self._next_poll = 0.0  # a slot came free: maybe ours to take

    def _dead_letter(self, lease: Lease, reason: str) -> None:
        assert self.queue is not None
        self.stats.inc_value("hermit/dead_letters")
        try:
            self.queue.dead_letter(lease, reason)
        except redis.RedisError as exc:
            # The lease stays; it comes back (and is dead-lettered) after this worker stops.
            self.health.failed(exc, "dead-lettering an entry")

    def _pushed(self, requests: list[Request], results: list[int]) -> None:
        fingerprint = self.crawler.request_fingerprinter.fingerprint  # cached per request by Scrapy
        for request, result in zip(requests, results):
            if result != 2 and not request.dont_filter:
                self._known.add(fingerprint(request))  # in the filter now, new or not
            if result == 1:
                self.stats.inc_value("scheduler/enqueued/redis")
            elif result == 2:
                self.stats.inc_value("hermit/requests/blocked")
                logger.info("Not queued, its host is blocked (hermit hosts unblock): %s", request)
                self.crawler.signals.send_catch_log(
                    signals.request_dropped, request=request, spider=self.spider
                )
            else:
                self.stats.inc_value("dupefilter/filtered")
                self._log_duplicate(request)
                self.crawler.signals.send_catch_log(
                    signals.request_dropped, request=request, spider=self.spider
                )
        if 1 in results:
            self._next_poll = 0.0  # there is work now, maybe for us
            self._done_checked = -1e9

    def _connected(self, connection: redis.connection.AbstractConnection) -> None:
        """redis-py's hook for every new connection (the first, and each reconnect)."""
        connection.on_connect()
        self._connections += 1

    def _known_fingerprint(self, fingerprint: bytes) -> bool:
        """Whether Redis confirmed *fingerprint* in the filter since this worker last (re)connected.

        A Redis that restarted or failed over may have lost its last writes (AOF
        everysec: up to a second), Bloom bits and queue entries of fingerprints this
        worker saw confirmed among them. Such links must be pushed again when found
        again, so the worker stops trusting what it remembers as soon as it has
        reconnected or seen an error. Re-crawls of the pages whose acks were lost come
        after their leases expire, long after this.
        """
        state = (self._connections, self.health.errors_total)
        if state != self._known_valid_for:
            if len(self._known):
                logger.info("Reconnected to Redis or saw an error: forgetting %d known fingerprints", len(self._known))
            self._known.clear()
            self._known_valid_for = state
        return fingerprint in self._known

    def _log_duplicate(self, request: Request) -> None:
        if self._log_every_duplicate:
            logger.debug("Filtered duplicate request: %s", request)
        elif not self._duplicate_logged:
            logger.debug("Filtered duplicate request: %s - no more duplicates will be shown"
                         " (see DUPEFILTER_DEBUG to show all duplicates)", request)
            self._duplicate_logged = True

    def _request_finished(self, request: Request) -> None:
        lease = self._in_progress.pop(request, None)
        self._downloaded.discard(request)
        if lease is not None and self.outbox is not None:
            self.outbox.ack(Ack(lease.id, lease.host))
            self.stats.inc_value("hermit/leases/acked")
            # Lease again at once rather than after the idle poll: the ack frees the
            # host's slot if its download did not already (no HostSignalsMiddleware).
            self._next_poll = 0.0

    def _heartbeat(self) -> None:
        assert self.leases is not None
        if self.leases.heartbeat():
            self._next_poll = 0.0  # leases of a dead worker came back: work to lease

    def _tick(self) -> None:
        # Heart-beat while draining too: in-flight requests keep their leases.
        if self.leases is not None and self.leases.heartbeat_due():
            self._heartbeat()
        if engine_hooks.is_closing(self.crawler):
            self._return_unstarted()
            return
        if not self._prefetched and time.monotonic() >= self._next_poll:
            engine_hooks.wake_engine(self.crawler)

    def _return_unstarted(self) -> None:
        """Give back prefetched requests as soon as the engine starts closing."""
        if not self._prefetched or self.leases is None:
            return
        if self.leases.return_unstarted([lease for lease, _ in self._prefetched]):
            self._prefetched.clear()

    def _read_crawl_state(self) -> None:
        """Read whether the crawl has work and since when it is done (at most once per idle poll)."""
        now = time.monotonic()
        if now - self._done_checked < self.config.idle_poll_seconds:
            return
        self._done_checked = now
        done, has_work = False, True  # while Redis can't be read: neither idle nor done
        if self.health.available():
            try:
                status = read_status(self.client, self.keys)
            except redis.RedisError as exc:
                self.health.failed(exc, "reading the queue status")
            else:
                done = status.done
                others = status.leased - status.leased_by_worker.get(self.config.worker_id, 0)
                has_work = status.queued > 0 or others > 0
        self._crawl_has_work = has_work
        if not done:
            self._done_since = None
        elif self._done_since is None:
            self._done_since = now

    def _crawl_done_long_enough(self) -> bool:
        self._read_crawl_state()
        now = time.monotonic()
        return self._done_since is not None and now - self._done_since >= self.config.idle_close_seconds

    def _spider_idle(self, spider: Spider) -> None:
        """Keep an idle worker open until the whole crawl is done long enough."""
        if self.config.idle_close_seconds <= 0 or not self._crawl_done_long_enough():
            raise DontCloseSpider

    def _flush_before_exit(self) -> bool:
        assert self.outbox is not None
        deadline = time.monotonic() + min(30.0, self.config.lease_timeout_seconds)
        while True:
            self.health.retry_at = 0.0
            if self.outbox.flush():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(1.0, self.config.redis_retry_max_seconds))
