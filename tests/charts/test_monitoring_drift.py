"""The chart's copies of monitoring/ (dashboards, alert rules) must equal their sources."""

from __future__ import annotations

import monitoring_sync


def test_chart_copies_match_monitoring_sources():
    problems = monitoring_sync.drift()
    assert not problems, "chart copies out of date; run `make chart-monitoring`:\n" + "\n".join(problems)


def test_drift_is_detected(tmp_path):
    """The check itself: a changed, a missing and a stray copy are all reported."""
    (tmp_path / "monitoring" / "alerts").mkdir(parents=True)
    (tmp_path / "monitoring" / "alerts" / "hermit.rules.yml").write_text("groups:\n  - name: hermit\n    rules: []\n")
    (tmp_path / "monitoring" / "alerts" / "hermit.test.yaml").write_text("rule_files: [x]\ngroups: []\ntests: []\n")
    (tmp_path / "monitoring" / "hermit.json").write_text('{"uid": "hermit"}\n')
    assert sorted(monitoring_sync.drift(tmp_path)) == [
        "missing: charts/hermit/files/monitoring/dashboards/hermit.json",
        "missing: charts/hermit/files/monitoring/rules/hermit.rules.yaml",
    ]
    monitoring_sync.write(tmp_path)
    assert monitoring_sync.drift(tmp_path) == []
    copy = tmp_path / monitoring_sync.TARGET / "rules" / "hermit.rules.yaml"
    assert copy.read_text().startswith("# Generated from monitoring/alerts/hermit.rules.yml")
    copy.write_text(copy.read_text() + "# edited by hand\n")
    (tmp_path / monitoring_sync.TARGET / "dashboards" / "old.json").write_text("{}")
    assert sorted(monitoring_sync.drift(tmp_path)) == [
        "differs from its source: charts/hermit/files/monitoring/rules/hermit.rules.yaml",
        "no source in monitoring/ any more: charts/hermit/files/monitoring/dashboards/old.json",
    ]
