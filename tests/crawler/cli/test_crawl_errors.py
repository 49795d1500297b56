"""Mistakes a restart can't fix end ``hermit crawl`` at once: one clear message, a non-zero exit, no loop.

Each command runs with a bound on how long it may take: a crawl that loops forever
fails the test by timing out rather than hanging it.
"""

from __future__ import annotations

import subprocess
import sys

from hermit.worker.exit_codes import EXIT_CONFIG, EXIT_FAILED, EXIT_REDIS_UNAVAILABLE

ERROR_TIMEOUT_SECONDS = 120.0


def crawl(hermit_cli, tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return hermit_cli("crawl", "--state-dir", str(tmp_path / "state"), "-o", str(tmp_path / "items.jsonl"),
                      "--log-dir", str(tmp_path / "logs"), *args, cwd=tmp_path, timeout=ERROR_TIMEOUT_SECONDS)


def error_lines(proc: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("Error: ")]


def no_worker_started(tmp_path) -> bool:
    return not list((tmp_path / "logs").glob("worker-*.log"))


def test_unknown_spider_lists_the_spiders(hermit_cli, tmp_path):
    proc = crawl(hermit_cli, tmp_path, "nosuchspider", "--url", "http://127.0.0.1:9/")
    assert proc.returncode == EXIT_CONFIG, proc.stderr[-3000:]
    assert error_lines(proc) == [
        "Error: unknown spider 'nosuchspider' (no Scrapy project here; spiders: demo)"], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert no_worker_started(tmp_path)


def test_unknown_spider_of_a_project_lists_the_projects_spiders(hermit_cli, scrapy_project, tmp_path):
    project = scrapy_project("shop", {"spiders/books.py": BOOKS_SPIDER})
    proc = hermit_cli("crawl", "bookz", "--url", "http://127.0.0.1:9/", "--state-dir", str(tmp_path / "state"),
                      cwd=project.root, timeout=ERROR_TIMEOUT_SECONDS)
    assert proc.returncode == EXIT_CONFIG, proc.stderr[-3000:]
    assert error_lines(proc) == ["Error: unknown spider 'bookz' (this project's spiders: books, demo)"]


def test_invalid_setting_names_the_setting_its_value_and_what_is_expected(hermit_cli, tmp_path):
    proc = crawl(hermit_cli, tmp_path, "-s", "HERMIT_PREFETCH_REQUESTS=abc")
    assert proc.returncode == EXIT_CONFIG, proc.stderr[-3000:]
    assert error_lines(proc) == [
        "Error: invalid setting: HERMIT_PREFETCH_REQUESTS must be an integer, got 'abc'"], proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert no_worker_started(tmp_path)


def test_unreachable_redis_at_start(hermit_cli, tmp_path):
    proc = crawl(hermit_cli, tmp_path, "--redis", "redis://127.0.0.1:1/0", "--url", "http://127.0.0.1:9/")
    assert proc.returncode == EXIT_REDIS_UNAVAILABLE, proc.stderr[-3000:]
    [line] = error_lines(proc)
    assert line.startswith("Error: cannot reach Redis at redis://127.0.0.1:1/0: ")
    assert "Traceback" not in proc.stderr
    assert no_worker_started(tmp_path)


BOOKS_SPIDER = """
import scrapy


class BooksSpider(scrapy.Spider):
    name = "books"
    start_urls = ["http://127.0.0.1:9/"]
"""

FAILING_SPIDER = """
import scrapy


class BrokenSpider(scrapy.Spider):
    name = "broken"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        raise RuntimeError("the catalogue file is missing")
"""


def test_a_worker_that_keeps_failing_right_after_start_ends_the_crawl_with_its_error(
    hermit_cli, scrapy_project, tmp_path, demo_site,
):
    project = scrapy_project("broken", {"spiders/broken.py": FAILING_SPIDER})
    proc = hermit_cli("crawl", "broken", "--workers", "2", "-a", f"url={demo_site.url}",
                      "--state-dir", str(tmp_path / "state"), "--log-dir", str(tmp_path / "logs"),
                      cwd=project.root, timeout=ERROR_TIMEOUT_SECONDS)
    assert proc.returncode == EXIT_FAILED, proc.stderr[-3000:]
    [line] = error_lines(proc)
    assert "failed 3 times in a row within 5s of starting" in line, proc.stderr[-3000:]
    # The worker's own last error lines come with it.
    details = proc.stderr[proc.stderr.index(line):]
    assert "RuntimeError: the catalogue file is missing" in details
    assert "resume with:" in proc.stderr  # the state is kept for after the fix


def test_hermit_worker_refuses_an_invalid_setting_before_the_engine_opens(tmp_path, redis_url):
    proc = subprocess.run(
        [sys.executable, "-m", "hermit.cli", "worker", "demo", "--redis", redis_url, "-a", "url=http://127.0.0.1:9/",
         "-s", "HERMIT_LEASE_TIMEOUT_SECONDS=soon"],
        capture_output=True, text=True, timeout=ERROR_TIMEOUT_SECONDS,
    )
    assert proc.returncode == EXIT_CONFIG
    assert proc.stderr.count("Invalid settings: HERMIT_LEASE_TIMEOUT_SECONDS must be a number, got 'soon'") == 1
    assert "Spider opened" not in proc.stderr and "Traceback" not in proc.stderr


def test_scrapy_crawl_with_the_addon_refuses_an_invalid_setting_before_the_engine_opens(scrapy_project, redis_url):
    project = scrapy_project("shop", {"spiders/books.py": BOOKS_SPIDER}, settings=f'HERMIT_REDIS_URL = "{redis_url}"\n')
    proc = subprocess.run(project.command("books", "-s", "HERMIT_PREFETCH_REQUESTS=-3"), cwd=project.root,
                          capture_output=True, text=True, timeout=ERROR_TIMEOUT_SECONDS, env=project.env(False))
    assert proc.returncode != 0
    assert "HERMIT_PREFETCH_REQUESTS must be at least 0, got '-3'" in proc.stderr
    assert "Engine slot not assigned" not in proc.stderr
    assert "Spider opened" not in proc.stderr
