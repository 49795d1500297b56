"""The outbox: one transaction per flush, pushes before items before acks, nothing lost while Redis is down."""

from __future__ import annotations

import json

import pytest
import redis
from scrapy import Request

from hermit.keys import CrawlKeys
from hermit.queue.codec import encode_request
from hermit.queue.hosts import politeness_key
from hermit.queue.redis_queue import Ack, QueuedRequest, RedisRequestQueue
from hermit.redis_server import EmbeddedRedis
from hermit.seeding import RequestFingerprinter
from hermit.worker.outbox import Outbox
from hermit.worker.redis_health import RedisHealth

FINGERPRINTER = RequestFingerprinter()


def queued(url: str) -> QueuedRequest:
    request = Request(url)
    return QueuedRequest(encode_request(request, None), 0, FINGERPRINTER.fingerprint(request), politeness_key(request))


class ManualReactor:
    """Collects what the outbox schedules, so a test decides when it runs."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, object]] = []

    def call_later(self, delay: float, fn) -> None:
        self.calls.append((delay, fn))

    def run_pending(self) -> None:
        calls, self.calls = self.calls, []
        for _, fn in calls:
            fn()


@pytest.fixture
def own_redis(tmp_path):
    # Its own server, so the test can stop it without disturbing the others.
    with EmbeddedRedis(data_dir=tmp_path / "redis", appendonly=True, appendfsync="always") as server:
        yield server


def make_outbox(url: str, reactor: ManualReactor, pushed: list, max_operations: int = 500):
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    queue = RedisRequestQueue(client, CrawlKeys("t"), worker_id="w")
    outbox = Outbox(queue, health=RedisHealth(first_delay_seconds=0.01), call_later=reactor.call_later,
                    max_operations=max_operations, on_pushed=lambda ctx, ok: pushed.extend(zip(ctx, ok)))
    return queue, outbox


def test_one_turn_of_writes_is_one_transaction(redis_url, redis_client):
    reactor, pushed = ManualReactor(), []
    queue, outbox = make_outbox(redis_url, reactor, pushed)
    queue.push_many([queued("http://127.0.0.1/seed")])
    lease = queue.lease(1)[0]
    outbox.push(queued("http://127.0.0.1/a"), context="a")
    outbox.push(queued("http://127.0.0.1/a"), context="a-again")
    outbox.add_item(b'{"page": "seed"}')
    outbox.ack(Ack(lease.id, lease.host))
    assert outbox.pending == 4
    assert len(reactor.calls) == 1  # one flush scheduled for the whole turn
    assert redis_client.xlen(CrawlKeys("t").items) == 0  # nothing written yet
    reactor.run_pending()
    assert outbox.pending == 0 and outbox.flushes == 1
    assert pushed == [("a", True), ("a-again", False)]
    assert redis_client.hlen(CrawlKeys("t").leases("w")) == 0
    assert [json.loads(f[b"item"]) for _, f in redis_client.xrange(CrawlKeys("t").items)] == [{"page": "seed"}]


def test_a_full_outbox_flushes_at_once(redis_url):
    reactor, pushed = ManualReactor(), []
    _, outbox = make_outbox(redis_url, reactor, pushed, max_operations=3)
    for i in range(3):
        outbox.push(queued(f"http://127.0.0.1/{i}"), context=i)
    assert outbox.pending == 0
    assert [ok for _, ok in pushed] == [True, True, True]


def test_writes_wait_while_redis_is_down_and_land_once_it_is_back(own_redis):
    reactor, pushed = ManualReactor(), []
    queue, outbox = make_outbox(own_redis.url, reactor, pushed)
    queue.push_many([queued("http://127.0.0.1/seed")])
    lease = queue.lease(1)[0]
    own_redis.stop()
    outbox.push(queued("http://127.0.0.1/child"), context="child")
    outbox.add_item(b'{"n": 1}')
    outbox.ack(Ack(lease.id, lease.host))
    reactor.run_pending()  # the flush of this turn fails
    assert outbox.pending == 3  # kept, in order
    assert outbox.health.outage_started is not None
    [(delay, _)] = reactor.calls  # one retry, with backoff
    assert delay > 0
    own_redis.start()  # same port, same data (AOF)
    outbox.health.retry_at = 0.0
    reactor.run_pending()
    assert outbox.pending == 0
    assert pushed == [("child", True)]
    client = redis.Redis.from_url(own_redis.url)
    keys = CrawlKeys("t")
    assert client.hlen(keys.leases("w")) == 0
    assert client.xlen(keys.items) == 1
    assert queue.lease(5)[0].entry == queued("http://127.0.0.1/child").entry
    client.close()
