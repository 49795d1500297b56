"""A user's own Scrapy project, written to a folder by a test and crawled with ``scrapy crawl``.

One home for every test that needs a project (tests/crawler through its
``scrapy_project`` fixture, tests/images for the image a user builds on Hermit's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

#: What every test project sets: robots.txt is not asked for, the log says what happened.
BASE_SETTINGS = """
ROBOTSTXT_OBEY = False
LOG_LEVEL = "INFO"
"""
#: A project that is a Hermit worker: the add-on on, the endpoints and Scrapy's telnet
#: console off (nothing listens on a port); with ``PLAIN_SCRAPY`` set in the
#: environment the add-on stays off, so the same project runs on Scrapy's own scheduler.
ADDON_SETTINGS = """
ADDONS = {"hermit.addon.Addon": 0}
HERMIT_METRICS_ENABLED = False
HERMIT_DIAGNOSTICS_ENABLED = False
TELNETCONSOLE_ENABLED = False
"""
PLAIN_SCRAPY_SWITCH = 'if os.environ.get("PLAIN_SCRAPY"):\n    ADDONS = {}\n'


@dataclass
class ScrapyProject:
    """A project in *root* whose package is *name*; crawl with :meth:`crawl`, :meth:`run` or :meth:`start`."""

    root: Path
    name: str

    def command(self, spider: str, *args: str) -> list[str]:
        return [sys.executable, "-m", "scrapy", "crawl", spider, *args]

    def env(self, plain: bool) -> dict[str, str]:
        """Plain Scrapy when *plain*: the project's settings leave Hermit out when PLAIN_SCRAPY is set."""
        return {**os.environ, "PLAIN_SCRAPY": "1" if plain else ""}

    def run(self, spider: str, *args: str, plain: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``scrapy crawl`` to its end, whatever its exit status."""
        return subprocess.run(self.command(spider, *args), cwd=self.root, capture_output=True, text=True,
                              timeout=timeout, env=self.env(plain))

    def crawl(self, spider: str, *args: str, plain: bool = False, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run ``scrapy crawl`` to its end; fail the test (with the log's tail) if it exits non-zero
        or did not take its requests from the expected scheduler (Redis, or Scrapy's memory queue when *plain*)."""
        proc = self.run(spider, *args, plain=plain, timeout=timeout)
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


def write_scrapy_project(root: Path, name: str, modules: dict[str, str], settings: str = "",
                         addon: bool = True) -> ScrapyProject:
    """Write scrapy.cfg and the package *name* to *root* (which must not exist yet).

    *modules* maps paths inside the package to their source (``{"spiders/x.py": ...}``;
    dedented). settings.py is BOT_NAME, SPIDER_MODULES and :data:`BASE_SETTINGS`, then,
    with *addon*, :data:`ADDON_SETTINGS`, then *settings* (dedented; a project without
    the add-on is the user's own, with nothing of Hermit but what *settings* names).
    """
    package = root / name
    (package / "spiders").mkdir(parents=True)
    (root / "scrapy.cfg").write_text(f"[settings]\ndefault = {name}.settings\n")
    (package / "__init__.py").write_text("")
    (package / "spiders" / "__init__.py").write_text("")
    for path, source in modules.items():
        (package / path).write_text(textwrap.dedent(source))
    (package / "settings.py").write_text(
        f'import os\nBOT_NAME = "{name}"\nSPIDER_MODULES = ["{name}.spiders"]\n' + BASE_SETTINGS
        + (ADDON_SETTINGS if addon else "") + textwrap.dedent(settings)
        + (PLAIN_SCRAPY_SWITCH if addon else "")
    )
    return ScrapyProject(root, name)
