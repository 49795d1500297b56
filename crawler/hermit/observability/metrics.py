"""The worker's Prometheus endpoint: a Scrapy extension serving ``/metrics``.

Most values are read when Prometheus scrapes — the crawler's stats, Scrapy's live
objects, the crawl's state in Redis — by collectors on the server's thread, so the
crawl pays nothing between scrapes. The download-latency histogram is the one thing
recorded as it happens (one observation per response).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import scrapy
from prometheus_client import REGISTRY, CollectorRegistry, Histogram, Info
from scrapy import signals
from scrapy.exceptions import NotConfigured

import hermit
from hermit.crawl_status import CrawlStatus, read_crawl_status
from hermit.keys import CrawlKeys
from hermit.observability.collector_group import CollectorGroup
from hermit.observability.crawl_metrics import CrawlStatusCollector, status_client
from hermit.observability.endpoint_log import METRICS_LOG
from hermit.observability.endpoints import Endpoint, metrics_endpoint
from hermit.observability.http_server import BackgroundHTTPServer
from hermit.observability.live_object_metrics import LiveObjectsCollector
from hermit.observability.metrics_app import METRICS_PATH, MetricsApp, Registries
from hermit.observability.stats_metrics import ScrapyStatsCollector
from hermit.setting_spec import InvalidValue
from hermit.settings import WorkerConfig, read
from hermit.worker import engine_hooks
from hermit.worker.session import session_of

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response

    from hermit.redis_client import OnDemandClient
    from twisted.internet.defer import Deferred
    from twisted.internet.interfaces import IReactorTime

logger = logging.getLogger(__name__)

#: Download latency buckets, seconds: from a fast local site to a slow remote one.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
FINAL_SCRAPE_POLL_SECONDS = 0.1


@dataclass(frozen=True)
class WorkerMetrics:
    """What :func:`register_worker_metrics` registered that the extension feeds or resets."""

    latency: Any  # the download-latency histogram of the crawl (its labelled child)
    crawl_status: CrawlStatusCollector


def register_worker_metrics(
    registry: CollectorRegistry, crawl: str, worker_id: str, *,
    get_stats: Callable[[], Mapping[str, Any]], closing: Callable[[], bool],
    read_status: Callable[[], CrawlStatus],
) -> WorkerMetrics:
    """Register every ``hermit_*`` metric of worker *worker_id* of crawl *crawl* in *registry*.

    The collectors read *get_stats* (the crawler's stats), *closing* (whether the spider
    is draining) and *read_status* (the crawl's state in Redis) when scraped. The
    metrics reference, docs/metrics.md, is generated from what this registers
    (tools/docs_reference.py).
    """
    Info("hermit_build", "Versions this worker runs.", ["crawl"], registry=registry).labels(crawl).info(
        {"version": hermit.__version__, "scrapy_version": scrapy.__version__}
    )
    latency = Histogram(
        "hermit_download_latency_seconds",
        "Time from sending a request to receiving its response headers (Scrapy's download_latency).",
        ["crawl"], buckets=LATENCY_BUCKETS, registry=registry,
    ).labels(crawl)
    crawl_status = CrawlStatusCollector(read_status, crawl, worker_id)
    registry.register(CollectorGroup(crawl, {
        "scrapy_stats": ScrapyStatsCollector(get_stats, crawl, closing=closing),
        "live_objects": LiveObjectsCollector(crawl),
        "crawl_status": crawl_status,
    }))
    return WorkerMetrics(latency, crawl_status)


class MetricsExtension:
    """Serves the worker's metrics at ``http://HERMIT_METRICS_HOST:HERMIT_METRICS_PORT/metrics``.

    Settings (defaults and bounds in :mod:`hermit.settings`): ``HERMIT_METRICS_ENABLED``,
    ``HERMIT_METRICS_HOST``, ``HERMIT_METRICS_PORT`` (0 = a free port, logged),
    ``HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS`` (when the spider closes, wait up
    to this long for one more scrape, so the last counts — a recycle among them —
    reach Prometheus; 0 = don't).

    Exports the default registry (the process collector's
    ``process_resident_memory_bytes`` and the rest, and anything the project
    registers there) and Hermit's own ``hermit_*`` metrics: this worker's counts from
    its Scrapy stats, the download latency histogram, live objects by class, build
    info, and the crawl-wide ``hermit_crawl_*`` gauges and counters read from Redis.
    See ``docs/observability.md``; every metric is listed in ``docs/metrics.md``.

    If the port can't be bound, the crawl goes on without metrics (an error is logged).
    """

    def __init__(self, crawler: Crawler, endpoint: Endpoint, final_scrape_timeout_seconds: float = 0.0,
                 default_registry: CollectorRegistry | None = REGISTRY, clock: IReactorTime | None = None) -> None:
        self.crawler = crawler
        self.endpoint = endpoint
        self.final_scrape_timeout_seconds = final_scrape_timeout_seconds
        self.default_registry = default_registry
        self.clock = clock  # the reactor's, unless a test gives one
        self.registry = CollectorRegistry(auto_describe=False)
        self.server: BackgroundHTTPServer | None = None
        self.app: MetricsApp | None = None
        self._latency: Any = None
        self._redis: OnDemandClient | None = None
        self._crawl_status: CrawlStatusCollector | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.spider_closed, signal=signals.spider_closed)
        crawler.signals.connect(self.stop, signal=signals.engine_stopped)
        crawler.signals.connect(self.response_received, signal=signals.response_received)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> MetricsExtension:
        settings = crawler.settings
        endpoint = metrics_endpoint(settings)
        try:
            timeout = read(settings, "HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS")
        except InvalidValue as exc:
            raise NotConfigured(str(exc)) from None
        return cls(crawler, endpoint, timeout)

    def build_registry(self, config: WorkerConfig) -> None:
        """Register Hermit's metrics of crawl *config.crawl* (called when the spider opens)."""
        self._redis = status_client(config.redis_url)
        keys = CrawlKeys(config.crawl, config.key_prefix)
        client = self._redis
        metrics = register_worker_metrics(
            self.registry, config.crawl, config.worker_id,
            get_stats=lambda: dict(self.crawler.stats.get_stats()),
            closing=self._spider_closing,
            read_status=lambda: read_crawl_status(client.get(), keys),
        )
        self._latency = metrics.latency
        self._crawl_status = metrics.crawl_status

    def _spider_closing(self) -> bool:
        try:
            return engine_hooks.is_closing(self.crawler)
        except RuntimeError:  # Scrapy >= 2.14 raises for an engine not set yet
            return False

    def spider_opened(self, spider: Spider) -> None:
        # The open worker's own config: its worker id is drawn at random unless set.
        session = session_of(self.crawler)
        config = session.config if session is not None else WorkerConfig.from_settings(
            self.crawler.settings, spider.name)
        self.build_registry(config)
        registries = [self.registry] if self.default_registry is None else [self.default_registry, self.registry]
        self.app = MetricsApp(Registries(registries))
        server = BackgroundHTTPServer(self.endpoint.host, self.endpoint.port, self.app, "metrics")
        try:
            server.start()
        except OSError as exc:
            logger.error(
                "Cannot serve metrics on %s:%d (%s); this worker runs without /metrics. "
                "Set HERMIT_METRICS_PORT=0 for any free port.", self.endpoint.host, self.endpoint.port, exc,
            )
            return
        self.server = server
        logger.info(METRICS_LOG, server.url(METRICS_PATH))

    def response_received(self, response: Response, request: Request, spider: Spider) -> None:
        latency = request.meta.get("download_latency")
        if self._latency is not None and isinstance(latency, (int, float)) and latency >= 0:
            self._latency.observe(latency)

    def spider_closed(self, spider: Spider, reason: str) -> Deferred | None:
        if self._crawl_status is not None:
            self._crawl_status.forget()  # the scheduler has just written its last batch
        if self.server is None or self.app is None or self.final_scrape_timeout_seconds <= 0:
            self.stop()
            return None
        from twisted.internet.task import LoopingCall

        app, mark, timeout = self.app, self.app.scrapes_started, self.final_scrape_timeout_seconds
        logger.info("Waiting up to %.0fs for a last scrape of %s", timeout, self.server.url(METRICS_PATH))

        def check() -> None:
            if app.answered_since(mark):
                logger.info("Final metrics scraped")
                poll.stop()
            elif poll.clock.seconds() >= deadline:
                logger.info("No scrape of the final metrics within %.0fs", timeout)
                poll.stop()

        poll = LoopingCall(check)
        if self.clock is not None:
            poll.clock = self.clock
        deadline = poll.clock.seconds() + timeout
        done = poll.start(FINAL_SCRAPE_POLL_SECONDS, now=True)
        done.addBoth(lambda _: self.stop())
        return done

    def stop(self) -> None:
        """Stop serving and close the Redis connection; idempotent."""
        server, self.server = self.server, None
        if server is not None:
            server.stop()
        client, self._redis = self._redis, None
        if client is not None:
            client.close()
