"""Dequeue of two revisions of Hermit side by side, in alternating rounds on one Redis.

Absolute queue rates move with the machine (by 2x between the machines these figures
were taken on, and by up to 15 % within a run), so a change to the queue is measured
against the code before it in the same run: each round runs ``bench_queue.py``'s
batched Hermit measure (200,000 requests pushed, then leased, decoded and acked in
batches of 500) once per revision, in a fresh process whose ``hermit`` is that
revision's, the order alternating between rounds; medians are reported.

    .venv/bin/python bench/bench_dequeue_revisions.py --base cfbd2f3   # against HEAD
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import machine_info, write_report

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "dequeue_revisions.json"


def measure(redis_url: str, requests: int) -> dict[str, float]:
    """One round in this process, with whichever ``hermit`` is on sys.path."""
    import redis

    from bench_queue import BenchSpider, hermit_run, make_requests

    spider = BenchSpider()
    result = hermit_run(redis.Redis.from_url(redis_url), spider, make_requests(requests), 500)
    return {"dequeue_per_second": result["dequeue_per_second"], "enqueue_per_second": result["enqueue_per_second"]}


def checkout(revision: str, into: Path) -> Path:
    """The crawler package of *revision*, in a worktree-free copy under *into*."""
    target = into / revision
    subprocess.run(["git", "-C", str(REPO), "archive", "--prefix", f"{revision}/", revision, "crawler"],
                   check=True, stdout=open(into / f"{revision}.tar", "wb"))
    subprocess.run(["tar", "-xf", str(into / f"{revision}.tar"), "-C", str(into)], check=True)
    return target / "crawler"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the revision to compare with (a commit)")
    parser.add_argument("--head", default="HEAD", help="the revision measured (default HEAD)")
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--round-of", metavar="REDIS_URL", help=argparse.SUPPRESS)  # a child's one round
    args = parser.parse_args(argv)
    if args.round_of:
        print(json.dumps(measure(args.round_of, args.requests)))
        return 0

    sys.path.insert(0, str(REPO / "crawler"))
    from hermit.redis_server import EmbeddedRedis

    revisions = {name: subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev], check=True,
                                      capture_output=True, text=True).stdout.strip()
                 for name, rev in (("base", args.base), ("head", args.head))}
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in revisions}
    with tempfile.TemporaryDirectory() as scratch, EmbeddedRedis() as server:
        trees = {name: checkout(rev, Path(scratch)) for name, rev in revisions.items()}
        for round_ in range(args.rounds):
            order = list(revisions) if round_ % 2 == 0 else list(reversed(revisions))
            for name in order:
                env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(trees[name]), str(HERE)])}
                done = subprocess.run([sys.executable, __file__, "--base", args.base, "--round-of", server.url,
                                       "--requests", str(args.requests)], env=env, check=True,
                                      capture_output=True, text=True)
                rounds[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
                print(f"round {round_ + 1} {name} ({revisions[name]}): "
                      f"{rounds[name][-1]['dequeue_per_second']:,.0f} dequeues/s", flush=True)
    medians = {name: {key: statistics.median(r[key] for r in runs) for key in runs[0]} for name, runs in rounds.items()}
    report = {
        "machine": machine_info(), "revisions": revisions,
        "params": {"requests": args.requests, "rounds": args.rounds, "batch": 500},
        "rounds": rounds, "medians": medians,
        "dequeue_head_over_base": medians["head"]["dequeue_per_second"] / medians["base"]["dequeue_per_second"],
    }
    print(f"dequeues/s, medians: {revisions['base']} {medians['base']['dequeue_per_second']:,.0f}, "
          f"{revisions['head']} {medians['head']['dequeue_per_second']:,.0f} "
          f"({report['dequeue_head_over_base']:.2f}x)")
    write_report(report, args.out)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
