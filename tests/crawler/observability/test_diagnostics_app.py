"""The diagnostics API: views, the token, and clear 4xx answers to bad requests."""

from __future__ import annotations

import json
import tracemalloc
from urllib.parse import parse_qs, urlsplit

import pytest
from scrapy import Request

from hermit.observability.diagnostics_app import MAX_REFS_LIMIT, DiagnosticsApp
from hermit.observability.heap_profiler import MAX_FRAMES, MAX_LIMIT
from hermit.observability.http_server import HTTPRequest

TOKEN = "s3cret-token"


class DiagProbeRequest(Request):
    pass


def call(app: DiagnosticsApp, target: str, method: str = "GET", token: str | None = TOKEN,
         header: str | None = None) -> tuple[int, dict]:
    parts = urlsplit(target)
    headers = {}
    if header is not None:
        headers["authorization"] = header
    elif token is not None:
        headers["authorization"] = f"Bearer {token}"
    response = app(HTTPRequest(method, parts.path, parse_qs(parts.query, keep_blank_values=True), headers))
    assert response.content_type == "application/json"
    return response.status, json.loads(response.body)


@pytest.fixture
def app():
    yield DiagnosticsApp(token=TOKEN)
    tracemalloc.stop()


def test_refs_oldest_and_all_objects_of_a_class(app):
    kept = [DiagProbeRequest(f"https://example.com/{i}") for i in range(30)]
    status, refs = call(app, "/refs")
    assert status == 200
    probe = next(c for c in refs["classes"] if c["class"] == "DiagProbeRequest")
    assert probe["live"] == 30 and probe["oldest_age_seconds"] >= 0
    status, oldest = call(app, "/refs/DiagProbeRequest/oldest")
    assert status == 200 and oldest["url"] == "https://example.com/0" and oldest["repr"] == "<GET https://example.com/0>"
    status, listed = call(app, "/refs/DiagProbeRequest?limit=5")
    assert status == 200 and (listed["live"], listed["returned"]) == (30, 5)
    assert [o["url"] for o in listed["objects"]] == [f"https://example.com/{i}" for i in range(5)]
    assert call(app, "/refs/DiagProbeRequest")[1]["returned"] == 30
    del kept


def test_index_and_gc(app):
    status, index = call(app, "/")
    assert status == 200 and "GET /refs" in index["endpoints"]
    status, collected = call(app, "/gc", method="POST")
    assert status == 200 and collected["collected"] >= 0


def test_tracemalloc_round_trip(app):
    assert call(app, "/tracemalloc")[1]["tracing"] is False
    assert call(app, "/tracemalloc/top")[0] == 409  # not started
    status, started = call(app, "/tracemalloc/start?frames=3", method="POST")
    assert status == 200 and started["tracing"] and started["frames"] == 3
    assert call(app, "/tracemalloc/diff")[0] == 409  # no baseline
    assert call(app, "/tracemalloc/snapshot", method="POST")[0] == 200
    kept = [bytes(500) for _ in range(1000)]
    status, top = call(app, "/tracemalloc/top?limit=4&group_by=traceback")
    assert status == 200 and 1 <= len(top["top"]) <= 4
    status, diff = call(app, "/tracemalloc/diff?limit=2")
    assert status == 200 and len(diff["diff"]) == 2 and diff["diff"][0]["size_diff_bytes"] >= 500_000
    assert call(app, "/tracemalloc/stop", method="POST")[1]["tracing"] is False
    del kept


@pytest.mark.parametrize(("token", "header", "status"), [
    (None, None, 401),
    ("wrong", None, 403),
    (None, f"Basic {TOKEN}", 403),
    (None, f"bearer {TOKEN}", 200),
    (None, f"Bearer  {TOKEN} ", 200),
])
def test_the_token_is_required_when_set(app, token, header, status):
    answer, body = call(app, "/refs", token=token, header=header)
    assert answer == status
    if status != 200:
        assert body["status"] == status and body["error"]


def test_missing_token_says_how_to_authenticate(app):
    parts = urlsplit("/refs")
    response = app(HTTPRequest("GET", parts.path, {}, {}))
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_no_token_configured_means_open_on_loopback():
    assert call(DiagnosticsApp(token=None), "/refs", token=None)[0] == 200


@pytest.mark.parametrize(("target", "method", "status", "message"), [
    ("/refs/NoSuchClassAnywhere/oldest", "GET", 404, "no tracked class"),
    ("/refs/NoSuchClassAnywhere", "GET", 404, "no tracked class"),
    ("/refs/Bad-Name!", "GET", 400, "not a class name"),
    (f"/refs/Request?limit={MAX_REFS_LIMIT + 1}", "GET", 400, "limit must be between"),
    ("/refs/Request?limit=1000000000000", "GET", 400, "limit must be between"),
    ("/refs/Request?limit=0", "GET", 400, "limit must be between"),
    ("/refs/Request?limit=ten", "GET", 400, "must be an integer"),
    ("/refs/Request?limit=1&limit=2", "GET", 400, "given 2 times"),
    ("/refs?verbose=1", "GET", 400, "unknown parameter"),
    (f"/tracemalloc/start?frames={MAX_FRAMES + 1}", "POST", 400, "frames must be between"),
    ("/tracemalloc/start?frames=-1", "POST", 400, "frames must be between"),
    (f"/tracemalloc/top?limit={MAX_LIMIT + 1}", "GET", 400, "limit must be between"),
    ("/tracemalloc/top?group_by=everything", "GET", 400, "group_by must be one of"),
    ("/tracemalloc/start", "GET", 405, "use POST"),
    ("/refs", "POST", 405, "use GET"),
    ("/gc", "GET", 405, "use POST"),
    ("/telnet", "GET", 404, "no such endpoint"),
    ("/refs/Request/oldest/more", "GET", 404, "no such endpoint"),
])
def test_bad_requests_get_clear_answers(app, target, method, status, message):
    answer, body = call(app, target, method=method)
    assert (answer, body["status"]) == (status, status)
    assert message in body["error"]
    assert not tracemalloc.is_tracing()


def test_a_tracked_class_with_no_live_object_has_no_oldest(app):
    DiagProbeRequest("https://example.com/gone")  # tracked, then garbage at once
    status, body = call(app, "/refs/DiagProbeRequest/oldest")
    assert status == 404 and "no live object" in body["error"]


def test_a_second_tracemalloc_operation_is_told_to_retry(app):
    call(app, "/tracemalloc/start?frames=1", method="POST")
    with app.heap._lock:  # a snapshot in progress on another request's thread
        status, body = call(app, "/tracemalloc/top")
    assert status == 429 and "try again" in body["error"]
