"""Fixtures for running ``hermit`` as a user does: a subprocess, or a process on a real terminal (a pty).

``hermit_cli(*args)`` runs a command to its end; ``hermit_process(*args)`` and
``hermit_terminal(*args)`` start one and hand it over (stopped at teardown if still
running); ``demo_items(path, pages)`` counts an items file against the demo site's
ground truth.
"""

from __future__ import annotations

import contextlib
import json
import os
import pty
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from hermit.demo.site import DemoSite

#: Generous bounds for a process to end or a condition to hold on a loaded machine:
#: waiting longer means a hang, which is what these tests look for.
PROCESS_TIMEOUT_SECONDS = 300.0


def hermit_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hermit.cli", *args]


@pytest.fixture
def hermit_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, cwd: Path | None = None, timeout: float = PROCESS_TIMEOUT_SECONDS):
        return subprocess.run(hermit_command(*args), capture_output=True, text=True, timeout=timeout, cwd=cwd)

    return run


@pytest.fixture
def hermit_process() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``hermit ARGS`` with its output in files; ``proc.output()`` reads stdout + stderr so far."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
        out = (cwd / "hermit.out").open("w")
        proc = subprocess.Popen(hermit_command(*args), stdout=out, stderr=subprocess.STDOUT, text=True, cwd=cwd)
        out.close()
        proc.output = lambda: (cwd / "hermit.out").read_text(errors="replace")  # type: ignore[attr-defined]
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@dataclass
class TerminalProcess:
    """``hermit`` on the slave side of a pty, as in a terminal: ``ctrl_c()`` types Ctrl-C."""

    pid: int
    fd: int
    chunks: list[bytes]
    status: int | None = None

    def ctrl_c(self) -> None:
        # The terminal's line discipline turns this byte into SIGINT for the foreground
        # process group — what a user's Ctrl-C does.
        os.write(self.fd, b"\x03")

    @property
    def output(self) -> str:
        return b"".join(self.chunks).decode(errors="replace")

    def wait(self, timeout: float = PROCESS_TIMEOUT_SECONDS) -> int:
        deadline = time.monotonic() + timeout
        while self.status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"hermit did not end within {timeout}s; output:\n{self.output[-3000:]}")
            time.sleep(0.05)
        return self.status


@pytest.fixture
def hermit_terminal() -> Iterator[Callable[..., TerminalProcess]]:
    started: list[TerminalProcess] = []

    def start(*args: str, cwd: Path) -> TerminalProcess:
        command = hermit_command(*args)
        pid, fd = pty.fork()
        if pid == 0:  # the child: a session leader whose controlling terminal is the pty
            try:
                os.chdir(cwd)
                os.execv(command[0], command)
            finally:
                os._exit(127)
        chunks: list[bytes] = []

        def read() -> None:
            # Keep reading, or the child blocks once the pty's buffer is full.
            while True:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    return
                if not data:
                    return
                chunks.append(data)

        threading.Thread(target=read, daemon=True).start()
        terminal = TerminalProcess(pid, fd, chunks)
        started.append(terminal)
        return terminal

    yield start
    for terminal in started:
        if terminal.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(terminal.pid, signal.SIGKILL)
            terminal.wait()
        os.close(terminal.fd)


@dataclass
class DemoItems:
    """An items file counted against the demo site's ground truth."""

    urls: list[str]
    expected: set[str]

    @property
    def lost(self) -> set[str]:
        return self.expected - set(self.urls)

    @property
    def unexpected(self) -> set[str]:
        return set(self.urls) - self.expected

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in Counter(self.urls).values())


@pytest.fixture
def demo_items() -> Callable[[Path, int], DemoItems]:
    def count(path: Path, pages: int) -> DemoItems:
        urls = [json.loads(line)["url"] for line in path.read_text().splitlines()]
        assert urls, f"{path} holds no item"
        parts = urlsplit(urls[0])
        return DemoItems(urls, DemoSite(pages=pages).expected_urls(f"{parts.scheme}://{parts.netloc}/"))

    return count


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """``wait_for(condition, what)``: poll until *condition()* is true; fail (not hang) past the bound."""

    def wait(condition: Callable[[], object], what: str, timeout: float = PROCESS_TIMEOUT_SECONDS) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                pytest.fail(f"timed out waiting for {what}")
            time.sleep(0.05)

    return wait


def saved_state(state_dir: Path) -> dict:
    """The crawl's state.json, or {} before it is written."""
    try:
        return json.loads((state_dir / "state.json").read_text())
    except (FileNotFoundError, ValueError):
        return {}


@pytest.fixture
def items_written() -> Callable[[Path], int]:
    """How many items the crawl in a state directory has written to its items file so far."""

    def count(state_dir: Path) -> int:
        return ((saved_state(state_dir).get("items") or {}).get("items")) or 0

    return count


@pytest.fixture
def crawl_state() -> Callable[[Path], dict]:
    return saved_state
