"""How the local supervisor starts the processes it owns.

Each child gets its own session, so the terminal's Ctrl-C (sent to the whole
foreground process group) reaches only ``hermit crawl``, which decides what every
child does. On Linux each child is also told, through ``prctl(PR_SET_PDEATHSIG)``,
which signal it gets when its parent dies, so a SIGKILL of the supervisor leaves no
orphan behind (other systems: see :func:`popen_options`).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import signal
import sys
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _death_signal_setter(signum: int) -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):  # pragma: no cover - every Linux libc has prctl
        return None

    def set_death_signal() -> None:
        # Runs in the child between fork and exec: only a C call, no Python locks.
        prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)

    return set_death_signal


def popen_options(death_signal: signal.Signals | None) -> dict[str, Any]:
    """``subprocess.Popen`` keyword arguments for a child the supervisor owns.

    *death_signal* is what the child receives if this process dies without stopping
    it (Linux only; elsewhere such a child outlives its parent and must be stopped by
    hand). None: the child is left alone, only moved to its own session.
    """
    options: dict[str, Any] = {"start_new_session": True}
    setter = _death_signal_setter(int(death_signal)) if death_signal is not None else None
    if setter is not None:
        options["preexec_fn"] = setter
    return options
