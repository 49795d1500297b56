"""``hermit queue``: maintenance of a crawl's queue."""

from __future__ import annotations

import click

from hermit.cli.options import connect, crawl_keys, crawl_option, prefix_option, redis_option
from hermit.queue.migrate_layout import LiveWorkers, migrate_layout


@click.group("queue")
def queue_group() -> None:
    """Maintenance of a crawl's queue."""


@queue_group.command("migrate")
@redis_option()
@crawl_option()
@prefix_option
@click.option("--batch", type=click.IntRange(1, 100_000), default=1000, show_default=True)
def migrate_command(redis_url: str, crawl: str, prefix: str, batch: int) -> None:
    """Move requests queued before host-aware queues into per-host queues (workers stopped)."""
    try:
        report = migrate_layout(connect(redis_url), crawl_keys(crawl, prefix), batch=batch)
    except LiveWorkers as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"moved {report.moved} requests to per-host queues ({report.leases_returned} old leases returned "
               f"first, {report.dead_lettered} unreadable entries dead-lettered)")
