"""Copy the monitoring sources (monitoring/) into the Helm chart (charts/hermit/files/monitoring/).

The chart ships Hermit's Grafana dashboards (a ConfigMap for the Grafana sidecar) and
Prometheus alert rules (PrometheusRule) from copies of ``monitoring/``, because Helm
can only read files inside the chart. This module says what the copies must be;
``make chart-monitoring`` writes them and ``tests/charts/test_monitoring_drift.py``
fails when they differ.

- every ``*.json`` under ``monitoring/`` is a dashboard: copied byte for byte to
  ``files/monitoring/dashboards/`` (JSON has no comments, so no header);
- every ``*.yaml``/``*.yml`` that is a Prometheus rules file (a top-level ``groups:``
  and no ``rule_files:``, which marks a ``promtool test rules`` file) is copied to
  ``files/monitoring/rules/<name>.yaml`` under a "generated, do not edit" header.

Standard library only, so that it runs with any Python.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = "monitoring"
TARGET = "charts/hermit/files/monitoring"
KINDS = ("dashboards", "rules")

_GROUPS = re.compile(r"^groups:", re.MULTILINE)
_RULE_FILES = re.compile(r"^rule_files:", re.MULTILINE)


def header(source: str) -> str:
    return (
        f"# Generated from {source} by `make chart-monitoring`: do not edit.\n"
        "# Edit the source; tests/charts fails while this copy differs from it.\n"
    )


def is_rules_file(text: str) -> bool:
    return bool(_GROUPS.search(text)) and not _RULE_FILES.search(text)


def expected_files(repo: Path = REPO) -> dict[str, bytes]:
    """Chart path (relative to the repository) -> the content it must have."""
    source = repo / SOURCE
    expected: dict[str, bytes] = {}
    origin: dict[str, str] = {}
    if not source.is_dir():
        return expected
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        relative = path.relative_to(repo).as_posix()
        if path.suffix == ".json":
            target = f"{TARGET}/dashboards/{path.name}"
            content = path.read_bytes()
        elif path.suffix in (".yaml", ".yml"):
            text = path.read_text(encoding="utf-8")
            if not is_rules_file(text):
                continue
            target = f"{TARGET}/rules/{path.stem}.yaml"
            content = (header(relative) + text).encode("utf-8")
        else:
            continue
        if target in origin:
            raise ValueError(f"{relative} and {origin[target]} would both be copied to {target}: rename one")
        origin[target] = relative
        expected[target] = content
    return expected


def actual_files(repo: Path = REPO) -> dict[str, bytes]:
    """The chart's current copies."""
    found: dict[str, bytes] = {}
    for kind in KINDS:
        folder = repo / TARGET / kind
        if folder.is_dir():
            for path in sorted(p for p in folder.iterdir() if p.is_file()):
                found[path.relative_to(repo).as_posix()] = path.read_bytes()
    return found


def drift(repo: Path = REPO) -> list[str]:
    """One line per chart copy that is missing, stale or left over; empty when in sync."""
    expected, actual = expected_files(repo), actual_files(repo)
    problems = [f"missing: {path}" for path in sorted(expected.keys() - actual.keys())]
    problems += [f"differs from its source: {path}" for path in sorted(expected.keys() & actual.keys())
                 if expected[path] != actual[path]]
    problems += [f"no source in {SOURCE}/ any more: {path}" for path in sorted(actual.keys() - expected.keys())]
    return problems


def write(repo: Path = REPO) -> list[str]:
    """Make the chart's copies equal to what ``expected_files`` says; return what changed."""
    changes = drift(repo)
    expected = expected_files(repo)
    for path in actual_files(repo).keys() - expected.keys():
        (repo / path).unlink()
    for path, content in expected.items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_bytes() != content:
            target.write_bytes(content)
    return changes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="update the chart's copies")
    mode.add_argument("--check", action="store_true", help="exit 1 if the copies drifted")
    args = parser.parse_args(argv)
    if not (REPO / SOURCE).is_dir():
        print(f"{SOURCE}/ does not exist (yet): the chart ships no dashboards or rules", file=sys.stderr)
    if args.write:
        for line in write():
            print(f"updated ({line})")
        return 0
    problems = drift()
    for line in problems:
        print(line, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
