"""``hermit items export``: the durable item stream as JSON Lines."""

from __future__ import annotations

import json

from click.testing import CliRunner

from hermit.cli import main
from hermit.keys import CrawlKeys


def test_export_writes_every_item_in_order(redis_url, redis_client, tmp_path):
    keys = CrawlKeys("shop")
    for i in range(12_345):
        redis_client.xadd(keys.items, {"item": json.dumps({"n": i}).encode()})
    out = tmp_path / "items.jsonl"
    result = CliRunner().invoke(main, ["items", "export", "--redis", redis_url, "--crawl", "shop", "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "exported 12345 items" in result.output
    assert [json.loads(line)["n"] for line in out.read_text().splitlines()] == list(range(12_345))
    assert redis_client.xlen(keys.items) == 12_345  # exporting does not consume the stream


def test_export_of_a_crawl_without_items_is_empty(redis_url, tmp_path):
    out = tmp_path / "none.jsonl"
    result = CliRunner().invoke(main, ["items", "export", "--redis", redis_url, "--crawl", "none", "-o", str(out)])
    assert result.exit_code == 0
    assert out.read_text() == ""
    assert "exported 0 items" in result.output


def test_export_from_the_state_of_a_killed_crawl(tmp_path, hermit_process, hermit_cli, items_written, wait_for,
                                                 demo_items):
    # The one command that gets every acknowledged item out of a crawl that is not
    # running, without crawling on.
    proc = hermit_process("crawl", "--workers", "2", "--pages", "600", "--state-dir", "state", "-o", "items.jsonl",
                          "-s", "CONCURRENT_REQUESTS=4", cwd=tmp_path)
    wait_for(lambda: items_written(tmp_path / "state") >= 100, "the first items in the file")
    proc.kill()
    proc.wait()
    exported = hermit_cli("items", "export", "--state-dir", "state", "-o", "all.jsonl", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    written = demo_items(tmp_path / "items.jsonl", 600)
    everything = demo_items(tmp_path / "all.jsonl", 600)
    # Every item the killed crawl had written out is among those exported.
    assert set(written.urls) <= set(everything.urls)
    assert not everything.unexpected and everything.duplicates == 0
    assert f"exported {len(everything.urls)} items" in exported.stderr
