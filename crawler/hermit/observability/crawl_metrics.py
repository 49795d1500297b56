"""Crawl-wide values read from Redis: ``hermit_crawl_*``.

Every worker of a crawl exports the same values (queue depth, leases, dead letters,
the Bloom filter, the crawl's shared counters), read from the crawl's Redis when it
is scraped. They are the crawl's, not the worker's: aggregate them with
``max by (crawl)``, never ``sum`` (which would count them once per worker). Every
worker exports them so they exist as long as any worker is up; there is no special
worker that could be recycled away.

The one per-worker value read here, ``hermit_leased_requests`` (the leases Redis
holds for this worker), is summable like the other ``hermit_*`` metrics.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from hermit.crawl_status import CrawlStatus
from hermit.observability.stats_metrics import RECYCLE_REASONS
from hermit.redis_client import OnDemandClient

#: Redis timeouts of the reads (on the metrics server's thread, never the crawl's).
REDIS_TIMEOUT_SECONDS = 2.0
#: Scrapes within this many seconds of a Redis read reuse it (several scrapers, one read).
MAX_AGE_SECONDS = 1.0
#: Crawl counters in the Redis stats hash, as ``(hash field, metric name, help)``.
COUNTERS = (
    ("leased", "hermit_crawl_requests_leased", "Requests leased by the crawl's workers."),
    ("acked", "hermit_crawl_requests_acked", "Requests fully processed by the crawl's workers."),
    ("returned", "hermit_crawl_requests_returned", "Leased requests that went back to the queue."),
    ("expired", "hermit_crawl_leases_expired", "Leases of dead workers that expired and went back to the queue."),
    ("dead_letters", "hermit_crawl_dead_letters", "Queue entries moved to the dead-letter list."),
)
#: Why a host backs off (ack.lua's outcome codes); a fixed set, so the label stays bounded.
BACKOFF_REASONS = ("429", "503", "timeout", "connection")
_RECYCLE_FIELD = re.compile(r"^recycles_([a-z0-9_]{1,40})$")
_MAX_RECYCLE_REASONS = 20
_CRAWL_WIDE = " Crawl-wide, the same on every worker: aggregate with max, not sum."


def status_client(redis_url: str) -> OnDemandClient:
    """A Redis client for the reads, made at the first scrape: short timeouts and no
    retries, so a scrape while Redis is away fails fast (and is counted) instead of
    outlasting the scrape timeout."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return OnDemandClient(redis_url, socket_timeout=REDIS_TIMEOUT_SECONDS, connect_timeout=REDIS_TIMEOUT_SECONDS,
                          retry=Retry(NoBackoff(), 0))


class CrawlStatusCollector(Collector):
    """Exports ``read_status()`` (a :class:`CrawlStatus`) for crawl *crawl* and worker *worker_id*.

    A failed read raises: the caller counts it (``hermit_metrics_collect_errors_total``)
    and the crawl-wide series are missing from that scrape rather than stale.
    """

    def __init__(self, read_status: Callable[[], CrawlStatus], crawl: str, worker_id: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.read_status = read_status
        self.crawl = crawl
        self.worker_id = worker_id
        self.clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[float, CrawlStatus] | None = None

    def forget(self) -> None:
        """Read Redis afresh at the next scrape (the crawl's last writes just landed)."""
        with self._lock:
            self._cached = None

    def _status(self) -> CrawlStatus:
        with self._lock:
            now = self.clock()
            if self._cached is None or now - self._cached[0] > MAX_AGE_SECONDS:
                self._cached = (now, self.read_status())
            return self._cached[1]

    def collect(self) -> Iterator[Metric]:
        status = self._status()
        queue, crawl = status.queue, self.crawl

        def gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, documentation + _CRAWL_WIDE, labels=["crawl"])
            family.add_metric([crawl], value)
            return family

        def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
            family = CounterMetricFamily(name, documentation + _CRAWL_WIDE, labels=["crawl"])
            family.add_metric([crawl], value)
            return family

        yield gauge("hermit_crawl_queued_requests", "Requests waiting in the crawl's queue.", queue.queued)
        yield gauge("hermit_crawl_schedulable_requests",
                    "Queued requests that may be in flight at once under the hosts' politeness limits: "
                    "min(queued, sum over hosts with a queue of their concurrency). What autoscaling should "
                    "follow: a million queued requests of one host need one worker, not fifty.",
                    queue.schedulable)
        hosts = GaugeMetricFamily(
            "hermit_crawl_hosts",
            "Hosts with queued requests, by state: ready (may be fetched now), waiting (for their delay, a "
            "backoff or a free slot), paused (by `hermit hosts pause` or block)." + _CRAWL_WIDE,
            labels=["crawl", "state"],
        )
        for state in ("ready", "waiting", "paused"):
            hosts.add_metric([crawl, state], getattr(queue.hosts, state))
        yield hosts
        yield gauge("hermit_crawl_hosts_backed_off", "Hosts in a backoff after 429, 503, timeouts or connection "
                    "errors (queued or not).", queue.hosts.backed_off)
        yield gauge("hermit_crawl_hosts_active", "Hosts with requests in flight.", queue.hosts.active)
        backoffs = CounterMetricFamily(
            "hermit_crawl_host_backoffs",
            "Times a host was backed off for the whole fleet, by reason (429, 503, timeout, connection)."
            + _CRAWL_WIDE,
            labels=["crawl", "reason"],
        )
        for reason in BACKOFF_REASONS:
            backoffs.add_metric([crawl, reason], queue.counters.get(f"backoff:{reason}", 0))
        yield backoffs
        yield gauge("hermit_crawl_leased_requests", "Requests leased (in flight) by all workers.", queue.leased)
        yield gauge("hermit_crawl_workers", "Workers registered in Redis with a live lease deadline.", queue.workers)
        yield gauge("hermit_crawl_dead_letter_entries", "Entries in the crawl's dead-letter list.",
                    queue.dead_letters)
        yield gauge("hermit_crawl_items", "Items in the crawl's item stream.", status.items)
        counters = queue.counters
        dedup = CounterMetricFamily(
            "hermit_crawl_dedup_checks",
            "Requests pushed through the crawl's dedup, by result (new = queued)." + _CRAWL_WIDE,
            labels=["crawl", "result"],
        )
        dedup.add_metric([crawl, "new"], counters.get("enqueued", 0))
        dedup.add_metric([crawl, "duplicate"], counters.get("duplicates", 0))
        yield dedup
        for field, name, documentation in COUNTERS:
            yield counter(name, documentation, counters.get(field, 0))
        recycles = CounterMetricFamily(
            "hermit_crawl_recycles", "Worker recycles in the crawl, by reason." + _CRAWL_WIDE,
            labels=["crawl", "reason"],
        )
        reasons = [m[1] for m in map(_RECYCLE_FIELD.match, sorted(counters)) if m][:_MAX_RECYCLE_REASONS]
        for reason in sorted(set(reasons) | set(RECYCLE_REASONS)):
            recycles.add_metric([crawl, reason], counters.get(f"recycles_{reason}", 0))
        yield recycles
        bloom = status.bloom
        if bloom is not None:
            yield gauge("hermit_crawl_bloom_fill_ratio",
                        "Fingerprints in the Bloom filter over what its layers hold before it adds one (0-1).",
                        bloom.fill_ratio)
            yield gauge("hermit_crawl_bloom_false_positive_ratio",
                        "Estimated chance that a new URL is taken for a duplicate now.",
                        bloom.estimated_false_positive_ratio)
            yield gauge("hermit_crawl_bloom_target_false_positive_ratio",
                        "The false-positive ratio the filter is sized for.", bloom.error_ratio)
            yield gauge("hermit_crawl_bloom_fingerprints", "Fingerprints added to the Bloom filter.", bloom.items)
            yield gauge("hermit_crawl_bloom_capacity_fingerprints",
                        "Fingerprints the filter's current layers hold.", bloom.capacity)
            yield gauge("hermit_crawl_bloom_layers", "Layers of the scalable Bloom filter.", bloom.layers)
            yield gauge("hermit_crawl_bloom_size_bytes", "Size of the filter's bitmaps.", bloom.bytes)
        mine = GaugeMetricFamily(
            "hermit_leased_requests",
            "Requests Redis holds leased for this worker (its prefetch and in-flight requests).",
            labels=["crawl"],
        )
        mine.add_metric([crawl], queue.leased_by_worker.get(self.worker_id, 0))
        yield mine
