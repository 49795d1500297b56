"""A small HTTP server on its own daemon thread, for the metrics and diagnostics endpoints.

Why a thread and not Twisted's web server on the crawl's reactor: what these
endpoints do takes time that must not be the crawl's — a tracemalloc snapshot of a
large heap takes seconds, a slow or hostile client can hold a connection open, and
rendering metrics reads Redis. On a thread, the reactor keeps running (it only shares
the GIL); on the reactor, each of these would stall every download. It is also the
model of prometheus-client's own ``start_http_server``, and it works whatever reactor
the project installed.

An *app* is a callable taking an :class:`HTTPRequest` and returning an
:class:`HTTPResponse`; it runs on the server's request threads, so it must only read
what the crawl's thread writes, or take its own locks. One connection per request
(HTTP/1.0): nothing to keep in sync between requests.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

logger = logging.getLogger(__name__)

#: A client that sends nothing for this long is disconnected.
CLIENT_TIMEOUT_SECONDS = 10.0
#: How often the serving loop checks whether it should stop.
POLL_SECONDS = 0.1


@dataclass(frozen=True)
class HTTPRequest:
    method: str
    path: str
    query: Mapping[str, list[str]]
    #: Header names in lower case.
    headers: Mapping[str, str]


@dataclass
class HTTPResponse:
    """What to answer; ``after_sent`` is called once the body is written."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    after_sent: Callable[[], None] | None = None


App = Callable[[HTTPRequest], HTTPResponse]


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> HTTPResponse:
    body = json.dumps(payload, separators=(",", ":"), default=str).encode() + b"\n"
    return HTTPResponse(status, body, "application/json", dict(headers or {}))


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> HTTPResponse:
    return json_response(status, {"error": message, "status": status}, headers)


class _Handler(BaseHTTPRequestHandler):
    server_version = "hermit"
    sys_version = ""
    timeout = CLIENT_TIMEOUT_SECONDS
    app: App  # set on the per-server subclass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch()

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        request = HTTPRequest(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        try:
            response = self.app(request)
        except Exception:
            logger.exception("%s %s failed", self.command, parts.path)
            response = json_error(500, "internal error; see the worker's log")
        try:
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(response.body)
            self.wfile.flush()
        except OSError as exc:  # the client went away
            logger.debug("Could not answer %s %s: %s", self.command, parts.path, exc)
            return
        if response.after_sent is not None:
            response.after_sent()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature of the base class)
        logger.debug("%s: " + format, self.address_string(), *args)


class BackgroundHTTPServer:
    """Serves *app* on ``host:port`` (port 0: any free one) from a daemon thread.

    :meth:`start` binds (``OSError`` if it can't, e.g. the port is taken) and returns
    at once; :meth:`stop` closes the socket; both are idempotent.
    """

    def __init__(self, host: str, port: int, app: App, name: str) -> None:
        self.host = host
        self.port = port
        self.app = app
        self.name = name
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> BackgroundHTTPServer:
        if self._server is not None:
            return self
        handler = type(f"{self.name}Handler", (_Handler,), {"app": staticmethod(self.app)})
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_class = type(
            f"{self.name}Server", (ThreadingHTTPServer,),
            {"address_family": family, "daemon_threads": True, "allow_reuse_address": True},
        )
        self._server = server_class((self.host.strip("[]"), self.port), handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": POLL_SECONDS},
            name=f"hermit-{self.name}", daemon=True,
        )
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        return self._server is not None

    def url(self, path: str = "/") -> str:
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(5)
