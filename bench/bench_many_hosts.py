"""Polite crawl of many hosts: Hermit, plain Scrapy and scrapy-redis, side by side.

The many-hosts site (``hermit.demo.many_hosts``: one server on 127.0.0.2, 127.0.0.3, …,
one port, every request logged with its time, host, path and status) is crawled by
the ``many-hosts`` spider (``-a url=<site>``, one item per page) six ways, in the same
run:

- ``plain Scrapy``: one ``scrapy crawl many-hosts`` process (Scrapy's in-memory
  scheduler, its ``DownloaderAwarePriorityQueue`` and dupefilter);
- ``scrapy-redis, 1 worker`` and ``3 workers``: ``scrapy crawl many-hosts`` with
  scrapy-redis' ``Scheduler`` and ``RFPDupeFilter`` on the same Redis,
  ``SCHEDULER_PERSIST = True`` and the ``IdleClose`` extension of
  ``bench_crawl_throughput`` (an idle worker stays open 2 s and wakes its engine every
  0.2 s), as in that benchmark;
- ``Hermit, 1``, ``2`` and ``3 workers``: ``hermit worker many-hosts`` processes on one
  crawl, Hermit's defaults, ``HERMIT_IDLE_CLOSE_SECONDS=0.5``.

All from one generated Scrapy project (``SPIDER_MODULES = ["hermit.demo.many_hosts"]``)
with polite settings: ``DOWNLOAD_DELAY = 0.25`` without jitter
(``DOWNLOAD_DELAY_JITTER = 0`` and ``RANDOMIZE_DOWNLOAD_DELAY = False``),
``CONCURRENT_REQUESTS_PER_DOMAIN = 1``, ``CONCURRENT_REQUESTS = 16``,
``ROBOTSTXT_OBEY = False``. So one host may be fetched at most 4 times a second, by the
whole fleet together: the polite cap of a crawl is hosts x 4 pages/s.

Two site shapes, each crawled by every crawler:

- ``many hosts``: 300 hosts x 20 pages, a cap of 1,200 pages/s, far above what the
  machine's CPUs can crawl: the crawlers' own speed is measured;
- ``few hosts``: 4 hosts x 60 pages, a cap of 16 pages/s: politeness binds, and the
  question is whether a crawler reaches the cap without exceeding it.

Every run gets a fresh site process with its own request log and a flushed Redis.
One round by default (scrapy-redis with one worker alone takes ~4 minutes of the
many-hosts shape); with ``--rounds N`` rounds are interleaved (the order reversed every
other round) and medians reported.
Measured per run:

- Pages/s, from the site's log (one clock): distinct pages answered 200 / (last
  request - first request the site answered), so start-up and closing are left out.
- Completeness: the items' URLs (a ``Probe`` extension in every process, from
  ``bench_crawl_throughput``) against the ground truth (``ManyHostsSite.expected_urls``);
  missing, unexpected and duplicate items, requests of a page fetched more than once,
  exit codes.
- Politeness: per host, the most requests the site saw in any 1 s and any 2 s window
  (``highest_rates``), the highest over all hosts and how many hosts went over the
  limit; and the shortest gap between two requests of one host. The limit of a window
  is ``window / DOWNLOAD_DELAY`` requests (4 and 8); the site logs a request when it
  answers it, so a request may be counted a little early or late: a run "held the
  limit" when no host had more than one request over it in any window (the tolerance
  issue 11's tests allow), and the raw counts are reported as well.
- CPU, in cores busy between the first and the last request (psutil samples of every
  crawler process, the site and redis-server, and the whole machine), so the table
  says what limits a run.

Writes ``bench/results/many_hosts.json`` and prints a table and the ratios. Run:

    .venv/bin/python bench/bench_many_hosts.py            # 300x20 and 4x60 pages, 1 round, ~12 minutes on 2 cores
    .venv/bin/python bench/bench_many_hosts.py --quick --out /tmp/many_hosts.json   # 60x10 and 2x30, 1 round
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import redis
from rich.console import Console
from rich.table import Table

from bench_crawl_throughput import PROBE, Variant, cores_busy, start_sampler, wait_all
from benchlib import machine_info, memory_mib, wait_for_quiet, write_report
from hermit.demo.many_hosts import ManyHostsProcess, highest_rates, read_log, shortest_gaps
from hermit.redis_server import EmbeddedRedis

RESULTS = Path(__file__).parent / "results" / "many_hosts.json"
PROJECT = "manyhostsbench"
SPIDER = "many-hosts"
DOWNLOAD_DELAY = 0.25
PER_HOST = 1  # CONCURRENT_REQUESTS_PER_DOMAIN
CONCURRENCY = 16  # CONCURRENT_REQUESTS
HERMIT_IDLE_CLOSE_SECONDS = 0.5
SCRAPY_REDIS_IDLE_CLOSE_SECONDS = 2.0
IDLE_POLL_SECONDS = 0.2
RUN_TIMEOUT_SECONDS = 600.0
WINDOWS = (1.0, 2.0)  # seconds: per-host rates are counted in every window of these lengths
JITTER_ALLOWED = 1  # requests over the limit in one window still counted as held (log-time jitter)


@dataclass(frozen=True)
class Shape:
    key: str
    label: str
    hosts: int
    pages: int  # per host

    @property
    def polite_cap(self) -> float:
        """Pages/s the whole fleet may fetch: every host at its limit."""
        return self.hosts * PER_HOST / DOWNLOAD_DELAY


SHAPES = (Shape("many", "many hosts", 300, 20), Shape("few", "few hosts", 4, 60))
QUICK_SHAPES = (Shape("many", "many hosts", 60, 10), Shape("few", "few hosts", 2, 30))

VARIANTS = (
    Variant("scrapy", "plain Scrapy", "scrapy", 1),
    Variant("scrapy-redis-1", "scrapy-redis, 1 worker", "scrapy-redis", 1),
    Variant("scrapy-redis-3", "scrapy-redis, 3 workers", "scrapy-redis", 3),
    Variant("hermit-1", "Hermit, 1 worker", "hermit", 1),
    Variant("hermit-2", "Hermit, 2 workers", "hermit", 2),
    Variant("hermit-3", "Hermit, 3 workers", "hermit", 3),
)

SETTINGS = f'''
BOT_NAME = "{PROJECT}"
SPIDER_MODULES = ["hermit.demo.many_hosts"]  # the many-hosts spider itself, unchanged
ROBOTSTXT_OBEY = False
CONCURRENT_REQUESTS = {CONCURRENCY}
CONCURRENT_REQUESTS_PER_DOMAIN = {PER_HOST}
DOWNLOAD_DELAY = {DOWNLOAD_DELAY}
DOWNLOAD_DELAY_JITTER = 0
RANDOMIZE_DOWNLOAD_DELAY = False
LOG_LEVEL = "INFO"
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
EXTENSIONS = {{"{PROJECT}.probe.Probe": 0, "{PROJECT}.probe.IdleClose": 0}}
'''


def write_project(root: Path) -> Path:
    package = root / PROJECT
    package.mkdir(parents=True)
    (root / "scrapy.cfg").write_text(f"[settings]\ndefault = {PROJECT}.settings\n")
    (package / "__init__.py").write_text("")
    (package / "settings.py").write_text(SETTINGS.lstrip())
    (package / "probe.py").write_text(PROBE.lstrip())
    return root


def worker_command(variant: Variant, site_url: str, redis_url: str, crawl: str, probe: Path) -> list[str]:
    common = ["-a", f"url={site_url}", "-s", f"BENCH_PROBE_FILE={probe}"]
    if variant.kind == "hermit":
        return [sys.executable, "-m", "hermit.cli", "worker", SPIDER, "--redis", redis_url, "--crawl", crawl,
                *common, "-s", f"HERMIT_IDLE_CLOSE_SECONDS={HERMIT_IDLE_CLOSE_SECONDS}",
                "-s", "HERMIT_METRICS_HOST=127.0.0.1", "-s", "HERMIT_METRICS_PORT=0",
                "-s", "HERMIT_DIAGNOSTICS_PORT=0"]
    command = [sys.executable, "-m", "scrapy", "crawl", SPIDER, *common]
    if variant.kind == "scrapy-redis":
        command += ["-s", "SCHEDULER=scrapy_redis.scheduler.Scheduler",
                    "-s", "DUPEFILTER_CLASS=scrapy_redis.dupefilter.RFPDupeFilter",
                    "-s", f"REDIS_URL={redis_url}", "-s", "SCHEDULER_PERSIST=True",
                    "-s", f"BENCH_IDLE_CLOSE_SECONDS={SCRAPY_REDIS_IDLE_CLOSE_SECONDS}",
                    "-s", f"BENCH_IDLE_POLL_SECONDS={IDLE_POLL_SECONDS}"]
    return command


# -- one run ---------------------------------------------------------------------------


def politeness(records: list[Any]) -> dict[str, Any]:
    """The highest per-host rates the site saw, against the limit of each window."""
    result: dict[str, Any] = {}
    for window in WINDOWS:
        rates = highest_rates(records, window)
        limit = round(window * PER_HOST / DOWNLOAD_DELAY)
        worst = max(rates.values(), default=0)
        result[f"{window:g}s"] = {
            "limit": limit, "highest": worst,
            "hosts_over_limit": sum(1 for n in rates.values() if n > limit),
            "hosts_over_limit_plus_jitter": sum(1 for n in rates.values() if n > limit + JITTER_ALLOWED),
            "busiest_hosts": sorted(rates.items(), key=lambda kv: -kv[1])[:3],
        }
    gaps = shortest_gaps(records)
    result["shortest_gap_seconds"] = round(min(gaps.values(), default=float("inf")), 4)
    result["held"] = all(result[f"{w:g}s"]["hosts_over_limit_plus_jitter"] == 0 for w in WINDOWS)
    result["held_strictly"] = all(result[f"{w:g}s"]["hosts_over_limit"] == 0 for w in WINDOWS)
    return result


def run_once(shape: Shape, variant: Variant, round_: int, server: EmbeddedRedis, project: Path,
             workdir: Path) -> dict[str, Any]:
    client = redis.Redis.from_url(server.url)
    client.execute_command("FLUSHALL", "SYNC")
    crawl = f"bench-{shape.key}-{round_}-{variant.key}"
    request_log = workdir / f"{crawl}-requests.log"
    probes = [workdir / f"{crawl}-{i}.json" for i in range(variant.workers)]
    logs = [workdir / f"{crawl}-{i}.log" for i in range(variant.workers)]
    processes: list[subprocess.Popen[bytes]] = []
    with ManyHostsProcess(shape.hosts, shape.pages, request_log) as site:
        expected = site.site.expected_urls(site.port)
        assert server.process is not None and site._process is not None
        others = {"site": psutil.Process(site._process.pid), "redis": psutil.Process(server.process.pid),
                  "bench": psutil.Process()}
        launched = time.time()
        try:
            for probe, log in zip(probes, logs):
                with log.open("wb") as out:
                    processes.append(subprocess.Popen(worker_command(variant, site.url, server.url, crawl, probe),
                                                      cwd=project, stdout=out, stderr=subprocess.STDOUT))
            sampler = start_sampler(processes, others, launched)
            exits, timed_out = wait_all(processes, sampler, RUN_TIMEOUT_SECONDS)
            sampler.stop()
        finally:
            for process in processes:  # interrupted: leave no worker behind
                if process.returncode is None:
                    process.kill()
                    process.wait()
    client.close()
    finished = max(e["exited_at"] for e in exits.values())

    records = read_log(request_log)
    pages_answered = [r for r in records if r.path.startswith("/p/")]
    ok = {f"http://{r.host}:{site.port}{r.path}" for r in pages_answered if r.status == 200}
    start, end = (records[0].time, records[-1].time) if records else (launched, finished)
    window = max(1e-9, end - start)

    workers, items = [], []
    for i, (probe, log) in enumerate(zip(probes, logs)):
        data = json.loads(probe.read_text()) if probe.exists() else None
        worker = {**exits[i], "exited_at": round(exits[i]["exited_at"] - launched, 3), "probe_written": data is not None}
        if data is not None:
            items.extend(data["items"])
            worker.update(responses=data["responses"], items=len(data["items"]), reason=data["reason"],
                          stats=data["stats"])
        if worker["exit_code"] != 0 or data is None:
            worker["log_tail"] = log.read_text(errors="replace")[-3000:]
        workers.append(worker)
    distinct = set(items)
    missing = sorted(expected - distinct)
    unexpected = sorted(distinct - expected)

    names = [f"worker{i}" for i in range(len(processes))]
    worker_cores = [cores_busy(sampler.series[n], start, end) for n in names]
    for worker, cores in zip(workers, worker_cores):
        worker["cores_busy_in_window"] = round(cores, 3)
    own = {name: cores_busy(sampler.series[name], start, end) for name in others}
    machine = cores_busy(sampler.series["machine"], start, end)
    pages = len(ok & expected)
    return {
        "shape": shape.key, "round": round_ + 1, "variant": variant.key, "workers": variant.workers,
        "pages_expected": len(expected), "pages_fetched": pages,
        "complete": not missing and pages == len(expected),
        "missing": len(missing), "missing_examples": missing[:10],
        "unexpected": len(unexpected), "unexpected_examples": unexpected[:10],
        "duplicate_items": len(items) - len(distinct),
        "page_requests": len(pages_answered),
        "pages_fetched_twice_or_more": len(pages_answered) - len({(r.host, r.path) for r in pages_answered}),
        "statuses": {str(s): sum(1 for r in records if r.status == s) for s in sorted({r.status for r in records})},
        "exit_codes": [w["exit_code"] for w in workers], "timed_out": timed_out,
        "window_seconds": round(window, 3),
        "pages_per_second": round(pages / window, 2),
        "polite_cap": shape.polite_cap,
        "of_polite_cap": round(pages / window / shape.polite_cap, 3),
        "startup_seconds": round(start - launched, 3),
        "run_seconds": round(finished - launched, 3),
        "politeness": politeness(records),
        "cores_busy_in_window": {
            "crawler": round(sum(worker_cores), 3), "busiest_worker": round(max(worker_cores), 3),
            "site": round(own["site"], 3), "redis": round(own["redis"], 3),
            "machine": round(machine, 3),
            "steal": round(cores_busy(sampler.series["steal"], start, end), 3),
            "others": round(max(0.0, machine - sum(worker_cores) - sum(own.values())), 3),
        },
        "crawler_cpu_ms_per_page": round(1000 * sum(e["cpu_seconds"] for e in exits.values()) / max(1, pages), 3),
        "worker_details": workers,
    }


# -- summary and output ----------------------------------------------------------------


def summarize(runs: list[dict[str, Any]], shapes: Sequence[Shape]) -> dict[str, Any]:
    """Per shape and crawler: medians of the rates and cores, the worst politeness of any round."""
    summary: dict[str, Any] = {}
    for shape in shapes:
        per_shape: dict[str, Any] = {}
        for variant in VARIANTS:
            mine = [r for r in runs if r["shape"] == shape.key and r["variant"] == variant.key]
            if not mine:
                continue
            cores = {name: round(statistics.median(r["cores_busy_in_window"][name] for r in mine), 3)
                     for name in mine[0]["cores_busy_in_window"]}
            per_shape[variant.key] = {
                "label": variant.label, "workers": variant.workers, "runs": len(mine),
                "complete_runs": sum(1 for r in mine if r["complete"]),
                "clean_runs": sum(1 for r in mine if r["complete"] and not r["timed_out"] and not any(r["exit_codes"])
                                  and not r["duplicate_items"] and not r["unexpected"]),
                "pages_fetched_min": min(r["pages_fetched"] for r in mine), "pages_expected": mine[0]["pages_expected"],
                "pages_per_second": round(statistics.median(r["pages_per_second"] for r in mine), 2),
                "pages_per_second_range": [min(r["pages_per_second"] for r in mine),
                                           max(r["pages_per_second"] for r in mine)],
                "polite_cap": shape.polite_cap,
                "of_polite_cap": round(statistics.median(r["of_polite_cap"] for r in mine), 3),
                "highest_per_host": {f"{w:g}s": max(r["politeness"][f"{w:g}s"]["highest"] for r in mine)
                                     for w in WINDOWS},
                "per_host_limit": {f"{w:g}s": mine[0]["politeness"][f"{w:g}s"]["limit"] for w in WINDOWS},
                "shortest_gap_seconds": min(r["politeness"]["shortest_gap_seconds"] for r in mine),
                "limit_held_every_run": all(r["politeness"]["held"] for r in mine),
                "limit_held_strictly_every_run": all(r["politeness"]["held_strictly"] for r in mine),
                "pages_fetched_twice_or_more_max": max(r["pages_fetched_twice_or_more"] for r in mine),
                "cores_busy_in_window": cores,
                "worker_cores_busy": [round(statistics.median(r["worker_details"][i]["cores_busy_in_window"]
                                                              for r in mine), 3) for i in range(variant.workers)],
            }
        summary[shape.key] = per_shape
    return summary


def ratios(summary: dict[str, Any]) -> dict[str, Any]:
    """The ratios issue 11 asks for, with their targets."""
    def rate(shape: str, key: str) -> float | None:
        entry = summary.get(shape, {}).get(key)
        return entry["pages_per_second"] if entry else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return round(a / b, 3) if a is not None and b else None

    many = {
        "hermit_1_vs_scrapy": {"value": ratio(rate("many", "hermit-1"), rate("many", "scrapy")), "target": 0.95},
        "hermit_2_vs_hermit_1": {"value": ratio(rate("many", "hermit-2"), rate("many", "hermit-1")), "target": 1.8},
        "hermit_3_vs_hermit_1": {"value": ratio(rate("many", "hermit-3"), rate("many", "hermit-1")), "target": None},
        "scrapy_redis_1_vs_scrapy": {"value": ratio(rate("many", "scrapy-redis-1"), rate("many", "scrapy")),
                                     "target": None},
        "scrapy_redis_3_vs_scrapy_redis_1": {"value": ratio(rate("many", "scrapy-redis-3"),
                                                            rate("many", "scrapy-redis-1")), "target": None},
    }
    for entry in many.values():
        entry["met"] = None if entry["target"] is None or entry["value"] is None else entry["value"] >= entry["target"]
    few = {key: entry["of_polite_cap"] for key, entry in summary.get("few", {}).items()}
    held = {shape: {key: entry["limit_held_every_run"] for key, entry in per_shape.items()}
            for shape, per_shape in summary.items()}
    return {"many_hosts": many, "few_hosts_of_polite_cap": few, "per_host_limit_held": held}


def print_report(report: dict[str, Any], console: Console) -> None:
    p = report["params"]
    table = Table(title=f"Polite crawl, DOWNLOAD_DELAY={DOWNLOAD_DELAY}, CONCURRENT_REQUESTS_PER_DOMAIN={PER_HOST},"
                        f" CONCURRENT_REQUESTS={CONCURRENCY} (medians of {p['rounds']} round(s); per-host: worst)")
    for name in ("site", "crawler", "all pages", "pages/s (range)", "of cap", "max/host 1 s", "max/host 2 s",
                 "shortest gap", "limit held", "crawler cores", "busiest worker", "site", "redis", "machine", "others"):
        table.add_column(name, justify="left" if name in ("site", "crawler") else "right")
    for shape in p["shapes"]:
        for entry in report["summary"][shape["key"]].values():
            complete = f"{entry['complete_runs']}/{entry['runs']}"
            if entry["complete_runs"] < entry["runs"]:
                complete = f"[red]{complete} (min {entry['pages_fetched_min']:,}/{entry['pages_expected']:,})[/]"
            low, high = entry["pages_per_second_range"]
            rate = f"{entry['pages_per_second']:.1f}" + (f" ({low:.0f}–{high:.0f})" if entry["runs"] > 1 else "")
            top, limit = entry["highest_per_host"], entry["per_host_limit"]
            held = "yes" if entry["limit_held_every_run"] else "[red]no[/]"
            c = entry["cores_busy_in_window"]
            table.add_row(f"{shape['hosts']}x{shape['pages']}", entry["label"], complete, rate,
                          f"{entry['of_polite_cap']:.1%}", f"{top['1s']} / {limit['1s']}", f"{top['2s']} / {limit['2s']}",
                          f"{entry['shortest_gap_seconds']:.3f}s", held, f"{c['crawler']:.2f}",
                          f"{c['busiest_worker']:.2f}", f"{c['site']:.2f}", f"{c['redis']:.2f}", f"{c['machine']:.2f}",
                          f"{c['others']:.2f}")
    console.print(table)
    console.print(f"cap: hosts x {PER_HOST / DOWNLOAD_DELAY:g} pages/s. max/host: the most requests of one host the site"
                  " saw in any 1 s / 2 s window, against the limit; held: no host over it by more than"
                  f" {JITTER_ALLOWED} (log-time jitter). Cores busy between the first and last request;"
                  f" the machine has {report['machine']['cpus']} CPUs; others: what processes outside the benchmark"
                  " (or the hypervisor) used meanwhile.")
    r = report["ratios"]
    for name, entry in r["many_hosts"].items():
        if entry["value"] is None:
            continue
        target = "" if entry["target"] is None else (
            f" (target >= {entry['target']}: {'met' if entry['met'] else '[red]missed[/]'})")
        console.print(f"many hosts, {name.replace('_', ' ')}: {entry['value']:.2f}×{target}")
    for key, value in r["few_hosts_of_polite_cap"].items():
        console.print(f"few hosts, {key}: {value:.1%} of the polite cap")
    for run in report["runs"]:
        if not run["complete"] or run["timed_out"] or any(run["exit_codes"]) or run["unexpected"]:
            console.print(f"[red]{run['shape']} round {run['round']} {run['variant']}:[/] {run['pages_fetched']:,}/"
                          f"{run['pages_expected']:,} pages, {run['missing']} missing, {run['unexpected']} unexpected,"
                          f" exit codes {run['exit_codes']}{', timed out' if run['timed_out'] else ''}")


def code_state() -> dict[str, Any]:
    """The commit measured, and the files that differed from it (the checkout may be shared)."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True,
                                  timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""

    return {"commit": git("rev-parse", "HEAD").strip(),
            "modified": [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="60x10 and 2x30 pages")
    parser.add_argument("--rounds", type=int, help="rounds of every crawler on every shape (default 1)")
    parser.add_argument("--only", help="comma-separated crawlers to run (of: " + ", ".join(v.key for v in VARIANTS) + ")")
    parser.add_argument("--shapes", default="many,few", help="comma-separated shapes to run (of: many, few)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep-logs", type=Path, help="copy the request logs, workers' logs and probes to this directory")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="on a shared machine: before each run, wait up to SECONDS for 5 s of idle CPUs")
    args = parser.parse_args(argv)
    rounds = args.rounds or 1
    shapes = tuple(s for s in (QUICK_SHAPES if args.quick else SHAPES) if s.key in args.shapes.split(","))
    variants = VARIANTS
    if args.only:
        wanted = set(args.only.split(","))
        if wanted - {v.key for v in VARIANTS}:
            parser.error(f"unknown crawlers: {', '.join(sorted(wanted - {v.key for v in VARIANTS}))}")
        variants = tuple(v for v in VARIANTS if v.key in wanted)
    console = Console(width=None if sys.stdout.isatty() else 200)
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hermit-bench-many-hosts-") as tmp, EmbeddedRedis() as server:
        project = write_project(Path(tmp) / "project")
        workdir = Path(tmp) / "runs"
        workdir.mkdir()
        info = redis.Redis.from_url(server.url).info("server")
        server_name = (f"{'valkey' if 'valkey_version' in info else 'redis'} "
                       f"{info.get('valkey_version') or info['redis_version']}")
        console.print(f"{server_name} on {server.url}; shapes "
                      + ", ".join(f"{s.label} {s.hosts}x{s.pages} (cap {s.polite_cap:g} pages/s)" for s in shapes)
                      + f"; {rounds} round(s)")
        for round_ in range(rounds):
            for shape in shapes:
                for variant in variants if round_ % 2 == 0 else tuple(reversed(variants)):
                    waited = wait_for_quiet(args.wait_quiet) if args.wait_quiet > 0 else None
                    run = run_once(shape, variant, round_, server, project, workdir)
                    run["waited_for_quiet"] = waited
                    runs.append(run)
                    c, pol = run["cores_busy_in_window"], run["politeness"]
                    flag = "" if run["complete"] and not any(run["exit_codes"]) else "  [red]INCOMPLETE or FAILED[/]"
                    console.print(f"  round {round_ + 1} {shape.label} {variant.label}: {run['pages_fetched']:,}/"
                                  f"{run['pages_expected']:,} pages, {run['pages_per_second']:.1f} pages/s"
                                  f" ({run['of_polite_cap']:.1%} of cap); max/host {pol['1s']['highest']} in 1 s,"
                                  f" {pol['2s']['highest']} in 2 s; cores: crawler {c['crawler']:.2f}, site"
                                  f" {c['site']:.2f}, redis {c['redis']:.2f}, machine {c['machine']:.2f}, others"
                                  f" {c['others']:.2f}{flag}")
        if args.keep_logs:
            args.keep_logs.mkdir(parents=True, exist_ok=True)
            for path in workdir.iterdir():
                (args.keep_logs / path.name).write_bytes(path.read_bytes())
    summary = summarize(runs, shapes)
    report = {
        "redis_server": server_name,
        "machine": machine_info(memory_mib=memory_mib()),
        "versions": {name: version(name) for name in ("hermit-crawler", "scrapy", "scrapy-redis", "twisted", "redis")},
        "code": code_state(),
        "params": {
            "quick": args.quick, "rounds": rounds, "crawlers": [v.key for v in variants],
            "shapes": [{"key": s.key, "hosts": s.hosts, "pages": s.pages, "polite_cap": s.polite_cap} for s in shapes],
            "settings": {"DOWNLOAD_DELAY": DOWNLOAD_DELAY, "DOWNLOAD_DELAY_JITTER": 0,
                         "RANDOMIZE_DOWNLOAD_DELAY": False, "CONCURRENT_REQUESTS_PER_DOMAIN": PER_HOST,
                         "CONCURRENT_REQUESTS": CONCURRENCY, "ROBOTSTXT_OBEY": False},
            "hermit_idle_close_seconds": HERMIT_IDLE_CLOSE_SECONDS,
            "scrapy_redis_idle_close_seconds": SCRAPY_REDIS_IDLE_CLOSE_SECONDS, "wait_quiet": args.wait_quiet,
            "pages_per_second_means": "distinct pages answered 200 / (last - first request in the site's log)",
            "per_host_limit_means": f"window / DOWNLOAD_DELAY requests; held: no host over it by more than"
                                    f" {JITTER_ALLOWED} in any window",
        },
        "summary": summary,
        "ratios": ratios(summary),
        "runs": runs,
        "bench_seconds": round(time.monotonic() - started, 1),
    }
    write_report(report, args.out)
    print_report(report, console)
    console.print(f"written to {args.out} in {report['bench_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
