"""add_items.lua on a real Redis: a worker's write batch lands in the crawl's stream once."""

from __future__ import annotations

from hermit.items.stream import FLUSH_MARKER_SECONDS
from hermit.keys import CrawlKeys
from hermit.queue.redis_queue import RedisRequestQueue


def test_a_resent_batch_of_items_is_appended_once(redis_client):
    def worker(name: str) -> RedisRequestQueue:
        return RedisRequestQueue(redis_client, CrawlKeys("c"), name)

    items_key = CrawlKeys("c").items
    q = worker("w1")
    q.add_items([b'{"n": 1}', b'{"n": 2}'], batch=0)
    q.add_items([b'{"n": 1}', b'{"n": 2}'], batch=0)  # the same batch, its reply lost
    assert redis_client.xlen(items_key) == 2
    q.add_items([b'{"n": 3}'], batch=1)
    assert [f[b"item"] for _, f in redis_client.xrange(items_key)] == [b'{"n": 1}', b'{"n": 2}', b'{"n": 3}']
    # Batch numbers are per worker.
    worker("w2").add_items([b'{"n": 4}'], batch=0)
    assert redis_client.xlen(items_key) == 4
    # Markers don't pile up: each lasts FLUSH_MARKER_SECONDS.
    assert 0 < redis_client.ttl(CrawlKeys("c").flushed("w1")) <= FLUSH_MARKER_SECONDS
