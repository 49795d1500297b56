"""A local crawl's state directory: one user at a time, saved whole, refused when it is another crawl's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hermit.local.runner import CrawlFailed, LocalCrawl, LocalCrawlOptions
from hermit.local.state import ItemsCursor, SavedCrawl, StateDir, StateError

HOLD_LOCK = """
import sys, time
from pathlib import Path
from hermit.local.state import StateDir
state = StateDir(Path(sys.argv[1]))
state.lock()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_directory_another_process_uses_is_refused_until_that_process_ends(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(tmp_path / "state")],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StateError, match=f"another hermit crawl \\(pid {holder.pid}\\) is using"):
            StateDir(tmp_path / "state").lock()
    finally:
        holder.kill()  # however it ends, the kernel drops its lock
        holder.wait()
    state = StateDir(tmp_path / "state")
    state.lock()
    state.unlock()


def test_saved_crawl_round_trips_and_a_broken_file_is_refused(tmp_path):
    state = StateDir(tmp_path / "state")
    saved = SavedCrawl(crawl="c", spider="demo", demo_pages=10, demo_port=8123, runs=2,
                       items=ItemsCursor(path="/x/items.jsonl", last_id="1-0", size=55, items=3))
    state.save(saved)
    assert state.load() == saved
    state.state_file.write_text("{not json")
    with pytest.raises(StateError, match="unreadable"):
        state.load()
    state.state_file.write_text('{"version": 999}')
    with pytest.raises(StateError, match="another Hermit version"):
        state.load()


def test_a_state_directory_of_another_crawl_is_refused(tmp_path):
    StateDir(tmp_path / "state").save(SavedCrawl(crawl="books", spider="books"))
    options = LocalCrawlOptions(state_dir=tmp_path / "state", output=tmp_path / "items.jsonl")
    with pytest.raises(CrawlFailed, match="holds another crawl \\(crawl 'books' of spider 'books'\\); --fresh"):
        LocalCrawl(options).run()
    assert StateDir(tmp_path / "state").load() is not None  # refused, not touched
