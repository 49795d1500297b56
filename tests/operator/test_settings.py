"""Settings: the chart's environment variables, flags over them, every problem reported."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from hermit_operator.settings import (
    DEFAULT_SELECTOR,
    OPTIONS,
    Settings,
    SettingsError,
    add_arguments,
    load,
    parse_bool,
    parse_bytes,
    parse_selector,
)

MiB = 2**20


def parse(argv, env=None):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return load(parser.parse_args(argv), env or {})


def test_defaults():
    settings = parse([], {"POD_NAME": "hermit-operator-5d8f7-x2x9q"})
    assert settings == Settings(identity="hermit-operator-5d8f7-x2x9q")
    assert settings.selector == DEFAULT_SELECTOR and settings.prefer == "oldest"
    assert settings.metrics_port == 9420 and settings.health_port == 9421
    assert settings.leader_election and not settings.dry_run and settings.budget_bytes is None


def test_the_helm_charts_variables():
    env = {
        "HERMIT_OPERATOR_NAMESPACE": "crawl",
        "HERMIT_OPERATOR_SELECTOR": "app.kubernetes.io/name=hermit,app.kubernetes.io/instance=crawl,"
                                    "app.kubernetes.io/component=crawler",
        "HERMIT_OPERATOR_MEMORY_BUDGET_BYTES": "524288000",
        "HERMIT_OPERATOR_MAX_CONCURRENT_RECYCLES": "2",
        "HERMIT_OPERATOR_MEMORY_SOURCE": "pod-metrics",
        "HERMIT_OPERATOR_DRY_RUN": "true",
        "HERMIT_OPERATOR_METRICS_PORT": "9420",
        "HERMIT_OPERATOR_HEALTH_PORT": "9421",
        "HERMIT_OPERATOR_MIN_AGE_SECONDS": "120",
        "HERMIT_OPERATOR_COOLDOWN_SECONDS": "0",
        "HERMIT_OPERATOR_INTERVAL_SECONDS": "30",
        "HERMIT_OPERATOR_PREFER": "most-over-budget",
        "HERMIT_OPERATOR_LEASE_NAME": "crawl-hermit-operator",
        "POD_NAME": "crawl-hermit-operator-abc",
    }
    settings = parse([], env)
    assert settings.namespace == "crawl" and settings.selector.endswith("component=crawler")
    assert settings.budget_bytes == 500 * MiB and settings.max_concurrent == 2
    assert settings.memory_source == "pod-metrics" and settings.dry_run is True
    assert settings.min_age_seconds == 120 and settings.cooldown_seconds == 0 and settings.interval_seconds == 30
    assert settings.prefer == "most_over_budget"  # the shared policy's spelling
    assert settings.lease_name == "crawl-hermit-operator" and settings.identity == "crawl-hermit-operator-abc"


def test_flags_win_over_the_environment():
    env = {"HERMIT_OPERATOR_DRY_RUN": "true", "HERMIT_OPERATOR_MEMORY_BUDGET_BYTES": "1Gi",
           "HERMIT_OPERATOR_LEADER_ELECTION": "false"}
    settings = parse(["--no-dry-run", "--memory-budget", "400Mi", "--leader-election"], env)
    assert settings.dry_run is False and settings.budget_bytes == 400 * MiB and settings.leader_election is True
    assert parse([], env).dry_run is True and parse([], env).leader_election is False


def test_every_setting_has_a_variable_and_a_flag():
    fields = {f for f in Settings.__dataclass_fields__}
    assert {o.field for o in OPTIONS} == fields
    assert all(o.env.startswith("HERMIT_OPERATOR_") and o.flag.startswith("--") for o in OPTIONS)
    assert len({o.env for o in OPTIONS}) == len(OPTIONS)


def test_all_problems_are_reported_at_once():
    env = {"HERMIT_OPERATOR_MAX_CONCURRENT_RECYCLES": "0", "HERMIT_OPERATOR_MEMORY_SOURCE": "prometheus",
           "HERMIT_OPERATOR_DRY_RUN": "maybe"}
    with pytest.raises(SettingsError) as raised:
        parse(["--memory-budget", "lots", "--interval", "-1"], env)
    problems = raised.value.problems
    assert len(problems) == 5
    text = str(raised.value)
    assert "HERMIT_OPERATOR_MAX_CONCURRENT_RECYCLES='0': expected an integer, at least 1" in text
    assert "HERMIT_OPERATOR_MEMORY_SOURCE='prometheus': expected one of metrics-api, pod-metrics" in text
    assert "HERMIT_OPERATOR_DRY_RUN='maybe': expected true or false" in text
    assert "--memory-budget='lots': expected a size in bytes or a Kubernetes quantity" in text
    assert "--interval='-1'" in text


@pytest.mark.parametrize("env", [
    {"HERMIT_OPERATOR_SELECTOR": ""},
    {"HERMIT_OPERATOR_SELECTOR": "app in (a,b"},
    {"HERMIT_OPERATOR_SELECTOR": "app=crawler,,x=y"},
    {"HERMIT_OPERATOR_NAMESPACE": "Crawl_1"},
    {"HERMIT_OPERATOR_METRICS_PORT": "70000"},
    {"HERMIT_OPERATOR_METRICS_PORT": "9500", "HERMIT_OPERATOR_HEALTH_PORT": "9500"},
    {"HERMIT_OPERATOR_LEASE_NAME": "Not A Name"},
    {"HERMIT_OPERATOR_LEASE_DURATION_SECONDS": "0.5"},
    {"HERMIT_OPERATOR_INTERVAL_SECONDS": "inf"},
    {"HERMIT_OPERATOR_MIN_SERVING": "-1"},
    {"HERMIT_OPERATOR_LOG_LEVEL": "chatty"},
    {"HERMIT_OPERATOR_IDENTITY": "  "},
    {"HERMIT_OPERATOR_POD_METRICS_PORT": "0"},
])
def test_invalid_values(env):
    with pytest.raises(SettingsError):
        parse([], env)


@pytest.mark.parametrize("text,expected", [
    ("524288000", 500 * MiB), ("400Mi", 400 * MiB), ("1Gi", 2**30), ("500M", 500_000_000), ("1.5Gi", 3 * 2**29),
    (" 2Ki ", 2048), ("1e9", 10**9),
])
def test_sizes(text, expected):
    assert parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "0", "-5Mi", "500m", "1GiB", "five"])
def test_bad_sizes(text):
    with pytest.raises(ValueError):
        parse_bytes(text)


@pytest.mark.parametrize("text", [
    "app=crawler", "app==crawler", "app!=crawler", "!canary", "tier", "env in (prod, staging)",
    "env notin (dev)", "app.kubernetes.io/name=hermit,app.kubernetes.io/component=crawler",
    "example.com/team=", "a=b, c=d",
])
def test_selectors(text):
    assert parse_selector(text) == text.strip()


@pytest.mark.parametrize("text", ["a=b=c", "app = crawler x", "=x", "a in b", "a,b)", "a/b/c=d"])
def test_bad_selectors(text):
    with pytest.raises(ValueError):
        parse_selector(text)


@pytest.mark.parametrize("text,expected", [("true", True), ("1", True), ("YES", True), ("on", True),
                                           ("false", False), ("0", False), ("", False), ("off", False)])
def test_booleans(text, expected):
    assert parse_bool(text) is expected


def test_identity_without_pod_name_is_host_and_pid():
    identity = parse([], {}).identity
    assert identity and "-" in identity


def test_every_setting_is_documented():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text()
    for option in OPTIONS:
        assert f"| `{option.env}` | `{option.flag}`" in doc, option.env
