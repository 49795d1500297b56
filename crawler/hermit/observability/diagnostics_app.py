"""The diagnostics HTTP API: what Scrapy's telnet console gave for leak hunting, and tracemalloc.

=====  ==========================  ===============================================
GET    ``/``                       this list
GET    ``/refs``                   live objects by class and the oldest's age (``prefs()``)
GET    ``/refs/<Class>``           the oldest ``limit`` (100) objects of a class, with URLs (``iter_all()``)
GET    ``/refs/<Class>/oldest``    the oldest object of a class and its URL (``get_oldest()``)
POST   ``/gc``                     run a full garbage collection (objects in reference cycles
                                   stay "live" until one runs)
GET    ``/tracemalloc``            tracing on or off, traced and overhead bytes
POST   ``/tracemalloc/start``      start tracing with ``frames`` (10) frames per allocation
POST   ``/tracemalloc/stop``       stop tracing, drop the baseline
GET    ``/tracemalloc/top``        top ``limit`` (20) allocation sites, ``group_by`` lineno|filename|traceback
POST   ``/tracemalloc/snapshot``   keep a snapshot as the baseline
GET    ``/tracemalloc/diff``       top ``limit`` changes since the baseline
=====  ==========================  ===============================================

Answers are JSON. Errors are JSON ``{"error": ..., "status": ...}``: 401 without the
bearer token when one is configured, 403 with a wrong one, 400 for a bad or absurd
parameter, 404 for an unknown path or class, 405 for a wrong method, 409 when
tracemalloc is off or there is no baseline, 429 while another tracemalloc operation runs.
"""

from __future__ import annotations

import gc
import hmac
import re
import time
from collections.abc import Callable
from typing import Any

from hermit.observability import live_objects
from hermit.observability.heap_profiler import GROUP_BY, MAX_FRAMES, MAX_LIMIT, Busy, HeapProfiler, NoBaseline, NotTracing
from hermit.observability.http_server import HTTPRequest, HTTPResponse, json_error, json_response

MAX_REFS_LIMIT = 10_000
DEFAULT_REFS_LIMIT = 100
DEFAULT_TOP_LIMIT = 20
DEFAULT_FRAMES = 10
_CLASS_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")

ENDPOINTS = {
    "GET /refs": "live objects by class, with the age of the oldest (prefs)",
    "GET /refs/<Class>?limit=100": "the oldest live objects of a class, with their URLs (iter_all)",
    "GET /refs/<Class>/oldest": "the oldest live object of a class and its URL (get_oldest)",
    "POST /gc": "run a full garbage collection, so /refs shows only objects still referenced",
    "GET /tracemalloc": "tracemalloc status",
    "POST /tracemalloc/start?frames=10": "start tracemalloc",
    "POST /tracemalloc/stop": "stop tracemalloc",
    "GET /tracemalloc/top?limit=20&group_by=lineno": "top allocation sites now",
    "POST /tracemalloc/snapshot": "keep a baseline snapshot",
    "GET /tracemalloc/diff?limit=20&group_by=lineno": "what grew since the baseline",
}


class BadRequest(ValueError):
    """Answered with 400."""


class NotFound(LookupError):
    """Answered with 404."""


def _params(request: HTTPRequest, allowed: dict[str, Any]) -> dict[str, Any]:
    """The query parameters, each at most once, none unknown; defaults from *allowed*."""
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise BadRequest(f"unknown parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed)) or 'none'}")
    values = dict(allowed)
    for name, given in request.query.items():
        if len(given) != 1:
            raise BadRequest(f"parameter {name!r} given {len(given)} times")
        values[name] = given[0]
    return values


def _int_param(value: Any, name: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be an integer, got {str(value)[:40]!r}") from None
    if not low <= number <= high:
        raise BadRequest(f"{name} must be between {low} and {high}, got {number}")
    return number


def _group_by(value: Any) -> str:
    if value not in GROUP_BY:
        raise BadRequest(f"group_by must be one of {', '.join(GROUP_BY)}, got {str(value)[:40]!r}")
    return value


class DiagnosticsApp:
    """Routes a request to the live-object and tracemalloc views; *token*: required bearer token, if any."""

    def __init__(self, token: str | None = None, heap: HeapProfiler | None = None) -> None:
        self.token = token
        self.heap = heap or HeapProfiler()

    def __call__(self, request: HTTPRequest) -> HTTPResponse:
        denied = self._check_token(request)
        if denied is not None:
            return denied
        route = self._route(request)
        if isinstance(route, HTTPResponse):
            return route
        try:
            return json_response(200, route())
        except BadRequest as exc:
            return json_error(400, str(exc))
        except Busy as exc:
            return json_error(429, str(exc), {"Retry-After": "1"})
        except (NotTracing, NoBaseline) as exc:
            return json_error(409, str(exc))
        except NotFound as exc:
            return json_error(404, str(exc))

    def _check_token(self, request: HTTPRequest) -> HTTPResponse | None:
        if self.token is None:
            return None
        header = request.headers.get("authorization")
        if not header:
            return json_error(401, "this endpoint needs 'Authorization: Bearer <token>'",
                              {"WWW-Authenticate": 'Bearer realm="hermit-diagnostics"'})
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return json_error(403, "wrong token")
        return None

    def _route(self, request: HTTPRequest) -> Callable[[], Any] | HTTPResponse:
        parts = [part for part in request.path.split("/") if part]
        method = request.method

        def only(allowed: str, view: Callable[[], Any]) -> Callable[[], Any] | HTTPResponse:
            if method != allowed:
                return json_error(405, f"use {allowed} for {request.path}", {"Allow": allowed})
            return view

        if not parts:
            return only("GET", lambda: {"endpoints": ENDPOINTS})
        if parts[0] == "refs" and len(parts) <= 3:
            if len(parts) == 1:
                return only("GET", lambda: self._refs(request))
            name = parts[1]
            if len(parts) == 2:
                return only("GET", lambda: self._objects(request, name))
            if parts[2] == "oldest":
                return only("GET", lambda: self._oldest(request, name))
        if parts == ["gc"]:
            return only("POST", lambda: self._gc(request))
        if parts[0] == "tracemalloc" and len(parts) <= 2:
            action = parts[1] if len(parts) == 2 else ""

            def without_params(view: Callable[[], Any]) -> Callable[[], Any]:
                return lambda: (_params(request, {}), view())[1]

            views: dict[str, tuple[str, Callable[[], Any]]] = {
                "": ("GET", without_params(self.heap.status)),
                "start": ("POST", lambda: self._start(request)),
                "stop": ("POST", without_params(self.heap.stop)),
                "snapshot": ("POST", without_params(self.heap.take_baseline)),
                "top": ("GET", lambda: self._top(request, self.heap.top)),
                "diff": ("GET", lambda: self._top(request, self.heap.diff)),
            }
            if action in views:
                return only(*views[action])
        return json_error(404, f"no such endpoint: {request.path}; GET / lists them")

    # views -----------------------------------------------------------------------------

    def _refs(self, request: HTTPRequest) -> dict[str, Any]:
        _params(request, {})
        return {"classes": [
            {"class": s.name, "live": s.live, "oldest_age_seconds": round(s.oldest_age_seconds, 3)}
            for s in live_objects.summarize() if s.live
        ]}

    def _class(self, name: str) -> str:
        if not _CLASS_NAME.match(name):
            raise BadRequest(f"not a class name: {name[:40]!r}")
        if not live_objects.is_tracked(name):
            raise NotFound(f"no tracked class named {name!r}; GET /refs lists them")
        return name

    def _objects(self, request: HTTPRequest, name: str) -> dict[str, Any]:
        params = _params(request, {"limit": DEFAULT_REFS_LIMIT})
        limit = _int_param(params["limit"], "limit", 1, MAX_REFS_LIMIT)
        found = live_objects.oldest(self._class(name), limit)
        live = next((s.live for s in live_objects.summarize() if s.name == name), 0)
        return {"class": name, "live": live, "returned": len(found),
                "objects": [live_objects.describe(item) for item in found]}

    def _oldest(self, request: HTTPRequest, name: str) -> dict[str, Any]:
        _params(request, {})
        found = live_objects.oldest(self._class(name), 1)
        if not found:
            raise NotFound(f"no live object of class {name!r}")
        return {"class": name, **live_objects.describe(found[0])}

    def _gc(self, request: HTTPRequest) -> dict[str, Any]:
        _params(request, {})
        started = time.perf_counter()
        collected = gc.collect()
        return {"collected": collected, "seconds": round(time.perf_counter() - started, 3)}

    def _start(self, request: HTTPRequest) -> dict[str, Any]:
        params = _params(request, {"frames": DEFAULT_FRAMES})
        return self.heap.start(_int_param(params["frames"], "frames", 1, MAX_FRAMES))

    def _top(self, request: HTTPRequest, view: Callable[[int, str], dict[str, Any]]) -> dict[str, Any]:
        params = _params(request, {"limit": DEFAULT_TOP_LIMIT, "group_by": "lineno"})
        return view(_int_param(params["limit"], "limit", 1, MAX_LIMIT), _group_by(params["group_by"]))
