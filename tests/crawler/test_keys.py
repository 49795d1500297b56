"""Key names: every shard of a crawl has its own hash tag, and nothing else matches."""

import pytest

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from hermit.keys import CrawlKeys, spread_tag
from hermit.local.runner import _forget_crawl


def test_shards_have_their_own_hash_tags_and_the_first_keeps_the_crawl_name():
    keys = CrawlKeys("shop")
    assert keys.ready == "hermit:{shop}:ready"
    assert keys.shard(0) == keys
    assert keys.shard(3).ready == "hermit:{shop~3}:ready"
    assert keys.shard(3).layout == keys.layout == "hermit:{shop}:layout"
    with pytest.raises(ValueError, match="shard index"):
        keys.shard(-1)


def shards_per_master(keys: CrawlKeys, shards: int, masters: int) -> list[int]:
    """How many of the crawl's shards each of *masters* holds, the slots split in equal runs."""
    counts = [0] * masters
    for i in range(shards):
        tag = keys.shard(i).base.split("{")[1].split("}")[0]
        counts[key_slot(f"{{{tag}}}".encode()) * masters // REDIS_CLUSTER_HASH_SLOTS] += 1
    return counts


def test_spread_tags_share_the_shards_out_evenly_over_equal_runs_of_slots():
    plain_worst = spread_worst = 0
    for n in range(200):
        plain, spread = CrawlKeys(f"crawl-{n}"), CrawlKeys(f"crawl-{n}", spread_shards=True)
        assert spread.shard(0) == spread and spread.ready == plain.ready  # shard 0: the crawl name
        assert spread.shard(5).ready == f"hermit:{{{spread_tag(f'crawl-{n}', 5)}}}:ready"
        for masters, shards in ((3, 16), (6, 16), (6, 32), (4, 8)):
            spread_counts = shards_per_master(spread, shards, masters)
            assert sum(spread_counts) == shards
            # The best split gives each master shards/masters rounded up: at most one more.
            assert max(spread_counts) <= -(-shards // masters) + 1, (n, masters, shards, spread_counts)
            spread_worst = max(spread_worst, max(spread_counts) * masters / shards)
            plain_worst = max(plain_worst, max(shards_per_master(plain, shards, masters)) * masters / shards)
    assert plain_worst >= 2 > spread_worst  # plain tags leave some master with twice its share


def test_forgetting_a_crawl_deletes_all_its_shards_and_nothing_of_other_crawls(redis_client):
    mine, other = CrawlKeys("shop"), CrawlKeys("shop.2")
    for keys in (mine, mine.shard(1), mine.shard(7), other, other.shard(1)):
        redis_client.set(keys.queued_count, 1)
    redis_client.set(mine.layout, 1)
    redis_client.set("unrelated", 1)

    _forget_crawl(redis_client, mine)

    assert sorted(k.decode() for k in redis_client.keys("*")) == sorted(
        [other.queued_count, other.shard(1).queued_count, "unrelated"])
