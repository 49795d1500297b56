"""The background HTTP server both endpoints run on."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.request

import pytest

from hermit.observability.http_server import BackgroundHTTPServer, HTTPRequest, HTTPResponse, json_response


def fetch(url: str, method: str = "GET", headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.fixture
def echo_server():
    seen: list[HTTPRequest] = []
    sent: list[str] = []

    def app(request: HTTPRequest) -> HTTPResponse:
        seen.append(request)
        if request.path == "/boom":
            raise RuntimeError("bug in a view")
        response = json_response(200, {"path": request.path, "query": request.query})
        response.after_sent = lambda: sent.append(request.path)
        return response

    server = BackgroundHTTPServer("127.0.0.1", 0, app, "test").start()
    yield server, seen, sent
    server.stop()


def test_serves_an_app_on_a_free_port(echo_server):
    server, seen, sent = echo_server
    assert server.port != 0 and server.url("/x") == f"http://127.0.0.1:{server.port}/x"
    status, headers, body = fetch(server.url("/a/b?limit=3&limit=4&flag"), headers={"X-Token": "t"})
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"path": "/a/b", "query": {"limit": ["3", "4"], "flag": [""]}}
    assert seen[0].headers["x-token"] == "t"  # header names in lower case
    # after_sent runs once the body is written, which may be just after the client read it.
    for _ in range(500):
        if sent:
            break
        time.sleep(0.01)
    assert sent == ["/a/b"]


def test_a_failing_app_answers_500_and_the_server_goes_on(echo_server):
    server, _, _ = echo_server
    status, _, body = fetch(server.url("/boom"))
    assert status == 500 and json.loads(body)["error"].startswith("internal error")
    assert fetch(server.url("/ok"))[0] == 200


def test_unsupported_methods_are_refused(echo_server):
    server, seen, _ = echo_server
    assert fetch(server.url("/x"), method="DELETE")[0] == 501
    assert seen == []


def test_a_taken_port_raises_and_stop_is_idempotent(echo_server):
    server, _, _ = echo_server
    with pytest.raises(OSError):
        BackgroundHTTPServer("127.0.0.1", server.port, lambda request: json_response(200, {}), "clash").start()
    server.stop()
    server.stop()
    assert not server.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
