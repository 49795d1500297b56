"""Compact, pickle-free encoding of Scrapy requests for the Redis queue.

A queued request is one JSON object holding only what differs from a plain
``Request(url)``: the common case is ``{"u":"https://…/p/1.html","M":{"depth":2}}``.
Priority is not stored: the queue keeps it (one Redis list per priority).

Values JSON cannot hold are tagged: ``{"$b": base64}`` for bytes, ``{"$t": [...]}``
for tuples, ``{"$d": [[key, value], ...]}`` for dicts whose keys are not all plain
strings. Anything else (arbitrary objects in ``meta`` or ``cb_kwargs``, callbacks
that are not spider methods) cannot be queued and raises
:class:`UnserializableRequest`; nothing is ever unpickled from Redis, so a queue
entry can't run code in a worker.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from scrapy import Request
from scrapy.utils.misc import load_object
from scrapy.utils.request import request_from_dict

if TYPE_CHECKING:
    from scrapy import Spider

# Short names of Request attributes, and the value each has by default.
_SHORT_NAMES: dict[str, str] = {
    "url": "u",
    "method": "m",
    "headers": "h",
    "body": "b",
    "cookies": "c",
    "meta": "M",
    "encoding": "e",
    "flags": "f",
    "cb_kwargs": "k",
    "callback": "cb",
    "errback": "eb",
    "dont_filter": "d",
    "_class": "cls",
}
_LONG_NAMES = {short: long for long, short in _SHORT_NAMES.items()}
_DEFAULTS: dict[str, Any] = {
    "method": "GET",
    "headers": {},
    "body": b"",
    "cookies": {},
    "meta": {},
    "encoding": "utf-8",
    "flags": [],
    "cb_kwargs": {},
    "callback": None,
    "errback": None,
    "dont_filter": False,
}
# The queue stores priority itself.
_NOT_STORED = {"priority"}


class UnserializableRequest(ValueError):
    """The request holds something that can't be queued (the message says what)."""


class UndecodableEntry(ValueError):
    """A queue entry is not a request this worker can rebuild (the message says why)."""


def _encode_value(value: Any, path: str) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (bytes, bytearray)):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list):
        return [_encode_value(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, tuple):
        return {"$t": [_encode_value(v, f"{path}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode_value(v, f"{path}[{k!r}]") for k, v in value.items()}
        return {
            "$d": [
                [_encode_value(k, f"{path} key"), _encode_value(v, f"{path}[{k!r}]")]
                for k, v in value.items()
            ]
        }
    raise UnserializableRequest(
        f"{path} is a {type(value).__module__}.{type(value).__qualname__}, which can't be queued"
        " (queued requests may hold str, int, float, bool, None, bytes, list, tuple and dict)"
    )


def _decode_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_value(v) for v in value]
    if isinstance(value, dict):
        if len(value) == 1:
            (tag, inner), = value.items()
            if tag == "$b":
                return base64.b64decode(inner, validate=True)
            if tag == "$t":
                return tuple(_decode_value(v) for v in inner)
            if tag == "$d":
                return {_decode_value(k): _decode_value(v) for k, v in inner}
        return {k: _decode_value(v) for k, v in value.items()}
    return value


def encode_request(request: Request, spider: Spider | None) -> bytes:
    """Return the queue entry for *request* (UTF-8 JSON, defaults left out).

    Raises :class:`UnserializableRequest` when a callback is not a method of
    *spider* or a value can't be represented.
    """
    try:
        data = request.to_dict(spider=spider)
    except ValueError as exc:
        raise UnserializableRequest(f"{request}: {exc}") from exc
    compact: dict[str, Any] = {}
    for name, value in data.items():
        if name in _NOT_STORED or (name in _DEFAULTS and value == _DEFAULTS[name]):
            continue
        compact[_SHORT_NAMES.get(name, name)] = _encode_value(value, f"{request}: {name}")
    return json.dumps(compact, separators=(",", ":"), ensure_ascii=False).encode()


def decode_request(entry: bytes, spider: Spider | None, priority: int = 0) -> Request:
    """Rebuild the request of a queue entry; raise :class:`UndecodableEntry` if impossible."""
    try:
        compact = json.loads(entry)
    except (UnicodeDecodeError, ValueError) as exc:
        raise UndecodableEntry(f"not JSON: {exc}") from exc
    if not isinstance(compact, dict) or not isinstance(compact.get("u"), str):
        raise UndecodableEntry("not a request object (no 'u' URL field)")
    try:
        data = {_LONG_NAMES.get(k, k): _decode_value(v) for k, v in compact.items()}
        data["priority"] = priority
        if "_class" in data:
            # Only ever instantiate Request subclasses, whatever the entry says.
            request_class = load_object(data["_class"])
            if not (isinstance(request_class, type) and issubclass(request_class, Request)):
                raise UndecodableEntry(f"{data['_class']!r} is not a Request class")
        return request_from_dict(data, spider=spider)
    except UndecodableEntry:
        raise
    except Exception as exc:  # a bad entry must never crash the worker
        raise UndecodableEntry(f"{type(exc).__name__}: {exc}") from exc
