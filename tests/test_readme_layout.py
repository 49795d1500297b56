"""The README's layout table names every top-level part of the repository and every
package of the crawler, and only paths that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layout_paths() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([^`]+)` \|", section, flags=re.MULTILINE)


def test_the_layout_table_lists_every_part_and_no_missing_one():
    listed = {path.rstrip("/") for path in layout_paths()}
    assert listed, "README.md has no ## Layout table"
    # Hidden folders (.git, .venv, .ci) and install metadata are not parts of the project.
    top_level = {entry.name for entry in ROOT.iterdir()
                 if entry.is_dir() and not entry.name.startswith(".") and not entry.name.endswith(".egg-info")}
    packages = {f"crawler/hermit/{entry.name}" for entry in (ROOT / "crawler" / "hermit").iterdir()
                if entry.is_dir() and any(entry.glob("*.py"))}
    for part in top_level - {"crawler"}:
        assert part in listed or any(path.startswith(f"{part}/") for path in listed), f"{part}/ is not in the layout"
    assert packages - listed == set(), "crawler packages missing from README.md's layout"
    assert [path for path in listed if not (ROOT / path).exists()] == [], "the layout names paths that don't exist"
