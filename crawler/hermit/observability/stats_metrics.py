"""One worker's own counts, read from its Scrapy stats at scrape time.

Every metric here counts what *this* worker did, so ``sum by (crawl)`` over workers
is the crawl's total. Crawl-wide values read from Redis are in
:mod:`hermit.observability.crawl_metrics` under ``hermit_crawl_*`` instead.

Labels are fixed sets (status classes, error kinds, log levels) or bounded by code
(exception class names, capped); never a URL or a domain. The series that are
always meaningful exist from the first scrape, at 0.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
#: Always exported, even before the first occurrence.
ERROR_KINDS = ("download", "spider", "redis", "unserializable_request")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
#: Reasons of the memory-budget extension (``hermit/recycles/<reason>``), exported from the start.
RECYCLE_REASONS = ("memory_budget", "hard_limit")
#: At most this many exception types get their own series; the rest count as "other".
MAX_EXCEPTION_TYPES = 20

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_STATUS_PREFIX = "downloader/response_status_count/"
_EXCEPTION_PREFIX = "downloader/exception_type_count/"
_RECYCLE_PREFIX = "hermit/recycles/"


def _int(stats: Mapping[str, Any], key: str) -> int:
    value = stats.get(key, 0)
    return value if isinstance(value, (int, float)) else 0


def _status_class(code: str) -> str:
    return f"{code[0]}xx" if len(code) == 3 and code.isdigit() and "1" <= code[0] <= "5" else "other"


def _spider_errors(stats: Mapping[str, Any]) -> int:
    if "spider_exceptions/count" in stats:
        return _int(stats, "spider_exceptions/count")
    return sum(_int(stats, key) for key in stats if key.startswith("spider_exceptions/"))


def stats_families(stats: Mapping[str, Any], crawl: str) -> Iterator[Metric]:
    """The metric families of one stats snapshot."""

    def counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
        family = CounterMetricFamily(name, documentation, labels=["crawl"])
        family.add_metric([crawl], value)
        return family

    def labelled(name: str, documentation: str, label: str, values: Mapping[str, float]) -> CounterMetricFamily:
        family = CounterMetricFamily(name, documentation, labels=["crawl", label])
        for value_name in sorted(values):
            family.add_metric([crawl, value_name], values[value_name])
        return family

    yield counter("hermit_download_requests", "Requests this worker sent to the downloader.",
                  _int(stats, "downloader/request_count"))
    statuses = dict.fromkeys(STATUS_CLASSES, 0)
    exceptions: dict[str, int] = {}
    recycles = dict.fromkeys(RECYCLE_REASONS, 0)
    logs = dict.fromkeys(LOG_LEVELS, 0)
    for key, value in stats.items():
        if not isinstance(value, (int, float)):
            continue
        if key.startswith(_STATUS_PREFIX):
            status = _status_class(key[len(_STATUS_PREFIX):])
            statuses[status] = statuses.get(status, 0) + value
        elif key.startswith(_EXCEPTION_PREFIX):
            name = key.rsplit(".", 1)[-1]
            if not _LABEL_VALUE.match(name) or (name not in exceptions and len(exceptions) >= MAX_EXCEPTION_TYPES):
                name = "other"
            exceptions[name] = exceptions.get(name, 0) + value
        elif key.startswith(_RECYCLE_PREFIX):
            reason = key[len(_RECYCLE_PREFIX):]
            if _LABEL_VALUE.match(reason):
                recycles[reason] = recycles.get(reason, 0) + value
        elif key.startswith("log_count/"):
            level = key[len("log_count/"):].lower()
            level = level if level in LOG_LEVELS else "other"
            logs[level] = logs.get(level, 0) + value
    yield labelled("hermit_responses", "Responses this worker received, by HTTP status class.",
                   "status_class", statuses)
    yield counter("hermit_response_bytes", "Bytes of responses this worker downloaded (after decompression).",
                  _int(stats, "downloader/response_bytes"))
    yield counter("hermit_items_scraped", "Items this worker scraped.", _int(stats, "item_scraped_count"))
    yield counter("hermit_items_dropped", "Items the item pipelines of this worker dropped.",
                  _int(stats, "item_dropped_count"))
    yield counter("hermit_retries", "Requests this worker retried.", _int(stats, "retry/count"))
    yield labelled(
        "hermit_errors",
        "Errors in this worker, by kind: download (exception while downloading), spider (exception "
        "in a callback), redis (failed Redis operation), unserializable_request (request not queued).",
        "kind",
        {
            "download": _int(stats, "downloader/exception_count"),
            "spider": _spider_errors(stats),
            "redis": _int(stats, "hermit/redis/errors"),
            "unserializable_request": _int(stats, "hermit/requests/unserializable"),
        },
    )
    yield labelled("hermit_download_exceptions", "Download exceptions in this worker, by exception class.",
                   "type", exceptions)
    yield labelled("hermit_log_messages", "Log messages of this worker, by level.", "level", logs)
    yield labelled(
        "hermit_dedup_checks",
        "Requests this worker pushed through the crawl's dedup, by result: new (queued; dont_filter "
        "requests, which skip the filter, count here too), duplicate (dropped) or blocked (its host is "
        "blocked by `hermit hosts block`: neither queued nor marked as seen).",
        "result",
        {"new": _int(stats, "scheduler/enqueued/redis"), "duplicate": _int(stats, "dupefilter/filtered"),
         "blocked": _int(stats, "hermit/requests/blocked")},
    )
    yield counter("hermit_lease_waits", "Leases of this worker that found requests queued but no host that may "
                  "be fetched now (delays, backoffs, busy hosts): it waited for the next one.",
                  _int(stats, "hermit/leases/empty"))
    yield counter("hermit_lease_wait_seconds", "Seconds this worker waited for a host to become ready while it "
                  "could have fetched more (politeness, not lack of work).",
                  stats.get("hermit/leases/wait_seconds", 0.0) or 0.0)
    yield counter("hermit_dedup_known_locally",
                  "Duplicates this worker dropped itself, their fingerprints already confirmed in the crawl's "
                  "filter (HERMIT_DEDUP_KNOWN_FINGERPRINTS), without asking Redis; part of "
                  "hermit_dedup_checks_total{result=\"duplicate\"}.",
                  _int(stats, "hermit/dedup/known_locally"))
    yield counter("hermit_requests_leased", "Requests this worker leased from the crawl's queue and started.",
                  _int(stats, "scheduler/dequeued/redis"))
    yield labelled(
        "hermit_leases_released",
        "Leases this worker gave up, by result: acked (processed), returned (given back unprocessed), "
        "stale_returned (leases Redis kept for it after losing writes).",
        "result",
        {
            "acked": _int(stats, "hermit/leases/acked"),
            "returned": _int(stats, "hermit/leases/returned"),
            "stale_returned": _int(stats, "hermit/leases/stale_returned"),
        },
    )
    yield counter("hermit_dead_letters", "Undecodable queue entries this worker moved to the dead-letter list.",
                  _int(stats, "hermit/dead_letters"))
    yield labelled("hermit_recycles", "Times this worker was recycled, by reason (0 or 1 in one process's life).",
                   "reason", recycles)
    for key, name, documentation in (
        ("hermit/memory/soft_budget_bytes", "hermit_memory_soft_budget_bytes",
         "Resident memory over which this worker drains and is replaced."),
        ("hermit/memory/hard_limit_bytes", "hermit_memory_hard_limit_bytes",
         "Resident memory over which this worker stops at once."),
    ):
        if stats.get(key):
            family = GaugeMetricFamily(name, documentation, labels=["crawl"])
            family.add_metric([crawl], _int(stats, key))
            yield family


class ScrapyStatsCollector(Collector):
    """Worker metrics from ``get_stats()`` (a snapshot of the crawler's stats) at each scrape.

    ``closing()`` tells whether the spider is closing (draining): ``hermit_spider_closing``.
    """

    def __init__(self, get_stats: Callable[[], Mapping[str, Any]], crawl: str,
                 closing: Callable[[], bool] | None = None) -> None:
        self.get_stats = get_stats
        self.crawl = crawl
        self.closing = closing

    def collect(self) -> Iterator[Metric]:
        yield from stats_families(self.get_stats(), self.crawl)
        if self.closing is not None:
            family = GaugeMetricFamily(
                "hermit_spider_closing", "1 while this worker's spider is closing (draining), else 0.",
                labels=["crawl"],
            )
            family.add_metric([self.crawl], 1 if self.closing() else 0)
            yield family
