"""Resume benchmark: how long ``hermit crawl`` takes to fetch again after a stop, with a big frontier queued.

One crawl of the demo site (N pages, 2 workers, embedded Redis, a state directory in
a temporary folder) is started and stopped with SIGINT once it has written its first
items. Its frontier is then filled to N requests: every page URL of the site is
pushed into its Redis as a seed (through the Bloom filter, as ``hermit seed`` does),
and the Redis stopped, so its append-only file holds them all. Then, R times:

- **resume**: the same command is started again; measured from just before the
  process is started to the first page acknowledged in Redis (read every 10 ms from
  the crawl's stats), with its parts: the command's own start (Python, imports,
  checks) until it logs the embedded Redis' URL, which includes loading the AOF, and
  from there to the first page (demo site, workers' start-up, first lease, fetch,
  ack). Then SIGINT, and the time the drain took to end the process.
- **Redis load**: the embedded Redis alone started on the state directory and stopped
  (the AOF's load time, without the rest).

For comparison, the same timing for a new crawl of the same site (``--fresh`` on an
empty state): what a resume costs beyond a cold start is what its state costs.

Writes ``bench/results/resume.json`` and prints a table. Run:

    .venv/bin/python bench/bench_resume.py            # 100,000 requests queued, 3 resumes, ~2 minutes
    .venv/bin/python bench/bench_resume.py --quick    # 20,000 requests, 2 resumes
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from benchlib import machine_info, wait_for_quiet, write_report

from hermit.crawl_status import read_crawl_status
from hermit.keys import CrawlKeys
from hermit.local.state import StateDir
from hermit.queue.redis_queue import RedisRequestQueue
from hermit.redis_server import EmbeddedRedis
from hermit.seeding import push_seeds

RESULTS = Path(__file__).parent / "results" / "resume.json"
WORKERS = 2
POLL_SECONDS = 0.01
_REDIS_LINE = re.compile(r"Embedded Redis \(\S+\) at (redis://\S+?)(,|$)", re.M)


def crawl_command(pages: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "hermit.cli", "crawl", "--workers", str(WORKERS), "--pages", str(pages),
            "--state-dir", "state", "-o", "items.jsonl", "--log-dir", "logs", *extra]


def _wait(condition, what: str, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(POLL_SECONDS)


def _items_written(workdir: Path) -> int:
    try:
        saved = json.loads((workdir / "state" / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return 0
    return (saved.get("items") or {}).get("items") or 0


def _stop(proc: subprocess.Popen[bytes]) -> float:
    """SIGINT (a drain), then how long the process took to end."""
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(300)
    if code != 128 + signal.SIGINT:
        raise RuntimeError(f"hermit crawl ended with {code} after SIGINT")
    return time.monotonic() - started


def time_to_first_page(workdir: Path, command: list[str]) -> dict[str, float]:
    """Start *command*; seconds to its Redis URL in the log and to its first acknowledged page."""
    log = workdir / "hermit.log"
    with log.open("wb") as out:
        started = time.monotonic()
        proc = subprocess.Popen(command, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        found: list[str] = []

        def redis_url() -> bool:
            match = _REDIS_LINE.search(log.read_text(errors="replace"))
            if match:
                found.append(match.group(1))
            if proc.poll() is not None:
                raise RuntimeError(f"hermit crawl ended ({proc.returncode}):\n{log.read_text()[-2000:]}")
            return bool(match)

        _wait(redis_url, "the embedded Redis")
        redis_at = time.monotonic() - started
        client = redis.Redis.from_url(found[0])
        keys = CrawlKeys("demo")
        acked_before = read_crawl_status(client, keys).queue.counters.get("acked", 0)
        _wait(lambda: read_crawl_status(client, keys).queue.counters.get("acked", 0) > acked_before,
              "the first page")
        first_page = time.monotonic() - started
        client.close()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    drain = _stop(proc)
    return {"redis_seconds": round(redis_at, 3), "first_page_seconds": round(first_page, 3),
            "stop_seconds": round(drain, 3)}


def fill_frontier(workdir: Path, pages: int) -> dict[str, Any]:
    """Push every page of the demo site into the stopped crawl's Redis; what is queued then."""
    state = StateDir(workdir / "state")
    saved = state.load()
    assert saved is not None and saved.demo_port, "the first run saved no demo site"
    server = EmbeddedRedis(data_dir=state.redis_dir, appendonly=True).start(timeout=120)
    try:
        client = redis.Redis.from_url(server.url)
        keys = CrawlKeys("demo")
        base = f"http://127.0.0.1:{saved.demo_port}/"
        report = push_seeds(RedisRequestQueue(client, keys, worker_id="bench-fill"),
                            ((n, f"{base}p/{n}.html") for n in range(pages)))
        queued = read_crawl_status(client, keys).queue.queued
        client.close()
    finally:
        server.stop(timeout=60)
    aof = sum(f.stat().st_size for f in state.redis_dir.rglob("*") if f.is_file() and "appendonly" in str(f))
    return {"pushed": report.queued, "already_seen": report.duplicates, "queued": queued, "aof_bytes": aof}


def redis_load_seconds(workdir: Path) -> float:
    state = StateDir(workdir / "state")
    started = time.monotonic()
    server = EmbeddedRedis(data_dir=state.redis_dir, appendonly=True).start(timeout=120)
    loaded = time.monotonic() - started
    server.stop(timeout=60)
    return round(loaded, 3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 requests queued, 2 resumes")
    parser.add_argument("--pages", type=int, help="requests to queue (default 100,000; --quick 20,000)")
    parser.add_argument("--runs", type=int, help="resumes to time (default 3; --quick 2)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each timing, wait up to SECONDS for idle CPUs")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    pages = args.pages or (20_000 if args.quick else 100_000)
    runs = args.runs or (2 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="hermit-bench-resume-") as tmp:
        workdir = Path(tmp)
        print(f"first run of a {pages:,}-page demo crawl, stopped after its first items...")
        with (workdir / "first.log").open("wb") as out:
            first = subprocess.Popen(crawl_command(pages), cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
        _wait(lambda: _items_written(workdir) >= 50, "the first items")
        _stop(first)
        frontier = fill_frontier(workdir, pages)
        print(f"frontier: {frontier['queued']:,} requests queued, AOF {frontier['aof_bytes'] / 2**20:.1f} MiB")
        resumes, loads = [], []
        for run in range(runs):
            if args.wait_quiet:
                wait_for_quiet(args.wait_quiet)
            loads.append(redis_load_seconds(workdir))
            resumes.append(time_to_first_page(workdir, crawl_command(pages)))
            print(f"  resume {run + 1}: first page after {resumes[-1]['first_page_seconds']:.2f}s "
                  f"(Redis URL logged after {resumes[-1]['redis_seconds']:.2f}s; Redis alone loads in "
                  f"{loads[-1]:.2f}s); stop took {resumes[-1]['stop_seconds']:.2f}s")
        fresh = []
        for _ in range(runs):
            if args.wait_quiet:
                wait_for_quiet(args.wait_quiet)
            fresh.append(time_to_first_page(workdir, crawl_command(pages, "--fresh")))
            print(f"  new crawl: first page after {fresh[-1]['first_page_seconds']:.2f}s")

    def median(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(row[key] for row in rows), 3)

    report = {
        "benchmark": "resume",
        "machine": machine_info(),
        "pages": pages,
        "workers": WORKERS,
        "frontier": frontier,
        "resume": resumes,
        "redis_load_seconds": loads,
        "new_crawl": fresh,
        "summary": {
            "resume_first_page_seconds_median": median(resumes, "first_page_seconds"),
            "resume_redis_seconds_median": median(resumes, "redis_seconds"),
            "redis_load_seconds_median": round(statistics.median(loads), 3),
            "new_crawl_first_page_seconds_median": median(fresh, "first_page_seconds"),
            "stop_seconds_median": median(resumes, "stop_seconds"),
        },
    }
    write_report(report, args.out)
    s = report["summary"]
    print(f"\n{'':34}{'median':>10}")
    print(f"{'resume: command to first page':34}{s['resume_first_page_seconds_median']:>9.2f}s")
    print(f"{'  of which until Redis is up':34}{s['resume_redis_seconds_median']:>9.2f}s")
    print(f"{'  (Redis alone loading the AOF)':34}{s['redis_load_seconds_median']:>9.2f}s")
    print(f"{'new crawl: command to first page':34}{s['new_crawl_first_page_seconds_median']:>9.2f}s")
    print(f"{'SIGINT to exit (drain)':34}{s['stop_seconds_median']:>9.2f}s")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
