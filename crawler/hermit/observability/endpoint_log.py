"""Finding a worker's endpoints in its log, for whoever started it (the local pool, tests).

With ``HERMIT_METRICS_PORT=0`` / ``HERMIT_DIAGNOSTICS_PORT=0`` each worker picks a free
port and logs it, in the lines written with :data:`METRICS_LOG` and :data:`DIAGNOSTICS_LOG`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

METRICS_LOG = "Metrics at %s"
DIAGNOSTICS_LOG = "Diagnostics at %s (%s)"
_METRICS = re.compile(r"Metrics at (http://\S+/metrics)")
_DIAGNOSTICS = re.compile(r"Diagnostics at (http://\S+/) \(")
_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "[::1]"}


@dataclass(frozen=True)
class WorkerEndpoints:
    """URLs to reach a worker's endpoints from this host (None: not (yet) serving)."""

    metrics: str | None
    diagnostics: str | None


def _reachable(url: str) -> str:
    """*url* with a wildcard listening address replaced by loopback."""
    parts = urlsplit(url)
    loopback = _LOOPBACK.get(parts.hostname or "")
    return parts._replace(netloc=f"{loopback}:{parts.port}").geturl() if loopback else url


def endpoints_in_log(text: str) -> WorkerEndpoints:
    """The endpoints of the last worker start logged in *text* (a restarted worker appends to its log)."""
    metrics = _METRICS.findall(text)
    diagnostics = _DIAGNOSTICS.findall(text)
    return WorkerEndpoints(
        metrics=_reachable(metrics[-1]) if metrics else None,
        diagnostics=_reachable(diagnostics[-1]) if diagnostics else None,
    )
