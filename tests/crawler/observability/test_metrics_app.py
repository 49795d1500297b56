"""The /metrics app: formats, paths, knowing which scrapes were answered, and /healthz."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.registry import Collector

from hermit.observability.http_server import BackgroundHTTPServer, HTTPRequest
from hermit.observability.metrics_app import MetricsApp, Registries


def get(app: MetricsApp, path: str = "/metrics", method: str = "GET", accept: str = "") -> object:
    return app(HTTPRequest(method, path, {}, {"accept": accept} if accept else {}))


def make_app() -> MetricsApp:
    first, second = CollectorRegistry(), CollectorRegistry()
    Counter("probe_first", "First registry.", registry=first).inc(3)
    Counter("probe_second", "Second registry.", registry=second).inc(5)
    return MetricsApp(Registries([first, second]))


def test_serves_both_registries_as_prometheus_text_or_openmetrics():
    app = make_app()
    text = get(app)
    assert text.status == 200 and text.content_type.startswith("text/plain")
    assert b"probe_first_total 3.0" in text.body and b"probe_second_total 5.0" in text.body
    open_metrics = get(app, accept="application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert open_metrics.content_type.startswith("application/openmetrics-text")
    assert open_metrics.body.endswith(b"# EOF\n") and open_metrics.body.count(b"# EOF") == 1


def test_other_paths_and_methods():
    app = make_app()
    assert get(app, "/").status == 404
    assert get(app, "/metrics/x").status == 404
    assert get(app, method="POST").status == 405
    assert get(app, "/healthz", method="POST").status == 405
    assert get(app, "/healthz/x").status == 404


def test_answered_since_needs_a_scrape_that_began_after_the_mark():
    app = make_app()
    before = get(app)  # began before the mark, answered after it
    mark = app.scrapes_started
    before.after_sent()
    assert not app.answered_since(mark)
    after = get(app)
    assert not app.answered_since(mark)  # begun, not yet written
    after.after_sent()
    assert app.answered_since(mark)


class RedisAway(Collector):
    """A collector that reads Redis at scrape time, with Redis gone: every collect fails."""

    def __init__(self) -> None:
        self.collects = 0

    def collect(self) -> Iterator:
        self.collects += 1
        raise ConnectionError("Redis is away")


def test_healthz_answers_without_collecting_and_is_not_a_scrape():
    collector = RedisAway()
    app = MetricsApp(collector)
    mark = app.scrapes_started
    health = get(app, "/healthz")
    assert (health.status, health.body, health.content_type) == (200, b"ok\n", "text/plain; charset=utf-8")
    assert health.after_sent is None
    assert collector.collects == 0
    # A probe must not pass for the last scrape a closing worker waits for.
    assert app.scrapes_started == mark and not app.answered_since(mark)


def test_over_http_healthz_stays_up_while_metrics_fail():
    collector = RedisAway()
    server = BackgroundHTTPServer("127.0.0.1", 0, MetricsApp(collector), "metrics-test").start()
    try:
        with urllib.request.urlopen(server.url("/healthz"), timeout=10) as answer:
            assert (answer.status, answer.read()) == (200, b"ok\n")
        assert collector.collects == 0
        try:
            urllib.request.urlopen(server.url("/metrics"), timeout=10)
        except urllib.error.HTTPError as error:
            assert error.code == 500
        else:
            raise AssertionError("/metrics answered although its collector failed")
        assert collector.collects == 1
    finally:
        server.stop()
