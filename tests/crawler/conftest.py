"""Fixtures of the crawler tests: a user's own Scrapy project, written to a temporary
folder, crawled with ``scrapy crawl`` as a Hermit worker or as plain Scrapy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.scrapy_project import ScrapyProject, write_scrapy_project


@pytest.fixture
def scrapy_project(tmp_path: Path) -> Callable[..., ScrapyProject]:
    """make(name, modules={"spiders/x.py": source, "items.py": ...}, settings="...", addon=True) -> ScrapyProject.

    The project is written to ``tmp_path / name`` by :func:`write_scrapy_project`: with
    *addon*, Hermit's add-on on (metrics, diagnostics and telnet off), then *settings*;
    with ``PLAIN_SCRAPY`` set in the environment (``plain=True``) the add-on stays off,
    so the same project runs on Scrapy's own scheduler (as long as *settings* name no
    Hermit component themselves).
    """

    def make(name: str, modules: dict[str, str], settings: str = "", addon: bool = True) -> ScrapyProject:
        return write_scrapy_project(tmp_path / name, name, modules, settings, addon=addon)

    return make
