"""The Prometheus targets file of a local pool: every running worker's /metrics, for ``file_sd_configs``."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from hermit.local.pool import WorkerPool

logger = logging.getLogger(__name__)

#: In the log directory: every running worker's /metrics, for Prometheus' file_sd_configs.
PROMETHEUS_TARGETS_FILE = "prometheus-targets.json"


def write_prometheus_targets(path: Path, pool: WorkerPool) -> None:
    """Write every running worker's metrics address as a Prometheus file_sd target group.

    Prometheus re-reads the file when it changes: point a ``file_sd_configs`` job at it
    and it scrapes each worker, replacements included. Written whole, then renamed, so a
    reader never sees half of it. The workers' series carry their own ``crawl`` label;
    the target adds only the pool slot.
    """
    targets = []
    for slot in pool.slots:
        if slot.endpoints.metrics:
            parts = urlsplit(slot.endpoints.metrics)
            targets.append({"targets": [parts.netloc], "labels": {"slot": str(slot.index)}})
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(targets, indent=2) + "\n")
    os.replace(partial, path)
