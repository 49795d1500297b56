"""The worker's leak-diagnostics endpoint: a Scrapy extension serving :mod:`diagnostics_app`.

It replaces the telnet console for leak hunting (which is a remote Python shell,
and stays off): ``prefs()``, ``get_oldest()`` and ``iter_all()`` as read-only JSON,
plus tracemalloc on demand. It runs on its own thread so that a slow client or a
seconds-long tracemalloc snapshot does not stall the crawl.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from scrapy import signals

from hermit.observability.diagnostics_app import DiagnosticsApp
from hermit.observability.endpoint_log import DIAGNOSTICS_LOG
from hermit.observability.endpoints import Endpoint, diagnostics_endpoint
from hermit.observability.http_server import BackgroundHTTPServer

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler

logger = logging.getLogger(__name__)


class DiagnosticsExtension:
    """Serves diagnostics at ``http://HERMIT_DIAGNOSTICS_HOST:HERMIT_DIAGNOSTICS_PORT/``.

    Settings: ``HERMIT_DIAGNOSTICS_ENABLED`` (True), ``HERMIT_DIAGNOSTICS_HOST``
    ("127.0.0.1"), ``HERMIT_DIAGNOSTICS_PORT`` (9411; 0 = a free port, logged),
    ``HERMIT_DIAGNOSTICS_TOKEN`` (None; else the environment variable of that name):
    when set, every request needs ``Authorization: Bearer <token>``. A host that is
    not loopback without a token is refused: the extension raises ``NotConfigured``
    and the worker crawls without diagnostics.

    Started when the spider opens, stopped when it closes (tracemalloc too, if it was
    started through the endpoint). If the port can't be bound, the crawl goes on
    without diagnostics (an error is logged).
    """

    def __init__(self, crawler: Crawler, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.app = DiagnosticsApp(token=endpoint.token)
        self.server: BackgroundHTTPServer | None = None
        crawler.signals.connect(self.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(self.stop, signal=signals.spider_closed)
        crawler.signals.connect(self.stop, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DiagnosticsExtension:
        return cls(crawler, diagnostics_endpoint(crawler.settings))

    def spider_opened(self, spider: Spider) -> None:
        server = BackgroundHTTPServer(self.endpoint.host, self.endpoint.port, self.app, "diagnostics")
        try:
            server.start()
        except OSError as exc:
            logger.error(
                "Cannot serve diagnostics on %s:%d (%s); this worker runs without them. "
                "Set HERMIT_DIAGNOSTICS_PORT=0 for any free port.", self.endpoint.host, self.endpoint.port, exc,
            )
            return
        self.server = server
        logger.info(DIAGNOSTICS_LOG, server.url("/"),
                    "bearer token required" if self.endpoint.token else "no token: loopback only")

    def stop(self) -> None:
        server, self.server = self.server, None
        if server is not None:
            server.stop()
            self.app.heap.stop_if_started_here()
