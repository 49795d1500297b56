"""The checks a worker passes before its engine opens: the spider exists, Hermit's settings are usable."""

from __future__ import annotations

import os
import sys

import pytest
from scrapy.settings import Settings

from hermit.settings import InvalidSetting
from hermit.worker.preflight import UnknownSpider, check_settings, find_spider, preflight
from hermit.worker.run import WorkerOptions

SPIDER = """
import scrapy


class BooksSpider(scrapy.Spider):
    name = "books"
    custom_settings = {"HERMIT_IDLE_POLL_SECONDS": "never"}
"""


@pytest.mark.parametrize(("name", "value", "message"), [
    ("HERMIT_PREFETCH_REQUESTS", "abc", "HERMIT_PREFETCH_REQUESTS must be an integer, got 'abc'"),
    ("HERMIT_LEASE_TIMEOUT_SECONDS", "0", "HERMIT_LEASE_TIMEOUT_SECONDS must be at least 0.1, got '0'"),
    ("HERMIT_DEDUP_ERROR_RATIO", "2", "HERMIT_DEDUP_ERROR_RATIO must be between 0 and 1, got 2.0"),
    ("HERMIT_DRAIN_TIMEOUT_SECONDS", "x", "HERMIT_DRAIN_TIMEOUT_SECONDS must be a number, got 'x'"),
    ("HERMIT_DEDUP_KNOWN_FINGERPRINTS", "-5", "HERMIT_DEDUP_KNOWN_FINGERPRINTS must be at least 0, got '-5'"),
    # Scrapy's own settings that Hermit reads are checked the same way.
    ("CONCURRENT_REQUESTS", "lots", "CONCURRENT_REQUESTS must be an integer, got 'lots'"),
    ("CONCURRENT_REQUESTS_PER_DOMAIN", "x", "CONCURRENT_REQUESTS_PER_DOMAIN must be an integer, got 'x'"),
    ("DOWNLOAD_DELAY", "-1", "DOWNLOAD_DELAY must be at least 0, got '-1'"),
])
def test_an_invalid_setting_is_named_with_its_value_and_what_is_expected(name, value, message):
    with pytest.raises(InvalidSetting) as raised:
        check_settings(Settings({name: value}), "books")
    assert str(raised.value) == message


def test_valid_settings_pass():
    check_settings(Settings({"HERMIT_PREFETCH_REQUESTS": "8", "HERMIT_MEMORY_BUDGET_BYTES": "1000"}), "books")


def test_spiders_are_found_in_the_project_and_an_unknown_one_lists_them(scrapy_project, monkeypatch):
    project = scrapy_project("shop", {"spiders/books.py": SPIDER})
    monkeypatch.chdir(project.root)
    environ, path = dict(os.environ), list(sys.path)
    with pytest.raises(UnknownSpider, match=r"unknown spider 'bookz' \(this project's spiders: books, demo\)"):
        preflight(WorkerOptions(spider="bookz"))
    # The spider's own custom_settings are checked too.
    with pytest.raises(InvalidSetting, match="HERMIT_IDLE_POLL_SECONDS must be a number, got 'never'"):
        preflight(WorkerOptions(spider="books"))
    # Scrapy's project lookup changes the process' environment; the check puts it back,
    # so workers started later in another directory don't find this project.
    assert dict(os.environ) == environ and sys.path == path


def test_the_demo_spider_is_there_outside_any_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_spider(Settings(), "demo").name == "demo"
    with pytest.raises(UnknownSpider, match=r"\(no Scrapy project here; spiders: demo\)"):
        find_spider(Settings(), "books")
