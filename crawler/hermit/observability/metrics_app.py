"""The ``/metrics`` HTTP app: Prometheus text or OpenMetrics, as the scraper asks.

It also knows which scrapes were answered, so a closing worker can wait for one last
scrape that began after it stopped crawling (see ``HERMIT_METRICS_FINAL_SCRAPE_TIMEOUT_SECONDS``).

``/healthz`` on the same port is what probes ask (the chart's startup, liveness and
readiness probes, the image's HEALTHCHECK): 200 as long as the server answers. It
renders no metric and reads no Redis, which ``/metrics`` does, so a probe costs the
worker nothing, a slow Redis does not get a healthy worker restarted, and a probe is
never mistaken for the last scrape a closing worker waits for.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable, Iterator

from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from hermit.observability.http_server import HTTPRequest, HTTPResponse

METRICS_PATH = "/metrics"
HEALTH_PATH = "/healthz"


class Registries(Collector):
    """Several registries seen as one (``generate_latest`` only calls ``collect()``)."""

    def __init__(self, registries: Iterable[Collector]) -> None:
        self.registries = list(registries)

    def collect(self) -> Iterator:
        for registry in self.registries:
            yield from registry.collect()


class MetricsApp:
    """Answers ``GET /metrics`` with what *registry* collects, ``GET /healthz`` with
    ``ok`` (collecting nothing); 404/405 otherwise."""

    def __init__(self, registry: Collector) -> None:
        self.registry = registry
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._started = 0
        self._last_answered = 0

    @property
    def scrapes_started(self) -> int:
        """How many scrapes began so far (a mark for :meth:`answered_since`)."""
        with self._lock:
            return self._started

    def answered_since(self, mark: int) -> bool:
        """Whether a scrape that began after *mark* was answered in full."""
        with self._lock:
            return self._last_answered > mark

    def __call__(self, request: HTTPRequest) -> HTTPResponse:
        if request.path not in (METRICS_PATH, HEALTH_PATH):
            return HTTPResponse(404, f"Not found: metrics are at {METRICS_PATH}, health at {HEALTH_PATH}\n".encode(),
                                "text/plain; charset=utf-8")
        if request.method != "GET":
            return HTTPResponse(405, b"Use GET\n", "text/plain; charset=utf-8", {"Allow": "GET"})
        if request.path == HEALTH_PATH:
            return HTTPResponse(200, b"ok\n", "text/plain; charset=utf-8")
        with self._lock:
            self._started = number = next(self._numbers)
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = encoder(self.registry)
        return HTTPResponse(200, body, content_type, after_sent=lambda: self._answered(number))

    def _answered(self, number: int) -> None:
        with self._lock:
            self._last_answered = max(self._last_answered, number)
