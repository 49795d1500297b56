"""Compact encodings of Scrapy requests for the Redis queue: pickle-free by default.

A queued request holds only what differs from a plain ``Request(url)``: the common
case is ``{"u":"https://…/p/1.html","M":{"depth":2}}``. Priority is not stored: the
queue keeps it.

Two codecs (``HERMIT_QUEUE_CODEC``):

``json`` (the default)
    UTF-8 JSON; ``meta`` and ``cb_kwargs`` values use the tagged encoding of
    :mod:`hermit.queue.values` (items of every kind itemadapter supports,
    datetimes, decimals, UUIDs, sets, enums, bytes, tuples, nested). Decoding never
    unpickles, never imports a module outside the spider's own package, and builds
    only requests, items, dataclass/attrs objects, pydantic models (through
    ``model_construct``) and enums, so a queue entry can't run code in a worker. A pickle entry is refused.
``pickle``
    The same compact dict, pickled (protocol 5): whatever Scrapy's own disk queues
    can hold. **Only for a Redis no one untrusted can write to**: unpickling runs
    whatever the entry says, so anyone who can write to the crawl's keys can run
    code in every worker. It also reads JSON entries (``hermit seed`` writes those).

A request that can't be queued raises :class:`UnserializableRequest` naming the
value's path (``cb_kwargs['item']['when']``) and the fix; an entry that can't be
rebuilt raises :class:`UndecodableEntry` (the scheduler dead-letters it).
"""

from __future__ import annotations

import json
import logging
import pickle
from typing import TYPE_CHECKING, Any

import orjson
from scrapy import Request

from hermit.queue.rebuild import build_request
from hermit.queue.values import SCALAR_TYPES, UnencodableValue, decode_value, encode_value, resolve_class

if TYPE_CHECKING:
    from scrapy import Spider

logger = logging.getLogger(__name__)

#: Names HERMIT_QUEUE_CODEC accepts; the first is the default.
CODECS = ("json", "pickle")
PICKLE_PROTOCOL = 5

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
    """The request holds something that can't be queued (the message says what and where)."""


class UndecodableEntry(ValueError):
    """A queue entry is not a request this worker can rebuild (the message says why)."""


def check_codec(name: Any) -> str:
    """*name* if it is one of :data:`CODECS`; ValueError otherwise."""
    if name not in CODECS:
        raise ValueError(f"HERMIT_QUEUE_CODEC must be one of {CODECS}, got {name!r}")
    return name


def _compact(request: Request, spider: Spider | None) -> dict[str, Any]:
    """*request*'s dict form with defaults left out and short names."""
    try:
        data = request.to_dict(spider=spider)
    except ValueError as exc:
        raise UnserializableRequest(f"{request}: {exc}") from exc
    return {
        _SHORT_NAMES.get(name, name): value
        for name, value in data.items()
        if name not in _NOT_STORED and not (name in _DEFAULTS and value == _DEFAULTS[name])
    }


def encode_request(request: Request, spider: Spider | None, codec: str = "json") -> bytes:
    """Return the queue entry for *request* in *codec* (``"json"`` or ``"pickle"``).

    Raises :class:`UnserializableRequest` when a callback is not a method of
    *spider* or a value can't be represented; the message names the value's path.
    """
    compact = _compact(request, spider)
    if codec == "pickle":
        return _pickle(compact, request)
    if codec != "json":
        check_codec(codec)
    try:
        encoded = {name: encode_value(value, _LONG_NAMES.get(name, name)) for name, value in compact.items()}
    except UnencodableValue as exc:
        raise UnserializableRequest(f"{request}: {exc}") from None
    return json.dumps(encoded, separators=(",", ":"), ensure_ascii=False).encode()


def _pickle(compact: dict[str, Any], request: Request) -> bytes:
    try:
        return pickle.dumps(compact, protocol=PICKLE_PROTOCOL)
    except Exception:  # pickle raises PicklingError, TypeError or AttributeError
        named = {_LONG_NAMES.get(k, k): v for k, v in compact.items()}
        path, reason = _unpicklable_part(named, "")
        raise UnserializableRequest(
            f"{request}: {path} can't be pickled ({reason}): pass plain data, or make the object picklable"
        ) from None


def _unpicklable_part(value: Any, path: str) -> tuple[str, str]:
    """The path of the innermost part of *value* pickle refuses, and pickle's reason."""
    children: Any = ()
    if isinstance(value, dict):
        children = ((f"{path}[{k!r}]" if path else k, v) for k, v in value.items())
    elif isinstance(value, (list, tuple, set, frozenset)):
        children = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    for child_path, child in children:
        try:
            pickle.dumps(child, protocol=PICKLE_PROTOCOL)
        except Exception:
            return _unpicklable_part(child, child_path)
    try:
        pickle.dumps(value, protocol=PICKLE_PROTOCOL)
    except Exception as exc:
        return path, f"{type(exc).__name__}: {exc}"
    return path, "unknown"  # pragma: no cover - only the whole failed


def _is_request_class(cls: type) -> bool:
    return issubclass(cls, Request)


def decode_request(entry: bytes, spider: Spider | None, priority: int = 0, codec: str = "json") -> Request:
    """Rebuild the request of a queue entry; raise :class:`UndecodableEntry` if impossible.

    With *codec* ``"json"`` a pickle entry is refused, never unpickled.
    """
    if entry[:1] == b"\x80":  # a pickle's protocol opcode; JSON starts with "{"
        if codec != "pickle":
            raise UndecodableEntry(
                "a pickle entry: this worker's HERMIT_QUEUE_CODEC is json, and it never unpickles")
        try:
            compact = pickle.loads(entry)
        except Exception as exc:
            raise UndecodableEntry(f"not a pickle: {type(exc).__name__}: {exc}") from exc
        decode = _keep
    else:
        try:
            compact = _json_loads(entry)
        except (UnicodeDecodeError, ValueError) as exc:
            raise UndecodableEntry(f"not JSON: {exc}") from exc
        decode = decode_value
    if not isinstance(compact, dict) or not isinstance(compact.get("u"), str):
        raise UndecodableEntry("not a request object (no 'u' URL field)")
    try:
        data = {_LONG_NAMES.get(k, k): v if type(v) in SCALAR_TYPES else decode(v, spider) for k, v in compact.items()}
        data["priority"] = priority
        cls = Request
        if "_class" in data:
            # Only ever instantiate Request subclasses, whatever the entry says.
            class_path = data["_class"]
            module, _, name = class_path.rpartition(".") if isinstance(class_path, str) else ("", "", "")
            cls = resolve_class(f"{module}:{name}", spider, _is_request_class, "a Request class")
        return build_request(cls, data, spider)
    except Exception as exc:  # a bad entry must never crash the worker
        raise UndecodableEntry(f"{type(exc).__name__}: {exc}") from exc


def _json_loads(entry: bytes) -> Any:
    """*entry* parsed as JSON: by orjson (2.3x the standard library's speed), else, for
    what orjson refuses and ``json.dumps`` may write (NaN, integers beyond 64 bits), by
    the standard library, which also gives the error message of an entry that isn't JSON."""
    try:
        return orjson.loads(entry)
    except orjson.JSONDecodeError:
        return json.loads(entry)


def _keep(value: Any, spider: Spider | None) -> Any:
    return value
