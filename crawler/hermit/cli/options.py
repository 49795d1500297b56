"""Options and helpers shared by the ``hermit`` commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
import redis

from hermit import redis_client
from hermit.keys import CrawlKeys, validate_crawl_name
from hermit.redis_url import redact_url
from hermit.setting_spec import EnvironmentVariable, Number, Setting

#: The environment the ``hermit`` commands read: the envvar of the options below.
REDIS_URL_VARIABLE = EnvironmentVariable(
    "HERMIT_REDIS_URL", "`--redis` of the `hermit` commands",
    "`--redis` is needed, except by `hermit crawl` (which then starts an embedded Redis)",
)
CRAWL_VARIABLE = EnvironmentVariable(
    "HERMIT_CRAWL", "`--crawl` of the `hermit` commands",
    "`--crawl` is needed, except by `hermit crawl` and `hermit worker` (the spider's name)",
)


def _crawl_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return validate_crawl_name(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def redis_option(required: bool = True) -> Callable[[Any], Any]:
    return click.option(
        "--redis", "redis_url", envvar="HERMIT_REDIS_URL", required=required,
        help="Redis URL, e.g. redis://:password@host:6379/0 (env HERMIT_REDIS_URL).",
    )


def crawl_option(required: bool = True, default: str | None = None) -> Callable[[Any], Any]:
    return click.option(
        "--crawl", envvar="HERMIT_CRAWL", required=required and default is None, default=default,
        callback=_crawl_name, help="Crawl name (every key is hermit:{CRAWL}:...; env HERMIT_CRAWL).",
    )


prefix_option = click.option("--prefix", default="hermit", show_default=True, help="Key prefix.")


def connect(redis_url: str, timeouts: redis_client.Timeouts = redis_client.COMMAND_TIMEOUTS) -> redis.Redis:
    """A client for *redis_url*, or one clear error if Redis can't be reached."""
    try:
        client = redis_client.connect(redis_url, **timeouts)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise click.ClickException(f"cannot reach Redis at {redact_url(redis_url)}: {exc}") from None
    return client


def setting_type(setting: Setting) -> click.ParamType:
    """The click type of an option that sets *setting*: the bounds its declaration
    gives (a numeric setting), so the command and the worker accept the same values."""
    parser = setting.parser
    if not isinstance(parser, Number):
        raise TypeError(f"{setting.name} is not numeric")
    kind = click.IntRange if parser.kind is int else click.FloatRange
    return kind(parser.minimum, parser.maximum, min_open=parser.exclusive, max_open=parser.exclusive)


def crawl_keys(crawl: str, prefix: str) -> CrawlKeys:
    try:
        return CrawlKeys(crawl, prefix)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def parse_assignments(values: tuple[str, ...], what: str) -> dict[str, str]:
    """``NAME=VALUE`` pairs (for -s and -a)."""
    result: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{what} must look like NAME=VALUE, got {value!r}")
        result[name] = rest
    return result


_SIZE_UNITS = {
    "": 1, "b": 1,
    "k": 10**3, "kb": 10**3, "m": 10**6, "mb": 10**6, "g": 10**9, "gb": 10**9,
    "ki": 2**10, "kib": 2**10, "mi": 2**20, "mib": 2**20, "gi": 2**30, "gib": 2**30,
}


def parse_size(text: str) -> int:
    """Bytes from ``500Mi``, ``1.5GiB``, ``800M`` (Kubernetes' and the usual spellings)."""
    import re

    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 500Mi, 1.5GiB, 800M or bytes)")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


class SizeType(click.ParamType):
    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            size = parse_size(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        if size <= 0:
            self.fail("must be positive", param, ctx)
        return size
