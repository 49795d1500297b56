"""Queue benchmark: Hermit's Redis request queue vs scrapy-redis' PriorityQueue.

Measures, against one embedded Redis started here, for the same N ``scrapy.Request``
objects (shop URLs, GET, ``meta={"depth": d}``, a few priorities):

- Redis bytes per queued request: the ``used_memory`` delta (INFO memory) after
  enqueuing all N, divided by N, for Hermit's queue alone (no fingerprints, so no
  Bloom filter); Hermit's queue plus its Bloom filter (capacity 2N at 1e-4, with
  Scrapy's fingerprinter, as a worker does; a filter that reaches its capacity adds
  its next layer at once, so one of capacity exactly N would be measured a layer
  big); and scrapy-redis' ``PriorityQueue`` (a ZSET of pickled request dicts, its
  default). The DB is flushed between runs.
- enqueue and dequeue rates, encoding and decoding included: Hermit as a worker
  uses it (``push_many`` batches, ``lease`` + ``ack`` batches; and once more with
  the acks sent from a thread of their own while the next batch is leased and
  decoded, as a worker's outbox sends them), Hermit with batches
  of 1 (on 20,000 requests, 5,000 with --quick: it is round-trip bound), and
  scrapy-redis' ``push()``/``pop()`` one request at a time, as its scheduler calls
  them; and Hermit's encode/decode alone, to tell the Python side from the Redis one.
- the same for Hermit's opt-in pickle codec (``HERMIT_QUEUE_CODEC = "pickle"``):
  Redis bytes per request and enqueue/dequeue rates batched, and encode/decode alone;
- "rich" requests, what spiders pass between callbacks (a scrapy Item with a Decimal
  and a datetime, a dataclass holding a set, a UUID in ``meta``): entry bytes and
  encode/decode rates of both codecs, no Redis.

All runs are repeated in interleaved rounds and the medians reported.

Writes ``bench/results/queue.json`` and prints a table with ratios and targets. Run:

    .venv/bin/python bench/bench_queue.py            # 200,000 requests, ~4 minutes
    .venv/bin/python bench/bench_queue.py --quick    # 20,000 requests
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table
import dataclasses
import datetime as dt
import decimal
import uuid

import scrapy
from scrapy import Request, Spider
from scrapy.utils.request import RequestFingerprinter
from scrapy_redis.queue import PriorityQueue

from benchlib import machine_info, write_report
from hermit.keys import CrawlKeys
from hermit.queue.codec import decode_request, encode_request
from hermit.queue.hosts import politeness_key
from hermit.queue.redis_queue import Ack, BloomSettings, Politeness, QueuedRequest, RedisRequestQueue
from hermit.redis_server import EmbeddedRedis

RESULTS = Path(__file__).parent / "results" / "queue.json"
TARGET_BYTES_PER_REQUEST = 90
TARGET_RATE = 50_000

CATEGORIES = ("books", "garden-tools", "kitchen", "electronics", "toys", "sports-outdoors",
              "home-decor", "office", "pet-supplies", "beauty")
PRIORITIES = (0, 0, 0, 0, 1, 1, -1, 2)


class Product(scrapy.Item):
    name = scrapy.Field()
    price = scrapy.Field()
    listed = scrapy.Field()


@dataclasses.dataclass
class Listing:
    seller: str
    tags: set[str]


class BenchSpider(Spider):
    name = "bench"

    def parse_detail(self, response, product, listing):  # pragma: no cover - only named
        pass


def make_rich_requests(count: int, spider: BenchSpider) -> list[Request]:
    """Requests as a spider passing items between callbacks makes them."""
    return [
        Request(
            f"https://shop.example.com/item/{100_000 + i * 7919 % 900_000}.html",
            callback=spider.parse_detail, priority=PRIORITIES[i % len(PRIORITIES)],
            meta={"depth": 2 + i % 3, "trace": uuid.UUID(int=i)},
            cb_kwargs={
                "product": Product(name=f"Product {i}", price=decimal.Decimal(f"{i % 500}.99"),
                                   listed=dt.datetime(2026, 1, 1) + dt.timedelta(minutes=i)),
                "listing": Listing(seller=f"seller-{i % 97}", tags={"new", CATEGORIES[i % len(CATEGORIES)]}),
            },
        )
        for i in range(count)
    ]


def make_requests(count: int) -> list[Request]:
    return [
        Request(
            f"https://shop.example.com/catalog/{CATEGORIES[i % len(CATEGORIES)]}/"
            f"{100_000 + i * 7919 % 900_000}.html?page={1 + i % 40}",
            priority=PRIORITIES[i % len(PRIORITIES)],
            meta={"depth": 1 + i % 5},
        )
        for i in range(count)
    ]


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def flush(client: redis.Redis) -> None:
    client.execute_command("FLUSHALL", "SYNC")  # not lazily: used_memory must drop now


def measure(client: redis.Redis, n: int, enqueue: Callable[[], None], dequeue: Callable[[], int]) -> dict:
    """Time *enqueue* (all n) and *dequeue* (returns how many it decoded) on an empty DB."""
    flush(client)
    before = used_memory(client)
    started = time.perf_counter()
    enqueue()
    enqueue_seconds = time.perf_counter() - started
    queued_bytes = used_memory(client) - before
    started = time.perf_counter()
    decoded = dequeue()
    dequeue_seconds = time.perf_counter() - started
    assert decoded == n, f"dequeued {decoded} of {n}"
    flush(client)
    return {"bytes_per_request": queued_bytes / n, "enqueue_per_second": n / enqueue_seconds,
            "dequeue_per_second": n / dequeue_seconds}


def hermit_run(client: redis.Redis, spider: Spider, requests: list[Request], batch: int,
               dedup: bool = False, codec: str = "json", acks_from_thread: bool = False) -> dict[str, float]:
    """push_many all *requests* in batches (fingerprinted if *dedup*), then lease + ack them.

    The requests are of one host, which lets a worker fetch as many at once as a
    batch (its per-host concurrency): what is measured is the queue, not politeness.
    *acks_from_thread*: the acks go from a thread of their own, on a client of their
    own, while the next batch is leased and decoded, as a worker's outbox sends them.
    """
    bloom = BloomSettings(capacity=2 * len(requests))
    # Room for the batch being leased and the one being acked from the thread.
    politeness = Politeness(concurrency=max(batch, 1) * (2 if acks_from_thread else 1))
    # Load the scripts (and whatever Redis creates lazily) before the measure.
    warm = RedisRequestQueue(client, CrawlKeys("bench-warmup"), "warmup", bloom=bloom, politeness=politeness)
    warm.push_many([QueuedRequest(encode_request(requests[0], spider), 0, b"x" * 20, politeness_key(requests[0]))])
    warm.ack([Ack(lease.id, lease.host) for lease in warm.lease(1)])
    queue = RedisRequestQueue(client, CrawlKeys("bench"), "bench-worker", bloom=bloom, politeness=politeness)
    fingerprinter = RequestFingerprinter()

    def enqueue() -> None:
        for start in range(0, len(requests), batch):
            queue.push_many([
                QueuedRequest(encode_request(r, spider, codec), r.priority,
                              fingerprinter.fingerprint(r) if dedup else None, politeness_key(r))
                for r in requests[start:start + batch]
            ])

    def dequeue() -> int:
        decoded = 0
        while leases := queue.lease(batch):
            decoded += len([decode_request(lease.entry, spider, lease.priority, codec) for lease in leases])
            queue.ack([Ack(lease.id, lease.host) for lease in leases])
        return decoded

    def dequeue_acking_from_thread() -> int:
        decoded = 0
        acking = RedisRequestQueue(redis.Redis(connection_pool=client.connection_pool), CrawlKeys("bench"),
                                   "bench-worker", bloom=bloom, politeness=politeness)
        with ThreadPoolExecutor(max_workers=1) as outbox:
            sent = None
            while True:
                leases = queue.lease(batch)
                if not leases:
                    if sent is None:
                        break
                    sent.result()  # the host's slots were all held by the acks in flight
                    sent = None
                    continue
                decoded += len([decode_request(lease.entry, spider, lease.priority, codec) for lease in leases])
                if sent is not None:
                    sent.result()  # one batch of acks in flight at a time, as the outbox sends
                sent = outbox.submit(acking.ack, [Ack(lease.id, lease.host) for lease in leases])
            if sent is not None:
                sent.result()
        return decoded

    return measure(client, len(requests), enqueue, dequeue_acking_from_thread if acks_from_thread else dequeue)


def scrapy_redis_run(client: redis.Redis, spider: Spider, requests: list[Request]) -> dict[str, float]:
    """push() every request, then pop() them all, one at a time (default pickle serializer)."""
    queue = PriorityQueue(client, spider, "%(spider)s:requests")

    def enqueue() -> None:
        for request in requests:
            queue.push(request)

    def dequeue() -> int:
        decoded = 0
        while queue.pop() is not None:
            decoded += 1
        return decoded

    return measure(client, len(requests), enqueue, dequeue)


def codec_run(spider: Spider, requests: list[Request], codec: str = "json") -> dict[str, float]:
    """Hermit's encode and decode alone, without Redis: the floor of the rates above."""
    started = time.perf_counter()
    entries = [(encode_request(r, spider, codec), r.priority) for r in requests]
    encoded = time.perf_counter()
    for entry, priority in entries:
        decode_request(entry, spider, priority, codec)
    done = time.perf_counter()
    return {"encode_per_second": len(requests) / (encoded - started),
            "decode_per_second": len(requests) / (done - encoded),
            "entry_bytes": sum(len(entry) for entry, _ in entries) / len(entries)}


def print_table(report: dict, console: Console) -> None:
    h, hb, h1, s = (report["results"][k] for k in ("hermit_batched", "hermit_batched_with_bloom",
                                                     "hermit_unbatched", "scrapy_redis"))
    r, p, c = report["ratios"], report["params"], report["results"]["hermit_codec_only"]
    e = report["hermit_batched_redis_side_estimate"]
    table = Table(title=f"Request queue: {p['requests']:,} requests, {report['redis_server']},"
                        f" median of {p['rounds']}")
    columns = ("measure", f"Hermit ×{p['batch']}", "+ Bloom", "Hermit ×1", "scrapy-redis", "ratio", "target")
    for name in columns:
        table.add_column(name, justify="left" if name == "measure" else "right")

    def target(value: float, limit: float, below: bool) -> str:
        ok = value <= limit if below else value >= limit
        return f"{'≤' if below else '≥'} {limit:,} {'[green]met[/]' if ok else '[red]missed[/]'}"

    table.add_row("Redis bytes/request", *(f"{x['bytes_per_request']:.1f}" for x in (h, hb, h1, s)),
                  f"{r['bytes_per_request']:.2f}",
                  target(h["bytes_per_request"], TARGET_BYTES_PER_REQUEST, below=True))
    for what in ("enqueue", "dequeue"):
        key = f"{what}_per_second"
        table.add_row(f"{what}s/s", *(f"{x[key]:,.0f}" for x in (h, hb, h1, s)), f"{r[key]:.1f}x",
                      target(h[key], TARGET_RATE, below=False))
    console.print(table)
    codecs = Table(title="Codecs: Redis bytes/request and rates (plain requests, batched), and alone on "
                         f"{p['rich_requests']:,} rich requests (Item, Decimal, datetime, dataclass, set, UUID)")
    for name in ("codec", "Redis B/req", "enqueues/s", "dequeues/s", "plain entry B", "rich entry B",
                 "rich encodes/s", "rich decodes/s"):
        codecs.add_column(name, justify="left" if name == "codec" else "right")
    results = report["results"]
    for codec, batched, plain, rich in (
        ("json", h, c, results["hermit_codec_only_rich"]),
        ("pickle", results["hermit_pickle_batched"], results["hermit_codec_only_pickle"],
         results["hermit_codec_only_rich_pickle"]),
    ):
        codecs.add_row(codec, f"{batched['bytes_per_request']:.1f}", f"{batched['enqueue_per_second']:,.0f}",
                       f"{batched['dequeue_per_second']:,.0f}", f"{plain['entry_bytes']:.1f}",
                       f"{rich['entry_bytes']:.1f}", f"{rich['encode_per_second']:,.0f}",
                       f"{rich['decode_per_second']:,.0f}")
    console.print(codecs)
    console.print(
        f"ratio = Hermit ×{p['batch']} / scrapy-redis (one at a time); Hermit ×1 / scrapy-redis:"
        f" enqueue {r['unbatched_enqueue_per_second']:.2f}x, dequeue {r['unbatched_dequeue_per_second']:.2f}x"
        f" (Hermit ×1 on {p['unbatched_requests']:,} requests). Mean entry: Hermit JSON"
        f" {p['hermit_entry_bytes']:.1f} B (Redis adds {h['bytes_per_request'] - p['hermit_entry_bytes']:.1f} B),"
        f" scrapy-redis pickle {p['scrapy_redis_entry_bytes']:.1f} B."
        f" + Bloom: filter of capacity {p['bloom_capacity']:,}, Scrapy's fingerprinter included."
        f" Hermit's codec alone (no Redis): encode {c['encode_per_second']:,.0f}/s,"
        f" decode {c['decode_per_second']:,.0f}/s; so the Redis side of Hermit ×{p['batch']} alone would do"
        f" ~{e['enqueue_per_second']:,.0f} enqueues/s and ~{e['dequeue_per_second']:,.0f} dequeues/s."
        f" Acks sent from their own thread while the next batch is leased and decoded (as a worker's"
        f" outbox does): {report['results']['hermit_batched_acks_from_thread']['dequeue_per_second']:,.0f}"
        f" dequeues/s ({report['ratios']['dequeue_acks_from_thread_per_second']:.1f}x scrapy-redis)."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 requests instead of 200,000")
    parser.add_argument("--requests", type=int, help="number of requests (overrides --quick)")
    parser.add_argument("--batch", type=int, default=500, help="Hermit push_many / lease batch size")
    parser.add_argument("--unbatched-requests", type=int,
                        help="requests for Hermit with batches of 1 (round-trip bound, so N hardly matters;"
                             " default 20,000, --quick 5,000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all runs (medians reported)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    n = args.requests or (20_000 if args.quick else 200_000)
    unbatched = args.unbatched_requests or (5_000 if args.quick else 20_000)
    console = Console(width=None if sys.stdout.isatty() else 110)
    spider = BenchSpider()
    requests = make_requests(n)
    rich = make_rich_requests(min(n, 20_000), spider)
    runs = {
        "hermit_batched": lambda: hermit_run(client, spider, requests, args.batch),
        "hermit_batched_with_bloom": lambda: hermit_run(client, spider, requests, args.batch, dedup=True),
        "hermit_batched_acks_from_thread": lambda: hermit_run(client, spider, requests, args.batch,
                                                              acks_from_thread=True),
        "hermit_unbatched": lambda: hermit_run(client, spider, requests[:unbatched], 1),
        "scrapy_redis": lambda: scrapy_redis_run(client, spider, requests),
        "hermit_codec_only": lambda: codec_run(spider, requests),
        "hermit_pickle_batched": lambda: hermit_run(client, spider, requests, args.batch, codec="pickle"),
        "hermit_codec_only_pickle": lambda: codec_run(spider, requests, "pickle"),
        "hermit_codec_only_rich": lambda: codec_run(spider, rich),
        "hermit_codec_only_rich_pickle": lambda: codec_run(spider, rich, "pickle"),
    }

    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        info = client.info("server")
        server_name = (f"{'valkey' if 'valkey_version' in info else 'redis'} "
                       f"{info.get('valkey_version') or info['redis_version']}")
        console.print(f"{server_name} on {server.url}; {n:,} requests; measuring...")
        rounds: dict[str, list[dict[str, float]]] = {name: [] for name in runs}
        for round_number in range(args.rounds):  # interleaved, so noise hits every run alike
            for name, run in runs.items():
                rounds[name].append(run())
                console.print(f"  round {round_number + 1} {name}: "
                              + ", ".join(f"{k} {v:,.1f}" for k, v in rounds[name][-1].items()))
        client.close()
    results = {name: {key: statistics.median(r[key] for r in values) for key in values[0]}
               for name, values in rounds.items()}

    sample = random.Random(0).sample(requests, min(n, 5_000))
    scrapy_redis_sizes = [len(PriorityQueue(None, spider, "k")._encode_request(r)) for r in sample]
    h, s, codec = results["hermit_batched"], results["scrapy_redis"], results["hermit_codec_only"]
    report = {
        "redis_server": server_name,
        "machine": machine_info(),
        "versions": {name: version(name) for name in ("scrapy", "redis", "hiredis", "scrapy-redis")},
        "params": {
            "requests": n, "batch": args.batch, "rounds": args.rounds,
            "unbatched_requests": min(n, unbatched), "example_url": requests[1].url,
            "priorities": sorted(set(PRIORITIES)),
            "hermit_entry_bytes": sum(len(encode_request(r, spider)) for r in sample) / len(sample),
            "scrapy_redis_entry_bytes": sum(scrapy_redis_sizes) / len(sample),
            "bloom_capacity": 2 * n, "bloom_error_ratio": BloomSettings().error_ratio,
            "rich_requests": len(rich), "rich_example": repr(rich[1].cb_kwargs),
        },
        "targets": {"bytes_per_request_max": TARGET_BYTES_PER_REQUEST, "batched_rate_min": TARGET_RATE},
        "results": results,
        # Hermit batched minus its codec time: what push_many / lease + ack alone cost.
        "hermit_batched_redis_side_estimate": {
            f"{what}_per_second": 1 / (1 / h[f"{what}_per_second"] - 1 / codec[f"{code}_per_second"])
            for what, code in (("enqueue", "encode"), ("dequeue", "decode"))
        },
        "rounds": rounds,
        "ratios": {
            "bytes_per_request": h["bytes_per_request"] / s["bytes_per_request"],
            "enqueue_per_second": h["enqueue_per_second"] / s["enqueue_per_second"],
            "dequeue_per_second": h["dequeue_per_second"] / s["dequeue_per_second"],
            "dequeue_acks_from_thread_per_second":
                results["hermit_batched_acks_from_thread"]["dequeue_per_second"] / s["dequeue_per_second"],
            "unbatched_enqueue_per_second":
                results["hermit_unbatched"]["enqueue_per_second"] / s["enqueue_per_second"],
            "unbatched_dequeue_per_second":
                results["hermit_unbatched"]["dequeue_per_second"] / s["dequeue_per_second"],
        },
    }
    write_report(report, args.out)
    print_table(report, console)
    console.print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
