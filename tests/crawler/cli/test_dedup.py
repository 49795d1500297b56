"""``hermit dedup migrate`` and ``hermit dedup info`` through click's CliRunner."""

from __future__ import annotations

import hashlib
import json

from click.testing import CliRunner

from hermit.dedup.bloom import RedisBloomFilter
from hermit.cli.dedup import dedup_group
from hermit.keys import CrawlKeys
from hermit.queue.frontier import Frontier
from hermit.queue.redis_queue import QueuedRequest
from hermit.queue.shards import crawl_shards, shard_keys

SOURCE = "myspider:dupefilter"


def fill_set(client, count: int, prefix: str = "cli") -> list[str]:
    members = [hashlib.sha1(f"{prefix}-{i}".encode()).hexdigest() for i in range(count)]
    client.sadd(SOURCE, *members)
    return members


def run(*args: str):
    return CliRunner().invoke(dedup_group, list(args), catch_exceptions=False)


def test_migrate_then_info(redis_url, redis_client):
    members = fill_set(redis_client, 2500)
    redis_client.sadd(SOURCE, "garbage")
    result = run("migrate", "--redis", redis_url, "--crawl", "spider", "--from-key", SOURCE,
                 "--batch-size", "500", "--capacity", "5000", "--error-ratio", "0.001")
    assert result.exit_code == 0, result.output
    assert "scanned 2501: 2500 added, 0 already in the filter, 1 invalid skipped" in result.output
    assert "filter holds 2500 fingerprints in 1 layer(s)" in result.output
    assert redis_client.scard(SOURCE) == 2501

    bloom = RedisBloomFilter(redis_client, CrawlKeys("spider"))
    assert all(bloom.contains_many([bytes.fromhex(m) for m in members]))
    info = bloom.info()
    assert (info.capacity, info.error_ratio) == (5000, 0.001)

    shown = run("info", "--redis", redis_url, "--crawl", "spider")
    assert shown.exit_code == 0, shown.output
    assert "2,500 of 5,000 (fill 50.0%)" in shown.output
    assert "target 1.00e-03" in shown.output and "layer 0" in shown.output
    assert "kind            blocked (8192-bit blocks)" in shown.output

    as_json = json.loads(run("info", "--redis", redis_url, "--crawl", "spider", "--json").output)
    assert as_json["items"] == 2500 and as_json["layers"] == 1 and as_json["memory_bytes"] > 0
    assert as_json["kind"] == "blocked"


def test_migrate_delete_source_and_default_capacity(redis_url, redis_client):
    fill_set(redis_client, 3000)
    result = run("migrate", "--redis", redis_url, "--crawl", "spider", "--from-key", SOURCE, "--delete-source")
    assert result.exit_code == 0, result.output
    assert "3000 added" in result.output and f"0 left in {SOURCE}" in result.output
    assert not redis_client.exists(SOURCE)
    # Created by the migration, sized for at least the default million.
    assert RedisBloomFilter(redis_client, CrawlKeys("spider")).info().capacity == 1_000_000


def test_unreachable_redis_is_one_line(redis_url):
    result = run("migrate", "--redis", "redis://:secret@127.0.0.1:1/0", "--crawl", "spider", "--from-key", SOURCE)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: cannot reach Redis at redis://:***@127.0.0.1:1/0")
    assert "secret" not in result.output
    result = run("info", "--redis", "redis://127.0.0.1:1/0", "--crawl", "spider")
    assert result.exit_code == 1 and "cannot reach Redis" in result.output


def test_source_not_a_set_or_missing(redis_url, redis_client):
    result = run("migrate", "--redis", redis_url, "--crawl", "spider", "--from-key", SOURCE)
    assert result.exit_code == 1 and f"Error: '{SOURCE}' does not exist" in result.output
    redis_client.set(SOURCE, "x")
    result = run("migrate", "--redis", redis_url, "--crawl", "spider", "--from-key", SOURCE)
    assert result.exit_code == 1 and f"Error: '{SOURCE}' is a string, not a SET" in result.output
    assert RedisBloomFilter(redis_client, CrawlKeys("spider")).info() is None


def test_info_without_a_filter_and_bad_crawl_name(redis_url):
    result = run("info", "--redis", redis_url, "--crawl", "spider")
    assert result.exit_code == 0 and "no Bloom filter for crawl 'spider' yet" in result.output
    assert run("info", "--redis", redis_url, "--crawl", "spider", "--json").output.strip() == "null"
    result = run("info", "--redis", redis_url, "--crawl", "bad{name}")
    assert result.exit_code == 2 and "invalid crawl name" in result.output


def test_options_from_the_environment(redis_url, redis_client):
    fill_set(redis_client, 10)
    result = CliRunner().invoke(
        dedup_group, ["migrate", "--from-key", SOURCE],
        env={"HERMIT_REDIS_URL": redis_url, "HERMIT_CRAWL": "fromenv"},
    )
    assert result.exit_code == 0, result.output
    assert RedisBloomFilter(redis_client, CrawlKeys("fromenv")).info().items == 10


def test_migrate_into_a_sharded_crawl_then_info_over_its_shards(redis_url, redis_client):
    # A crawl created with four shards: each fingerprint goes to its own shard's filter,
    # where the frontier's pushes will look for it.
    keys = CrawlKeys("sharded")
    crawl_shards(redis_client, keys, 4)
    members = fill_set(redis_client, 2000, "sharded")
    result = run("migrate", "--redis", redis_url, "--crawl", "sharded", "--from-key", SOURCE,
                 "--capacity", "8000")
    assert result.exit_code == 0, result.output
    assert "2000 added" in result.output and "filter holds 2000 fingerprints in 4 layer(s) over 4 shards" in result.output

    fingerprints = [bytes.fromhex(m) for m in members]
    frontier = Frontier(redis_client, keys, "w", shards=4)
    requests = [QueuedRequest(b"{}", 0, fp, "example.com") for fp in fingerprints]
    assert frontier.push_many(requests) == [0] * len(requests)  # all seen: nothing queued
    for shard in shard_keys(redis_client, keys):
        info = RedisBloomFilter(redis_client, shard).info()
        assert info.capacity == 2000 and 400 < info.items < 600

    shown = run("info", "--redis", redis_url, "--crawl", "sharded")
    assert shown.exit_code == 0, shown.output
    assert "2,000 of 8,000 (fill 25.0%)" in shown.output
    assert "layers          4 layer(s) over 4 shards" in shown.output
