"""The generated references: docs/settings.md and docs/metrics.md match the code.

When one of these fails after a change to a setting or a metric, run ``make docs``
(``python tools/docs_reference.py``) and commit the pages with the change.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

import hermit
from hermit.settings import SETTINGS

TOOLS = Path(__file__).resolve().parents[2] / "tools"


def _tool(name: str) -> ModuleType:
    """tools/<name>.py, imported (the tools are scripts, not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TOOLS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # before running it: its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules[name]


docs_reference = _tool("docs_reference")
DOCS_DIR = docs_reference.DOCS_DIR
collect_declarations = docs_reference.collect_declarations
collect_metric_docs = docs_reference.collect_metric_docs
expected_pages = docs_reference.expected_pages
marker = docs_reference.marker

PACKAGE = Path(hermit.__file__).resolve().parent
HERMIT_NAME = re.compile(r"HERMIT_[A-Z0-9]+(?:_[A-Z0-9]+)*")
METRIC_NAME = re.compile(r"hermit_[a-z0-9]+(?:_[a-z0-9]+)*")
#: Calls that declare a name rather than read it with a fallback default.
DECLARATIONS = {"Setting", "EnvironmentVariable"}


def _sources(root: Path = PACKAGE) -> Iterator[tuple[str, ast.AST]]:
    for path in sorted(root.rglob("*.py")):
        yield str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text(encoding="utf-8"))


def _strings(tree: ast.AST) -> Iterator[ast.Constant]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node


def hermit_names_in_code() -> dict[str, str]:
    """Every HERMIT_* name the package's code holds as a string (→ where first).

    A whole string literal (``settings.get("HERMIT_X")``, ``os.environ.get(...)``,
    ``envvar="HERMIT_X"``, a module constant used for a read) or the ``HERMIT_X=`` of a
    ``-s HERMIT_X=...`` argument; names inside docstrings and messages don't count.
    """
    found: dict[str, str] = {}
    for where, tree in _sources():
        for node in _strings(tree):
            setting = re.match(rf"({HERMIT_NAME.pattern})=", node.value)
            name = node.value if HERMIT_NAME.fullmatch(node.value) else setting and setting.group(1)
            if name:
                found.setdefault(name, f"{where}:{node.lineno}")
    return found


def _page_diff(path: Path, expected: str) -> str:
    lines = difflib.unified_diff(path.read_text(encoding="utf-8").splitlines(), expected.splitlines(),
                                 f"{path.name} (now)", f"{path.name} (generated)", lineterm="")
    return "\n".join(list(lines)[:60])


@pytest.fixture(scope="module")
def pages() -> dict[Path, str]:
    return expected_pages()


@pytest.mark.parametrize("page", ["settings.md", "metrics.md"])
def test_the_page_is_what_the_generator_writes(pages, page):
    path = DOCS_DIR / page
    assert path.read_text(encoding="utf-8") == pages[path], (
        f"docs/{page} is out of date: run `make docs`\n{_page_diff(path, pages[path])}"
    )


def test_every_hermit_name_read_in_the_code_is_in_the_settings_reference(pages):
    found = hermit_names_in_code()
    # The scan sees names read outside hermit/settings.py, through constants and from the environment.
    assert {"HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS", "HERMIT_DEMO_URL", "HERMIT_REDIS_SERVER",
            "HERMIT_DIAGNOSTICS_TOKEN", "HERMIT_MEMORY_BUDGET_BYTES"} <= set(found)
    declarations = collect_declarations()
    declared = {item.name for item in declarations.settings + declarations.environment}
    page = pages[DOCS_DIR / "settings.md"]
    missing = {name: where for name, where in found.items() if name not in declared or f"`{name}`" not in page}
    assert not missing, (
        f"HERMIT_* names the code reads but docs/settings.md does not list: {missing}. Declare each where it "
        "is read (a worker setting in SETTINGS of hermit/settings.py, else a Setting or "
        "EnvironmentVariable from hermit.setting_spec at module level), then run `make docs`"
    )


def test_every_setting_of_the_table_is_described_with_what_it_accepts():
    assert [s.name for s in SETTINGS if not s.meaning.strip() or not s.accepts] == []
    listed = [setting.name for setting in collect_declarations().settings]
    assert listed[:len(SETTINGS)] == [setting.name for setting in SETTINGS]  # the table first, in order


def _reads_with_own_fallback(where: str, tree: ast.AST, declared: set[str]) -> list[str]:
    """Calls like ``settings.getbool("HERMIT_X", True)`` in *tree*: a declared name
    followed by a literal default."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        if func in DECLARATIONS:
            continue
        for name, fallback in zip(node.args, node.args[1:]):
            if (isinstance(name, ast.Constant) and isinstance(name.value, str) and name.value in declared
                    and isinstance(fallback, ast.Constant)):
                found.append(f"{where}:{node.lineno} {name.value}: {fallback.value!r}")
    return found


def test_no_setting_is_read_with_a_fallback_default_of_its_own():
    """Settings are read through their declaration (``hermit.settings.read``), never as
    ``settings.getbool("HERMIT_X", True)``: a second default beside the declared one."""
    declared = {setting.name for setting in collect_declarations().settings}
    assert len(declared) > 30
    sample = ast.parse('enabled = crawler.settings.getbool("HERMIT_ITEMS_ENABLED", True)')
    assert _reads_with_own_fallback("sample", sample, declared) == ["sample:1 HERMIT_ITEMS_ENABLED: True"]
    own = [found for where, tree in _sources() for found in _reads_with_own_fallback(where, tree, declared)]
    assert own == [], f"settings read with a default of their own: {own}"


def test_every_metric_name_in_the_observability_code_is_in_the_metrics_reference(pages):
    families = {doc.family for doc in collect_metric_docs()}
    named = {}
    for where, tree in _sources(PACKAGE / "observability"):
        for node in _strings(tree):
            if METRIC_NAME.fullmatch(node.value):
                named.setdefault(node.value, f"{where}:{node.lineno}")
    assert len(named) > 40
    missing = {name: where for name, where in named.items() if name not in families}
    assert not missing, (
        f"metric names in the code that the generator did not collect: {missing}. If a family is exported "
        "only in some state, add that state to _CONDITIONS in tools/docs_reference.py; then run `make docs`"
    )
    page = pages[DOCS_DIR / "metrics.md"]
    assert all(f"`{doc.name}`" in page for doc in collect_metric_docs())


def test_metric_rows_show_the_stored_name_type_labels_and_conditions():
    docs = {doc.name: doc for doc in collect_metric_docs()}
    assert docs["hermit_responses_total"].type == "counter"
    assert docs["hermit_responses_total"].labels == ("crawl", "status_class")
    assert docs["hermit_build_info"].labels == ("crawl", "version", "scrapy_version")
    assert docs["hermit_download_latency_seconds"].labels == ("crawl",)  # no "le"
    assert docs["hermit_live_objects"].labels == ("crawl", "class")  # declared, whatever is alive
    assert docs["hermit_memory_soft_budget_bytes"].only_when == "a memory budget is set"
    assert docs["hermit_crawl_bloom_layers"].only_when.startswith("the crawl's Bloom filter exists")
    assert docs["hermit_crawl_queued_requests"].crawl_wide and docs["hermit_crawl_queued_requests"].only_when is None
    assert not docs["hermit_leased_requests"].crawl_wide  # per worker, summable


def test_only_the_text_between_the_markers_is_rewritten(tmp_path):
    begin, end = marker("settings", "begin"), marker("settings", "end")
    text = f"# Title\n\nprose before\n\n{begin}\nstale table\n{end}\n\nprose after\n"
    replaced = docs_reference.replace_blocks(text, {"settings": "| new |"})
    assert replaced == f"# Title\n\nprose before\n\n{begin}\n| new |\n{end}\n\nprose after\n"
    assert docs_reference.replace_blocks(replaced, {"settings": "| new |"}) == replaced
    with pytest.raises(docs_reference.DocsReferenceError, match="needs one pair of lines"):
        docs_reference.replace_blocks("no markers\n", {"settings": "| new |"})


def test_the_entry_point_checks_and_rewrites(tmp_path, capsys):
    for page in ("settings.md", "metrics.md"):
        shutil.copy(DOCS_DIR / page, tmp_path / page)
    stale = tmp_path / "settings.md"
    stale.write_text(stale.read_text().replace("| `HERMIT_KEY_PREFIX` |", "| `HERMIT_KEY_PREFIX_OLD` |"))
    assert docs_reference.main(["--docs", str(tmp_path), "--check"]) == 1
    assert "out of date (run `make docs`)" in capsys.readouterr().out
    assert "HERMIT_KEY_PREFIX_OLD" in stale.read_text()  # --check writes nothing
    assert docs_reference.main(["--docs", str(tmp_path)]) == 0
    assert stale.read_text() == (DOCS_DIR / "settings.md").read_text()
    assert docs_reference.main(["--docs", str(tmp_path), "--check"]) == 0
    (tmp_path / "metrics.md").write_text("no markers\n")
    assert docs_reference.main(["--docs", str(tmp_path)]) == 2
    assert "needs one pair of lines" in capsys.readouterr().err
