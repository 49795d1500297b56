"""Hermit's settings: the table that declares each one once, and their validation.

:data:`SETTINGS` holds every worker setting's name, default, meaning and parser with
its bounds (:mod:`hermit.setting_spec`); everything else is derived from it: the
defaults the add-on sets (:data:`DEFAULT_SETTINGS`), the checks of
:meth:`WorkerConfig.from_settings`, :func:`memory_limits` and :func:`crawl_limits`,
what the metrics and diagnostics endpoints read (:func:`read`), and the table of
docs/settings.md. The Bloom filter's sizing settings are declared beside the filter
(:mod:`hermit.dedup.sizing`) and listed here.

Names carry their unit (``_SECONDS``, ``_RATIO``, ``_BITS``). scrapy-redis users'
``REDIS_URL`` is honoured when ``HERMIT_REDIS_URL`` is not set.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured

from hermit.dedup import sizing
from hermit.keys import validate_crawl_name
from hermit.queue.codec import CODECS
from hermit.queue.redis_queue import QUEUE_ORDERS, BloomSettings, Politeness
from hermit.queue.shards import CLUSTER_DEFAULT_SHARDS, MAX_SHARDS
from hermit.setting_spec import Boolean, Checked, Choice, InvalidValue, Number, Setting, SettingSource, Text

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_COUNT = Number(int, minimum=0)  # 0 = none / off
_PORT = Number(int, minimum=0, maximum=65535, what="a port number (0 = any free port)", note="0 = any free port")
_HOST = Text(what="a host name or address")

#: Every setting of a worker, in the order docs/settings.md lists them.
SETTINGS: tuple[Setting, ...] = (
    # Where the shared queue lives; falls back to REDIS_URL, then DEFAULT_REDIS_URL.
    Setting("HERMIT_REDIS_URL", None, "the crawl's Redis, where the shared queue lives",
            "`REDIS_URL`, else `redis://127.0.0.1:6379/0`", Text(what="a Redis URL", optional=True)),
    Setting("HERMIT_CRAWL", None, "crawl name; every key is `hermit:{CRAWL}:…`", "the spider's name",
            Checked(validate_crawl_name, "1-100 letters, digits, `_`, `.`, `-`", optional=True)),
    Setting("HERMIT_KEY_PREFIX", "hermit", "key prefix", parser=Text()),
    Setting("HERMIT_WORKER_ID", None, "unique id of a live worker",
            "`host-pid-random` (on Kubernetes the host is the pod's name)", Text(optional=True)),
    Setting("HERMIT_PREFETCH_REQUESTS", 0, "requests leased per round trip and held before they start",
            "0 = `CONCURRENT_REQUESTS`", _COUNT),
    Setting("HERMIT_LEASE_TIMEOUT_SECONDS", 30.0, "a worker silent this long is dead; its leases return to the queue",
            parser=Number(float, minimum=0.1)),
    Setting("HERMIT_IDLE_POLL_SECONDS", 0.2, "how often an idle worker looks for work",
            parser=Number(float, minimum=0.01)),
    Setting("HERMIT_IDLE_CLOSE_SECONDS", 0.0,
            "close once nothing is queued or leased crawl-wide for this long; 0 = wait for new seeds forever",
            parser=Number(float, minimum=0)),
    Setting("HERMIT_QUEUE_ORDER", "fifo", "order within one priority", parser=Choice(QUEUE_ORDERS)),
    Setting("HERMIT_QUEUE_CODEC", CODECS[0],
            "encoding of queued requests: `json` carries items, datetimes, decimals and more, and never runs code "
            "from Redis; `pickle` carries whatever pickle can, but anyone who can write to the Redis can then run "
            "code in every worker: only for a Redis no one untrusted can reach ([scrapy-compatibility]"
            "(scrapy-compatibility.md#queued-requests))", parser=Choice(CODECS)),
    Setting("HERMIT_QUEUE_SHARDS", 0,
            "shards a new crawl's frontier and Bloom filter are split over, each on its own Redis Cluster slot "
            "(read when the crawl is created; [redis-cluster](redis-cluster.md))",
            f"0 = 1 on a single Redis, {CLUSTER_DEFAULT_SHARDS} on a Redis Cluster",
            Number(int, minimum=0, maximum=MAX_SHARDS)),
    Setting("HERMIT_FLUSH_MAX_OPERATIONS", 500, "write pushes/items/acks at once when this many wait",
            parser=Number(int, minimum=1)),
    Setting("HERMIT_REDIS_RETRY_MAX_SECONDS", 10.0, "longest backoff between retries while Redis is unreachable",
            parser=Number(float, minimum=0.1)),
    Setting("HERMIT_REDIS_SOCKET_TIMEOUT_SECONDS", 5.0, "Redis socket timeout", parser=Number(float, minimum=0.1)),
    *sizing.SIZING_SETTINGS,
    # Fleet-wide politeness: DOWNLOAD_DELAY and CONCURRENT_REQUESTS_PER_DOMAIN hold per
    # host across all workers (read in politeness()).
    Setting("HERMIT_HOST_BACKOFF_BASE_SECONDS", 1.0,
            "first backoff of a host after a 429, 503, timeout or connection error, for every worker; it doubles "
            "with each further one and ends at the host's next good answer", parser=Number(float, minimum=0.001)),
    Setting("HERMIT_HOST_BACKOFF_MAX_SECONDS", 300.0, "longest backoff of a host; also caps a `Retry-After`",
            parser=Number(float, minimum=0.001)),
    Setting("HERMIT_ROBOTS_CRAWL_DELAY_MAX_SECONDS", 60.0,
            "with `ROBOTSTXT_OBEY`, a host's robots.txt `Crawl-delay` becomes its fleet-wide delay, up to this",
            parser=Number(float, minimum=0)),
    Setting("HERMIT_DEDUP_KNOWN_FINGERPRINTS", 100_000,
            "fingerprints each worker remembers as already in the crawl's filter, so it drops repeated links "
            "without encoding them or asking Redis (~100 bytes each; 0 turns it off)", parser=_COUNT),
    Setting("HERMIT_ITEMS_ENABLED", True, "write items to the crawl's Redis stream", parser=Boolean()),
    Setting("HERMIT_METRICS_ENABLED", True,
            "serve Prometheus metrics at `http://HOST:PORT/metrics` ([observability](observability.md), "
            "[every metric](metrics.md))", parser=Boolean()),
    Setting("HERMIT_METRICS_HOST", "0.0.0.0",
            "address the metrics server binds (Prometheus scrapes pods; metrics hold no secrets)", parser=_HOST),
    Setting("HERMIT_METRICS_PORT", 9410,
            "metrics port; 0 = any free port, logged as `Metrics at http://…/metrics` (`hermit crawl` does this "
            "for its workers)", parser=_PORT),
    Setting("HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS", 0.0,
            "when the spider closes, wait up to this long for one more scrape, so the last counts (a recycle among "
            "them) reach Prometheus; about the scrape interval in a cluster; 0 = don't wait",
            parser=Number(float, minimum=0)),
    # Leak diagnostics over HTTP; a host that is not loopback needs a token.
    Setting("HERMIT_DIAGNOSTICS_ENABLED", True, "serve the leak-diagnostics endpoint (live objects, tracemalloc)",
            parser=Boolean()),
    Setting("HERMIT_DIAGNOSTICS_HOST", "127.0.0.1",
            "address it binds; one that is not loopback needs a token, else the endpoint is not started",
            parser=_HOST),
    Setting("HERMIT_DIAGNOSTICS_PORT", 9411, "its port; 0 = any free port, logged as `Diagnostics at http://…/`",
            parser=_PORT),
    Setting("HERMIT_DIAGNOSTICS_TOKEN", None, "when set, every request needs `Authorization: Bearer <token>`",
            "None (else the `HERMIT_DIAGNOSTICS_TOKEN` environment variable)",
            Text(optional=True, secret=True)),
    # Memory budget (resident set size; 0 = off) and the drain it starts.
    Setting("HERMIT_MEMORY_BUDGET_BYTES", 0,
            "soft budget (RSS): over it the worker drains and exits with status 6 to be replaced", "0 (off)", _COUNT),
    Setting("HERMIT_MEMORY_HARD_LIMIT_BYTES", 0,
            "over it the worker writes what is pending, returns its leases and exits at once (7); must be above "
            "the soft budget", "0 (off)", _COUNT),
    Setting("HERMIT_MEMORY_CHECK_SECONDS", 1.0, "how often RSS is read", parser=Number(float, minimum=0.01)),
    Setting("HERMIT_DRAIN_TIMEOUT_SECONDS", 60.0,
            "a drain (budget, SIGTERM) still running after this ends at once, leases returned (8)",
            parser=Number(float, minimum=0.1)),
    # Crawl-wide limits (0 = none), over every worker and run.
    Setting("HERMIT_CRAWL_PAGECOUNT", 0,
            "once the whole crawl (every worker, every run) has fetched this many pages, every worker stops "
            "(finish reason `crawl_pagecount`) and what is queued stays queued; `CLOSESPIDER_PAGECOUNT` counts "
            "per worker ([scrapy-compatibility](scrapy-compatibility.md#crawl-wide-limits))", "0 (none)", _COUNT),
    Setting("HERMIT_CRAWL_ITEMCOUNT", 0, "the same for items scraped (finish reason `crawl_itemcount`)",
            "0 (none)", _COUNT),
)

_BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
if len(_BY_NAME) != len(SETTINGS):
    raise RuntimeError("a setting is declared twice in hermit.settings.SETTINGS")

#: Each setting's default; the add-on sets them at "default" priority.
DEFAULT_SETTINGS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}


def setting(name: str) -> Setting:
    """The declaration of the worker setting *name*."""
    return _BY_NAME[name]


def read(settings: SettingSource, name: str) -> Any:
    """Setting *name* from *settings* (its default when unset), checked.

    Raise :class:`~hermit.setting_spec.InvalidValue` naming the setting.
    """
    return _BY_NAME[name].read(settings)


def redis_url(settings: SettingSource) -> str:
    """Where the crawl's Redis is: HERMIT_REDIS_URL, else scrapy-redis' REDIS_URL, else
    :data:`DEFAULT_REDIS_URL`."""
    return read(settings, "HERMIT_REDIS_URL") or settings.get("REDIS_URL") or DEFAULT_REDIS_URL


def queue_shards(settings: BaseSettings) -> int:
    """HERMIT_QUEUE_SHARDS, checked (0: chosen by the kind of Redis); NotConfigured if invalid."""
    try:
        return read(settings, "HERMIT_QUEUE_SHARDS")
    except InvalidValue as exc:
        raise NotConfigured(str(exc)) from None


#: Scrapy's own settings that Hermit reads too, checked as Hermit's are.
_CONCURRENT_REQUESTS = Number(int, minimum=1)
_PER_DOMAIN = Number(int, minimum=0)
_DOWNLOAD_DELAY = Number(float, minimum=0)


def _scrapy_number(settings: BaseSettings, name: str, parser: Number, default: float) -> Any:
    """One of Scrapy's own settings (its default when unset or empty)."""
    raw = settings.get(name)
    if raw is None or raw == "":
        return parser.kind(default)
    return parser(name, raw)


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
            budget_bytes=read(settings, "HERMIT_MEMORY_BUDGET_BYTES"),
            hard_limit_bytes=read(settings, "HERMIT_MEMORY_HARD_LIMIT_BYTES"),
            check_seconds=read(settings, "HERMIT_MEMORY_CHECK_SECONDS"),
            drain_timeout_seconds=read(settings, "HERMIT_DRAIN_TIMEOUT_SECONDS"),
        )
    except InvalidValue as exc:
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
            pagecount=read(settings, "HERMIT_CRAWL_PAGECOUNT"),
            itemcount=read(settings, "HERMIT_CRAWL_ITEMCOUNT"),
        )
    except InvalidValue as exc:
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
    queue_codec: str = DEFAULT_SETTINGS["HERMIT_QUEUE_CODEC"]
    #: Shards for a new crawl (0: chosen by the kind of Redis).
    queue_shards: int = DEFAULT_SETTINGS["HERMIT_QUEUE_SHARDS"]
    politeness: Politeness = Politeness()
    robots_crawl_delay_max_seconds: float = DEFAULT_SETTINGS["HERMIT_ROBOTS_CRAWL_DELAY_MAX_SECONDS"]

    @classmethod
    def from_settings(cls, settings: BaseSettings, spider_name: str) -> WorkerConfig:
        """Read and check the settings; raise ``NotConfigured`` with a clear message."""
        try:
            crawl = read(settings, "HERMIT_CRAWL") or setting("HERMIT_CRAWL").parse(spider_name)
            concurrent_requests = _scrapy_number(settings, "CONCURRENT_REQUESTS", _CONCURRENT_REQUESTS, 16)
            return cls(
                redis_url=redis_url(settings),
                crawl=crawl,
                key_prefix=read(settings, "HERMIT_KEY_PREFIX"),
                worker_id=read(settings, "HERMIT_WORKER_ID") or default_worker_id(),
                prefetch_requests=read(settings, "HERMIT_PREFETCH_REQUESTS") or concurrent_requests,
                lease_timeout_seconds=read(settings, "HERMIT_LEASE_TIMEOUT_SECONDS"),
                idle_poll_seconds=read(settings, "HERMIT_IDLE_POLL_SECONDS"),
                idle_close_seconds=read(settings, "HERMIT_IDLE_CLOSE_SECONDS"),
                queue_order=read(settings, "HERMIT_QUEUE_ORDER"),
                flush_max_operations=read(settings, "HERMIT_FLUSH_MAX_OPERATIONS"),
                redis_retry_max_seconds=read(settings, "HERMIT_REDIS_RETRY_MAX_SECONDS"),
                redis_socket_timeout_seconds=read(settings, "HERMIT_REDIS_SOCKET_TIMEOUT_SECONDS"),
                bloom=BloomSettings(
                    capacity=read(settings, "HERMIT_DEDUP_CAPACITY"),
                    error_ratio=read(settings, "HERMIT_DEDUP_ERROR_RATIO"),
                    growth=read(settings, "HERMIT_DEDUP_GROWTH"),
                    max_chunk_bits=read(settings, "HERMIT_DEDUP_MAX_CHUNK_BITS"),
                ),
                known_fingerprints=read(settings, "HERMIT_DEDUP_KNOWN_FINGERPRINTS"),
                queue_codec=read(settings, "HERMIT_QUEUE_CODEC"),
                queue_shards=read(settings, "HERMIT_QUEUE_SHARDS"),
                politeness=politeness(settings),
                robots_crawl_delay_max_seconds=read(settings, "HERMIT_ROBOTS_CRAWL_DELAY_MAX_SECONDS"),
            )
        except InvalidValue as exc:
            raise NotConfigured(str(exc)) from None


def _delay_jitter(settings: BaseSettings) -> float:
    """Scrapy's delay jitter: DOWNLOAD_DELAY_JITTER (2.19), or RANDOMIZE_DOWNLOAD_DELAY."""
    try:
        from scrapy.core.downloader import _default_jitter  # Scrapy >= 2.19
    except ImportError:
        return 0.5 if settings.getbool("RANDOMIZE_DOWNLOAD_DELAY", True) else 0.0
    return float(_default_jitter(settings))


def politeness(settings: BaseSettings) -> Politeness:
    """The fleet-wide per-host limits from Scrapy's own settings and Hermit's backoff ones.

    Raise ``NotConfigured`` naming a setting whose value can't be used.
    """
    try:
        delay = _scrapy_number(settings, "DOWNLOAD_DELAY", _DOWNLOAD_DELAY, 0)
        concurrency = _scrapy_number(settings, "CONCURRENT_REQUESTS_PER_DOMAIN", _PER_DOMAIN, 8) or 8
        base = read(settings, "HERMIT_HOST_BACKOFF_BASE_SECONDS")
        longest = read(settings, "HERMIT_HOST_BACKOFF_MAX_SECONDS")
    except InvalidValue as exc:
        raise NotConfigured(str(exc)) from None
    if longest < base:
        raise NotConfigured(
            f"HERMIT_HOST_BACKOFF_MAX_SECONDS ({longest}) must be at least HERMIT_HOST_BACKOFF_BASE_SECONDS ({base})"
        )
    jitter = min(1.0, max(0.0, _delay_jitter(settings)))
    return Politeness(
        delay_seconds=delay, jitter=jitter, concurrency=max(1, concurrency),
        backoff_base_seconds=base, backoff_max_seconds=longest,
    )
