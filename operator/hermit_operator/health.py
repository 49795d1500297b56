"""``/healthz`` (liveness) and ``/readyz`` (readiness) on their own port.

- ``/healthz`` is 200 while the operator's loop keeps turning: it fails only when the
  loop has not completed a turn for ``stall_after_seconds`` (a hung process, which a
  restart fixes). An unreachable API server does not fail it: a restart would not help.
- ``/readyz`` is 200 once the operator has reached the API server, and while its last
  contact (an election round or a reconcile) succeeded within ``ready_within_seconds``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger(__name__)


class Health:
    """The state both endpoints report; the runner updates it."""

    def __init__(self, stall_after_seconds: float, ready_within_seconds: float,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.stall_after = stall_after_seconds
        self.ready_within = ready_within_seconds
        self.monotonic = monotonic
        self._started = monotonic()
        self._last_turn: float | None = None
        self._last_api_ok: float | None = None
        self.last_error = ""

    def turned(self) -> None:
        self._last_turn = self.monotonic()

    def api_ok(self) -> None:
        self._last_api_ok = self.monotonic()
        self.last_error = ""

    def api_failed(self, error: str) -> None:
        self.last_error = error

    def live(self) -> tuple[bool, str]:
        since = self.monotonic() - (self._last_turn if self._last_turn is not None else self._started)
        if since > self.stall_after:
            return False, f"the loop has not turned for {since:.0f}s"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        if self._last_api_ok is None:
            return False, "has not reached the API server yet" + (f": {self.last_error}" if self.last_error else "")
        since = self.monotonic() - self._last_api_ok
        if since > self.ready_within:
            return False, f"no successful API call for {since:.0f}s: {self.last_error or 'unknown error'}"
        return True, "ok"


class HealthServer:
    """Serves :class:`Health` over HTTP from a daemon thread."""

    def __init__(self, health: Health, host: str, port: int) -> None:
        checks = {"/healthz": health.live, "/livez": health.live, "/readyz": health.ready}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                check = checks.get(self.path.split("?", 1)[0])
                if check is None:
                    ok, text = False, "not found: try /healthz or /readyz"
                    status = 404
                else:
                    ok, text = check()
                    status = 200 if ok else 503
                body = (text + "\n").encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # probes every few seconds: no noise
                logger.debug("health: " + format, *args)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="health", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
