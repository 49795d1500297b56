"""Declarations of the settings and environment variables Hermit reads.

A module that reads a ``HERMIT_*`` name declares it here-typed, next to the code
that reads it: a :class:`Setting` (a Scrapy setting) or an :class:`EnvironmentVariable`,
at module level, alone or in a tuple. ``python tools/docs_reference.py`` (``make
docs``) collects every declaration in the package and writes the tables of
docs/settings.md; ``tests/tools/test_docs_reference.py`` fails when a name the code
reads is not declared, or when the page is out of date.

A setting's declaration is its one home: name, default, what it means, and how a
value is read (its *parser*: :class:`Number` with its bounds, :class:`Boolean`,
:class:`Choice`, :class:`Text`, :class:`Checked`). :meth:`Setting.read` takes the
value from Scrapy's settings (the default when unset) and checks it; a value it can't
use raises :class:`InvalidValue` with a message naming the setting, the value and what
is expected.

Standard library only: any module may import it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

#: Scrapy's spellings of a boolean setting (``BaseSettings.getbool``).
_TRUE = (True, 1, "1", "True", "true")
_FALSE = (False, 0, "0", "False", "false")
#: A setting's unit, by the suffix of its name.
_UNITS = {"_SECONDS": "seconds", "_BYTES": "bytes", "_RATIO": "ratio", "_BITS": "bits"}


class InvalidValue(ValueError):
    """A setting has a value that can't be used; the message names the setting."""


class SettingSource(Protocol):
    """What a setting is read from: Scrapy's settings, or any mapping."""

    def get(self, name: str, default: Any = None) -> Any: ...


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


# ---- parsers: (name, raw value) -> value, or InvalidValue naming the setting -------------


def _bound(value: float | None) -> str:
    return f"{value:,}" if value is not None and abs(value) >= 1_000_000 else str(value)



@dataclass(frozen=True)
class Number:
    """An ``int`` or a ``float`` (given as a number or as text, as ``-s NAME=VALUE`` gives it).

    *minimum*, *maximum*: inclusive bounds; *exclusive*: both bounds are excluded
    (a ratio strictly between 0 and 1). *what*: what is expected, when "an integer" or
    "a number" doesn't say it; *note*: why the bounds are what they are.
    """

    kind: type
    minimum: float | None = None
    maximum: float | None = None
    exclusive: bool = False
    what: str = ""
    note: str = ""

    def __call__(self, name: str, raw: Any) -> Any:
        expected = self.what or ("an integer" if self.kind is int else "a number")
        try:
            if isinstance(raw, bool) or (self.kind is int and isinstance(raw, float) and not raw.is_integer()):
                raise ValueError
            value = self.kind(raw)
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise InvalidValue(f"{name} must be {expected}, got {raw!r}") from None
        low, high = self.minimum, self.maximum
        note = f" ({self.note})" if self.note else ""
        if self.exclusive:
            if not low < value < high:
                raise InvalidValue(f"{name} must be between {low} and {high}{note}, got {value}")
        elif low is not None and high is not None:
            if not low <= value <= high:
                raise InvalidValue(f"{name} must be between {low} and {high}{note}, got {value}")
        elif low is not None and value < low:
            raise InvalidValue(f"{name} must be at least {low}{note}, got {raw!r}")
        elif high is not None and value > high:
            raise InvalidValue(f"{name} must be at most {high}{note}, got {value}")
        return value

    def describe(self) -> str:
        expected = "integer" if self.kind is int else "number"
        low, high = (_bound(bound) for bound in (self.minimum, self.maximum))
        if self.exclusive:
            bounds = f"> {low} and < {high}"
        elif self.minimum is not None and self.maximum is not None:
            bounds = f"{low}–{high}"
        elif self.minimum is not None:
            bounds = f"≥ {low}"
        elif self.maximum is not None:
            bounds = f"≤ {high}"
        else:
            bounds = ""
        note = f" ({self.note})" if self.note else ""
        return f"{expected} {bounds}".strip() + note


@dataclass(frozen=True)
class Boolean:
    """True or false, in Scrapy's spellings (``True``/``False``, ``1``/``0``, ``true``/``false``)."""

    def __call__(self, name: str, raw: Any) -> bool:
        if raw in _TRUE and not isinstance(raw, float):
            return True
        if raw in _FALSE and not isinstance(raw, float):
            return False
        raise InvalidValue(f"{name} must be true or false (True/False, 1/0), got {raw!r}")

    def describe(self) -> str:
        return "true or false"


@dataclass(frozen=True)
class Choice:
    """One of *choices*, exactly."""

    choices: tuple[str, ...]

    def __call__(self, name: str, raw: Any) -> str:
        if raw not in self.choices:
            raise InvalidValue(f"{name} must be one of {self.choices}, got {raw!r}")
        return raw

    def describe(self) -> str:
        return " or ".join(f"`{choice}`" for choice in self.choices)


@dataclass(frozen=True)
class Text:
    """A non-blank string, stripped; with *optional*, a blank or unset one is ``None``.

    *secret*: a refused value is not repeated in the message (a token).
    """

    what: str = "a non-empty string"
    optional: bool = False
    secret: bool = False

    def __call__(self, name: str, raw: Any) -> str | None:
        if self.optional and (raw is None or raw == ""):
            return None
        if not isinstance(raw, str) or not raw.strip():
            got = "" if self.secret else f", got {raw!r}"
            raise InvalidValue(f"{name} must be {self.what}{got}")
        return raw.strip()

    def describe(self) -> str:
        what = self.what.removeprefix("a ").removeprefix("an ")
        return what + (", optional" if self.optional else "")


@dataclass(frozen=True)
class Checked:
    """A string that *check* accepts (returns it, or raises ``ValueError`` saying why).

    *what*: what the reference says it accepts. Unset or blank is ``None``, when *optional*.
    """

    check: Callable[[str], str]
    what: str
    optional: bool = False

    def __call__(self, name: str, raw: Any) -> str | None:
        if self.optional and (raw is None or raw == ""):
            return None
        try:
            return self.check(raw)
        except (TypeError, ValueError) as exc:
            raise InvalidValue(f"{name}: {exc}") from None

    def describe(self) -> str:
        return self.what


class Parser(Protocol):
    def __call__(self, name: str, raw: Any) -> Any: ...

    def describe(self) -> str: ...


# ---- declarations -----------------------------------------------------------------------


@dataclass(frozen=True)
class Setting:
    """A Scrapy setting Hermit reads.

    *default*: the value used when the setting is not set; *meaning*: one line for
    the reference; *shown_default*: the default as a person reads it, when the value
    alone doesn't say it (``None`` that means "the spider's name", say); *parser*:
    how a value is read and checked (none: taken as it is given). The unit is the
    name's suffix (``_SECONDS``, ``_BYTES``, ``_RATIO``, ``_BITS``).
    """

    name: str
    default: Any
    meaning: str
    shown_default: str | None = None
    parser: Parser | None = None

    @property
    def default_text(self) -> str:
        return self.shown_default if self.shown_default is not None else format_default(self.default)

    @property
    def unit(self) -> str | None:
        """``seconds``, ``bytes``, ``ratio`` or ``bits``, from the name; None when it has none."""
        return next((unit for suffix, unit in _UNITS.items() if self.name.endswith(suffix)), None)

    @property
    def accepts(self) -> str:
        """What values it takes, as the reference says it (empty without a parser)."""
        if self.parser is None:
            return ""
        text = self.parser.describe()
        return f"{text}, {self.unit}" if self.unit not in (None, "ratio") and self.unit not in text else text

    def parse(self, raw: Any) -> Any:
        """*raw* read and checked; raise :class:`InvalidValue` naming the setting."""
        return raw if self.parser is None else self.parser(self.name, raw)

    def read(self, settings: SettingSource) -> Any:
        """The setting's value in *settings* (its default when unset), checked."""
        raw = settings.get(self.name)
        return self.parse(self.default if raw is None else raw)


@dataclass(frozen=True)
class EnvironmentVariable:
    """An environment variable Hermit reads (outside Scrapy's settings).

    *unset*: what happens when it is not set; *meaning*: one line for the reference.
    """

    name: str
    meaning: str
    unset: str = "—"
