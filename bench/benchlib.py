"""What every benchmark in bench/ shares: the machine it ran on, how busy that machine
is, and writing the results file. The benchmarks run as scripts, so this directory is
on their import path."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import psutil

_BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")


def machine_info(**extra: Any) -> dict[str, Any]:
    """Python, OS, processor and CPU count, for the results file; *extra* adds fields."""
    return {"python": platform.python_version(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(), **extra}


def memory_mib() -> int:
    return psutil.virtual_memory().total // 2**20


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all CPUs together)."""
    times = psutil.cpu_times()
    return sum(getattr(times, field) for field in _BUSY_FIELDS if hasattr(times, field))


def wait_for_quiet(max_seconds: float, quiet_seconds: float = 5.0) -> dict[str, Any]:
    """Wait (at most *max_seconds*) until the machine's CPUs have been idle for *quiet_seconds*."""
    started = time.monotonic()
    quiet_since = started
    while time.monotonic() - started < max_seconds:
        before = machine_busy_seconds()
        time.sleep(1.0)
        if machine_busy_seconds() - before > 0.15:  # CPU seconds in that second, all CPUs together
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since >= quiet_seconds:
            return {"waited_seconds": round(time.monotonic() - started, 1), "quiet": True}
    return {"waited_seconds": round(time.monotonic() - started, 1), "quiet": False}


def write_report(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
