"""``hermit status``: queue, leases, dead letters and dedup of a crawl."""

from __future__ import annotations

import json

import click

from hermit.cli.options import connect, crawl_keys, crawl_option, prefix_option, redis_option
from hermit.crawl_status import read_crawl_status


@click.command("status")
@redis_option()
@crawl_option()
@prefix_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_command(redis_url: str, crawl: str, prefix: str, as_json: bool) -> None:
    """Show queue depth, leased (in-flight) requests, dead letters and dedup fill."""
    status = read_crawl_status(connect(redis_url), crawl_keys(crawl, prefix))
    if as_json:
        click.echo(json.dumps(status.as_dict(), indent=2))
        return
    q, b = status.queue, status.bloom
    click.echo(f"crawl           {crawl}")
    click.echo(f"queued          {q.queued}  (by priority: {q.queued_by_priority or '{}'})")
    click.echo(f"leased          {q.leased}  ({q.workers} workers)")
    click.echo(f"dead letters    {q.dead_letters}")
    click.echo(f"items           {status.items}")
    if b is None:
        click.echo("dedup           no Bloom filter yet")
    else:
        click.echo(
            f"dedup           {b.items} fingerprints, fill {b.fill_ratio:.1%} of {b.capacity}, "
            f"{b.layers} layer(s), est. false positives {b.estimated_false_positive_ratio:.2e}"
        )
    for name in sorted(q.counters):
        click.echo(f"  {name:<14}{q.counters[name]}")
