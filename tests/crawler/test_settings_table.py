"""The worker's settings table (hermit.settings.SETTINGS): each setting declared once.

Its defaults are what the add-on sets, what the Bloom filter and the queue default to,
and what the Helm chart passes; its parsers refuse a bad value with a message naming
the setting.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest
import yaml
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings

from hermit.dedup.bloom import RedisBloomFilter
from hermit.queue.redis_queue import BloomSettings
from hermit.setting_spec import Boolean, Checked, Choice, InvalidValue, Number, Setting, Text
from hermit.settings import DEFAULT_SETTINGS, SETTINGS, WorkerConfig, read, setting

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "hermit"

#: Settings the chart passes with a value other than the code's default, and why.
CHART_DIFFERS_ON_PURPOSE = {
    "HERMIT_WORKER_ID": "each pod's own name, $(POD_NAME), so the workers of a Deployment are told apart",
    "HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS": "in a cluster Prometheus scrapes every pod: a closing worker "
    "waits about one scrape interval so its last counts land; the code's 0 suits a crawl with no Prometheus",
    "HERMIT_MEMORY_BUDGET_BYTES": "computed from the container's memory limit (crawler.memoryBudget)",
    "HERMIT_MEMORY_HARD_LIMIT_BYTES": "computed from the container's memory limit (crawler.memoryBudget)",
}

#: A value each kind of parser refuses.
BAD_VALUES = {Number: "not-a-number", Boolean: "maybe", Choice: "none-of-these", Checked: "has spaces"}


def _bad_value(declared: Setting) -> object:
    if isinstance(declared.parser, Text):
        return 12345 if declared.parser.optional else "   "
    return BAD_VALUES[type(declared.parser)]


# ---- the table itself ------------------------------------------------------------------


@pytest.mark.parametrize("declared", SETTINGS, ids=lambda s: s.name)
def test_every_default_is_a_value_its_own_parser_accepts_unchanged(declared):
    assert declared.parser is not None, f"{declared.name} declares no parser"
    assert declared.parse(declared.default) == declared.default
    assert type(declared.parse(declared.default)) is type(declared.default)


@pytest.mark.parametrize("declared", SETTINGS, ids=lambda s: s.name)
def test_a_value_a_setting_refuses_is_named_in_the_error(declared):
    with pytest.raises(InvalidValue) as refused:
        declared.read(Settings({declared.name: _bad_value(declared)}))
    assert str(refused.value).startswith(declared.name)


def test_values_from_the_command_line_are_text_and_read_as_their_kind():
    settings = Settings({"HERMIT_LEASE_TIMEOUT_SECONDS": "12.5", "HERMIT_METRICS_PORT": "0",
                         "HERMIT_ITEMS_ENABLED": "false", "HERMIT_DEDUP_CAPACITY": 5e6})
    assert read(settings, "HERMIT_LEASE_TIMEOUT_SECONDS") == 12.5
    assert read(settings, "HERMIT_METRICS_PORT") == 0
    assert read(settings, "HERMIT_ITEMS_ENABLED") is False
    assert read(settings, "HERMIT_DEDUP_CAPACITY") == 5_000_000  # a whole float (YAML, -s 5e6 via the chart)
    assert read(Settings(), "HERMIT_LEASE_TIMEOUT_SECONDS") == DEFAULT_SETTINGS["HERMIT_LEASE_TIMEOUT_SECONDS"]


@pytest.mark.parametrize(("name", "value", "message"), [
    ("HERMIT_FLUSH_MAX_OPERATIONS", "0", "HERMIT_FLUSH_MAX_OPERATIONS must be at least 1, got '0'"),
    ("HERMIT_FLUSH_MAX_OPERATIONS", 2.5, "HERMIT_FLUSH_MAX_OPERATIONS must be an integer, got 2.5"),
    ("HERMIT_QUEUE_SHARDS", "100000", "HERMIT_QUEUE_SHARDS must be between 0 and 1024, got 100000"),
    ("HERMIT_DEDUP_ERROR_RATIO", "0", "HERMIT_DEDUP_ERROR_RATIO must be between 0 and 1, got 0.0"),
    ("HERMIT_DEDUP_MAX_CHUNK_BITS", str(2**33),
     "HERMIT_DEDUP_MAX_CHUNK_BITS must be between 8 and 4294967296 (2**32 is Redis' 512 MB string limit), "
     "got 8589934592"),
    ("HERMIT_METRICS_PORT", "http", "HERMIT_METRICS_PORT must be a port number (0 = any free port), got 'http'"),
    ("HERMIT_LEASE_TIMEOUT_SECONDS", "nan", "HERMIT_LEASE_TIMEOUT_SECONDS must be a number, got 'nan'"),
    ("HERMIT_ITEMS_ENABLED", "yes please",
     "HERMIT_ITEMS_ENABLED must be true or false (True/False, 1/0), got 'yes please'"),
    ("HERMIT_QUEUE_ORDER", "random", "HERMIT_QUEUE_ORDER must be one of ('fifo', 'lifo'), got 'random'"),
    ("HERMIT_METRICS_HOST", "", "HERMIT_METRICS_HOST must be a host name or address, got ''"),
])
def test_messages_say_what_is_expected(name, value, message):
    with pytest.raises(InvalidValue) as refused:
        read(Settings({name: value}), name)
    assert str(refused.value) == message


def test_a_refused_token_is_not_repeated_in_the_message():
    with pytest.raises(InvalidValue) as refused:
        read(Settings({"HERMIT_DIAGNOSTICS_TOKEN": 8675309}), "HERMIT_DIAGNOSTICS_TOKEN")
    assert "HERMIT_DIAGNOSTICS_TOKEN" in str(refused.value) and "8675309" not in str(refused.value)


def test_units_come_from_the_names_and_the_reference_shows_them():
    assert setting("HERMIT_DRAIN_TIMEOUT_SECONDS").unit == "seconds"
    assert setting("HERMIT_MEMORY_BUDGET_BYTES").accepts == "integer ≥ 0, bytes"
    assert setting("HERMIT_QUEUE_ORDER").unit is None and setting("HERMIT_QUEUE_ORDER").accepts == "`fifo` or `lifo`"


def test_the_worker_config_reads_the_table():
    config = WorkerConfig.from_settings(Settings(), "books")
    assert (config.crawl, config.key_prefix, config.lease_timeout_seconds, config.known_fingerprints) == (
        "books", DEFAULT_SETTINGS["HERMIT_KEY_PREFIX"], DEFAULT_SETTINGS["HERMIT_LEASE_TIMEOUT_SECONDS"],
        DEFAULT_SETTINGS["HERMIT_DEDUP_KNOWN_FINGERPRINTS"])
    with pytest.raises(NotConfigured, match=r"^HERMIT_CRAWL: invalid crawl name 'bad name'"):
        WorkerConfig.from_settings(Settings(), "bad name")
    with pytest.raises(NotConfigured, match=r"^HERMIT_KEY_PREFIX must be a non-empty string, got ' '"):
        WorkerConfig.from_settings(Settings({"HERMIT_KEY_PREFIX": " "}), "books")


def test_the_bloom_filter_and_the_queue_default_to_the_declared_sizing():
    config = WorkerConfig.from_settings(Settings(), "books")
    assert BloomSettings() == config.bloom
    defaults = {name: parameter.default
                for name, parameter in inspect.signature(RedisBloomFilter.__init__).parameters.items()}
    assert (defaults["capacity"], defaults["error_ratio"], defaults["growth"], defaults["max_chunk_bits"]) == (
        DEFAULT_SETTINGS["HERMIT_DEDUP_CAPACITY"], DEFAULT_SETTINGS["HERMIT_DEDUP_ERROR_RATIO"],
        DEFAULT_SETTINGS["HERMIT_DEDUP_GROWTH"], DEFAULT_SETTINGS["HERMIT_DEDUP_MAX_CHUNK_BITS"])


# ---- the chart's defaults --------------------------------------------------------------

#: ``"HERMIT_X" <source>`` in the crawler's templates: a values path (``$crawler.a.b``,
#: ``.Values.a``), a template variable (``$budget``) or a literal (``"$(POD_NAME)"``).
_PASSED = re.compile(r'"(HERMIT_[A-Z0-9_]+)"\s+\(?(?:int64\s+)?(\$crawler\.[\w.]+|\.Values\.[\w.]+|\$\w+|"[^"]*")')
#: ``- name: HERMIT_X`` followed by ``value: {{ <values path> ...}}``.
_ENV = re.compile(r'- name: (HERMIT_[A-Z0-9_]+)\n\s+value: \{\{\s*(\$crawler\.[\w.]+|\.Values\.[\w.]+)')
#: ``## @param <path> HERMIT_X:`` (or ``(HERMIT_X)``) in values.yaml.
_DOCUMENTED = re.compile(r"^\s*## @param (\S+) (?:.*\()?(HERMIT_[A-Z0-9_]+)[:)]", re.MULTILINE)


def _values_path(source: str) -> str | None:
    for prefix, path in (("$crawler.", "crawler."), (".Values.", "")):
        if source.startswith(prefix):
            return path + source.removeprefix(prefix)
    return None


def _value_at(values: dict, path: str) -> object:
    for part in path.split("."):
        assert isinstance(values, dict) and part in values, f"charts/hermit/values.yaml has no {path}"
        values = values[part]
    return values


def chart_settings() -> dict[str, str]:
    """Each HERMIT_* name the crawler's templates set (-s or env) → where its value comes from."""
    templates = sorted((CHART / "templates" / "crawler").glob("*.yaml"))
    text = "\n".join(path.read_text() for path in templates)
    assert "$crawler := .Values.crawler" in text
    passed: dict[str, str] = {}
    for name, source in _PASSED.findall(text) + _ENV.findall(text):
        assert passed.setdefault(name, source) == source, f"the chart passes {name} from {passed[name]} and {source}"
    quoted = set(re.findall(r'"(HERMIT_[A-Z0-9_]+)"', text))
    assert quoted <= set(passed), f"HERMIT_* names in the templates this test can't follow: {quoted - set(passed)}"
    return passed


def test_the_chart_passes_the_codes_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    passed = chart_settings()
    assert {"HERMIT_LEASE_TIMEOUT_SECONDS", "HERMIT_DEDUP_CAPACITY", "HERMIT_METRICS_PORT"} <= set(passed)
    unknown = sorted(set(passed) - set(DEFAULT_SETTINGS))
    assert not unknown, f"the chart passes settings the table does not declare: {unknown}"
    differ = {}
    for name, source in passed.items():
        path = _values_path(source)
        declared = setting(name)
        if path is None:
            differ[name] = source  # a computed or per-pod value
            continue
        value = _value_at(values, path)
        # null: the chart passes nothing, and the worker runs with the code's default.
        if value is not None and declared.parse(value) != declared.default:
            differ[name] = f"{path}: {value!r}, the code: {declared.default!r}"
    unexplained = {name: why for name, why in differ.items() if name not in CHART_DIFFERS_ON_PURPOSE}
    assert not unexplained, (
        "the chart's defaults differ from the table's in hermit/settings.py: make them equal, or list the "
        f"setting in CHART_DIFFERS_ON_PURPOSE with the reason: {unexplained}"
    )
    stale = sorted(set(CHART_DIFFERS_ON_PURPOSE) - set(differ))
    assert not stale, f"the chart now passes the code's default (or nothing) for these, remove them: {stale}"


def test_the_values_documentation_names_the_setting_each_value_becomes():
    text = (CHART / "values.yaml").read_text()
    documented = {path: name for path, name in _DOCUMENTED.findall(text) if not path.startswith("operator.")}
    by_path = {_values_path(source): name for name, source in chart_settings().items() if _values_path(source)}
    assert len(documented) >= 10
    wrong = {path: (name, by_path.get(path)) for path, name in documented.items()
             if path in by_path and by_path[path] != name}
    assert not wrong, f"values documented as one setting but passed as another (documented, passed): {wrong}"
    undocumented = sorted(path for path in by_path if path not in documented)
    assert not undocumented, f"values passed as a HERMIT_* setting whose ## @param does not name it: {undocumented}"
