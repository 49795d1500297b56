"""The demo site in its own OS process, so it never competes with a crawler for a CPU or a loop.

``with DemoSiteProcess(pages=300) as demo: ...`` serves the site on a free loopback port;
``demo.url`` is its base URL and ``demo.site`` the same :class:`DemoSite` model, for the
ground truth (``demo.site.expected_urls(demo.url)``).
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

import hermit
from hermit.demo.site import DemoSite

logger = logging.getLogger(__name__)

_SERVING_LINE = re.compile(r"serving (?P<url>http://\S+/) \((?P<pages>\d+) pages\)")


class DemoSiteProcess:
    """A ``python -m hermit.demo.site`` child process serving ``DemoSite(pages, **options)``.

    The child also exits when this process dies (it stops at the end of its standard
    input, which only this process holds open), so no site outlives its owner. It runs
    in its own session, so a terminal's Ctrl-C does not reach it. ``port`` 0 picks a
    free port; a crawl that resumes serves the site again on the port its queued
    requests name.
    """

    def __init__(self, pages: int = 3000, *, host: str = "127.0.0.1", port: int = 0,
                 startup_timeout: float = 30.0, **options: Any) -> None:
        self.site = DemoSite(pages=pages, **options)
        self.host = host
        self.port = port
        self.startup_timeout = startup_timeout
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        site = self.site
        return [
            sys.executable, "-m", "hermit.demo.site",
            "--pages", str(site.pages), "--links-per-page", str(site.links_per_page),
            "--seed", str(site.seed), "--slow-seconds", repr(float(site.slow_seconds)),
            "--huge-bytes", str(site.huge_bytes),
            "--host", self.host, "--port", str(self.port), "--stop-on-stdin-eof",
        ]

    def start(self) -> DemoSiteProcess:
        """Start the child and wait until it listens; a no-op when already running."""
        if self.process is not None:
            return self
        env = dict(os.environ)
        # The child must import this very hermit, installed or not.
        package_root = str(Path(hermit.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, start_new_session=True,
        )
        assert self.process.stdout is not None
        line = _read_line(self.process.stdout, self.startup_timeout)
        match = _SERVING_LINE.fullmatch(line.decode(errors="replace").strip()) if line is not None else None
        if match is None:
            process = self.process
            self.stop()
            if line is None:
                raise RuntimeError(f"demo site did not start within {self.startup_timeout} s")
            if not line:
                raise RuntimeError(
                    f"demo site exited before serving (exit code {process.returncode}); see its stderr"
                )
            raise RuntimeError(f"demo site did not start (it said {line!r})")
        self.url = match["url"]
        self.port = urlsplit(self.url).port or self.port  # a restart serves the same URLs
        logger.debug("Demo site (pid %d) serving %s", self.process.pid, self.url)
        return self

    @property
    def alive(self) -> bool:
        """True while the site's process runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        """Stop the child (at once, even in the middle of a slow page); idempotent."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()

    def __enter__(self) -> DemoSiteProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _read_line(stream: IO[bytes], timeout: float) -> bytes | None:
    """The first line of ``stream``, or None if none came within ``timeout`` seconds."""
    # A thread, not select(): pipes can't be polled on every platform.
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return lines[0] if lines else None
