"""``hermit hosts``: see and change the fleet-wide politeness of single hosts while a crawl runs.

Every change is written to Redis and read by every lease, so all workers obey it
at once: no restart, no signal.
"""

from __future__ import annotations

import json

import click

from hermit.cli.options import connect, crawl_keys, crawl_option, prefix_option, redis_option
from hermit.queue.hosts import HostControl, HostInfo


def _control(redis_url: str, crawl: str, prefix: str) -> HostControl:
    return HostControl(connect(redis_url), crawl_keys(crawl, prefix))


def _show(infos: list[HostInfo], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([info.as_dict() for info in infos], indent=2))
        return
    click.echo(f"{'host':<32} {'queued':>8} {'active':>6} {'next in':>8}  settings / robots / backoff")
    for info in infos:
        when = "-" if info.next_fetch_in_seconds is None else f"{info.next_fetch_in_seconds:.1f}s"
        notes = []
        if info.settings:
            notes.append(json.dumps(info.settings, sort_keys=True))
        if info.robots_delay_seconds:
            notes.append(f"robots Crawl-delay {info.robots_delay_seconds:g}s")
        if info.backoff:
            notes.append(f"backoff level {info.backoff.get('level')} ({info.backoff.get('reason')})")
        click.echo(f"{info.host:<32} {info.queued:>8} {info.active:>6} {when:>8}  {'; '.join(notes)}")


@click.group("hosts")
def hosts_group() -> None:
    """See and change per-host politeness (delay, concurrency, pause, block) of a running crawl."""


@hosts_group.command("list")
@redis_option()
@crawl_option()
@prefix_option
@click.option("--by", type=click.Choice(["busiest", "delayed", "backoff", "settings"]), default="busiest",
              show_default=True, help="Which hosts: most in flight, next fetch furthest ahead, backed off, "
              "or those with settings of their own.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_command(redis_url: str, crawl: str, prefix: str, by: str, limit: int, as_json: bool) -> None:
    """Show hosts: queued, in flight, when next fetched, and their settings, robots delay and backoff."""
    control = _control(redis_url, crawl, prefix)
    hosts = {
        "busiest": control.busiest,
        "delayed": control.most_delayed,
        "backoff": control.backed_off,
        "settings": lambda n: control.with_settings()[:n],
    }[by](limit)
    _show(control.describe(hosts), as_json)


@hosts_group.command("show")
@redis_option()
@crawl_option()
@prefix_option
@click.argument("hosts", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def show_command(redis_url: str, crawl: str, prefix: str, hosts: tuple[str, ...], as_json: bool) -> None:
    """Show the given HOSTS."""
    control = _control(redis_url, crawl, prefix)
    _show(control.describe(list(hosts)), as_json)


@hosts_group.command("set")
@redis_option()
@crawl_option()
@prefix_option
@click.argument("host")
@click.option("--delay", type=click.FloatRange(0, 86_400), help="Seconds between two fetches of HOST, fleet-wide.")
@click.option("--concurrency", type=click.IntRange(1, 10_000), help="Requests of HOST in flight at once, fleet-wide.")
def set_command(redis_url: str, crawl: str, prefix: str, host: str, delay: float | None,
                concurrency: int | None) -> None:
    """Give HOST its own delay and/or concurrency (instead of DOWNLOAD_DELAY / CONCURRENT_REQUESTS_PER_DOMAIN)."""
    changes: dict[str, object] = {}
    if delay is not None:
        changes["delay_ms"] = int(delay * 1000)
    if concurrency is not None:
        changes["concurrency"] = concurrency
    if not changes:
        raise click.UsageError("give --delay and/or --concurrency")
    result = _control(redis_url, crawl, prefix).update(host, **changes)
    click.echo(f"{host}: {json.dumps(result, sort_keys=True)}")


def _flag_command(name: str, field: str, value: bool | None, doc: str) -> click.Command:
    @redis_option()
    @crawl_option()
    @prefix_option
    @click.argument("hosts", nargs=-1, required=True)
    def command(redis_url: str, crawl: str, prefix: str, hosts: tuple[str, ...]) -> None:
        control = _control(redis_url, crawl, prefix)
        for host in hosts:
            result = control.update(host, **{field: value})
            click.echo(f"{host}: {json.dumps(result, sort_keys=True)}")

    command.__doc__ = doc
    return click.command(name)(command)


for _command in (
    _flag_command("pause", "paused", True, "Stop leasing requests of HOSTS (their queues are kept)."),
    _flag_command("resume", "paused", None, "Lease requests of HOSTS again."),
    _flag_command("block", "blocked", True,
                  "Stop leasing requests of HOSTS and queue no new ones (counted as blocked, not marked seen)."),
    _flag_command("unblock", "blocked", None, "Undo block: lease and queue requests of HOSTS again."),
):
    hosts_group.add_command(_command)


@hosts_group.command("clear")
@redis_option()
@crawl_option()
@prefix_option
@click.argument("hosts", nargs=-1, required=True)
def clear_command(redis_url: str, crawl: str, prefix: str, hosts: tuple[str, ...]) -> None:
    """Forget every setting of HOSTS: they follow the crawl's defaults again."""
    control = _control(redis_url, crawl, prefix)
    for host in hosts:
        control.clear(host)
        click.echo(f"{host}: {{}}")
