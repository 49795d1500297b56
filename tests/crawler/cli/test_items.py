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
