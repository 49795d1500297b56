"""Write charts/hermit/README.md from the `## @section` and `## @param` lines of its values.yaml.

Each value of the chart is described once, by the `## @param KEY DESCRIPTION` line above
it in values.yaml; this script puts those lines, with each key's default, into the
README's tables (one per `## @section`). ``--write`` updates the README, ``--check``
exits 1 when it is out of date; tests/charts/test_chart_readme.py fails in that case,
and tests/charts/test_chart_values_docs.py uses :func:`params` to check that every value
has its line.

Needs PyYAML (the defaults are read from values.yaml).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "hermit"
README = CHART / "README.md"

_SECTION = re.compile(r"^\s*## @section (?P<title>\S.*?)\s*$")
_PARAM = re.compile(r"^\s*## @param (?P<key>\S+) (?P<description>\S.*?)\s*$")
_TAG = re.compile(r"^\s*## @(?!section |param )(?P<tag>\S*)")


@dataclass(frozen=True)
class Param:
    """One `## @param` line: the dotted key, what it says, and the section it is in."""

    key: str
    description: str
    section: str
    line: int


def params(text: str) -> list[Param]:
    """Every `## @param` line of a values.yaml *text*, in order.

    A `## @` line that is neither `@section TITLE` nor `@param KEY DESCRIPTION` (a
    misspelled tag, a param without a description) is a ``ValueError`` naming its line.
    """
    found: list[Param] = []
    section = ""
    for number, line in enumerate(text.splitlines(), start=1):
        if match := _SECTION.match(line):
            section = match["title"]
        elif match := _PARAM.match(line):
            found.append(Param(match["key"], match["description"], section, number))
        elif _TAG.match(line):
            raise ValueError(f"values.yaml line {number}: expected `## @section TITLE` or "
                             f"`## @param KEY DESCRIPTION`, got {line.strip()!r}")
    return found


_MISSING = object()


def default_of(values: dict, key: str) -> object:
    """The value at dotted *key* of *values*; ``KeyError`` naming the key if there is none."""
    node: object = values
    for part in key.split("."):
        node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is _MISSING:
            raise KeyError(f"`## @param {key}` documents a key that values.yaml does not have")
    return node


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _code(value: object) -> str:
    shown = value if isinstance(value, str) and value else json.dumps(value, separators=(", ", ": "))
    return f"`{_cell(shown)}`"


def render(chart: Path = CHART) -> str:
    """The README the chart's values.yaml gives."""
    text = (chart / "values.yaml").read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    metadata = yaml.safe_load((chart / "Chart.yaml").read_text(encoding="utf-8"))
    out = [
        "<!-- Generated from values.yaml by tools/chart_readme.py (make chart-readme): do not edit.",
        "     Edit the `## @param` lines of values.yaml; tests/charts fails while this file is stale. -->",
        f"# The {metadata['name']} chart ({metadata['version']}, app {metadata['appVersion']})",
        "",
        " ".join(metadata["description"].split()),
        "",
        "```sh",
        f"helm install crawl charts/{chart.name} --set spider=myspider --set-file seeds=urls.txt",
        "```",
        "",
        "How it is built, what each part does and how it is tested: docs/kubernetes.md in the",
        "repository. Every value below is typed in values.schema.json (unknown keys are refused);",
        "rules between values are checked at install (the `hermit.validateValues` helper).",
        "",
        "## Parameters",
    ]
    section = None
    for param in params(text):
        if param.section != section:
            section = param.section
            out += ["", f"### {section or 'Values'}", "", "| Name | Description | Default |", "|---|---|---|"]
        out.append(f"| `{param.key}` | {_cell(param.description)} | {_code(default_of(values, param.key))} |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="update charts/hermit/README.md")
    mode.add_argument("--check", action="store_true", help="exit 1 if the README is out of date")
    args = parser.parse_args(argv)
    try:
        expected = render()
    except (KeyError, ValueError) as error:
        print(f"{CHART / 'values.yaml'}: {error.args[0]}", file=sys.stderr)
        return 2
    current = README.read_text(encoding="utf-8") if README.exists() else None
    if args.write:
        if current != expected:
            README.write_text(expected, encoding="utf-8")
            print(f"updated {README.relative_to(REPO)}")
        return 0
    if current != expected:
        print(f"{README.relative_to(REPO)} is out of date: run `make chart-readme`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
