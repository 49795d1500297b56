"""``hermit status``: queue, hosts, leases, dead letters and dedup of a crawl."""

from __future__ import annotations

import json

import click

from hermit.cli.options import connect, crawl_keys, crawl_option, prefix_option, redis_option
from hermit.crawl_status import read_crawl_status
from hermit.queue.hosts import HostControl

#: Hosts shown per list (busiest, most delayed, backed off).
HOSTS_SHOWN = 5


@click.command("status")
@redis_option()
@crawl_option()
@prefix_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status_command(redis_url: str, crawl: str, prefix: str, as_json: bool) -> None:
    """Show queue depth, hosts, leased (in-flight) requests, dead letters and dedup fill."""
    client, keys = connect(redis_url), crawl_keys(crawl, prefix)
    status = read_crawl_status(client, keys)
    control = HostControl(client, keys)
    lists = {
        "busiest": control.busiest(HOSTS_SHOWN),
        "most_delayed": control.most_delayed(HOSTS_SHOWN),
        "backed_off": control.backed_off(HOSTS_SHOWN),
    }
    if as_json:
        data = status.as_dict()
        data["hosts"] = lists
        click.echo(json.dumps(data, indent=2))
        return
    q, b, h = status.queue, status.bloom, status.queue.hosts
    click.echo(f"crawl           {crawl}")
    if q.legacy_layout:
        click.echo(f"WARNING         requests queued in the layout before host-aware queues: "
                   f"run `hermit queue migrate --crawl {crawl}`")
    click.echo(f"queued          {q.queued}  ({q.schedulable} can be in flight at once under the hosts' limits)")
    click.echo(f"hosts           {h.with_queue} with queued requests: {h.ready} ready now, {h.waiting} waiting "
               f"(delay, backoff or busy), {h.paused} paused; {h.active} with requests in flight, "
               f"{h.backed_off} backed off")
    for title, hosts in lists.items():
        if hosts:
            click.echo(f"  {title.replace('_', ' '):<14}{', '.join(hosts)}")
    click.echo(f"leased          {q.leased}  ({q.workers} workers)")
    click.echo(f"dead letters    {q.dead_letters}")
    click.echo(f"items           {status.items}")
    if b is None:
        click.echo("dedup           no Bloom filter yet")
    else:
        click.echo(
            f"dedup           {b.items} fingerprints, fill {b.fill_ratio:.1%} of {b.capacity}, "
            f"{b.describe_layers()}, est. false positives {b.estimated_false_positive_ratio:.2e}"
        )
    width = max((len(name) + 2 for name in q.counters), default=0)
    for name in sorted(q.counters):
        click.echo(f"  {name:<{max(14, width)}}{q.counters[name]}")
