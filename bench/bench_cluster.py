"""Cluster benchmark: Hermit's frontier on a single Redis and on Redis Clusters of 1, 3 and 6 masters.

One client process on loopback, the frontier's own calls as a worker makes them
(``Frontier.push_many`` in batches of 500, ``lease(500)`` + ``ack``), against, in the
same run:

- a single Redis (the embedded one) with 1 shard (the layout of a crawl on a single
  Redis today) and with 16 shards;
- real Redis Clusters (``LocalRedisCluster``) of 1, 3 and 6 masters, 0 replicas,
  with 16 shards (the default of a crawl on a cluster). Their nodes' append-only
  files are turned off after start, so no target persists anything.

N requests (``scrapy.Request`` of shop-like URLs, encoded and fingerprinted before
the clock starts, so the frontier is measured, not the codec) spread over 2,000
hosts at random. Per target, three timed phases:

1. **push**: every request new (Bloom check-and-set, then enqueue; on 16 shards the
   handoff to the host's shard and its delivery included);
2. **dedup**: the same requests pushed again, all duplicates (a crawl's hot path);
3. **lease**: ``lease(500)`` + ``ack`` of each batch until the frontier is empty.

For each: ops/s (wall clock), server CPU µs per op (user + system time of every
server process of the target, psutil, over the phase), client CPU µs per op, and a
projection: the ceiling of a cluster of real machines, ``masters / server CPU s per
op`` (every master on a machine of its own, a core for it alone, enough clients to
keep it busy, the load spread evenly), and the same bounded by the busiest master.

Memory (INFO ``used_memory``, summed over the masters): bytes per queued request
(after the pushes minus after the leases), the Bloom filter's bytes per seen URL
(``MEMORY USAGE`` of its keys; sized for 1.2 N, its memory is allocated up front),
and bytes per host (10,000 requests without a fingerprint on 10,000 hosts minus the
same on one host). And how evenly the shards spread over the masters: requests
queued per master (by host shard), Bloom checks per master (by fingerprint shard),
and, for 1,000 crawl names, the share of the busiest master.

Rounds are interleaved (targets in a rotated order each round); medians reported.
Writes ``bench/results/cluster.json`` (``--quick``: cluster-quick.json). Run:

    .venv/bin/python bench/bench_cluster.py            # 200,000 requests, 3 rounds, ~15 min
    .venv/bin/python bench/bench_cluster.py --quick    # 20,000 requests, 1 round, ~2 min
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import redis
from redis.crc import key_slot
from rich.console import Console
from rich.table import Table
from scrapy import Request, Spider
from scrapy.utils.request import RequestFingerprinter

from benchlib import machine_info, write_report
from hermit.dedup.bloom import fingerprint_shard
from hermit.keys import CrawlKeys
from hermit.queue.codec import encode_request
from hermit.queue.frontier import Frontier
from hermit.queue.hosts import politeness_key
from hermit.queue.redis_queue import Ack, BloomSettings, Politeness, QueuedRequest
from hermit.queue.shards import CLUSTER_DEFAULT_SHARDS, crawl_shards, host_shard
from hermit.redis_client import connect
from hermit.redis_server import EmbeddedRedis
from hermit.testing.redis_cluster import SLOTS, LocalRedisCluster

RESULTS = Path(__file__).parent / "results"
CATEGORIES = ("books", "garden-tools", "kitchen", "electronics", "toys", "sports-outdoors",
              "home-decor", "office", "pet-supplies", "beauty")
PRIORITIES = (0, 0, 0, 0, 1, 1, -1, 2)
CLUSTER_MASTERS = (1, 3, 6)
PHASES = ("push", "dedup", "lease")
PHASE_LABELS = {"push": "push, new (dedup + enqueue)", "dedup": "push, all seen (dedup only)",
                "lease": "lease + ack"}
CRAWL = "bench"
BLOOM_HEADROOM = 1.2  # filter capacity / requests: no shard's filter fills up and adds a layer


class BenchSpider(Spider):
    name = "bench"


@dataclass
class Target:
    """One thing measured: a server (or cluster) and a number of shards."""

    name: str
    label: str
    masters: int
    shards: int
    url: str
    pids: list[int]
    ports: list[int]
    #: the master (index into ports) of each shard's hash tag
    shard_master: list[int]
    client: redis.Redis = field(init=False)
    nodes: list[redis.Redis] = field(init=False)
    processes: list[psutil.Process] = field(init=False)

    def __post_init__(self) -> None:
        self.client = connect(self.url)
        self.nodes = [redis.Redis(host="127.0.0.1", port=port, socket_timeout=30) for port in self.ports]
        self.processes = [psutil.Process(pid) for pid in self.pids]

    def cpu_seconds(self) -> list[float]:
        return [(t := p.cpu_times()).user + t.system for p in self.processes]

    def used_memory(self) -> list[int]:
        return [int(node.info("memory")["used_memory"]) for node in self.nodes]

    def flush(self) -> None:
        for node in self.nodes:
            node.execute_command("FLUSHALL", "SYNC")  # now, so that used_memory drops now

    def bloom_bytes(self) -> int:
        """MEMORY USAGE of every key of the crawl's Bloom filters, on every master."""
        total = 0
        for node in self.nodes:
            for key in node.scan_iter(match="hermit:*:bloom*", count=1000):
                total += node.memory_usage(key, samples=0) or 0
        return total

    def close(self) -> None:
        self.client.close()
        for node in self.nodes:
            node.close()


def make_requests(count: int, hosts: int, spider: Spider) -> list[QueuedRequest]:
    """*count* shop-like requests over *hosts* hosts at random, encoded and fingerprinted."""
    pick = random.Random(0)
    fingerprinter = RequestFingerprinter()
    out = []
    for i in range(count):
        host = f"www.store{pick.randrange(hosts):04d}.example.com"
        request = Request(f"https://{host}/catalog/{CATEGORIES[i % len(CATEGORIES)]}/"
                          f"{100_000 + i}.html?page={1 + i % 40}",
                          priority=PRIORITIES[i % len(PRIORITIES)], meta={"depth": 1 + i % 5})
        out.append(QueuedRequest(encode_request(request, spider), request.priority,
                                 fingerprinter.fingerprint(request), politeness_key(request)))
    return out


def frontier(target: Target, crawl: str, capacity: int) -> Frontier:
    keys = CrawlKeys(crawl)
    shards = crawl_shards(target.client, keys, target.shards)
    assert shards == target.shards, (shards, target.shards)
    return Frontier(target.client, keys, "bench-worker", shards=shards, bloom=BloomSettings(capacity=capacity),
                    politeness=Politeness(concurrency=10_000), lease_timeout_seconds=600)


def timed(target: Target, ops: int, run: Callable[[], Any]) -> tuple[Any, dict[str, Any]]:
    """Run *run* (which handles *ops* operations) and measure its wall time and CPU."""
    server_before, client_before = target.cpu_seconds(), time.process_time()
    started = time.perf_counter()
    result = run()
    wall = time.perf_counter() - started
    client = time.process_time() - client_before
    server = [after - before for after, before in zip(target.cpu_seconds(), server_before)]
    return result, {
        "ops": ops, "seconds": wall, "ops_per_second": ops / wall,
        "server_cpu_us_per_op": sum(server) / ops * 1e6, "client_cpu_us_per_op": client / ops * 1e6,
        "server_cpu_seconds_per_master": server,
        # Every master on a machine (a core) of its own, enough clients to keep each busy.
        "projected_ceiling_even": target.masters * ops / sum(server) if sum(server) else None,
        "projected_ceiling_busiest_master": ops / max(server) if max(server) else None,
    }


def lease_all(front: Frontier, batch: int) -> int:
    leased = 0
    while leases := front.lease(batch):
        front.ack([Ack(lease.id, lease.host) for lease in leases])
        leased += len(leases)
    return leased


def run_target(target: Target, requests: list[QueuedRequest], batch: int) -> dict[str, Any]:
    """One round on *target*: push, dedup and lease phases, and the memory they leave."""
    n = len(requests)
    capacity = round(BLOOM_HEADROOM * n)
    batches = [requests[i:i + batch] for i in range(0, n, batch)]
    # Warm up: load every script on every master and open the connections; FLUSHALL keeps scripts.
    target.flush()
    warm = frontier(target, "bench-warmup", 10_000)
    warm.push_many(requests[:2000])
    lease_all(warm, batch)
    target.flush()

    front = frontier(target, CRAWL, capacity)
    memory_start = target.used_memory()

    def push() -> list[int]:
        return [result for part in batches for result in front.push_many(part)]

    results, push_phase = timed(target, n, push)
    memory_pushed = target.used_memory()
    queued = results.count(1)
    results, dedup_phase = timed(target, n, push)
    assert set(results) <= {0, 1}, f"push results other than 0 and 1: {sorted(set(results))[:5]}"
    assert results.count(1) == 0, f"{results.count(1)} requests new the second time"
    leased, lease_phase = timed(target, queued, lambda: lease_all(front, batch))
    assert leased == queued, f"leased {leased} of {queued}"
    memory_end = target.used_memory()
    bloom = target.bloom_bytes()
    queued_bytes = [p - e for p, e in zip(memory_pushed, memory_end)]
    row = {
        "push": push_phase, "dedup": dedup_phase, "lease": lease_phase,
        "queued": queued, "bloom_false_positives_on_push": n - queued,
        "redis_bytes_per_queued_request": sum(queued_bytes) / queued,
        "redis_bytes_per_queued_request_per_master": [b / queued for b in queued_bytes],
        "bloom_capacity": capacity, "bloom_bytes": bloom, "bloom_bytes_per_seen_url": bloom / n,
        "bloom_bytes_per_url_of_capacity": bloom / capacity,
        "redis_bytes_left_after_ack": sum(memory_end) - sum(memory_start),
    }
    row.update(host_memory(target, batch))
    target.flush()
    return row


def host_memory(target: Target, batch: int, count: int = 10_000) -> dict[str, float]:
    """Redis bytes per host: *count* requests (no fingerprint: no filter) on *count*
    hosts minus the same on one host."""
    grown = {}
    for hosts in (1, count):
        target.flush()
        front = frontier(target, f"bench-hosts-{hosts}", 1000)
        before = sum(target.used_memory())
        for start in range(0, count, batch):
            front.push_many([
                QueuedRequest(b'{"u":"https://www.store%04d.example.com/catalog/books/%d.html","M":{"depth":2}}'
                              % ((i % hosts), 100_000 + i), 0, None, f"www.store{i % hosts:04d}.example.com")
                for i in range(start, min(start + batch, count))
            ])
        grown[hosts] = sum(target.used_memory()) - before
    target.flush()
    return {"redis_bytes_per_request_one_host": grown[1] / count,
            "redis_bytes_per_request_one_host_each": grown[count] / count,
            "redis_bytes_per_host": (grown[count] - grown[1]) / count}


def spread(target: Target, requests: list[QueuedRequest]) -> dict[str, Any]:
    """Requests queued (host shard) and Bloom checks (fingerprint shard) per master."""
    queued = Counter(target.shard_master[host_shard(r.host, target.shards)] for r in requests)
    checked = Counter(target.shard_master[fingerprint_shard(r.fingerprint, target.shards)] for r in requests)
    shards = Counter(target.shard_master)
    per = lambda counter: [counter.get(m, 0) for m in range(target.masters)]  # noqa: E731
    return {"shards_per_master": per(shards), "requests_per_master": per(queued),
            "checks_per_master": per(checked),
            "busiest_master_share_of_requests": max(queued.values()) / len(requests),
            "busiest_master_share_of_checks": max(checked.values()) / len(requests)}


def shard_tag_key(crawl: str, shard: int) -> str:
    """A key of *shard* of a new crawl (its tags spread over the slots)."""
    return CrawlKeys(crawl, spread_shards=True).shard(shard).queued_count


def master_of_slot(slot: int, masters: int) -> int:
    """The master serving *slot* when the slots are split evenly (as LocalRedisCluster does)."""
    return next(i for i in range(masters) if slot < (i + 1) * SLOTS // masters)


def crawl_name_spread(masters: int, shards: int, names: int = 1000) -> dict[str, float]:
    """Over *names* crawl names: the busiest master's shards over an even share."""
    excess = []
    empty = 0
    for j in range(names):
        counts = Counter(master_of_slot(key_slot(shard_tag_key(f"crawl-{j}", i).encode()), masters)
                         for i in range(shards))
        excess.append(max(counts.values()) / (shards / masters))
        empty += len(counts) < masters
    excess.sort()
    return {"crawl_names": names, "busiest_over_even_median": statistics.median(excess),
            "busiest_over_even_p90": excess[int(0.9 * names)], "busiest_over_even_max": excess[-1],
            "share_with_an_idle_master": empty / names}


def code_version() -> dict[str, Any]:
    """Which hermit was measured: its folder, and the commit it is (a snapshot exported
    with ``git archive`` names its commit in HERMIT_BENCH_COMMIT) and whether it differs."""
    import hermit

    folder = Path(hermit.__file__).resolve().parent
    found: dict[str, Any] = {"hermit": str(folder), "commit": os.environ.get("HERMIT_BENCH_COMMIT")}
    try:
        found["commit"] = found["commit"] or subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--", "."],
                                 capture_output=True, text=True, check=True).stdout
        found["uncommitted_changes"] = bool(changed.strip())
    except (OSError, subprocess.CalledProcessError):
        found.setdefault("uncommitted_changes", None)  # not a git work tree: an exported snapshot
    return found


def wait_until_quiet(max_seconds: float, console: Console, quiet_seconds: int = 10) -> dict[str, Any]:
    """Wait (at most *max_seconds*) until, for *quiet_seconds* seconds in a row, the
    1-minute load average is below 0.7 or the CPUs are less than 20 % busy."""
    started = time.monotonic()
    quiet_for = 0
    psutil.cpu_percent(None)
    while time.monotonic() - started < max_seconds:
        time.sleep(1.0)
        busy, load = psutil.cpu_percent(None), os.getloadavg()[0]
        quiet_for = quiet_for + 1 if (busy < 20 or load < 0.7) else 0
        if quiet_for >= quiet_seconds:
            return {"waited_seconds": round(time.monotonic() - started, 1), "quiet": True,
                    "load_average_1m": load}
        if int(time.monotonic() - started) % 60 == 0:
            console.print(f"  waiting for a quiet machine: CPU {busy:.0f} %, load {load:.2f}")
    return {"waited_seconds": round(time.monotonic() - started, 1), "quiet": False,
            "load_average_1m": os.getloadavg()[0]}


def start_targets(stack: list[Any], console: Console) -> list[Target]:
    single = EmbeddedRedis().start()
    stack.append(single)
    targets = []
    for shards in (1, CLUSTER_DEFAULT_SHARDS):
        targets.append(Target(f"single_{shards}", f"single Redis, {shards} shard{'s' * (shards > 1)}", 1, shards,
                              single.url, [single.process.pid], [single.port], [0] * shards))
    for masters in CLUSTER_MASTERS:
        cluster = LocalRedisCluster(masters=masters, replicas=0).start()
        stack.append(cluster)
        nodes = cluster.masters()
        for node in nodes:
            node.command("CONFIG", "SET", "appendonly", "no")  # as the single Redis: no persistence
        index = {node.port: i for i, node in enumerate(nodes)}
        shard_master = [index[cluster.node_for_slot(key_slot(shard_tag_key(CRAWL, i).encode())).port]
                        for i in range(CLUSTER_DEFAULT_SHARDS)]
        targets.append(Target(f"cluster_{masters}", f"cluster, {masters} master{'s' * (masters > 1)}", masters,
                              CLUSTER_DEFAULT_SHARDS, cluster.url, [node.pid for node in nodes],
                              [node.port for node in nodes], shard_master))
        console.print(f"  cluster of {masters} master(s) up on ports {[node.port for node in nodes]}")
    return targets


def median_rows(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of every number over the rounds (lists element-wise)."""
    def med(values: list[Any]) -> Any:
        first = values[0]
        if isinstance(first, dict):
            return {key: med([v[key] for v in values]) for key in first}
        if isinstance(first, list):
            return [med([v[i] for v in values]) for i in range(len(first))]
        if isinstance(first, (int, float)) and not isinstance(first, bool):
            return statistics.median(values)
        return first
    return med(rounds)


def print_tables(report: dict[str, Any], console: Console) -> None:
    p, results = report["params"], report["results"]
    table = Table(title=f"Frontier on {report['redis_server']}: {p['requests']:,} requests over {p['hosts']:,}"
                        f" hosts, batches of {p['batch']}, one client, median of {p['rounds']}")
    for name in ("target", "operation", "ops/s", "server CPU µs/op", "client CPU µs/op",
                 "ceiling: masters / server CPU", "ceiling: busiest master"):
        table.add_column(name, justify="left" if name in ("target", "operation") else "right")
    for name, row in results.items():
        for phase in PHASES:
            m = row[phase]
            table.add_row(row["label"] if phase == "push" else "", PHASE_LABELS[phase],
                          f"{m['ops_per_second']:,.0f}", f"{m['server_cpu_us_per_op']:.2f}",
                          f"{m['client_cpu_us_per_op']:.2f}", f"{m['projected_ceiling_even']:,.0f}",
                          f"{m['projected_ceiling_busiest_master']:,.0f}",
                          end_section=phase == PHASES[-1])
    console.print(table)
    memory = Table(title="Redis memory (used_memory, summed over masters) and how the shards spread over masters")
    for name in ("target", "B/queued request", "B/request, one host", "B/seen URL (filter)", "B/host",
                 "shards per master",
                 "requests queued per master", "Bloom checks per master"):
        memory.add_column(name, justify="left" if name == "target" else "right")
    for name, row in results.items():
        s = row["spread"]
        memory.add_row(row["label"], f"{row['redis_bytes_per_queued_request']:.1f}",
                       f"{row['redis_bytes_per_request_one_host']:.1f}",
                       f"{row['bloom_bytes_per_seen_url']:.2f}", f"{row['redis_bytes_per_host']:.0f}",
                       " / ".join(map(str, s["shards_per_master"])),
                       " / ".join(f"{c:,}" for c in s["requests_per_master"]),
                       " / ".join(f"{c:,}" for c in s["checks_per_master"]))
    console.print(memory)
    names = report["crawl_name_spread"]
    console.print("16 shards over 1,000 crawl names, the busiest master's shards over an even share (median, p90;"
                  " share of crawls leaving a master without a shard): "
                  + "; ".join(f"{m} masters {v['busiest_over_even_median']:.2f}x, {v['busiest_over_even_p90']:.2f}x,"
                              f" {v['share_with_an_idle_master']:.0%}" for m, v in names.items()))
    console.print(f"Filter sized for {p['bloom_headroom']}x the requests (allocated up front), error ratio"
                  f" {p['bloom_error_ratio']:g}; ceilings assume every master on a machine of its own with a core"
                  " to itself, and enough clients to keep it busy.")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 requests, 1 round (~2 minutes)")
    parser.add_argument("--requests", type=int, help="requests per run (overrides --quick)")
    parser.add_argument("--hosts", type=int, default=2000, help="hosts the requests spread over")
    parser.add_argument("--batch", type=int, default=500, help="push_many / lease batch size")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (medians reported); 3, --quick 1")
    parser.add_argument("--wait-quiet", type=float,
                        help="wait up to this many seconds for a quiet machine first (default 1200, --quick 0)")
    parser.add_argument("--out", type=Path, help="results file (default results/cluster.json,"
                                                 " --quick results/cluster-quick.json)")
    args = parser.parse_args(argv)
    n = args.requests or (20_000 if args.quick else 200_000)
    rounds_wanted = args.rounds or (1 if args.quick else 3)
    out = args.out or RESULTS / ("cluster-quick.json" if args.quick else "cluster.json")
    console = Console(width=None if sys.stdout.isatty() else 160)
    wait = args.wait_quiet if args.wait_quiet is not None else (0 if args.quick else 1200)
    quiet = wait_until_quiet(wait, console) if wait > 0 else {"waited_seconds": 0, "quiet": None}
    console.print(f"machine: {quiet}; building {n:,} requests over {args.hosts:,} hosts...")
    requests = make_requests(n, args.hosts, BenchSpider())

    stack: list[Any] = []
    try:
        targets = start_targets(stack, console)
        info = targets[0].nodes[0].info("server")
        server_name = (f"{'valkey' if 'valkey_version' in info else 'redis'} "
                       f"{info.get('valkey_version') or info['redis_version']}")
        rounds: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        for number in range(rounds_wanted):
            order = targets[number % len(targets):] + targets[:number % len(targets)]
            for target in order:  # interleaved, rotated: noise hits every target alike
                row = run_target(target, requests, args.batch)
                rounds[target.name].append(row)
                console.print(f"  round {number + 1} {target.label}: " + ", ".join(
                    f"{phase} {row[phase]['ops_per_second']:,.0f}/s ({row[phase]['server_cpu_us_per_op']:.1f}"
                    f" + {row[phase]['client_cpu_us_per_op']:.1f} µs)" for phase in PHASES)
                    + f", {row['redis_bytes_per_queued_request']:.1f} B/request")
        results = {}
        for target in targets:
            results[target.name] = {"label": target.label, "masters": target.masters, "shards": target.shards,
                                    **median_rows(rounds[target.name]), "spread": spread(target, requests)}
        for target in targets:
            target.close()
    finally:
        for thing in reversed(stack):
            thing.stop() if isinstance(thing, LocalRedisCluster) else thing.cleanup()

    report = {
        "redis_server": server_name,
        "machine": machine_info(memory_mib=psutil.virtual_memory().total // 2**20, quiet=quiet,
                                load_average_after=os.getloadavg()),
        "versions": {name: version(name) for name in ("redis", "hiredis", "scrapy", "psutil")},
        "code": code_version(),
        "params": {"requests": n, "hosts": args.hosts, "batch": args.batch, "rounds": rounds_wanted,
                   "bloom_headroom": BLOOM_HEADROOM, "bloom_error_ratio": BloomSettings().error_ratio,
                   "cluster_replicas": 0, "persistence": "none (cluster nodes' appendonly set to no)",
                   "crawl": CRAWL, "example_entry": requests[1].entry.decode(),
                   "per_host_memory": "10,000 requests without fingerprint on 10,000 hosts minus on 1 host"},
        "projection_assumption": (
            "ceiling = masters / (server CPU seconds per op): each master on a machine of its own with a"
            " core to itself, enough client processes to keep every master busy, the load spread as evenly"
            " as the shards are (the busiest-master ceiling = ops / the busiest master's CPU seconds);"
            " network costs beyond loopback not counted"),
        "results": results,
        "crawl_name_spread": {str(m): crawl_name_spread(m, CLUSTER_DEFAULT_SHARDS) for m in (3, 6)},
        "rounds": rounds,
    }
    write_report(report, out)
    print_tables(report, console)
    console.print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
