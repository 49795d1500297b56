"""Where the metrics and diagnostics endpoints listen: their settings, checked.

``HERMIT_METRICS_*`` and ``HERMIT_DIAGNOSTICS_*`` (defaults in :mod:`hermit.settings`).
A disabled endpoint, or one whose settings are unusable, raises ``NotConfigured``
with the reason: Scrapy then logs "Disabled <extension>: <reason>" and the crawl
goes on without it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from scrapy.exceptions import NotConfigured

from hermit.setting_spec import EnvironmentVariable

if TYPE_CHECKING:
    from scrapy.settings import BaseSettings

#: Read when the setting ``HERMIT_DIAGNOSTICS_TOKEN`` is not set, so a token can come
#: from a Kubernetes Secret without appearing on a command line.
TOKEN_VARIABLE = EnvironmentVariable(
    "HERMIT_DIAGNOSTICS_TOKEN",
    "the diagnostics token when the setting `HERMIT_DIAGNOSTICS_TOKEN` is not set (e.g. from a Secret)",
    "no token: diagnostics on loopback only",
)
TOKEN_ENVIRONMENT_VARIABLE = TOKEN_VARIABLE.name


@dataclass(frozen=True)
class Endpoint:
    """An address to serve on; ``port`` 0 picks a free port. ``token``: required bearer token."""

    host: str
    port: int
    token: str | None = None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _host(settings: BaseSettings, name: str, default: str) -> str:
    host = settings.get(name, default)
    if not isinstance(host, str) or not host.strip():
        raise NotConfigured(f"{name} must be a host name or address, got {host!r}")
    return host.strip()


def _port(settings: BaseSettings, name: str, default: int) -> int:
    raw = settings.get(name, default)
    try:
        port = int(raw)
    except (TypeError, ValueError):
        raise NotConfigured(f"{name} must be a port number (0 = any free port), got {raw!r}") from None
    if not 0 <= port <= 65535:
        raise NotConfigured(f"{name} must be between 0 and 65535 (0 = any free port), got {raw!r}")
    return port


def metrics_endpoint(settings: BaseSettings) -> Endpoint:
    """``HERMIT_METRICS_HOST``/``_PORT``; ``NotConfigured`` if ``HERMIT_METRICS_ENABLED`` is off."""
    if not settings.getbool("HERMIT_METRICS_ENABLED", True):
        raise NotConfigured("HERMIT_METRICS_ENABLED is off")
    return Endpoint(
        host=_host(settings, "HERMIT_METRICS_HOST", "0.0.0.0"),
        port=_port(settings, "HERMIT_METRICS_PORT", 9410),
    )


def diagnostics_endpoint(settings: BaseSettings) -> Endpoint:
    """``HERMIT_DIAGNOSTICS_HOST``/``_PORT``/``_TOKEN``.

    A host that is not loopback needs a token: the endpoint shows URLs the crawler
    holds and can start tracemalloc, which is nobody else's business.
    """
    if not settings.getbool("HERMIT_DIAGNOSTICS_ENABLED", True):
        raise NotConfigured("HERMIT_DIAGNOSTICS_ENABLED is off")
    host = _host(settings, "HERMIT_DIAGNOSTICS_HOST", "127.0.0.1")
    port = _port(settings, "HERMIT_DIAGNOSTICS_PORT", 9411)
    token = settings.get("HERMIT_DIAGNOSTICS_TOKEN") or os.environ.get(TOKEN_ENVIRONMENT_VARIABLE) or None
    if token is not None and (not isinstance(token, str) or not token.strip()):
        raise NotConfigured("HERMIT_DIAGNOSTICS_TOKEN must be a non-empty string")
    if token is None and not is_loopback(host):
        raise NotConfigured(
            f"HERMIT_DIAGNOSTICS_HOST is {host!r}, not a loopback address: set HERMIT_DIAGNOSTICS_TOKEN "
            f"(or the {TOKEN_ENVIRONMENT_VARIABLE} environment variable) to serve diagnostics there; "
            "the diagnostics endpoint is not started"
        )
    return Endpoint(host=host, port=port, token=token.strip() if token else None)
