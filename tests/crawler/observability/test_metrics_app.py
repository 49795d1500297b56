"""The /metrics app: formats, paths, and knowing which scrapes were answered."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from hermit.observability.http_server import HTTPRequest
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
