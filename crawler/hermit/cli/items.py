"""``hermit items export``: export the durable item stream."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import click
import redis

from hermit import redis_client
from hermit.cli.options import connect, crawl_keys, crawl_option, prefix_option, redis_option
from hermit.items.export import export_items


@click.group("items")
def items_group() -> None:
    """Work with a crawl's items (kept in a Redis stream)."""


@items_group.command("export")
@redis_option(required=False)
@crawl_option(required=False)
@prefix_option
@click.option("--state-dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Read a stopped `hermit crawl`'s state directory instead of a running Redis.")
@click.option("-o", "--output", type=click.File("wb", lazy=False), default="-", help="JSON Lines file (default stdout).")
def export_command(redis_url: str | None, crawl: str | None, prefix: str, state_dir: Path | None, output) -> None:
    """Write every item of the crawl as JSON Lines.

    From a Redis (--redis, --crawl), or from the state directory of a `hermit crawl`
    that is not running (--state-dir; e.g. after it was killed): its embedded Redis is
    started on the saved data for the export, and stopped after.
    """
    if state_dir is not None:
        with _saved_crawl(state_dir) as (client, saved_crawl):
            written, _ = export_items(client, crawl_keys(crawl or saved_crawl, prefix), output)
    else:
        if not redis_url or not crawl:
            raise click.UsageError("give --redis and --crawl, or --state-dir")
        written, _ = export_items(connect(redis_url), crawl_keys(crawl, prefix), output)
    click.echo(f"exported {written} items", err=True)


@contextlib.contextmanager
def _saved_crawl(path: Path) -> Iterator[tuple[redis.Redis, str]]:
    """A client of the embedded Redis of a stopped crawl's state, and the crawl's name."""
    from hermit.local.embedded import stop_leftover_redis
    from hermit.local.state import StateDir, StateError
    from hermit.redis_server import EmbeddedRedis, RedisServerError

    state = StateDir(path)
    try:
        state.lock()  # never beside a hermit crawl that runs on it
        saved = state.load()
    except StateError as exc:
        raise click.ClickException(str(exc)) from None
    if saved is None or not state.redis_dir.is_dir():
        raise click.ClickException(f"{path} holds no saved crawl with an embedded Redis")
    stop_leftover_redis(saved)
    server = EmbeddedRedis(data_dir=state.redis_dir, appendonly=True)
    try:
        server.start(timeout=60.0)
    except RedisServerError as exc:
        raise click.ClickException(f"cannot start Redis on {state.redis_dir}: {exc}") from None
    try:
        client = redis_client.connect(server.url, **redis_client.COMMAND_TIMEOUTS)
        yield client, saved.crawl
        client.close()
    finally:
        server.stop()
        state.unlock()
