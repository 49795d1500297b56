"""Fixtures of the crawler tests: a user's own Scrapy project, written to a temporary
folder, crawled with ``scrapy crawl`` as a Hermit worker or as plain Scrapy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

BASE_SETTINGS = """
ROBOTSTXT_OBEY = False
LOG_LEVEL = "INFO"
TELNETCONSOLE_ENABLED = False
"""
HERMIT_SETTINGS = """
ADDONS = {"hermit.addon.Addon": 0}
HERMIT_METRICS_ENABLED = False
HERMIT_DIAGNOSTICS_ENABLED = False
"""


@dataclass
class ScrapyProject:
    """A project in *root* whose package is *name*; crawl with :meth:`crawl` or :meth:`start`."""

    root: Path
    name: str

    def command(self, spider: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "scrapy", "crawl", spider, *args]

    def env(self, plain: bool) -> dict[str, str]:
        """Plain Scrapy when *plain*: the project's settings leave Hermit out when PLAIN_SCRAPY is set."""
        return {**os.environ, "PLAIN_SCRAPY": "1" if plain else ""}

    def crawl(self, spider: str, *args: str, plain: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``scrapy crawl`` to its end; fail the test (with the log's tail) if it exits non-zero."""
        proc = subprocess.run(self.command(spider, *args), cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, env=self.env(plain))
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert ("'scheduler/dequeued/memory'" if plain else "'scheduler/dequeued/redis'") in proc.stderr, \
            proc.stderr[-4000:]
        return proc

    def start(self, spider: str, *args: str, log: Path, plain: bool = False) -> subprocess.Popen[bytes]:
        """Start ``scrapy crawl`` in the background, its log written to *log*."""
        with log.open("wb") as out:
            return subprocess.Popen(self.command(spider, *args), cwd=self.root, stdout=out,
                                    stderr=subprocess.STDOUT, env=self.env(plain))

    def feed(self, path: str) -> list[dict]:
        """The items of a JSON Lines feed the crawl wrote (``-o path``)."""
        return [json.loads(line) for line in (self.root / path).read_text().splitlines()]


@pytest.fixture
def scrapy_project(tmp_path: Path) -> Callable[..., ScrapyProject]:
    """make(name, modules={"spiders/x.py": source, "items.py": ...}, settings="...") -> ScrapyProject.

    The settings are Scrapy's with Hermit's add-on on (metrics and diagnostics off),
    then *settings*; with ``PLAIN_SCRAPY`` set in the environment (``plain=True``)
    the add-on stays off, so the same project runs on Scrapy's own scheduler (as
    long as *settings* name no Hermit component themselves).
    """

    def make(name: str, modules: dict[str, str], settings: str = "") -> ScrapyProject:
        root = tmp_path / name
        package = root / name
        (package / "spiders").mkdir(parents=True)
        (root / "scrapy.cfg").write_text(f"[settings]\ndefault = {name}.settings\n")
        (package / "__init__.py").write_text("")
        (package / "spiders" / "__init__.py").write_text("")
        for path, source in modules.items():
            (package / path).write_text(textwrap.dedent(source))
        (package / "settings.py").write_text(
            f'import os\nBOT_NAME = "{name}"\nSPIDER_MODULES = ["{name}.spiders"]\n'
            + BASE_SETTINGS + HERMIT_SETTINGS + textwrap.dedent(settings)
            + 'if os.environ.get("PLAIN_SCRAPY"):\n    ADDONS = {}\n'
        )
        return ScrapyProject(root, name)

    return make
