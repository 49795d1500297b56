"""Where the metrics and diagnostics endpoints listen: their settings, checked.

``HERMIT_METRICS_*`` and ``HERMIT_DIAGNOSTICS_*``, read through the settings table
(:mod:`hermit.settings`: their defaults, parsers and bounds).
A disabled endpoint, or one whose settings are unusable, raises ``NotConfigured``
with the reason: Scrapy then logs "Disabled <extension>: <reason>" and the crawl
goes on without it.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from scrapy.exceptions import NotConfigured

from hermit.setting_spec import EnvironmentVariable, InvalidValue, SettingSource
from hermit.settings import read

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


def _read(settings: SettingSource, name: str) -> Any:
    """Setting *name*, checked; a value it can't use disables the endpoint (NotConfigured)."""
    try:
        return read(settings, name)
    except InvalidValue as exc:
        raise NotConfigured(str(exc)) from None


def metrics_endpoint(settings: BaseSettings) -> Endpoint:
    """``HERMIT_METRICS_HOST``/``_PORT``; ``NotConfigured`` if ``HERMIT_METRICS_ENABLED`` is off."""
    if not _read(settings, "HERMIT_METRICS_ENABLED"):
        raise NotConfigured("HERMIT_METRICS_ENABLED is off")
    return Endpoint(host=_read(settings, "HERMIT_METRICS_HOST"), port=_read(settings, "HERMIT_METRICS_PORT"))


def diagnostics_endpoint(settings: BaseSettings) -> Endpoint:
    """``HERMIT_DIAGNOSTICS_HOST``/``_PORT``/``_TOKEN``.

    A host that is not loopback needs a token: the endpoint shows URLs the crawler
    holds and can start tracemalloc, which is nobody else's business.
    """
    if not _read(settings, "HERMIT_DIAGNOSTICS_ENABLED"):
        raise NotConfigured("HERMIT_DIAGNOSTICS_ENABLED is off")
    host = _read(settings, "HERMIT_DIAGNOSTICS_HOST")
    port = _read(settings, "HERMIT_DIAGNOSTICS_PORT")
    # The variable has the setting's name, and its value is checked as the setting's is.
    token = _read(settings, "HERMIT_DIAGNOSTICS_TOKEN") or _read(os.environ, TOKEN_ENVIRONMENT_VARIABLE)
    if token is None and not is_loopback(host):
        raise NotConfigured(
            f"HERMIT_DIAGNOSTICS_HOST is {host!r}, not a loopback address: set HERMIT_DIAGNOSTICS_TOKEN "
            f"(or the {TOKEN_ENVIRONMENT_VARIABLE} environment variable) to serve diagnostics there; "
            "the diagnostics endpoint is not started"
        )
    return Endpoint(host=host, port=port, token=token)
