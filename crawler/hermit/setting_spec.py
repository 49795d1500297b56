"""What docs/settings.md says of each setting and environment variable Hermit reads.

A module that reads a ``HERMIT_*`` name declares it here-typed, next to the code
that reads it: a :class:`Setting` (a Scrapy setting) or an :class:`EnvironmentVariable`,
at module level, alone or in a tuple. ``python -m hermit.docs_reference`` (``make
docs``) collects every declaration in the package and writes the tables of
docs/settings.md; ``tests/crawler/test_docs_reference.py`` fails when a name the code
reads is not declared, or when the page is out of date.

Standard library only: any module may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def format_default(value: Any) -> str:
    """A default value as docs/settings.md shows it."""
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)  # 1,000,000 but port 9410
    if isinstance(value, float):
        return repr(value)
    return f"`{value!r}`"


@dataclass(frozen=True)
class Setting:
    """A Scrapy setting Hermit reads.

    *default*: the value used when the setting is not set; *meaning*: one line for
    the reference; *shown_default*: the default as a person reads it, when the value
    alone doesn't say it (``None`` that means "the spider's name", say).
    """

    name: str
    default: Any
    meaning: str
    shown_default: str | None = None

    @property
    def default_text(self) -> str:
        return self.shown_default if self.shown_default is not None else format_default(self.default)


@dataclass(frozen=True)
class EnvironmentVariable:
    """An environment variable Hermit reads (outside Scrapy's settings).

    *unset*: what happens when it is not set; *meaning*: one line for the reference.
    """

    name: str
    meaning: str
    unset: str = "—"
