"""The outbox: one transaction per flush, pushes before items before acks, nothing lost while Redis is down."""

from __future__ import annotations

import json
import queue as queue_module
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
from scrapy import Request

from hermit.keys import CrawlKeys
from hermit.queue.codec import encode_request
from hermit.queue.hosts import politeness_key
from hermit.queue.frontier import Frontier
from hermit.queue.redis_queue import Ack, QueuedRequest
from hermit.redis_server import EmbeddedRedis
from hermit.seeding import RequestFingerprinter
from hermit.worker.outbox import Outbox
from hermit.worker.redis_health import RedisHealth

FINGERPRINTER = RequestFingerprinter()


def queued(url: str) -> QueuedRequest:
    request = Request(url)
    return QueuedRequest(encode_request(request, None), 0, FINGERPRINTER.fingerprint(request), politeness_key(request))


class ManualReactor:
    """Collects what the outbox schedules, so a test decides when it runs; calls
    from other threads (call_from_thread) are queued for the test's thread too."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, object]] = []
        self.from_threads: queue_module.Queue = queue_module.Queue()

    def call_later(self, delay: float, fn) -> None:
        self.calls.append((delay, fn))

    def call_from_thread(self, fn, *args) -> None:
        self.from_threads.put((fn, args, threading.get_ident()))

    def run_from_threads(self, timeout: float = 30.0) -> list[int]:
        """Wait for one call from another thread, run it here; the caller thread's id."""
        fn, args, ident = self.from_threads.get(timeout=timeout)
        fn(*args)
        return ident

    def run_pending(self) -> None:
        calls, self.calls = self.calls, []
        for _, fn in calls:
            fn()


@pytest.fixture
def own_redis(tmp_path):
    # Its own server, so the test can stop it without disturbing the others.
    with EmbeddedRedis(data_dir=tmp_path / "redis", appendonly=True, appendfsync="always") as server:
        yield server


def make_outbox(url: str, reactor: ManualReactor, pushed: list, max_operations: int = 500,
                executor: ThreadPoolExecutor | None = None):
    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    queue = Frontier(client, CrawlKeys("t"), worker_id="w")
    outbox = Outbox(queue, health=RedisHealth(first_delay_seconds=0.01), call_later=reactor.call_later,
                    max_operations=max_operations, on_pushed=lambda ctx, ok: pushed.extend(zip(ctx, ok)),
                    executor=executor, call_from_thread=reactor.call_from_thread if executor else None)
    return queue, outbox


@pytest.fixture
def executor():
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


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


def test_scheduled_flushes_are_sent_from_the_executor_and_handled_in_the_reactor(redis_url, redis_client, executor):
    reactor, pushed = ManualReactor(), []
    queue, outbox = make_outbox(redis_url, reactor, pushed, executor=executor)
    queue.push_many([queued("http://127.0.0.1/seed")])
    lease = queue.lease(1)[0]
    written_from = []
    write = queue.write

    def write_recording_its_thread(*args):
        written_from.append(threading.get_ident())
        return write(*args)

    queue.write = write_recording_its_thread
    outbox.push(queued("http://127.0.0.1/a"), context="a")
    outbox.add_item(b'{"page": "seed"}')
    outbox.ack(Ack(lease.id, lease.host))
    reactor.run_pending()  # starts the send in the executor's thread
    assert outbox.pending == 3  # in flight until its outcome is handled
    outbox.push(queued("http://127.0.0.1/b"), context="b")  # the next batch meanwhile
    # Its outcome is handled here, through call_from_thread (called by the executor's
    # thread, or by this one when the send was over before it asked to be told).
    reactor.run_from_threads()
    assert len(written_from) == 1 and written_from[0] != threading.get_ident()
    assert pushed == [("a", True)] and outbox.flushes == 1
    assert redis_client.hlen(CrawlKeys("t").leases("w")) == 0
    # What came in meanwhile is the next batch, scheduled when the first one is done.
    reactor.run_pending()
    reactor.run_from_threads()
    assert pushed == [("a", True), ("b", True)] and outbox.pending == 0
    assert len(written_from) == 2 and threading.get_ident() not in written_from


def test_a_direct_flush_waits_for_the_batch_in_flight_and_handles_it_once(redis_url, executor):
    reactor, pushed = ManualReactor(), []
    _, outbox = make_outbox(redis_url, reactor, pushed, executor=executor)
    outbox.push(queued("http://127.0.0.1/a"), context="a")
    reactor.run_pending()  # in flight
    outbox.push(queued("http://127.0.0.1/b"), context="b")
    assert outbox.flush() and outbox.pending == 0
    assert pushed == [("a", True), ("b", True)]  # in order
    reactor.run_from_threads()  # the executor's late notice: already handled
    assert pushed == [("a", True), ("b", True)] and outbox.flushes == 2


def test_a_batch_that_failed_in_the_executor_is_kept_and_sent_again_first(own_redis, executor):
    reactor, pushed = ManualReactor(), []
    queue, outbox = make_outbox(own_redis.url, reactor, pushed, executor=executor)
    queue.push_many([queued("http://127.0.0.1/seed")])
    lease = queue.lease(1)[0]
    own_redis.stop()
    outbox.push(queued("http://127.0.0.1/child"), context="child")
    outbox.ack(Ack(lease.id, lease.host))
    reactor.run_pending()
    reactor.run_from_threads()  # it failed
    assert outbox.pending == 2 and outbox.health.outage_started is not None
    outbox.push(queued("http://127.0.0.1/later"), context="later")
    own_redis.start()
    outbox.health.retry_at = 0.0
    [(delay, _)] = reactor.calls
    assert delay > 0
    reactor.run_pending()
    reactor.run_from_threads()
    assert pushed == [("child", True)]  # the failed batch alone, first
    reactor.run_pending()
    reactor.run_from_threads()
    assert pushed == [("child", True), ("later", True)] and outbox.pending == 0
    client = redis.Redis.from_url(own_redis.url)
    assert client.hlen(CrawlKeys("t").leases("w")) == 0
    client.close()


def test_an_executor_needs_call_from_thread(redis_url, executor):
    client = redis.Redis.from_url(redis_url)
    queue = Frontier(client, CrawlKeys("t"), worker_id="w")
    with pytest.raises(ValueError, match="call_from_thread"):
        Outbox(queue, health=RedisHealth(), call_later=lambda *a: None, executor=executor)
    client.close()
