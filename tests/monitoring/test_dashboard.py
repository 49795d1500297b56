"""The Grafana dashboard's source: importable anywhere, units everywhere, the panels the crawl needs."""

from __future__ import annotations

import re


def data_panels(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_a_clean_importable_dashboard(dashboard):
    assert dashboard["uid"] == "hermit-crawl" and dashboard["title"]
    for leftover in ("id", "version", "iteration", "__inputs", "__requires"):
        assert leftover not in dashboard, f"export leftover {leftover!r}"
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert variables["crawl"]["definition"] == "label_values(hermit_build_info, crawl)"
    assert variables["crawl"]["includeAll"] and variables["crawl"]["allValue"] == ".*"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_has_a_unit_the_datasource_variable_and_queries(dashboard):
    for panel in data_panels(dashboard):
        title = panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel.get("description"), f"{title}: no description"
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", title
            assert 'crawl=~"$crawl"' in target["expr"], f"{title}: not filtered by the crawl variable"
        assert 0 <= panel["gridPos"]["x"] and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, title


def test_rates_use_the_rate_interval(dashboard_queries):
    for title, expr in dashboard_queries:
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", f"{title}: fixed range [{window}] in {expr}"


def test_the_panels_the_issue_asks_for(dashboard_queries):
    queried = " ".join(expr for _, expr in dashboard_queries)
    for metric in (
        "hermit_responses_total", "hermit_items_scraped_total", "hermit_errors_total",
        "hermit_download_latency_seconds_bucket", "hermit_response_bytes_total",
        "hermit_crawl_queued_requests", "hermit_crawl_leased_requests", "hermit_leased_requests",
        "hermit_dedup_checks_total", "hermit_crawl_bloom_fill_ratio", "hermit_crawl_bloom_false_positive_ratio",
        "process_resident_memory_bytes", "hermit_memory_soft_budget_bytes", "hermit_live_objects",
        "hermit_live_objects_oldest_age_seconds", "hermit_crawl_recycles_total", "hermit_crawl_dead_letter_entries",
    ):
        assert metric in queried, f"no panel shows {metric}"
