"""The alert rules: valid, unit-tested by promtool, documented, and free of double counting."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]

#: An aggregation operator, then the series it applies to.
_AGGREGATION = re.compile(r"\b(sum|max|min|avg|count)\b\s*(?:by|without)?\s*(?:\([^()]*\))?\s*\(")


def test_every_rules_file_is_tested_here(rule_files):
    """A rules file added to monitoring/ can't ship without its promtool tests and runbooks."""
    rules = {path for path in (ROOT / "monitoring").rglob("*.y*ml") if "groups" in (yaml.safe_load(path.read_text()) or {})
             and "rule_files" not in yaml.safe_load(path.read_text())}
    assert rules == {rule_file.path for rule_file in rule_files.values()}


def test_promtool_accepts_the_rules(promtool, rule_file):
    check = subprocess.run([promtool, "check", "rules", str(rule_file.path)],
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS" in check.stdout


def test_promtool_unit_tests_pass(promtool, rule_file):
    test = subprocess.run([promtool, "test", "rules", str(rule_file.tests)],
                          capture_output=True, text=True, timeout=120, cwd=rule_file.tests.parent)
    assert test.returncode == 0, test.stdout + test.stderr
    assert "SUCCESS" in test.stdout
    assert yaml.safe_load(rule_file.tests.read_text())["rule_files"] == [rule_file.path.name]


def test_every_alert_is_tested_firing_and_quiet(rule_file):
    alerts = rule_file.alerts
    cases = [case for test in yaml.safe_load(rule_file.tests.read_text())["tests"]
             for case in test["alert_rule_test"]]
    assert alerts
    for rule in alerts:
        name = rule["alert"]
        own = [case for case in cases if case["alertname"] == name]
        assert any(case.get("exp_alerts") for case in own), f"{name}: no test where it fires"
        assert any(not case.get("exp_alerts") for case in own), f"{name}: no test where it stays quiet"
    assert {case["alertname"] for case in cases} <= {rule["alert"] for rule in alerts}


def test_every_alert_has_a_summary_a_description_and_a_runbook(rule_file, runbook_base_url):
    runbooks = f"{runbook_base_url}/{rule_file.runbooks.relative_to(ROOT / 'docs').as_posix()}"
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", rule_file.runbooks.read_text(), flags=re.MULTILINE)
    }
    for rule in rule_file.alerts:
        annotations = rule["annotations"]
        assert annotations.get("summary") and annotations.get("description"), rule["alert"]
        path, _, anchor = annotations["runbook_url"].partition("#")
        assert path == runbooks, rule["alert"]
        assert anchor == rule["alert"].lower(), f"{rule['alert']}: its runbook is not its own section"
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in {runbooks}"
        assert rule["labels"]["severity"] in ("warning", "critical")


def test_the_runbook_base_is_documented_in_each_rules_file(rule_files, runbook_base_url):
    for rule_file in rule_files.values():
        header = "".join(line for line in rule_file.path.read_text().splitlines(keepends=True)
                         if line.startswith("#"))
        assert "runbook_url is absolute" in header and "prometheusRule.runbookBaseUrl" in header, rule_file.path.name
    assert runbook_base_url in rule_files["workers"].path.read_text().split("groups:", 1)[0]


def test_every_aggregation_keeps_the_namespace(rule_files):
    """Two releases in two namespaces running the same crawl name raise their alerts apart."""
    for rule_file in rule_files.values():
        for rule in rule_file.alerts:
            for labels in re.findall(r"\b(?:by|on) \(([^)]*)\)", rule["expr"]):
                assert "namespace" in [label.strip() for label in labels.split(",")], \
                    f"{rule['alert']}: groups or joins by ({labels}) without namespace"


def test_alert_names_are_unique_across_rules_files(rule_files):
    names = [rule["alert"] for rule_file in rule_files.values() for rule in rule_file.alerts]
    assert len(names) == len(set(names))


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
