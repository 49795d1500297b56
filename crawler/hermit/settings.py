"""Hermit's settings: the one home of their defaults, and their validation.

Names carry their unit (``_SECONDS``, ``_RATIO``, ``_BITS``). scrapy-redis users'
``REDIS_URL`` is honoured when ``HERMIT_REDIS_URL`` is not set.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from scrapy.exceptions import NotConfigured

from hermit.keys import validate_crawl_name
from hermit.queue.codec import check_codec
from hermit.queue.redis_queue import QUEUE_ORDERS, BloomSettings, Politeness
from hermit.queue.shards import CLUSTER_DEFAULT_SHARDS, MAX_SHARDS
from hermit.setting_spec import Setting

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

DEFAULT_SETTINGS: dict[str, Any] = {
    # Where the shared queue lives; falls back to REDIS_URL, then this.
    "HERMIT_REDIS_URL": None,
    # Crawl name (hash tag of every key); default: the spider's name.
    "HERMIT_CRAWL": None,
    "HERMIT_KEY_PREFIX": "hermit",
    # Unique id of this worker; default: host-pid-random (Kubernetes: the pod name).
    "HERMIT_WORKER_ID": None,
    # Requests leased per round trip and held locally before they start (0: CONCURRENT_REQUESTS).
    "HERMIT_PREFETCH_REQUESTS": 0,
    # A worker silent this long is dead; its leases go back to the queue.
    "HERMIT_LEASE_TIMEOUT_SECONDS": 30.0,
    # How often to look for new work when the queue was empty.
    "HERMIT_IDLE_POLL_SECONDS": 0.2,
    # Close the spider after the whole crawl (queue and every lease) has been empty
    # this long. 0 = never: wait for new seeds, as a long-running worker should.
    "HERMIT_IDLE_CLOSE_SECONDS": 0.0,
    # Order within one priority.
    "HERMIT_QUEUE_ORDER": "fifo",
    # Encoding of queued requests: "json" (safe) or "pickle" (only for a trusted Redis).
    "HERMIT_QUEUE_CODEC": "json",
    # Shards of a new crawl's frontier and filter (0: 1 on a single Redis, 16 on a cluster).
    "HERMIT_QUEUE_SHARDS": 0,
    # Outbound batching: flush queued pushes/items/acks at this many operations.
    "HERMIT_FLUSH_MAX_OPERATIONS": 500,
    # Redis outage: retry with exponential backoff up to this delay.
    "HERMIT_REDIS_RETRY_MAX_SECONDS": 10.0,
    "HERMIT_REDIS_SOCKET_TIMEOUT_SECONDS": 5.0,
    # Bloom filter sizing, used when the crawl's filter is first created.
    "HERMIT_DEDUP_CAPACITY": 1_000_000,
    "HERMIT_DEDUP_ERROR_RATIO": 1e-4,
    "HERMIT_DEDUP_GROWTH": 2,
    "HERMIT_DEDUP_MAX_CHUNK_BITS": 2**32,
    # Fleet-wide politeness: DOWNLOAD_DELAY and CONCURRENT_REQUESTS_PER_DOMAIN hold per
    # host across all workers. After 429/503/connection errors a host backs off for
    # the whole fleet, starting here and doubling up to the maximum (which also caps
    # a Retry-After); robots.txt Crawl-delay is honoured up to its maximum.
    "HERMIT_HOST_BACKOFF_BASE_SECONDS": 1.0,
    "HERMIT_HOST_BACKOFF_MAX_SECONDS": 300.0,
    "HERMIT_ROBOTS_CRAWL_DELAY_MAX_SECONDS": 60.0,
    # Fingerprints a worker remembers as already in the filter (0: ask Redis every time).
    "HERMIT_DEDUP_KNOWN_FINGERPRINTS": 100_000,
    # Durable item sink (a Redis stream per crawl).
    "HERMIT_ITEMS_ENABLED": True,
    # Prometheus metrics at http://HOST:PORT/metrics (port 0: any free port, logged).
    "HERMIT_METRICS_ENABLED": True,
    "HERMIT_METRICS_HOST": "0.0.0.0",
    "HERMIT_METRICS_PORT": 9410,
    # When the spider closes, wait up to this long for one more scrape (0 = don't).
    "HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS": 0.0,
    # Leak diagnostics (live objects, tracemalloc) over HTTP; a host that is not
    # loopback needs a token (also read from the HERMIT_DIAGNOSTICS_TOKEN variable).
    "HERMIT_DIAGNOSTICS_ENABLED": True,
    "HERMIT_DIAGNOSTICS_HOST": "127.0.0.1",
    "HERMIT_DIAGNOSTICS_PORT": 9411,
    "HERMIT_DIAGNOSTICS_TOKEN": None,
    # Memory budget (resident set size, bytes; 0 = off). Over the soft budget the
    # worker drains and exits so it is replaced; over the hard limit it writes what
    # it must, returns its leases and exits at once.
    "HERMIT_MEMORY_BUDGET_BYTES": 0,
    "HERMIT_MEMORY_HARD_LIMIT_BYTES": 0,
    "HERMIT_MEMORY_CHECK_SECONDS": 1.0,
    # A drain (memory budget, SIGTERM) that takes longer than this ends at once, with
    # every lease still held returned to the queue.
    "HERMIT_DRAIN_TIMEOUT_SECONDS": 60.0,
    # Crawl-wide limits (0 = none): once the crawl, over every worker and run, has
    # fetched this many pages or scraped this many items, every worker stops.
    "HERMIT_CRAWL_PAGECOUNT": 0,
    "HERMIT_CRAWL_ITEMCOUNT": 0,
}

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class SettingDoc(NamedTuple):
    """A setting's row in docs/settings.md: what it does, and its default as a person
    reads it when the value in DEFAULT_SETTINGS alone doesn't say it."""

    meaning: str
    shown_default: str | None = None


#: One line per setting of DEFAULT_SETTINGS, rendered into docs/settings.md by
#: ``make docs`` (``python -m hermit.docs_reference``); keep the two in step.
SETTING_DOCS: dict[str, SettingDoc] = {
    "HERMIT_REDIS_URL": SettingDoc(
        "the crawl's Redis, where the shared queue lives", "`REDIS_URL`, else `redis://127.0.0.1:6379/0`"),
    "HERMIT_CRAWL": SettingDoc("crawl name; every key is `hermit:{CRAWL}:…`", "the spider's name"),
    "HERMIT_KEY_PREFIX": SettingDoc("key prefix"),
    "HERMIT_WORKER_ID": SettingDoc(
        "unique id of a live worker", "`host-pid-random` (on Kubernetes the host is the pod's name)"),
    "HERMIT_PREFETCH_REQUESTS": SettingDoc(
        "requests leased per round trip and held before they start", "0 = `CONCURRENT_REQUESTS`"),
    "HERMIT_LEASE_TIMEOUT_SECONDS": SettingDoc("a worker silent this long is dead; its leases return to the queue"),
    "HERMIT_IDLE_POLL_SECONDS": SettingDoc("how often an idle worker looks for work"),
    "HERMIT_IDLE_CLOSE_SECONDS": SettingDoc(
        "close once nothing is queued or leased crawl-wide for this long; 0 = wait for new seeds forever"),
    "HERMIT_QUEUE_ORDER": SettingDoc(
        "order within one priority (" + " or ".join(f"`{order}`" for order in QUEUE_ORDERS) + ")"),
    "HERMIT_QUEUE_CODEC": SettingDoc(
        "encoding of queued requests: `json` carries items, datetimes, decimals and more, and never runs code "
        "from Redis; `pickle` carries whatever pickle can, but anyone who can write to the Redis can then run "
        "code in every worker: only for a Redis no one untrusted can reach ([scrapy-compatibility]"
        "(scrapy-compatibility.md#queued-requests))"),
    "HERMIT_QUEUE_SHARDS": SettingDoc(
        "shards a new crawl's frontier and Bloom filter are split over, each on its own Redis Cluster slot "
        "(read when the crawl is created; [redis-cluster](redis-cluster.md))",
        f"0 = 1 on a single Redis, {CLUSTER_DEFAULT_SHARDS} on a Redis Cluster"),
    "HERMIT_FLUSH_MAX_OPERATIONS": SettingDoc("write pushes/items/acks at once when this many wait"),
    "HERMIT_REDIS_RETRY_MAX_SECONDS": SettingDoc("longest backoff between retries while Redis is unreachable"),
    "HERMIT_REDIS_SOCKET_TIMEOUT_SECONDS": SettingDoc("Redis socket timeout"),
    "HERMIT_DEDUP_CAPACITY": SettingDoc(
        "fingerprints the first Bloom layer holds; the filter adds layers beyond (sizing is read when the "
        "crawl's filter is first created)"),
    "HERMIT_DEDUP_ERROR_RATIO": SettingDoc("target false-positive ratio of the whole filter", "1e-4"),
    "HERMIT_DEDUP_GROWTH": SettingDoc("each new layer holds this many times more"),
    "HERMIT_DEDUP_MAX_CHUNK_BITS": SettingDoc(
        "largest bitmap key (Redis strings stop at 512 MB = 2**32 bits)", "2**32"),
    "HERMIT_HOST_BACKOFF_BASE_SECONDS": SettingDoc(
        "first backoff of a host after a 429, 503, timeout or connection error, for every worker; it doubles "
        "with each further one and ends at the host's next good answer"),
    "HERMIT_HOST_BACKOFF_MAX_SECONDS": SettingDoc("longest backoff of a host; also caps a `Retry-After`"),
    "HERMIT_ROBOTS_CRAWL_DELAY_MAX_SECONDS": SettingDoc(
        "with `ROBOTSTXT_OBEY`, a host's robots.txt `Crawl-delay` becomes its fleet-wide delay, up to this"),
    "HERMIT_DEDUP_KNOWN_FINGERPRINTS": SettingDoc(
        "fingerprints each worker remembers as already in the crawl's filter, so it drops repeated links "
        "without encoding them or asking Redis (~100 bytes each; 0 turns it off)"),
    "HERMIT_ITEMS_ENABLED": SettingDoc("write items to the crawl's Redis stream"),
    "HERMIT_METRICS_ENABLED": SettingDoc(
        "serve Prometheus metrics at `http://HOST:PORT/metrics` ([observability](observability.md), "
        "[every metric](metrics.md))"),
    "HERMIT_METRICS_HOST": SettingDoc(
        "address the metrics server binds (Prometheus scrapes pods; metrics hold no secrets)"),
    "HERMIT_METRICS_PORT": SettingDoc(
        "metrics port; 0 = any free port, logged as `Metrics at http://…/metrics` (`hermit crawl` does this "
        "for its workers)"),
    "HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS": SettingDoc(
        "when the spider closes, wait up to this long for one more scrape, so the last counts (a recycle among "
        "them) reach Prometheus; about the scrape interval in a cluster; 0 = don't wait"),
    "HERMIT_DIAGNOSTICS_ENABLED": SettingDoc("serve the leak-diagnostics endpoint (live objects, tracemalloc)"),
    "HERMIT_DIAGNOSTICS_HOST": SettingDoc(
        "address it binds; one that is not loopback needs a token, else the endpoint is not started"),
    "HERMIT_DIAGNOSTICS_PORT": SettingDoc("its port; 0 = any free port, logged as `Diagnostics at http://…/`"),
    "HERMIT_DIAGNOSTICS_TOKEN": SettingDoc(
        "when set, every request needs `Authorization: Bearer <token>`",
        "None (else the `HERMIT_DIAGNOSTICS_TOKEN` environment variable)"),
    "HERMIT_MEMORY_BUDGET_BYTES": SettingDoc(
        "soft budget (RSS): over it the worker drains and exits with status 6 to be replaced", "0 (off)"),
    "HERMIT_MEMORY_HARD_LIMIT_BYTES": SettingDoc(
        "over it the worker writes what is pending, returns its leases and exits at once (7); must be above "
        "the soft budget", "0 (off)"),
    "HERMIT_MEMORY_CHECK_SECONDS": SettingDoc("how often RSS is read"),
    "HERMIT_DRAIN_TIMEOUT_SECONDS": SettingDoc(
        "a drain (budget, SIGTERM) still running after this ends at once, leases returned (8)"),
    "HERMIT_CRAWL_PAGECOUNT": SettingDoc(
        "once the whole crawl (every worker, every run) has fetched this many pages, every worker stops "
        "(finish reason `crawl_pagecount`) and what is queued stays queued; `CLOSESPIDER_PAGECOUNT` counts "
        "per worker ([scrapy-compatibility](scrapy-compatibility.md#crawl-wide-limits))", "0 (none)"),
    "HERMIT_CRAWL_ITEMCOUNT": SettingDoc(
        "the same for items scraped (finish reason `crawl_itemcount`)", "0 (none)"),
}

#: DEFAULT_SETTINGS with their SETTING_DOCS, in order: what docs/settings.md lists first.
#: A setting without a SETTING_DOCS entry has an empty meaning, which the docs generator refuses.
SETTINGS: tuple[Setting, ...] = tuple(
    Setting(name, default, *SETTING_DOCS.get(name, SettingDoc("")))
    for name, default in DEFAULT_SETTINGS.items()
)


def _number(settings: BaseSettings, name: str, kind: type, minimum: float) -> Any:
    raw = settings.get(name, DEFAULT_SETTINGS[name])
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise NotConfigured(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    if value < minimum:
        raise NotConfigured(f"{name} must be at least {minimum}, got {raw!r}")
    return value


def queue_shards(settings: BaseSettings) -> int:
    """HERMIT_QUEUE_SHARDS, checked (0: chosen by the kind of Redis)."""
    shards = _number(settings, "HERMIT_QUEUE_SHARDS", int, 0)
    if shards > MAX_SHARDS:
        raise NotConfigured(f"HERMIT_QUEUE_SHARDS must be at most {MAX_SHARDS}, got {shards}")
    return shards


def _scrapy_number(settings: BaseSettings, name: str, kind: type, default: float, minimum: float) -> Any:
    """One of Scrapy's own settings that Hermit reads too, checked as :func:`_number` checks Hermit's."""
    raw = settings.get(name)
    if raw is None or raw == "":
        return kind(default)
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise NotConfigured(f"{name} must be {'an integer' if kind is int else 'a number'}, got {raw!r}") from None
    if value < minimum:
        raise NotConfigured(f"{name} must be at least {minimum}, got {raw!r}")
    return value


class InvalidSetting(ValueError):
    """A Hermit setting with a value the worker can't run with (the message names it).

    Raised where ``NotConfigured`` would only disable a component (extensions); the
    worker exits with its configuration-error status instead.
    """


@dataclass(frozen=True)
class MemoryLimits:
    budget_bytes: int
    hard_limit_bytes: int
    check_seconds: float
    drain_timeout_seconds: float


def memory_limits(settings: BaseSettings) -> MemoryLimits:
    """The memory budget settings, checked; raise InvalidSetting with a clear message."""
    try:
        limits = MemoryLimits(
            budget_bytes=_number(settings, "HERMIT_MEMORY_BUDGET_BYTES", int, 0),
            hard_limit_bytes=_number(settings, "HERMIT_MEMORY_HARD_LIMIT_BYTES", int, 0),
            check_seconds=_number(settings, "HERMIT_MEMORY_CHECK_SECONDS", float, 0.01),
            drain_timeout_seconds=_number(settings, "HERMIT_DRAIN_TIMEOUT_SECONDS", float, 0.1),
        )
    except NotConfigured as exc:
        raise InvalidSetting(str(exc)) from None
    if limits.budget_bytes and limits.hard_limit_bytes and limits.hard_limit_bytes <= limits.budget_bytes:
        raise InvalidSetting(
            f"HERMIT_MEMORY_HARD_LIMIT_BYTES ({limits.hard_limit_bytes}) must be above "
            f"HERMIT_MEMORY_BUDGET_BYTES ({limits.budget_bytes})"
        )
    return limits


@dataclass(frozen=True)
class CrawlLimitSettings:
    """Crawl-wide limits; 0 = none."""

    pagecount: int
    itemcount: int


def crawl_limits(settings: BaseSettings) -> CrawlLimitSettings:
    """The crawl-wide limits, checked; raise InvalidSetting with a clear message."""
    try:
        return CrawlLimitSettings(
            pagecount=_number(settings, "HERMIT_CRAWL_PAGECOUNT", int, 0),
            itemcount=_number(settings, "HERMIT_CRAWL_ITEMCOUNT", int, 0),
        )
    except NotConfigured as exc:
        raise InvalidSetting(str(exc)) from None


def default_worker_id() -> str:
    """host-pid-random: unique even when a pod's hostname is reused by its replacement."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class WorkerConfig:
    """Validated Hermit settings of one worker."""

    redis_url: str
    crawl: str
    key_prefix: str
    worker_id: str
    prefetch_requests: int
    lease_timeout_seconds: float
    idle_poll_seconds: float
    idle_close_seconds: float
    queue_order: str
    flush_max_operations: int
    redis_retry_max_seconds: float
    redis_socket_timeout_seconds: float
    bloom: BloomSettings
    known_fingerprints: int
    items_enabled: bool
    queue_codec: str = "json"
    #: Shards for a new crawl (0: chosen by the kind of Redis).
    queue_shards: int = 0
    politeness: Politeness = Politeness()
    robots_crawl_delay_max_seconds: float = 60.0

    @classmethod
    def from_settings(cls, settings: BaseSettings, spider_name: str) -> WorkerConfig:
        """Read and check the settings; raise ``NotConfigured`` with a clear message."""
        crawl = settings.get("HERMIT_CRAWL") or spider_name
        try:
            validate_crawl_name(crawl)
        except ValueError as exc:
            raise NotConfigured(f"HERMIT_CRAWL: {exc}") from None
        order = settings.get("HERMIT_QUEUE_ORDER", DEFAULT_SETTINGS["HERMIT_QUEUE_ORDER"])
        if order not in QUEUE_ORDERS:
            raise NotConfigured(f"HERMIT_QUEUE_ORDER must be one of {QUEUE_ORDERS}, got {order!r}")
        try:
            queue_codec = check_codec(settings.get("HERMIT_QUEUE_CODEC", DEFAULT_SETTINGS["HERMIT_QUEUE_CODEC"]))
        except ValueError as exc:
            raise NotConfigured(str(exc)) from None
        error_ratio = _number(settings, "HERMIT_DEDUP_ERROR_RATIO", float, 0)
        if not 0 < error_ratio < 1:
            raise NotConfigured(f"HERMIT_DEDUP_ERROR_RATIO must be between 0 and 1, got {error_ratio}")
        max_chunk_bits = _number(settings, "HERMIT_DEDUP_MAX_CHUNK_BITS", int, 8)
        if max_chunk_bits > 2**32:
            raise NotConfigured("HERMIT_DEDUP_MAX_CHUNK_BITS can't exceed 2**32 (Redis' 512 MB string limit)")
        concurrent_requests = _scrapy_number(settings, "CONCURRENT_REQUESTS", int, 16, 1)
        prefetch = _number(settings, "HERMIT_PREFETCH_REQUESTS", int, 0) or concurrent_requests
        return cls(
            redis_url=settings.get("HERMIT_REDIS_URL") or settings.get("REDIS_URL") or DEFAULT_REDIS_URL,
            crawl=crawl,
            key_prefix=settings.get("HERMIT_KEY_PREFIX") or "hermit",
            worker_id=settings.get("HERMIT_WORKER_ID") or default_worker_id(),
            prefetch_requests=prefetch,
            lease_timeout_seconds=_number(settings, "HERMIT_LEASE_TIMEOUT_SECONDS", float, 0.1),
            idle_poll_seconds=_number(settings, "HERMIT_IDLE_POLL_SECONDS", float, 0.01),
            idle_close_seconds=_number(settings, "HERMIT_IDLE_CLOSE_SECONDS", float, 0),
            queue_order=order,
            flush_max_operations=_number(settings, "HERMIT_FLUSH_MAX_OPERATIONS", int, 1),
            redis_retry_max_seconds=_number(settings, "HERMIT_REDIS_RETRY_MAX_SECONDS", float, 0.1),
            redis_socket_timeout_seconds=_number(settings, "HERMIT_REDIS_SOCKET_TIMEOUT_SECONDS", float, 0.1),
            bloom=BloomSettings(
                capacity=_number(settings, "HERMIT_DEDUP_CAPACITY", int, 1),
                error_ratio=error_ratio,
                growth=_number(settings, "HERMIT_DEDUP_GROWTH", int, 2),
                max_chunk_bits=max_chunk_bits,
            ),
            known_fingerprints=_number(settings, "HERMIT_DEDUP_KNOWN_FINGERPRINTS", int, 0),
            items_enabled=settings.getbool("HERMIT_ITEMS_ENABLED", True),
            queue_codec=queue_codec,
            queue_shards=queue_shards(settings),
            politeness=politeness(settings),
            robots_crawl_delay_max_seconds=_number(settings, "HERMIT_ROBOTS_CRAWL_DELAY_MAX_SECONDS", float, 0),
        )


def _delay_jitter(settings: BaseSettings) -> float:
    """Scrapy's delay jitter: DOWNLOAD_DELAY_JITTER (2.19), or RANDOMIZE_DOWNLOAD_DELAY."""
    try:
        from scrapy.core.downloader import _default_jitter  # Scrapy >= 2.19
    except ImportError:
        return 0.5 if settings.getbool("RANDOMIZE_DOWNLOAD_DELAY", True) else 0.0
    return float(_default_jitter(settings))


def politeness(settings: BaseSettings) -> Politeness:
    """The fleet-wide per-host limits from Scrapy's own settings and Hermit's backoff ones."""
    delay = _scrapy_number(settings, "DOWNLOAD_DELAY", float, 0, 0)
    concurrency = _scrapy_number(settings, "CONCURRENT_REQUESTS_PER_DOMAIN", int, 8, 0) or 8
    base = _number(settings, "HERMIT_HOST_BACKOFF_BASE_SECONDS", float, 0.001)
    longest = _number(settings, "HERMIT_HOST_BACKOFF_MAX_SECONDS", float, 0.001)
    if longest < base:
        raise NotConfigured(
            f"HERMIT_HOST_BACKOFF_MAX_SECONDS ({longest}) must be at least HERMIT_HOST_BACKOFF_BASE_SECONDS ({base})"
        )
    jitter = min(1.0, max(0.0, _delay_jitter(settings)))
    return Politeness(
        delay_seconds=delay, jitter=jitter, concurrency=max(1, concurrency),
        backoff_base_seconds=base, backoff_max_seconds=longest,
    )
