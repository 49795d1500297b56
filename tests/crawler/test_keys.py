"""Key names: every shard of a crawl has its own hash tag, and nothing else matches."""

import pytest

from hermit.keys import CrawlKeys
from hermit.local.runner import _forget_crawl


def test_shards_have_their_own_hash_tags_and_the_first_keeps_the_crawl_name():
    keys = CrawlKeys("shop")
    assert keys.ready == "hermit:{shop}:ready"
    assert keys.shard(0) == keys
    assert keys.shard(3).ready == "hermit:{shop~3}:ready"
    assert keys.shard(3).layout == keys.layout == "hermit:{shop}:layout"
    with pytest.raises(ValueError, match="shard index"):
        keys.shard(-1)


def test_forgetting_a_crawl_deletes_all_its_shards_and_nothing_of_other_crawls(redis_client):
    mine, other = CrawlKeys("shop"), CrawlKeys("shop.2")
    for keys in (mine, mine.shard(1), mine.shard(7), other, other.shard(1)):
        redis_client.set(keys.queued_count, 1)
    redis_client.set(mine.layout, 1)
    redis_client.set("unrelated", 1)

    _forget_crawl(redis_client, mine)

    assert sorted(k.decode() for k in redis_client.keys("*")) == sorted(
        [other.queued_count, other.shard(1).queued_count, "unrelated"])
