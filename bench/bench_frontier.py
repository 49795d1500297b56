"""Frontier benchmark: lease throughput of the host-aware frontier, and what it costs Redis.

One client on loopback against a real redis-server (the embedded one), the queue's
own calls as a worker makes them, with entries of a realistic size (the encoded
request of a demo-site page, ~60 bytes) so that Redis' work, not the codec's, is
measured (``bench_queue.py`` measures the codec with them):

- **Leases/s**: ``lease(batch)`` then ``ack`` of the whole batch, until the queue is
  empty, for requests spread over 1, 100, 10,000 and 100,000 hosts (no delay,
  concurrency 10,000 per host, so no lease waits: the cost of the frontier itself).
  Two round trips per lease batch and one per ack batch, whatever the number of hosts.
- **Push/s** of the same requests (through the Bloom filter, batches of 500).
- **Redis bytes per queued request** (``used_memory`` before and after the pushes,
  Bloom filter excluded by measuring it apart) and **per host** (the same number of
  requests over more hosts: the difference is what the hosts themselves cost), and
  what is left once every request was leased and acked (a host whose queue empties
  costs nothing).

``python bench/bench_frontier.py`` (``--quick``: fewer requests; ``--out``: results
file, default bench/results/frontier.json).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import machine_info, wait_for_quiet, write_report  # noqa: E402

from hermit.keys import CrawlKeys  # noqa: E402
from hermit.queue.redis_queue import Ack, Politeness, QueuedRequest, RedisRequestQueue  # noqa: E402
from hermit.redis_server import EmbeddedRedis  # noqa: E402

HOST_COUNTS = (1, 100, 10_000, 100_000)


def requests(n: int, hosts: int) -> list[QueuedRequest]:
    out = []
    for i in range(n):
        host = f"h{i % hosts}.example.com"
        url = f"http://{host}/p/{i}.html"
        entry = ('{"u":"%s","M":{"depth":3}}' % url).encode()
        out.append(QueuedRequest(entry, 0, hashlib.sha1(url.encode()).digest(), host))
    return out


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def measure(client: redis.Redis, n: int, hosts: int, batch: int) -> dict[str, float]:
    client.flushall()
    keys = CrawlKeys("bench")
    queue = RedisRequestQueue(client, keys, "w", politeness=Politeness(concurrency=10_000), lease_timeout_seconds=600)
    pushes = requests(n, hosts)
    # The Bloom filter's bitmaps are allocated when it is created: create it first, apart.
    queue.push_many(pushes[:1])
    queue.ack([Ack(lease.id, lease.host) for lease in queue.lease(1)])
    before = used_memory(client)
    started = time.perf_counter()
    for i in range(1, n, 500):
        queue.push_many(pushes[i:i + 500])
    push_seconds = time.perf_counter() - started
    queued_bytes = used_memory(client) - before
    started = time.perf_counter()
    leased = 0
    while leases := queue.lease(batch):
        queue.ack([Ack(lease.id, lease.host) for lease in leases])
        leased += len(leases)
    lease_seconds = time.perf_counter() - started
    left = used_memory(client) - before
    assert leased == n - 1, (leased, n)
    return {
        "hosts": hosts,
        "requests": n - 1,
        "push_per_second": round((n - 1) / push_seconds),
        "lease_and_ack_per_second": round(leased / lease_seconds),
        "redis_bytes_per_queued_request": round(queued_bytes / (n - 1), 1),
        "redis_bytes_left_after_ack": left,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "frontier.json")
    args = parser.parse_args()
    n = 20_001 if args.quick else 200_001
    quiet = wait_for_quiet(60 if args.quick else 300)
    server = EmbeddedRedis().start()
    try:
        client = redis.Redis.from_url(server.url)
        rows = [measure(client, n, hosts, args.batch) for hosts in HOST_COUNTS if hosts < n]
        version = client.info("server").get("redis_version")
    finally:
        server.cleanup()
    single = rows[0]["redis_bytes_per_queued_request"]
    for row in rows:
        # What the hosts add over the same requests on one host, per host.
        extra = (row["redis_bytes_per_queued_request"] - single) * row["requests"]
        row["redis_bytes_per_host"] = round(extra / row["hosts"], 1) if row["hosts"] > 1 else None
    print(f"{'hosts':>8} {'push/s':>9} {'lease+ack/s':>12} {'B/request':>10} {'B/host':>8} {'left after':>10}")
    for row in rows:
        print(f"{row['hosts']:>8} {row['push_per_second']:>9} {row['lease_and_ack_per_second']:>12} "
              f"{row['redis_bytes_per_queued_request']:>10} {row['redis_bytes_per_host'] or '-':>8} "
              f"{row['redis_bytes_left_after_ack']:>10}")
    write_report({"machine": machine_info(redis=version, quiet=quiet), "batch": args.batch, "rows": rows}, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
