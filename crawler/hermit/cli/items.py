"""``hermit items``: export the durable item stream."""

from __future__ import annotations

import click

from hermit.cli.options import connect, crawl_keys, crawl_option, prefix_option, redis_option
from hermit.items_export import export_items


@click.group("items")
def items_group() -> None:
    """Work with a crawl's items (kept in a Redis stream)."""


@items_group.command("export")
@redis_option()
@crawl_option()
@prefix_option
@click.option("-o", "--output", type=click.File("wb", lazy=False), default="-", help="JSON Lines file (default stdout).")
def export_command(redis_url: str, crawl: str, prefix: str, output) -> None:
    """Write every item of the crawl as JSON Lines."""
    written, _ = export_items(connect(redis_url), crawl_keys(crawl, prefix), output)
    click.echo(f"exported {written} items", err=True)
