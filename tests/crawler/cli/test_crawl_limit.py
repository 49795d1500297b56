"""``hermit crawl`` stopped by a limit (crawl-wide, or Scrapy's per-worker CLOSESPIDER_*) keeps
what is queued: the same command with a higher limit, then none, carries on, nothing lost."""

from __future__ import annotations

PAGES = 200
WORKERS = 2
CONCURRENCY = 4


def crawl_args(*extra: str) -> list[str]:
    return [
        "crawl", "--workers", str(WORKERS), "--pages", str(PAGES), "--state-dir", "state",
        "-o", "items.jsonl", "--log-dir", "logs", "--idle-close-seconds", "1",
        "-s", f"CONCURRENT_REQUESTS={CONCURRENCY}", *extra,
    ]


def test_a_crawl_stopped_at_its_page_limit_keeps_its_queue_and_a_higher_limit_carries_on(
        tmp_path, hermit_cli, demo_items):
    first = hermit_cli(*crawl_args("-s", "HERMIT_CRAWL_PAGECOUNT=40"), cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert "The workers stopped at a limit (HERMIT_CRAWL_*, CLOSESPIDER_*) with" in first.stdout
    assert "hermit crawl --workers" in first.stdout  # the command that carries on
    partial = demo_items(tmp_path / "items.jsonl", PAGES)
    # 40 responses at most (the home page and a 404 among them) and the downloads in flight.
    assert partial.lost and not partial.unexpected and 30 <= len(partial.urls) <= 40 + WORKERS * CONCURRENCY
    assert (tmp_path / "state" / "redis").is_dir()

    higher = hermit_cli(*crawl_args("-s", "HERMIT_CRAWL_PAGECOUNT=100"), cwd=tmp_path)
    assert higher.returncode == 0, higher.stdout[-2000:] + higher.stderr[-3000:]
    assert "(resumed)" in higher.stdout and "The workers stopped at a limit" in higher.stdout
    more = demo_items(tmp_path / "items.jsonl", PAGES)
    assert more.lost and 80 <= len(more.urls) <= 100 + 2 * WORKERS * CONCURRENCY

    rest = hermit_cli(*crawl_args(), cwd=tmp_path)
    assert rest.returncode == 0, rest.stdout[-2000:] + rest.stderr[-3000:]
    assert "stopped at a limit" not in rest.stdout
    items = demo_items(tmp_path / "items.jsonl", PAGES)
    assert not items.lost and not items.unexpected
    assert not (tmp_path / "state").exists()  # a finished crawl keeps no state


def test_a_crawl_whose_workers_stop_at_closespider_pagecount_ends_and_carries_on(tmp_path, hermit_cli, demo_items):
    # Per worker: each stops after its own 10 pages; that is a worker's end, not a crash to restart.
    first = hermit_cli(*crawl_args("-s", "CLOSESPIDER_PAGECOUNT=10"), cwd=tmp_path)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-3000:]
    assert "died" not in first.stderr and "The workers stopped at a limit" in first.stdout
    partial = demo_items(tmp_path / "items.jsonl", PAGES)
    # Per worker: its 10 responses, the downloads in flight, and those Scrapy's engine
    # still started in the turn before its close took effect (Scrapy closes on the
    # next turn of the reactor after the 10th response, in plain Scrapy too).
    assert partial.lost and len(partial.urls) <= WORKERS * (10 + 2 * CONCURRENCY)
    rest = hermit_cli(*crawl_args(), cwd=tmp_path)
    assert rest.returncode == 0, rest.stdout[-2000:] + rest.stderr[-3000:]
    items = demo_items(tmp_path / "items.jsonl", PAGES)
    assert not items.lost and not items.unexpected
    assert not (tmp_path / "state").exists()
