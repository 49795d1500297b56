"""A worker's own metrics from its Scrapy stats."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from hermit.observability.stats_metrics import MAX_EXCEPTION_TYPES, ScrapyStatsCollector

STATS = {
    "downloader/request_count": 12,
    "downloader/response_count": 11,
    "downloader/response_status_count/200": 8,
    "downloader/response_status_count/204": 1,
    "downloader/response_status_count/301": 1,
    "downloader/response_status_count/404": 1,
    "downloader/response_bytes": 123_456,
    "downloader/exception_count": 3,
    "downloader/exception_type_count/twisted.internet.error.TimeoutError": 2,
    "downloader/exception_type_count/twisted.internet.error.DNSLookupError": 1,
    "item_scraped_count": 9,
    "item_dropped_count": 2,
    "retry/count": 2,
    "spider_exceptions/count": 4,
    "spider_exceptions/ValueError": 4,
    "log_count/INFO": 10,
    "log_count/ERROR": 5,
    "scheduler/enqueued/redis": 20,
    "dupefilter/filtered": 70,
    "scheduler/dequeued/redis": 12,
    "hermit/leases/acked": 11,
    "hermit/leases/returned": 1,
    "hermit/redis/errors": 6,
    "hermit/requests/unserializable": 7,
    "hermit/dead_letters": 2,
    "hermit/memory/soft_budget_bytes": 500 * 2**20,
    "hermit/memory/hard_limit_bytes": 700 * 2**20,
    "hermit/recycles/memory_budget": 1,
    "start_time": "not a number",
}


def registry_for(stats: dict, closing: bool | None = None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ScrapyStatsCollector(lambda: stats, "c1", None if closing is None else (lambda: closing)))
    return registry


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, {"crawl": "c1", **labels})


def test_counts_from_stats():
    r = registry_for(STATS, closing=False)
    assert value(r, "hermit_download_requests_total") == 12
    assert [value(r, "hermit_responses_total", status_class=c) for c in ("1xx", "2xx", "3xx", "4xx", "5xx")] == [
        0, 9, 1, 1, 0]
    assert value(r, "hermit_response_bytes_total") == 123_456
    assert value(r, "hermit_items_scraped_total") == 9
    assert value(r, "hermit_items_dropped_total") == 2
    assert value(r, "hermit_retries_total") == 2
    assert {kind: value(r, "hermit_errors_total", kind=kind)
            for kind in ("download", "spider", "redis", "unserializable_request")} == {
        "download": 3, "spider": 4, "redis": 6, "unserializable_request": 7}
    assert value(r, "hermit_download_exceptions_total", type="TimeoutError") == 2
    assert value(r, "hermit_download_exceptions_total", type="DNSLookupError") == 1
    assert value(r, "hermit_log_messages_total", level="error") == 5
    assert value(r, "hermit_log_messages_total", level="warning") == 0
    assert value(r, "hermit_dedup_checks_total", result="new") == 20
    assert value(r, "hermit_dedup_checks_total", result="duplicate") == 70
    assert value(r, "hermit_requests_leased_total") == 12
    assert value(r, "hermit_leases_released_total", result="acked") == 11
    assert value(r, "hermit_leases_released_total", result="returned") == 1
    assert value(r, "hermit_leases_released_total", result="stale_returned") == 0
    assert value(r, "hermit_dead_letters_total") == 2
    assert value(r, "hermit_memory_soft_budget_bytes") == 500 * 2**20
    assert value(r, "hermit_memory_hard_limit_bytes") == 700 * 2**20
    assert value(r, "hermit_recycles_total", reason="memory_budget") == 1
    assert value(r, "hermit_recycles_total", reason="hard_limit") == 0
    assert value(r, "hermit_spider_closing") == 0


def test_series_exist_at_zero_before_the_first_event():
    r = registry_for({}, closing=True)
    for name, labels in [
        ("hermit_items_scraped_total", {}), ("hermit_responses_total", {"status_class": "5xx"}),
        ("hermit_errors_total", {"kind": "spider"}), ("hermit_dedup_checks_total", {"result": "duplicate"}),
        ("hermit_recycles_total", {"reason": "hard_limit"}), ("hermit_log_messages_total", {"level": "critical"}),
    ]:
        assert value(r, name, **labels) == 0, name
    # No budget configured: no budget series (a 0 budget would make every ratio infinite).
    assert value(r, "hermit_memory_soft_budget_bytes") is None
    assert value(r, "hermit_spider_closing") == 1


def test_spider_errors_are_summed_on_scrapy_without_a_total():
    r = registry_for({"spider_exceptions/ValueError": 2, "spider_exceptions/KeyError": 3})
    assert value(r, "hermit_errors_total", kind="spider") == 5


def test_labels_stay_bounded():
    stats = {f"downloader/exception_type_count/mod.Error{i}": 1 for i in range(MAX_EXCEPTION_TYPES + 15)}
    stats["downloader/response_status_count/999"] = 2
    stats["downloader/response_status_count/abc"] = 1
    stats["hermit/recycles/bad reason!"] = 1
    stats["log_count/TRACE"] = 4
    r = registry_for(stats)
    samples = [s for family in r.collect() for s in family.samples]
    types = {s.labels["type"] for s in samples if s.name == "hermit_download_exceptions_total"}
    assert len(types) == MAX_EXCEPTION_TYPES + 1 and "other" in types
    assert value(r, "hermit_download_exceptions_total", type="other") == 15
    assert value(r, "hermit_responses_total", status_class="other") == 3
    assert {s.labels["reason"] for s in samples if s.name == "hermit_recycles_total"} == {"memory_budget", "hard_limit"}
    assert value(r, "hermit_log_messages_total", level="other") == 4
