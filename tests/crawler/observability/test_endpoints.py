"""Settings of the metrics and diagnostics endpoints."""

from __future__ import annotations

import pytest
from scrapy.exceptions import NotConfigured
from scrapy.settings import Settings

from hermit.observability.endpoints import (
    TOKEN_ENVIRONMENT_VARIABLE, Endpoint, diagnostics_endpoint, is_loopback, metrics_endpoint,
)
from hermit.settings import DEFAULT_SETTINGS


def settings(**values) -> Settings:
    return Settings({**DEFAULT_SETTINGS, **values})


@pytest.fixture(autouse=True)
def no_token_in_environment(monkeypatch):
    monkeypatch.delenv(TOKEN_ENVIRONMENT_VARIABLE, raising=False)


def test_defaults():
    assert metrics_endpoint(settings()) == Endpoint("0.0.0.0", 9410)
    assert diagnostics_endpoint(settings()) == Endpoint("127.0.0.1", 9411, None)


def test_port_zero_and_strings_from_the_command_line():
    assert metrics_endpoint(settings(HERMIT_METRICS_PORT="0")).port == 0
    assert diagnostics_endpoint(settings(HERMIT_DIAGNOSTICS_PORT="0")).port == 0


def test_disabled_endpoints_are_not_configured():
    with pytest.raises(NotConfigured, match="HERMIT_METRICS_ENABLED"):
        metrics_endpoint(settings(HERMIT_METRICS_ENABLED="False"))
    with pytest.raises(NotConfigured, match="HERMIT_DIAGNOSTICS_ENABLED"):
        diagnostics_endpoint(settings(HERMIT_DIAGNOSTICS_ENABLED=False))


@pytest.mark.parametrize("port", ["http", -1, 65536, "9410.5"])
def test_invalid_ports_name_the_setting(port):
    with pytest.raises(NotConfigured, match="HERMIT_METRICS_PORT"):
        metrics_endpoint(settings(HERMIT_METRICS_PORT=port))
    with pytest.raises(NotConfigured, match="HERMIT_DIAGNOSTICS_PORT"):
        diagnostics_endpoint(settings(HERMIT_DIAGNOSTICS_PORT=port))


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "worker.example"])
def test_diagnostics_off_loopback_need_a_token(host):
    with pytest.raises(NotConfigured, match="HERMIT_DIAGNOSTICS_TOKEN") as refused:
        diagnostics_endpoint(settings(HERMIT_DIAGNOSTICS_HOST=host))
    assert repr(host) in str(refused.value)
    assert diagnostics_endpoint(settings(HERMIT_DIAGNOSTICS_HOST=host, HERMIT_DIAGNOSTICS_TOKEN="s3cret")) == Endpoint(
        host, 9411, "s3cret"
    )


def test_the_token_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(TOKEN_ENVIRONMENT_VARIABLE, "from-env")
    assert diagnostics_endpoint(settings(HERMIT_DIAGNOSTICS_HOST="0.0.0.0")).token == "from-env"
    # The setting wins over the environment.
    assert diagnostics_endpoint(settings(HERMIT_DIAGNOSTICS_TOKEN="from-setting")).token == "from-setting"


def test_a_blank_token_is_refused():
    with pytest.raises(NotConfigured, match="non-empty"):
        diagnostics_endpoint(settings(HERMIT_DIAGNOSTICS_TOKEN="   "))


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.3.2.1", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("192.168.1.1", False), ("example.com", False),
])
def test_is_loopback(host, loopback):
    assert is_loopback(host) is loopback
