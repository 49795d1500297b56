"""``hermit status``: what is queued, leased, dead-lettered and deduplicated, read from Redis."""

from __future__ import annotations

import json

from click.testing import CliRunner
from scrapy import Request

from hermit.cli import main
from hermit.keys import CrawlKeys
from hermit.queue.codec import encode_request
from hermit.queue.hosts import politeness_key
from hermit.queue.redis_queue import QueuedRequest, RedisRequestQueue
from hermit.seeding import RequestFingerprinter


def fill_crawl(redis_client) -> None:
    queue = RedisRequestQueue(redis_client, CrawlKeys("shop"), worker_id="w1")
    fingerprinter = RequestFingerprinter()
    # Two hosts, five requests each.
    requests = [Request(f"http://127.0.0.{1 + i % 2}:8000/{i}.html", priority=i % 2) for i in range(10)]
    queue.push_many([QueuedRequest(encode_request(r, None), r.priority, fingerprinter.fingerprint(r),
                                   politeness_key(r))
                     for r in requests + requests[:3]])
    leases = queue.lease(4)
    queue.dead_letter(leases[0], "test: undecodable")
    redis_client.xadd(CrawlKeys("shop").items, {"item": b'{"a": 1}'})


def test_status_reports_queue_leases_dead_letters_and_dedup(redis_url, redis_client):
    fill_crawl(redis_client)
    result = CliRunner().invoke(main, ["status", "--redis", redis_url, "--crawl", "shop", "--json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert status["queue"]["queued"] == 6
    # The lease took from both hosts in turn.
    assert status["queue"]["hosts"]["with_queue"] == 2
    assert status["queue"]["hosts"]["active"] == 2
    assert status["queue"]["hosts"]["ready"] == 2
    assert set(status["hosts"]["busiest"]) == {"127.0.0.1", "127.0.0.2"}
    assert status["queue"]["schedulable"] == 6  # 2 hosts x 8 slots, more than queued
    assert status["queue"]["leased"] == 3
    assert status["queue"]["workers"] == 1
    assert status["queue"]["dead_letters"] == 1
    assert status["queue"]["counters"]["enqueued"] == 10
    assert status["queue"]["counters"]["duplicates"] == 3
    assert status["items"] == 1
    assert status["bloom"]["items"] == 10
    assert 0 < status["bloom"]["fill_ratio"] < 0.01

    text = CliRunner().invoke(main, ["status", "--redis", redis_url, "--crawl", "shop"])
    assert text.exit_code == 0
    assert "queued          6" in text.output
    assert "hosts           2 with queued requests: 2 ready now" in text.output
    assert "leased          3  (1 workers)" in text.output
    assert "dead letters    1" in text.output
    assert "dedup           10 fingerprints" in text.output


def test_status_of_an_empty_crawl_and_bad_arguments(redis_url):
    empty = CliRunner().invoke(main, ["status", "--redis", redis_url, "--crawl", "nothing"])
    assert empty.exit_code == 0
    assert "queued          0" in empty.output
    assert "no Bloom filter yet" in empty.output
    bad_name = CliRunner().invoke(main, ["status", "--redis", redis_url, "--crawl", "a b:c"])
    assert bad_name.exit_code == 2
    assert "--crawl" in bad_name.output
    down = CliRunner().invoke(main, ["status", "--redis", "redis://127.0.0.1:9/0", "--crawl", "x"])
    assert down.exit_code == 1
    assert "cannot reach Redis" in down.output
