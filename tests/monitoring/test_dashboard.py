"""The Grafana dashboards' sources: importable anywhere, units everywhere, the panels the crawl and the operator need."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def data_panels(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def test_every_dashboard_is_tested_here(dashboards):
    """A dashboard added to monitoring/ can't ship without these checks."""
    assert set(ROOT.joinpath("monitoring").rglob("*.json")) == {board.path for board in dashboards.values()}


def test_a_clean_importable_dashboard(each_dashboard):
    dashboard = each_dashboard.model
    assert dashboard["uid"] == each_dashboard.path.stem and dashboard["title"]
    for leftover in ("id", "version", "iteration", "__inputs", "__requires"):
        assert leftover not in dashboard, f"export leftover {leftover!r}"
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    assert [name for name in variables if name != "datasource"] == [name for name, _ in each_dashboard.variables]
    for name, query in each_dashboard.variables:
        variable = variables[name]
        assert variable["definition"] == variable["query"]["query"] == query, name
        # All is ".*": it also matches series without the label (a scrape configuration
        # that sets no namespace).
        assert variable["includeAll"] and variable["allValue"] == ".*", name
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_every_panel_has_a_unit_the_datasource_variable_and_queries(each_dashboard):
    for panel in data_panels(each_dashboard.model):
        title = panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
        assert panel.get("description"), f"{title}: no description"
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", title
            for name, _ in each_dashboard.variables:
                assert f'{name}=~"${name}"' in target["expr"], f"{title}: not filtered by the {name} variable"
        assert 0 <= panel["gridPos"]["x"] and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, title


def test_rates_use_the_rate_interval(each_dashboard):
    for title, expr in each_dashboard.queries:
        for window in re.findall(r"\[([^\]]+)\]", expr):
            assert window == "$__rate_interval", f"{title}: fixed range [{window}] in {expr}"


def test_crawl_wide_series_are_told_apart_by_namespace(each_dashboard):
    """Two releases in two namespaces that run the same crawl name (or scrape job name)
    stay two series. (An instance, a pod's address, is one pod whatever its namespace.)"""
    for title, expr in each_dashboard.queries:
        for labels in re.findall(r"\b(?:by|on) \(([^)]*)\)", expr):
            names = [label.strip() for label in labels.split(",")]
            if {"crawl", "job"} & set(names):
                assert "namespace" in names, f"{title}: groups or joins by ({labels}) without namespace: {expr}"


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


def test_the_operator_panels(dashboards):
    queried = " ".join(expr for _, expr in dashboards["operator"].queries)
    for metric in (
        "hermit_operator_leader", "hermit_operator_pods_seen", "hermit_operator_pods_over_budget",
        "hermit_operator_pods_draining", "hermit_operator_pods_without_memory", "hermit_operator_recycles_total",
        "hermit_operator_evictions_total", "hermit_operator_api_errors_total", "hermit_operator_reconciles_total",
        "hermit_operator_reconcile_duration_seconds_bucket", "hermit_operator_last_reconcile_timestamp_seconds",
        "hermit_operator_memory_source_fallback",
    ):
        assert metric in queried, f"no panel shows {metric}"
