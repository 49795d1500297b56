"""``hermit dedup``: migrate a scrapy-redis fingerprint SET, inspect the Bloom filter."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import click
import redis
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hermit.cli.options import connect, crawl_keys, crawl_option, prefix_option, redis_option, setting_type
from hermit.dedup.bloom import BloomInfo, ShardedBloomFilter
from hermit.dedup.migrate import MigrationResult, SourceKeyError, migrate_fingerprint_set
from hermit.dedup.sizing import DEDUP_CAPACITY, DEDUP_ERROR_RATIO
from hermit.queue.shards import crawl_shards
from hermit.redis_client import DEDUP_COMMAND_TIMEOUTS

logger = logging.getLogger(__name__)



def _common_options(command):
    """``--redis``, ``--crawl`` and ``--prefix``, as the other ``hermit`` commands have them."""
    return redis_option()(crawl_option()(prefix_option(command)))


@click.group(name="dedup")
def dedup_group() -> None:
    """The crawl's request-fingerprint filter (a scalable Bloom filter in Redis)."""


@dedup_group.command("migrate")
@_common_options
@click.option("--from-key", "source_key", required=True,
              help="The scrapy-redis dupefilter SET, e.g. myspider:dupefilter.")
@click.option("--batch-size", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Fingerprints per SSCAN page.")
@click.option("--delete-source", is_flag=True,
              help="Remove each page from the SET once it is in the filter (Redis never holds both).")
@click.option("--capacity", type=setting_type(DEDUP_CAPACITY), default=None,
              help="Items of the filter's first layer, if it is created now "
                   f"[default: the SET's size, at least {DEDUP_CAPACITY.default:,}].")
@click.option("--error-ratio", type=setting_type(DEDUP_ERROR_RATIO), default=DEDUP_ERROR_RATIO.default,
              show_default=True, help="Target false-positive ratio, if the filter is created now.")
def migrate_command(
    redis_url: str, crawl: str, prefix: str, source_key: str, batch_size: int, delete_source: bool,
    capacity: int | None, error_ratio: float,
) -> None:
    """Move a scrapy-redis fingerprint SET into the crawl's Bloom filter.

    Reads the SET page by page (SSCAN), so memory stays flat however big it is.
    Members that are not 40-character hex fingerprints are counted and left in place.
    An existing filter keeps its sizing; --capacity and --error-ratio only apply
    when the migration creates it.
    """
    client = connect(redis_url, DEDUP_COMMAND_TIMEOUTS)
    try:
        key_type = client.type(source_key).decode()
        if key_type != "set":
            reason = "does not exist" if key_type == "none" else f"is a {key_type}, not a SET"
            raise click.ClickException(f"{source_key!r} {reason}")
        total = client.scard(source_key)
        keys = crawl_keys(crawl, prefix)
        bloom = ShardedBloomFilter(
            client, keys, crawl_shards(client, keys), capacity=capacity or max(DEDUP_CAPACITY.default, total),
            error_ratio=error_ratio,
        )
        console = Console(stderr=True)
        # Warnings about invalid members print above the progress bar, not through it.
        log_handler = RichHandler(console=console, show_time=False, show_path=False)
        migrate_logger = logging.getLogger("hermit.dedup.migrate")
        migrate_logger.addHandler(log_handler)
        with Progress(
            TextColumn("[bold]migrating[/bold] {task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=console, transient=False,
        ) as progress:
            task = progress.add_task(source_key, total=total)

            def on_progress(counts: MigrationResult) -> None:
                progress.update(task, completed=min(counts.scanned, total))

            try:
                result = migrate_fingerprint_set(
                    client, source_key, bloom, batch_size=batch_size, delete_source=delete_source,
                    on_progress=on_progress,
                )
            finally:
                migrate_logger.removeHandler(log_handler)
        info = bloom.info()
    except SourceKeyError as exc:
        raise click.ClickException(str(exc)) from None
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis error during the migration: {exc}") from None
    left = ""
    if delete_source:
        left = f"; {client.scard(source_key)} left in {source_key}"
    click.echo(
        f"scanned {result.scanned}: {result.added} added, {result.duplicates} already in the filter, "
        f"{result.skipped_invalid} invalid skipped{left}; filter holds {info.items if info else 0} "
        f"fingerprints in {info.describe_layers() if info else '0 layer(s)'}"
    )


def _format_info(crawl: str, info: BloomInfo, memory_bytes: int) -> list[str]:
    lines = [
        f"crawl           {crawl}",
        f"items           {info.items:,} of {info.capacity:,} (fill {info.fill_ratio:.1%})",
        f"kind            {info.kind}"
        + (f" ({info.layer_details[0].block_bits}-bit blocks)" if info.kind == "blocked" else ""),
        f"layers          {info.describe_layers()}",
        f"bits            {info.bits:,} ({info.bytes / 1e6:.2f} MB; {memory_bytes / 1e6:.2f} MB in Redis"
        + (f", {memory_bytes * 8 / info.items:.1f} bits per item now)" if info.items else ")"),
        f"error ratio     target {info.error_ratio:.2e}, estimated now {info.estimated_false_positive_ratio:.2e}",
    ]
    for i, layer in enumerate(info.layer_details):
        lines.append(
            f"  layer {i}       {layer.items:,} of {layer.capacity:,} items, {layer.bits:,} bits "
            f"in {layer.chunks} chunk(s), k={layer.hashes}, sized for {layer.error_ratio:.2e}"
        )
    return lines


@dedup_group.command("info")
@_common_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info_command(redis_url: str, crawl: str, prefix: str, as_json: bool) -> None:
    """Show the filter's layers, fill and estimated false-positive ratio."""
    client = connect(redis_url, DEDUP_COMMAND_TIMEOUTS)
    keys = crawl_keys(crawl, prefix)
    try:
        bloom = ShardedBloomFilter(client, keys, crawl_shards(client, keys))
        info = bloom.info()
        memory_bytes = bloom.memory_usage_bytes() if info else 0
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis error: {exc}") from None
    if as_json:
        payload = {**asdict(info), "memory_bytes": memory_bytes} if info else None
        click.echo(json.dumps(payload, indent=2))
        return
    if info is None:
        click.echo(f"no Bloom filter for crawl {crawl!r} yet")
        return
    for line in _format_info(crawl, info, memory_bytes):
        click.echo(line)
