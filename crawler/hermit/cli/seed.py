"""``hermit seed``: push seed URLs into a crawl's queue through dedup."""

from __future__ import annotations

import sys

import click

from hermit.cli.options import connect, crawl_keys, crawl_option, prefix_option, redis_option, setting_type
from hermit.queue.frontier import Frontier
from hermit.queue.shards import CLUSTER_DEFAULT_SHARDS, open_shards
from hermit.settings import setting
from hermit.seeding import load_fingerprinter, push_seeds, read_seed_lines


def _project_fingerprinter() -> str | None:
    """REQUEST_FINGERPRINTER_CLASS of the Scrapy project around the current directory, if any."""
    from scrapy.utils.conf import closest_scrapy_cfg
    from scrapy.utils.project import get_project_settings

    if not closest_scrapy_cfg():
        return None
    value = get_project_settings().get("REQUEST_FINGERPRINTER_CLASS")
    return value if isinstance(value, str) else None


@click.command("seed")
@click.argument("source", type=click.File("r"), default="-")
@redis_option()
@crawl_option()
@prefix_option
@click.option("--url", "urls", multiple=True, help="A seed URL (repeatable), instead of SOURCE.")
@click.option("--priority", type=int, default=0, show_default=True, help="Priority of the seeds.")
@click.option(
    "--fingerprinter", metavar="CLASS",
    help="Dotted path of the workers' REQUEST_FINGERPRINTER_CLASS (default: the current "
    "Scrapy project's setting, else Scrapy's own).",
)
@click.option(
    "--shards", type=setting_type(setting("HERMIT_QUEUE_SHARDS")), default=setting("HERMIT_QUEUE_SHARDS").default,
    envvar="HERMIT_QUEUE_SHARDS",
    help="Shards of the crawl's frontier if the crawl is new (0: 1 on a single Redis, "
    f"{CLUSTER_DEFAULT_SHARDS} on a Redis Cluster; env HERMIT_QUEUE_SHARDS).",
)
def seed_command(
    source, redis_url: str, crawl: str, prefix: str, urls: tuple[str, ...], priority: int,
    fingerprinter: str | None, shards: int,
) -> None:
    """Push seed URLs (one per line, from SOURCE or stdin; '#' starts a comment).

    Each URL goes through the crawl's Bloom filter, so seeding twice queues nothing
    new. Malformed or non-HTTP URLs are rejected with the reason; the exit status is 1
    if any line was rejected.
    """
    try:
        request_fingerprinter = load_fingerprinter(fingerprinter or _project_fingerprinter())
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fingerprinter") from None
    client = connect(redis_url)
    keys = crawl_keys(crawl, prefix)
    queue = Frontier(client, keys, "cli-seed", shards=open_shards(client, keys, shards))
    lines = ((0, url) for url in urls) if urls else read_seed_lines(source)
    report = push_seeds(queue, lines, priority=priority, fingerprinter=request_fingerprinter)
    for number, text, reason in report.rejected:
        where = f"line {number}: " if number else ""
        click.echo(f"rejected {where}{text!r}: {reason}", err=True)
    click.echo(
        f"{report.queued} queued, {report.duplicates} already seen, {len(report.rejected)} rejected"
        f" (crawl {crawl!r})"
    )
    sys.exit(1 if report.rejected else 0)
