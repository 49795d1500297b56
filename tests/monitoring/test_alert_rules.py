"""The alert rules: valid, unit-tested by promtool, documented, and free of double counting."""

from __future__ import annotations

import re
import subprocess

import yaml

#: An aggregation operator, then the series it applies to.
_AGGREGATION = re.compile(r"\b(sum|max|min|avg|count)\b\s*(?:by|without)?\s*(?:\([^()]*\))?\s*\(")


def test_promtool_accepts_the_rules(promtool, sources):
    check = subprocess.run([promtool, "check", "rules", str(sources["alerts"])],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout


def test_promtool_unit_tests_pass(promtool, sources):
    test = subprocess.run([promtool, "test", "rules", str(sources["alerts_test"])],
                          capture_output=True, text=True, timeout=120, cwd=sources["alerts_test"].parent)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout


def test_every_alert_is_tested_firing_and_quiet(alert_rules, sources):
    cases = [case for test in yaml.safe_load(sources["alerts_test"].read_text())["tests"]
             for case in test["alert_rule_test"]]
    for rule in alert_rules:
        name = rule["alert"]
        own = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in own), f"{name}: no test where it fires"
        assert any(not case.get("exp_alerts") for case in own), f"{name}: no test where it stays quiet"
    assert {case["alertname"] for case in cases} <= {rule["alert"] for rule in alert_rules}


def test_every_alert_has_a_summary_a_description_and_a_runbook(alert_rules, sources):
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", sources["runbooks"].read_text(), flags=re.MULTILINE)
    }
    for rule in alert_rules:
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), rule["alert"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == "docs/observability.md", rule["alert"]
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/observability.md"
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_crawl_wide_series_are_never_summed_over_workers(alert_rules, dashboard_queries):
    # hermit_crawl_* series are the same on every worker: the aggregation nearest to
    # them must be max (a sum over reasons or crawls of that max is fine).
    expressions = [(rule["alert"], rule["expr"]) for rule in alert_rules] + dashboard_queries
    checked = 0
    for name, expr in expressions:
        for match in re.finditer(r"hermit_crawl_\w+", expr):
            before = [m.group(1) for m in _AGGREGATION.finditer(expr[: match.start()])]
            assert before and before[-1] == "max", f"{name}: {match.group()} is not aggregated with max: {expr}"
            checked += 1
    assert checked >= 10
