"""Tagged JSON for the values a queued request carries in ``meta`` and ``cb_kwargs``.

JSON's own types (str, int, float, bool, None, lists, dicts with string keys) are
written as they are. Every other allowed kind is a one-key object whose key starts
with ``$`` (a dict whose keys start with ``$`` is itself tagged, so a tag is never
ambiguous):

==========================  =============================================
``{"$b": base64}``          bytes (a bytearray comes back as bytes)
``{"$t": [...]}``           tuple (a namedtuple comes back as a tuple)
``{"$d": [[k, v], ...]}``   dict whose keys are not all plain strings
``{"$s": [...]}``           set; ``{"$fs": [...]}`` frozenset
``{"$dt": iso}``            datetime; ``[iso, zone, fold]`` when it has a
                            ``zoneinfo`` zone (its key), an offset with
                            microseconds (``[d, s, us]``) or fold=1
``{"$da": iso}``            date
``{"$ti": iso}``            time; ``[iso, None, 1]`` when fold=1
``{"$td": [d, s, us]}``     timedelta
``{"$n": "1.10"}``          Decimal
``{"$u": hex}``             UUID
``{"$e": [class, value]}``  enum member, looked up by value
``{"$o": [class, fields]}`` scrapy Item, dataclass, attrs object or pydantic
                            model; a model also ``[class, fields, set]``
                            when not every field is in its
                            ``model_fields_set`` (*set*: the names that are)
==========================  =============================================

A class is named ``module:qualname`` and found as :mod:`hermit.queue.class_refs`
finds it (never importing a module outside the spider's own package); decoding
accepts only a scrapy ``Item`` subclass, a dataclass, an attrs class or a pydantic
``BaseModel`` subclass for ``$o`` and an ``Enum`` for ``$e``. Items are built with
their class's ``__init__`` and ``item[field] = value``; dataclass and attrs objects
as ``pickle`` and ``copy`` build them: the class's ``__new__``, then each field set
directly (no ``__init__`` or ``__post_init__`` runs; only fields are stored);
pydantic models with their class's ``model_construct`` (no validator runs; fields
and, with ``extra="allow"``, extra fields are stored, private attributes are not and
come back at their defaults). Nothing else from queue data is ever called.

Subclasses of str, int, float, dict, list, tuple and datetime types that are not
enums come back as the base type, as JSON would give them; a datetime whose tzinfo
is neither ``datetime.timezone`` nor ``zoneinfo.ZoneInfo`` (pytz, dateutil) comes
back at the same instant with a fixed UTC offset.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import enum
import logging
import sys
import uuid
import zoneinfo
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from scrapy import Item

from hermit.queue import class_refs

try:
    import attrs
except ImportError:  # pragma: no cover - attrs is optional (Twisted brings it)
    attrs = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from scrapy import Spider

logger = logging.getLogger(__name__)

#: The kinds a JSON-codec request may carry, for error messages.
SUPPORTED_KINDS = (
    "str, int, float, bool, None, bytes, list, tuple, dict, set, frozenset, datetime, date, time, "
    "timedelta, Decimal, UUID, enums, scrapy Items, dataclass and attrs objects and pydantic models"
)


class UnencodableValue(ValueError):
    """A value a queued request can't carry; the message names where it is and the fix."""


class UndecodableValue(ValueError):
    """Queue data that is not a value this module writes (the message says why)."""


#: Values JSON holds as they are: encoded and decoded as themselves.
SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def encode_value(value: Any, path: str) -> Any:
    """*value* as JSON-ready data; *path* (``cb_kwargs['item']``) names it in errors."""
    kind = type(value)
    if kind in SCALAR_TYPES:
        return value
    if kind is dict:
        return _encode_dict(value, path)
    if kind is list:
        return [encode_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    encoder = _ENCODERS.get(kind)
    if encoder is not None:
        return encoder(value, path)
    return _encode_other(value, path)


def _encode_dict(value: dict[Any, Any], path: str) -> Any:
    if all(type(k) is str and not k.startswith("$") for k in value):
        return {k: encode_value(v, f"{path}[{k!r}]") for k, v in value.items()}
    return {"$d": [[encode_value(k, f"{path} key {k!r}"), encode_value(v, f"{path}[{k!r}]")]
                   for k, v in value.items()]}


def _encode_items(values: Any, path: str) -> list[Any]:
    return [encode_value(v, f"{path}[{i}]") for i, v in enumerate(values)]


def _encode_zoned(value: dt.datetime | dt.time, tag: str) -> dict[str, Any]:
    tz = value.tzinfo
    if tz is not None and not isinstance(tz, dt.timezone):
        if isinstance(tz, zoneinfo.ZoneInfo) and tz.key is not None:
            return {tag: [value.replace(tzinfo=None).isoformat(), tz.key, value.fold]}
        offset = value.utcoffset()
        tz = dt.timezone(offset) if offset is not None else None
        value = value.replace(tzinfo=tz)
    if tz is not None and tz.utcoffset(None).microseconds:
        # fromisoformat (3.11) reads "+00:00:00.000001" as UTC: give such offsets apart.
        offset = tz.utcoffset(None)
        return {tag: [value.replace(tzinfo=None).isoformat(), [offset.days, offset.seconds, offset.microseconds],
                      value.fold]}
    return {tag: [value.isoformat(), None, 1]} if value.fold else {tag: value.isoformat()}


_ENCODERS: dict[type, Callable[[Any, str], Any]] = {
    bytes: lambda v, p: {"$b": base64.b64encode(v).decode("ascii")},
    bytearray: lambda v, p: {"$b": base64.b64encode(bytes(v)).decode("ascii")},
    tuple: lambda v, p: {"$t": _encode_items(v, p)},
    set: lambda v, p: {"$s": _encode_items(v, p)},
    frozenset: lambda v, p: {"$fs": _encode_items(v, p)},
    dt.datetime: lambda v, p: _encode_zoned(v, "$dt"),
    dt.date: lambda v, p: {"$da": v.isoformat()},
    dt.time: lambda v, p: _encode_zoned(v, "$ti"),
    dt.timedelta: lambda v, p: {"$td": [v.days, v.seconds, v.microseconds]},
    decimal.Decimal: lambda v, p: {"$n": str(v)},
    uuid.UUID: lambda v, p: {"$u": v.hex},
}

# Base kinds of the lenient fallbacks, in the order isinstance is tried.
_BASE_KINDS: tuple[tuple[type, Callable[[Any, str], Any]], ...] = (
    (str, lambda v, p: str(v)),
    (int, lambda v, p: int(v)),
    (float, lambda v, p: float(v)),
    (dict, lambda v, p: _encode_dict(dict(v), p)),
    (list, lambda v, p: _encode_items(v, p)),
    *((kind, encoder) for kind, encoder in _ENCODERS.items() if kind is not dt.date),
    (dt.date, _ENCODERS[dt.date]),  # after datetime, its subclass
)


def _encode_other(value: Any, path: str) -> Any:
    kind = type(value)
    if isinstance(value, enum.Enum):
        return {"$e": [class_ref(kind, path), encode_value(value.value, f"{path}.value")]}
    if isinstance(value, Item):
        fields = {k: encode_value(v, f"{path}[{k!r}]") for k, v in value.items()}
        return {"$o": [class_ref(kind, path), fields]}
    if _is_pydantic_model(kind):
        return _encode_model(value, path)
    names = _object_fields(kind)
    if names is not None:
        fields = {}
        for name in names:
            try:
                field_value = getattr(value, name)
            except AttributeError:  # a field its __init__ or __post_init__ never set
                continue
            fields[name] = encode_value(field_value, f"{path}.{name}")
        return {"$o": [class_ref(kind, path), fields]}
    for base, encoder in _BASE_KINDS:
        if isinstance(value, base):
            return encoder(value, path)
    raise UnencodableValue(
        f"{path} is a {kind.__module__}.{kind.__qualname__}, which can't be queued. Queued requests may "
        f"carry {SUPPORTED_KINDS}: pass one of those (a dataclass or an Item instead of this object), or, "
        "only if no one untrusted can write to your Redis, set HERMIT_QUEUE_CODEC = \"pickle\""
    )


def _object_fields(cls: type) -> tuple[str, ...] | None:
    """Field names of a dataclass or attrs class; None for any other class."""
    if dataclasses.is_dataclass(cls):
        return tuple(f.name for f in dataclasses.fields(cls))
    if attrs is not None and attrs.has(cls):
        return tuple(a.name for a in attrs.fields(cls))
    return None


def _pydantic_base() -> type | None:
    """pydantic's ``BaseModel`` if pydantic is imported (no value or class can be a model otherwise)."""
    pydantic = sys.modules.get("pydantic")
    return getattr(pydantic, "BaseModel", None) if pydantic is not None else None


def _is_pydantic_model(cls: type) -> bool:
    base = _pydantic_base()
    return base is not None and issubclass(cls, base)


def _encode_model(value: Any, path: str) -> Any:
    cls = type(value)
    names = list(cls.model_fields)
    fields = {name: encode_value(vars(value)[name], f"{path}.{name}") for name in names if name in vars(value)}
    for name, extra in (getattr(value, "__pydantic_extra__", None) or {}).items():
        if name.startswith("_"):
            raise UnencodableValue(f"{path} is a {cls.__module__}.{cls.__qualname__} with an extra field {name!r}: "
                                   "a name starting with '_' can't be queued (model_construct would take it for "
                                   "a private attribute)")
        fields[name] = encode_value(extra, f"{path}.{name}")
    entry = [class_ref(cls, path), fields]
    fields_set = value.model_fields_set
    if fields_set != set(fields):
        entry.append(sorted(fields_set))
    return {"$o": entry}


def class_ref(cls: type, path: str) -> str:
    """``module:qualname`` of *cls*; UnencodableValue (naming *path*) if workers can't find it by name."""
    try:
        return class_refs.class_ref(cls)
    except class_refs.ClassRefError as exc:
        raise UnencodableValue(f"{path} is a {cls.__module__}.{cls.__qualname__}: {exc}") from None


def resolve_class(ref: Any, spider: Spider | None, allowed: Callable[[type], bool], kinds: str) -> type:
    """The class *ref* names if *allowed* accepts it; UndecodableValue otherwise."""
    try:
        return class_refs.resolve_class(ref, spider, allowed, kinds)
    except class_refs.ClassRefError as exc:
        raise UndecodableValue(str(exc)) from None


def _is_object_class(cls: type) -> bool:
    return issubclass(cls, Item) or _object_fields(cls) is not None or _is_pydantic_model(cls)


# Decoding ----------------------------------------------------------------------


def decode_value(value: Any, spider: Spider | None = None) -> Any:
    """The value :func:`encode_value` wrote; UndecodableValue (or another error of a
    malformed entry) when *value* is not something it writes."""
    kind = type(value)
    if kind is list:
        return [decode_value(v, spider) for v in value]
    if kind is dict:
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key[:1] == "$":
                decoder = _DECODERS.get(key)
                if decoder is None:
                    raise UndecodableValue(f"unknown tag {key!r}")
                return decoder(inner, spider)
        return {k: v if type(v) in SCALAR_TYPES else decode_value(v, spider) for k, v in value.items()}
    return value


def _list(inner: Any, tag: str) -> list[Any]:
    if type(inner) is not list:
        raise UndecodableValue(f"{tag} holds {type(inner).__name__}, not a list")
    return inner


def _decode_zoned(inner: Any, tag: str, kind: type) -> Any:
    if type(inner) is str:
        return kind.fromisoformat(inner)
    text, zone, fold = _list(inner, tag)
    value = kind.fromisoformat(text)
    if type(zone) is str:
        value = value.replace(tzinfo=zoneinfo.ZoneInfo(zone))
    elif zone is not None:
        value = value.replace(tzinfo=dt.timezone(_decode_timedelta(zone, None)))
    return value.replace(fold=int(fold))


def _decode_object(inner: Any, spider: Spider | None) -> Any:
    ref, fields, *fields_set = _list(inner, "$o")
    cls = resolve_class(ref, spider, _is_object_class,
                        "a scrapy Item, dataclass or attrs class, nor a pydantic model")
    if type(fields) is not dict:
        raise UndecodableValue(f"fields of {ref!r} are not an object")
    if _is_pydantic_model(cls):
        return _decode_model(cls, ref, fields, fields_set, spider)
    if fields_set:
        raise UndecodableValue(f"{ref!r} is not a pydantic model, yet its entry has a set of fields")
    if issubclass(cls, Item):
        item = cls()
        for name, field_value in fields.items():
            item[name] = decode_value(field_value, spider)  # KeyError if not a declared field
        return item
    declared = _object_fields(cls) or ()
    unknown = set(fields) - set(declared)
    if unknown:
        raise UndecodableValue(f"{ref!r} has no field {sorted(unknown)[0]!r}")
    obj = cls.__new__(cls)
    for name, field_value in fields.items():
        object.__setattr__(obj, name, decode_value(field_value, spider))  # frozen classes too
    return obj


def _decode_model(cls: Any, ref: str, fields: dict[str, Any], fields_set: list[Any],
                  spider: Spider | None) -> Any:
    declared = cls.model_fields
    if cls.model_config.get("extra") != "allow" or cls.__pydantic_root_model__:
        unknown = set(fields) - set(declared)
        if unknown:
            raise UndecodableValue(f"{ref!r} has no field {sorted(unknown)[0]!r}")
    if any(name.startswith("_") for name in fields):
        # model_construct would take such a name for its own argument or a private attribute.
        raise UndecodableValue(f"{ref!r}: a field name starting with '_' is not a model's")
    names = set(fields)
    if fields_set:
        if len(fields_set) != 1 or type(fields_set[0]) is not list or not all(
                type(name) is str for name in fields_set[0]):
            raise UndecodableValue(f"the set of fields of {ref!r} is not a list of names")
        names = set(fields_set[0])
        if not names <= set(fields):
            raise UndecodableValue(f"{ref!r}: {sorted(names - set(fields))[0]!r} is set but has no value")
    values = {name: decode_value(value, spider) for name, value in fields.items()}
    return cls.model_construct(_fields_set=names, **values)


def _decode_enum(inner: Any, spider: Spider | None) -> Any:
    ref, member_value = _list(inner, "$e")
    cls = resolve_class(ref, spider, lambda c: issubclass(c, enum.Enum), "an Enum")
    return cls(decode_value(member_value, spider))


def _decode_timedelta(inner: Any, spider: Spider | None) -> dt.timedelta:
    days, seconds, microseconds = _list(inner, "$td")
    if not all(type(n) is int for n in (days, seconds, microseconds)):
        raise UndecodableValue("$td holds a value that is not an integer")
    return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)


def _text(inner: Any, tag: str) -> str:
    if type(inner) is not str:
        raise UndecodableValue(f"{tag} holds {type(inner).__name__}, not a string")
    return inner


_DECODERS: dict[str, Callable[[Any, Any], Any]] = {
    "$b": lambda v, s: base64.b64decode(_text(v, "$b"), validate=True),
    "$t": lambda v, s: tuple(decode_value(x, s) for x in _list(v, "$t")),
    "$d": lambda v, s: {decode_value(k, s): decode_value(x, s) for k, x in _list(v, "$d")},
    "$s": lambda v, s: {decode_value(x, s) for x in _list(v, "$s")},
    "$fs": lambda v, s: frozenset(decode_value(x, s) for x in _list(v, "$fs")),
    "$dt": lambda v, s: _decode_zoned(v, "$dt", dt.datetime),
    "$da": lambda v, s: dt.date.fromisoformat(_text(v, "$da")),
    "$ti": lambda v, s: _decode_zoned(v, "$ti", dt.time),
    "$td": lambda v, s: _decode_timedelta(v, s),
    "$n": lambda v, s: decimal.Decimal(_text(v, "$n")),
    "$u": lambda v, s: uuid.UUID(hex=_text(v, "$u")),
    "$e": _decode_enum,
    "$o": _decode_object,
}
