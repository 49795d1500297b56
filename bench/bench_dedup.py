"""Dedup benchmark: Hermit's Bloom filter vs scrapy-redis' SET vs a naive Bloom on Redis.

Measures, against one embedded Redis started here:

- checks per second from one client: ``RedisBloomFilter.add_many`` in batches
  (new and already-seen fingerprints, the two mixed as the demo crawl meets them,
  and read-only lookups), for both kinds of filter: blocked (what new crawls get)
  and classic (what crawls made before it keep); scrapy-redis'
  ``RFPDupeFilter.request_seen`` (one SADD round trip per request, and its own
  fingerprinting), and the usual naive Bloom-on-Redis recipe (k SETBITs per key in
  one pipelined round trip per key);
- memory per URL: ``MEMORY USAGE`` of the filter at its capacity vs the SET of
  40-character hex fingerprints scrapy-redis keeps for the same URLs;
- the false-positive ratio measured on fresh fingerprints once the filter is full;
- the floor of Redis itself: keys/s of a Lua loop that only makes k bit positions per
  key, and of the same loop setting them with BITFIELD, one call per key or 100 keys
  per call.

Writes ``bench/results/dedup.json`` and prints a table with ratios. Run:

    .venv/bin/python bench/bench_dedup.py            # ~1 minute
    .venv/bin/python bench/bench_dedup.py --urls 200000 --repeats 1   # quicker
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import redis
from rich.console import Console
from rich.table import Table
from scrapy import Request
from scrapy.utils.request import RequestFingerprinter
from scrapy_redis.dupefilter import RFPDupeFilter

from benchlib import machine_info, write_report
from hermit.dedup.bloom import (
    DEFAULT_BATCH_SIZE,
    KINDS,
    RedisBloomFilter,
    bit_positions,
    fingerprint_hashes,
    layer_error_ratio,
    layer_sizing,
)
from hermit.keys import CrawlKeys
from hermit.redis_server import EmbeddedRedis

logger = logging.getLogger(__name__)

RESULTS = Path(__file__).parent / "results" / "dedup.json"

# Of the links a crawl of the demo site checks, this many are new: 3,016 new for
# 57,212 duplicates (docs/benchmarks.md). A crawl's checks are mostly of seen URLs.
CRAWL_NEW_SHARE = 3016 / (3016 + 57212)


def urls(prefix: str, count: int) -> list[str]:
    return [f"https://shop.example.com/{prefix}/item/{i}?ref=list&page={i % 97}" for i in range(count)]


def fingerprints(prefix: str, count: int) -> list[bytes]:
    """Deterministic 20-byte fingerprints, as Scrapy's fingerprinter makes them."""
    return [hashlib.sha1(b"%s-%d" % (prefix.encode(), i)).digest() for i in range(count)]


def rate(count: int, run: Callable[[], object]) -> float:
    """Items per second of one call of *run* handling *count* items."""
    started = time.perf_counter()
    run()
    return count / (time.perf_counter() - started)


class NaiveRedisBloom:
    """The common recipe: hashes computed in Python, one pipelined round trip of k
    SETBITs per key (SETBIT returns the old bit, so any 0 means new). Same sizing as
    Hermit's first layer, one key, no layers."""

    def __init__(self, client: redis.Redis, key: str, capacity: int, error_ratio: float) -> None:
        self.client, self.key = client, key
        self.bits, self.hashes = layer_sizing(capacity, layer_error_ratio(error_ratio, 0))

    def add(self, fingerprint: bytes) -> bool:
        pipe = self.client.pipeline(transaction=False)
        for position in bit_positions(*fingerprint_hashes(fingerprint), self.bits, self.hashes):
            pipe.setbit(self.key, position, 1)
        return 0 in pipe.execute()


def crawl_mix(seen: list[bytes], new: list[bytes]) -> list[bytes]:
    """*new* spread evenly through *seen*, as a crawl meets them."""
    every = max(1, len(seen) // max(1, len(new)))
    fresh = iter(new)
    out: list[bytes] = []
    for i, fingerprint in enumerate(seen):
        out.append(fingerprint)
        if i % every == every - 1:
            following = next(fresh, None)
            if following is not None:
                out.append(following)
    return out


def hermit_throughput(client: redis.Redis, capacity: int, keys: int, repeats: int,
                      kind: str) -> dict[str, float]:
    """Median checks/s over *repeats* fresh filters of *kind* and *capacity*, *keys*
    fingerprints each."""
    runs: dict[str, list[float]] = {"add_new": [], "add_seen": [], "add_crawl_mix": [],
                                    "contains_fresh": [], "end_to_end": []}
    for r in range(repeats):
        bloom = RedisBloomFilter(client, CrawlKeys(f"bench-speed-{kind}-{r}"), capacity=capacity, kind=kind)
        bloom.add_many(fingerprints("warm", 10))  # creates and allocates the filter
        batch = fingerprints(f"speed{r}", keys)
        runs["add_new"].append(rate(keys, lambda: bloom.add_many(batch)))
        runs["add_seen"].append(rate(keys, lambda: bloom.add_many(batch)))
        mixed = crawl_mix(batch, fingerprints(f"mixed{r}", round(keys * CRAWL_NEW_SHARE)))
        runs["add_crawl_mix"].append(rate(len(mixed), lambda: bloom.add_many(mixed)))
        fresh = fingerprints(f"fresh{r}", keys)
        runs["contains_fresh"].append(rate(keys, lambda: bloom.contains_many(fresh)))
        # As a worker does it: Scrapy's fingerprinter on new Request objects, then dedup.
        fingerprinter = RequestFingerprinter()
        requests = [Request(u) for u in urls(f"e2e{r}", keys // 4)]
        runs["end_to_end"].append(
            rate(len(requests), lambda: bloom.add_many([fingerprinter.fingerprint(q) for q in requests]))
        )
        bloom.delete()
    return {name: statistics.median(values) for name, values in runs.items()}


def scrapy_redis_throughput(client: redis.Redis, keys: int) -> dict[str, float]:
    dupefilter = RFPDupeFilter(client, "bench:dupefilter")
    requests = [Request(u) for u in urls("sr", keys)]
    fingerprint_only = rate(keys, lambda: [dupefilter.request_fingerprint(q) for q in requests])
    new = rate(keys, lambda: [dupefilter.request_seen(q) for q in requests])
    seen = rate(keys, lambda: [dupefilter.request_seen(q) for q in requests])
    client.delete("bench:dupefilter")
    return {"request_seen_new": new, "request_seen_seen": seen, "fingerprint_only": fingerprint_only}


def naive_throughput(client: redis.Redis, capacity: int, keys: int, error_ratio: float) -> float:
    naive = NaiveRedisBloom(client, "bench:naive-bloom", capacity, error_ratio)
    batch = fingerprints("naive", keys)
    result = rate(keys, lambda: [naive.add(fp) for fp in batch])
    client.delete("bench:naive-bloom")
    return result


# Where Hermit's check-and-set time goes, measured inside Redis: a Lua loop that makes
# k pseudo-random bit positions per key and, depending on ARGV[4], sets nothing (0),
# sets each key's k bits in one BITFIELD call (1), groups the SETs of ARGV[4] keys
# into one BITFIELD call (as many as Lua's unpack() takes), or (-1) reads one
# 1 KB block per key with GETRANGE, what a blocked filter's check costs at least.
_BITFIELD_FLOOR = """
local n, k, bits, group = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local seed, args, c = 12345, {}, 0
for i = 1, n do
  for j = 1, k do
    seed = (seed * 1103515245 + 12345) % 2147483648
    args[c + 1], args[c + 2], args[c + 3], args[c + 4] = 'SET', 'u1', seed % bits, '1'
    c = c + 4
  end
  if group == -1 then
    local start = (seed % (bits - 8192)) / 8
    redis.call('GETRANGE', KEYS[1], start - start % 1, start - start % 1 + 1023)
    c = 0
  elseif group == 0 then
    c = 0
  elseif i % group == 0 or i == n then
    redis.call('BITFIELD', KEYS[1], unpack(args, 1, c))
    c = 0
  end
end
return n
"""


def bitfield_floor(client: redis.Redis, capacity: int, error_ratio: float, keys: int) -> dict[str, float]:
    """Keys/s of the bare Lua loop, of one BITFIELD per key, of 100 keys per BITFIELD,
    and of one 1 KB GETRANGE per key."""
    bits, hashes = layer_sizing(capacity, layer_error_ratio(error_ratio, 0))
    client.execute_command("BITFIELD", "bench:floor", "SET", "u1", bits - 1, 0)
    script = client.register_script(_BITFIELD_FLOOR)
    per_call = 2000
    result = {}
    for name, group in (("lua_positions_only", 0), ("bitfield_per_key", 1), ("bitfield_100_keys_per_call", 100),
                        ("getrange_1kb_per_key", -1)):
        result[name] = rate(keys, lambda: [script(keys=["bench:floor"], args=[per_call, hashes, bits, group])
                                           for _ in range(keys // per_call)])
    client.delete("bench:floor")
    return result


def memory_and_false_positives(client: redis.Redis, urls_count: int, error_ratio: float,
                               kind: str) -> dict[str, float]:
    """Fill a filter of *kind* and capacity *urls_count* to capacity; same URLs as a scrapy-redis SET."""
    bloom = RedisBloomFilter(client, CrawlKeys("bench-memory"), capacity=urls_count, error_ratio=error_ratio,
                             kind=kind)
    members = fingerprints("member", urls_count)
    bloom.add_many(members)
    info = bloom.info()
    bloom_bytes = bloom.memory_usage_bytes()
    fresh_count = max(urls_count, 1_000_000)
    false_positives = sum(bloom.contains_many(fingerprints("never-added", fresh_count)))

    # What RFPDupeFilter.request_seen leaves behind: one SADD of a hex digest per URL.
    pipe = client.pipeline(transaction=False)
    for start in range(0, urls_count, 10_000):
        pipe.sadd("bench:memory-set", *(fp.hex() for fp in members[start:start + 10_000]))
        if len(pipe) >= 20:
            pipe.execute()
    pipe.execute()
    set_bytes = client.memory_usage("bench:memory-set", samples=0)
    set_count = client.scard("bench:memory-set")
    client.delete("bench:memory-set")
    bloom.delete()
    return {
        "urls": urls_count,
        "kind": kind,
        "hermit_items": info.items,
        "hermit_layers": info.layers,
        "hermit_logical_bits_per_url": info.bits / info.items,
        "hermit_bits_per_url": bloom_bytes * 8 / info.items,
        "hermit_bytes": bloom_bytes,
        "scrapy_redis_bits_per_url": set_bytes * 8 / set_count,
        "scrapy_redis_bytes": set_bytes,
        "fresh_lookups": fresh_count,
        "false_positives": false_positives,
        "measured_false_positive_ratio": false_positives / fresh_count,
        "estimated_false_positive_ratio": info.estimated_false_positive_ratio,
    }


def print_table(report: dict, console: Console) -> None:
    t, r = report["throughput_per_second"], report["ratios"]
    blocked, classic = report["memory"]["blocked"], report["memory"]["classic"]
    table = Table(title=f"Dedup on {report['redis_server']}, target error ratio {report['params']['error_ratio']:g}")
    for name in ("measure", "Hermit blocked", "Hermit classic", "scrapy-redis", "naive Bloom",
                 "blocked vs classic", "blocked vs scrapy-redis"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    sr_new, sr_seen = t["scrapy_redis_request_seen_new"], t["scrapy_redis_request_seen_seen"]
    for label, key, reference in (("checks/s, new URLs", "add_new", sr_new),
                                  ("checks/s, seen URLs", "add_seen", sr_seen),
                                  (f"checks/s, crawl mix ({CRAWL_NEW_SHARE:.0%} new)", "add_crawl_mix", sr_seen),
                                  ("read-only lookups/s", "contains_fresh", None),
                                  ("checks/s with Scrapy fingerprinting", "end_to_end", sr_new)):
        b, c = t[f"hermit_blocked_{key}"], t[f"hermit_classic_{key}"]
        table.add_row(label, f"{b:,.0f}", f"{c:,.0f}",
                      f"{reference:,.0f}" if reference and key != "add_crawl_mix" else "",
                      f"{t['naive_bloom_add']:,.0f}" if key == "add_new" else "",
                      f"{b / c:.2f}x", f"{b / reference:.1f}x" if reference else "")
    table.add_row("bits per URL (logical)", f"{blocked['hermit_logical_bits_per_url']:.2f}",
                  f"{classic['hermit_logical_bits_per_url']:.2f}", "", "", "", "")
    table.add_row("bits per URL (MEMORY USAGE)", f"{blocked['hermit_bits_per_url']:.2f}",
                  f"{classic['hermit_bits_per_url']:.2f}", f"{blocked['scrapy_redis_bits_per_url']:.0f}", "", "",
                  f"1/{r['scrapy_redis_vs_hermit_bits_per_url']:.0f}")
    table.add_row(f"false-positive ratio, full ({blocked['fresh_lookups']:,} fresh)",
                  f"{blocked['measured_false_positive_ratio']:.2e}",
                  f"{classic['measured_false_positive_ratio']:.2e}", "0", "", "", "")
    console.print(table)
    console.print(
        "Hermit and naive rows get precomputed fingerprints; scrapy-redis' request_seen always computes"
        f" its own (that alone: {t['scrapy_redis_fingerprint_only']:,.0f}/s, so its SADD round trips"
        f" alone would do ~{t['scrapy_redis_store_only_estimate']:,.0f}/s)."
    )
    f = report["redis_floor_keys_per_second"]
    console.print(
        f"Inside Redis, a Lua loop making the positions alone runs {f['lua_positions_only']:,.0f} keys/s;"
        f" setting each key's bits with one BITFIELD: {f['bitfield_per_key']:,.0f}/s; the SETs of 100 keys"
        f" in one BITFIELD: {f['bitfield_100_keys_per_call']:,.0f}/s; reading one 1 KB block per key:"
        f" {f['getrange_1kb_per_key']:,.0f}/s."
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--urls", type=int, default=1_000_000, help="filter capacity and URLs for memory/FPR")
    parser.add_argument("--speed-keys", type=int, default=200_000, help="fingerprints per Hermit speed run")
    parser.add_argument("--repeats", type=int, default=3, help="Hermit speed runs (median reported)")
    parser.add_argument("--scrapy-redis-keys", type=int, default=20_000)
    parser.add_argument("--naive-keys", type=int, default=5_000)
    parser.add_argument("--error-ratio", type=float, default=1e-4)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--quick", action="store_true", help="100,000 URLs, 50,000 speed keys, one run")
    args = parser.parse_args(argv)
    if args.quick:
        args.urls, args.speed_keys, args.repeats = 100_000, 50_000, 1
        args.scrapy_redis_keys, args.naive_keys = 5_000, 2_000
    console = Console()

    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        info = client.info("server")
        server_name = f"{'valkey' if 'valkey_version' in info else 'redis'} {info.get('valkey_version') or info['redis_version']}"
        console.print(f"{server_name} on {server.url}; measuring...")
        hermit = {kind: hermit_throughput(client, args.urls, args.speed_keys, args.repeats, kind)
                  for kind in KINDS}
        console.print(f"  hermit: {hermit}")
        scrapy_redis = scrapy_redis_throughput(client, args.scrapy_redis_keys)
        console.print(f"  scrapy-redis: {scrapy_redis}")
        naive = naive_throughput(client, args.urls, args.naive_keys, args.error_ratio)
        console.print(f"  naive: {naive:,.0f}/s")
        floor = bitfield_floor(client, args.urls, args.error_ratio, args.speed_keys)
        console.print(f"  Redis floor: {floor}")
        memory = {kind: memory_and_false_positives(client, args.urls, args.error_ratio, kind) for kind in KINDS}
        client.close()

    report = {
        "redis_server": server_name,
        "machine": machine_info(),
        "params": {"capacity": args.urls, "error_ratio": args.error_ratio, "speed_keys": args.speed_keys,
                   "repeats": args.repeats, "scrapy_redis_keys": args.scrapy_redis_keys,
                   "naive_keys": args.naive_keys, "batch_size": DEFAULT_BATCH_SIZE},
        "crawl_new_share": CRAWL_NEW_SHARE,
        "throughput_per_second": {
            **{f"hermit_{kind}_{name}": value for kind in KINDS for name, value in hermit[kind].items()},
            "scrapy_redis_request_seen_new": scrapy_redis["request_seen_new"],
            "scrapy_redis_request_seen_seen": scrapy_redis["request_seen_seen"],
            "scrapy_redis_fingerprint_only": scrapy_redis["fingerprint_only"],
            "naive_bloom_add": naive,
            # request_seen's time minus its fingerprinting time
            "scrapy_redis_store_only_estimate": 1 / (
                1 / scrapy_redis["request_seen_new"] - 1 / scrapy_redis["fingerprint_only"]
            ),
        },
        # Keys/s inside Redis with Hermit's first-layer k, without its hashing and bookkeeping.
        "redis_floor_keys_per_second": floor,
        "memory": memory,
        "ratios": {
            "blocked_vs_classic_new": hermit["blocked"]["add_new"] / hermit["classic"]["add_new"],
            "blocked_vs_classic_seen": hermit["blocked"]["add_seen"] / hermit["classic"]["add_seen"],
            "blocked_vs_classic_crawl_mix":
                hermit["blocked"]["add_crawl_mix"] / hermit["classic"]["add_crawl_mix"],
            "hermit_vs_scrapy_redis_checks": hermit["blocked"]["add_new"] / scrapy_redis["request_seen_new"],
            "hermit_vs_naive_bloom_checks": hermit["blocked"]["add_new"] / naive,
            "scrapy_redis_vs_hermit_bits_per_url":
                memory["blocked"]["scrapy_redis_bits_per_url"] / memory["blocked"]["hermit_bits_per_url"],
        },
    }
    write_report(report, args.out)
    print_table(report, console)
    console.print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
