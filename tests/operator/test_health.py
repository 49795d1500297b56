"""/healthz and /readyz over real HTTP."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from hermit_operator.health import Health, HealthServer


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def served():
    clock = Clock()
    health = Health(stall_after_seconds=120, ready_within_seconds=60, monotonic=clock)
    server = HealthServer(health, "127.0.0.1", 0).start()
    yield health, clock, f"http://127.0.0.1:{server.port}"
    server.stop()


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_live_while_the_loop_turns(served):
    health, clock, url = served
    assert get(url + "/healthz")[0] == 200  # just started
    clock.now += 100
    health.turned()
    clock.now += 100
    assert get(url + "/healthz")[0] == 200
    clock.now += 21
    status, text = get(url + "/healthz")
    assert status == 503 and "has not turned for 121s" in text


def test_ready_once_the_api_answered_and_while_it_does(served):
    health, clock, url = served
    health.api_failed("list pods: connection refused")
    status, text = get(url + "/readyz")
    assert status == 503 and "connection refused" in text
    health.api_ok()
    assert get(url + "/readyz") == (200, "ok\n")
    clock.now += 61
    health.api_failed("list pods: 503 ServiceUnavailable")
    status, text = get(url + "/readyz")
    assert status == 503 and "no successful API call for 61s" in text
    assert get(url + "/healthz")[0] == 200  # an API outage is no reason to restart


def test_unknown_paths(served):
    assert get(served[2] + "/metrics")[0] == 404
