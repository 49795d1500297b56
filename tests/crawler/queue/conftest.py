"""Helpers of the queue tests."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Callable
from typing import Any

import pytest
from scrapy import Item


def _same(a: Any, b: Any, path: str = "value") -> None:
    assert type(a) is type(b), f"{path}: {type(a).__name__} became {type(b).__name__}"
    assert a == b, f"{path}: {a!r} became {b!r}"
    if isinstance(a, (dict, Item)):
        keys_b = {k: k for k in b}
        for key, value in a.items():
            _same(key, keys_b[key], f"{path} key {key!r}")
            _same(value, b[key], f"{path}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, (set, frozenset)):
        members_b = {m: m for m in b}
        for member in a:
            _same(member, members_b[member], f"{path} member {member!r}")
    elif isinstance(a, (dt.datetime, dt.time)):
        assert (a.tzinfo, a.fold) == (b.tzinfo, b.fold), path
    elif isinstance(a, decimal.Decimal):
        assert a.as_tuple() == b.as_tuple() or a.is_nan(), path  # 1.10 stays 1.10, not 1.1
    elif hasattr(type(a), "__pydantic_fields__"):  # a pydantic model
        assert a.model_fields_set == b.model_fields_set, path
        for name in [*type(a).model_fields, *(getattr(a, "__pydantic_extra__", None) or {})]:
            _same(getattr(a, name), getattr(b, name), f"{path}.{name}")
    elif dataclasses.is_dataclass(a) or hasattr(type(a), "__attrs_attrs__"):
        names = ([f.name for f in dataclasses.fields(a)] if dataclasses.is_dataclass(a)
                 else [x.name for x in type(a).__attrs_attrs__])
        for name in names:
            _same(getattr(a, name), getattr(b, name), f"{path}.{name}")


@pytest.fixture(scope="session")
def assert_same() -> Callable[[Any, Any], None]:
    """assert_same(a, b): equal, and of the same types all the way down (datetimes: same tzinfo and fold)."""
    return _same
