"""A real Redis Cluster on loopback, for the tests and benchmarks of cluster support.

:class:`LocalRedisCluster` starts ``masters * (1 + replicas)`` servers (the binary
:func:`~hermit.redis_server.find_server_binary` finds), gives the masters the 16384
slots in even ranges, joins every node into one cluster and attaches the replicas,
with plain cluster commands (there is no redis-cli). A test can then crash a node,
wait for its failover, restart it, and move slots live while clients write.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import redis
from redis.cluster import ClusterNode, RedisCluster

from hermit.redis_server import EmbeddedRedis, RedisServerError, ServerTls, free_loopback_port

HOST = "127.0.0.1"
SLOTS = 16384
# Flags of CLUSTER NODES that say a node is unreachable or not joined yet.
_UNHEALTHY_FLAGS = {"fail", "fail?", "handshake", "noaddr"}


class ClusterTimeout(RedisServerError):
    """The cluster did not reach the state waited for in time; the message ends with the nodes' log tails."""


@dataclass(eq=False)
class Node:
    """One server of the cluster: its process (``server``), its cluster bus port and node id."""

    server: EmbeddedRedis
    bus_port: int
    node_id: str = ""

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def alive(self) -> bool:
        """True while the server process runs."""
        return self.server.alive

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self.server.process.pid if self.server.process else None

    @property
    def role(self) -> str | None:
        """``"master"`` or ``"replica"``, as the node itself says (ROLE); None while it is down."""
        if not self.alive:
            return None
        return "master" if self.command("ROLE")[0] == b"master" else "replica"

    def command(self, *args: Any) -> Any:
        """Run one command on this node alone, on a connection of its own (not cluster-aware)."""
        with redis.Redis(socket_timeout=10, **self.server.client_options()) as client:
            return client.execute_command(*args)


class LocalRedisCluster:
    """A Redis Cluster of ``masters`` masters with ``replicas`` replicas each, on 127.0.0.1.

    Every node persists to an append-only file (``appendfsync everysec``) and a
    cluster config file in a folder of its own below ``data_dir`` (a temporary folder
    that :meth:`stop` removes, when not given), so a killed node restarts with its
    data and identity. The short ``node_timeout_ms`` makes a failover take a few
    seconds; a failover needs a majority of the masters alive, so three or more.
    Use it as a context manager, or call :meth:`start` and :meth:`stop`.
    """

    def __init__(
        self,
        masters: int = 3,
        replicas: int = 1,
        node_timeout_ms: int = 1000,
        data_dir: str | Path | None = None,
        binary: str | None = None,
        password: str | None = None,
        tls: ServerTls | None = None,
    ) -> None:
        if masters < 1 or replicas < 0:
            raise ValueError("a cluster needs at least one master and no negative replica count")
        self.master_count = masters
        #: What every node asks clients (and replicas, of their masters) to authenticate with.
        self.password = password
        #: TLS for clients, the cluster bus and replication alike (None: plain TCP).
        self.tls = tls
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="hermit-cluster-")).absolute()
        self._replicas_at_kill: dict[str, list[Node]] = {}
        ports: set[int] = set()

        def new_port() -> int:
            while (port := free_loopback_port()) in ports:
                pass
            ports.add(port)
            return port

        self.nodes: list[Node] = []
        for _ in range(masters * (1 + replicas)):
            port, bus_port = new_port(), new_port()
            server = EmbeddedRedis(
                port=port, data_dir=self.data_dir / f"node-{port}", appendonly=True,
                appendfsync="everysec", binary=binary, password=password, tls=tls,
                extra_args=[*(["--masterauth", password] if password else []),
                    *(["--tls-cluster", "yes", "--tls-replication", "yes"] if tls else []),
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-port", str(bus_port),
                    "--cluster-node-timeout", str(node_timeout_ms),
                    # A replica may always take over, however long ago it last heard its master.
                    "--cluster-replica-validity-factor", "0",
                    # Nodes stay where they are put: no replica moves to another master,
                    # and a master whose slots all moved away stays an empty master.
                    "--cluster-allow-replica-migration", "no",
                    # A master stops at once, without waiting for its replicas to catch up.
                    "--shutdown-timeout", "0",
                    # A master sends a new replica its data at once (not 5 s later).
                    "--repl-diskless-sync-delay", "0",
                    "--loglevel", "notice",
                ],
            )
            self.nodes.append(Node(server, bus_port))

    def start(self, timeout: float = 30.0) -> LocalRedisCluster:
        """Start every node, assign the slots, join the nodes and wait until the cluster is ok.

        On failure no process is left running; the error carries the nodes' log tails.
        """
        deadline = time.monotonic() + timeout
        try:
            for node in self.nodes:
                node.server.start(timeout=max(deadline - time.monotonic(), 0.1))
                node.node_id = node.command("CLUSTER MYID").decode()
            masters = self.nodes[: self.master_count]
            for i, master in enumerate(masters):
                first, end = i * SLOTS // len(masters), (i + 1) * SLOTS // len(masters)
                master.command("CLUSTER ADDSLOTSRANGE", first, end - 1)
            for node in self.nodes[1:]:
                self.nodes[0].command("CLUSTER MEET", HOST, node.port, node.bus_port)
            for i, replica in enumerate(self.nodes[self.master_count:]):
                master = masters[i % self.master_count]
                # The replica must have heard of its master through the handshake first.
                self._wait(lambda r=replica, m=master: r.command("CLUSTER REPLICATE", m.node_id),
                           deadline, f"node {replica.port} replicating {master.port}")
            self._wait(self._settled, deadline, "the cluster ok on every node")
        except BaseException as exc:
            logs = "" if isinstance(exc, ClusterTimeout) else "\n" + self._log_tails()
            self.stop()
            if not isinstance(exc, Exception):
                raise
            raise RedisServerError(f"the Redis cluster did not start: {exc}{logs}") from exc
        return self

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>`` of the first current master (``rediss://``,
        trusting the CA, with TLS)."""
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        if self.tls:
            return f"rediss://{auth}{HOST}:{self.masters()[0].port}{self.tls.url_query()}"
        return f"redis://{auth}{HOST}:{self.masters()[0].port}"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """``(host, port)`` of every current master."""
        return [(HOST, node.port) for node in self.masters()]

    def masters(self) -> list[Node]:
        """The running nodes that are masters now."""
        return [node for node in self.nodes if node.role == "master"]

    def replicas_of(self, master: Node) -> list[Node]:
        """The running nodes that replicate *master* now (as they say, so also while it is down)."""
        return [node for node in self.nodes
                if node.alive and (role := node.command("ROLE"))[0] == b"slave" and role[2] == master.port]

    def client(self, **kwargs: Any) -> RedisCluster:
        """A cluster-aware redis-py client of this cluster; *kwargs* go to :class:`RedisCluster`."""
        kwargs.setdefault("password", self.password)
        for name, value in (self.tls.client_options() if self.tls else {}).items():
            kwargs.setdefault(name, value)
        return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in self.startup_nodes],
                            **kwargs)

    def slot_of(self, key: str | bytes) -> int:
        """The hash slot of *key* (CLUSTER KEYSLOT)."""
        return int(self._any_running().command("CLUSTER KEYSLOT", key))

    def node_for_slot(self, slot: int) -> Node:
        """The master serving *slot*, as a running node sees it."""
        for node_id, (_, ranges, _) in self._view(self._any_running()).items():
            if any(first <= slot <= last for first, last in ranges):
                return self._by_id(node_id)
        raise LookupError(f"no node serves slot {slot}")

    def kill(self, node: Node) -> None:
        """SIGKILL *node*'s process (a crash: nothing is flushed, the AOF keeps the last second)."""
        self._replicas_at_kill[node.node_id] = self.replicas_of(node)
        node.server.kill()

    def wait_for_failover(self, killed_master: Node, timeout: float = 30.0) -> Node:
        """Wait until a replica of *killed_master* serves its slots and the survivors agree the
        cluster is ok; return that replica, now a master."""
        replicas = self._replicas_at_kill.get(killed_master.node_id)
        if replicas is None:
            raise ValueError(f"node {killed_master.port} was not killed with kill()")
        if not replicas:
            raise ValueError(f"node {killed_master.port} had no replica to fail over to")
        self._wait(lambda: self._settled() and any(node.role == "master" for node in replicas),
                   time.monotonic() + timeout, f"a failover of node {killed_master.port}")
        return next(node for node in replicas if node.role == "master")

    def restart(self, node: Node, timeout: float = 30.0) -> Node:
        """Start a killed *node* again on its port and folder, and wait until it has rejoined
        (a former master comes back as a replica of the node that took its slots)."""
        if node.alive:
            raise ValueError(f"node {node.port} is running")
        deadline = time.monotonic() + timeout
        node.server.start(timeout=timeout)
        self._wait(self._settled, deadline, f"node {node.port} rejoining")
        return node

    def migrate_slots(self, slots: Iterable[int], source: Node, target: Node,
                      batch: int = 100, timeout: float = 30.0) -> None:
        """Move *slots* from master *source* to master *target* live, as a resharding does.

        Per slot: the target imports it and the source migrates it (clients get ASK for
        keys already moved), MIGRATE moves the keys *batch* at a time until none is
        left, then the target, the source and every other master are told the target
        owns it (clients get MOVED). Returns once every node agrees.
        """
        others = [node for node in self.masters() if node not in (source, target)]
        for slot in slots:
            target.command("CLUSTER SETSLOT", slot, "IMPORTING", source.node_id)
            source.command("CLUSTER SETSLOT", slot, "MIGRATING", target.node_id)
            while keys := source.command("CLUSTER GETKEYSINSLOT", slot, batch):
                auth = ["AUTH", self.password] if self.password else []
                source.command("MIGRATE", HOST, target.port, "", 0, 10_000, *auth, "KEYS", *keys)
            for node in (target, source, *others):
                node.command("CLUSTER SETSLOT", slot, "NODE", target.node_id)
        self._wait(self._settled, time.monotonic() + timeout, "the nodes agreeing on the moved slots")

    def stop(self) -> None:
        """Stop every process and remove the temporary folder (a given ``data_dir`` stays)."""
        for node in self.nodes:
            node.server.stop()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> LocalRedisCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _any_running(self) -> Node:
        return next(node for node in self.nodes if node.alive)

    def _by_id(self, node_id: str) -> Node:
        return next(node for node in self.nodes if node.node_id == node_id)

    @staticmethod
    def _view(node: Node) -> dict[str, tuple[str, tuple[tuple[int, int], ...], bool]]:
        """The cluster as *node* sees it (CLUSTER NODES): per node id, the id of its master
        (``"-"`` for a master), the slot ranges it serves and whether it looks unhealthy."""
        view = {}
        for entry in node.command("CLUSTER NODES").values():
            ranges = tuple((int(r[0]), int(r[-1])) for r in entry["slots"])
            unhealthy = bool(_UNHEALTHY_FLAGS & set(entry["flags"].split(",")))
            view[entry["node_id"]] = (entry["master_id"], ranges, unhealthy)
        return view

    def _settled(self) -> bool:
        """Whether every running node says the cluster is ok, knows every node, sees the same
        masters, replicas and slots, sees no running node unhealthy and no slot on a stopped
        one, and every replica's link to its master is up."""
        running = [node for node in self.nodes if node.alive]
        views = []
        for node in running:
            info = node.command("CLUSTER INFO")
            if info["cluster_state"] != "ok" or int(info["cluster_known_nodes"]) != len(self.nodes):
                return False
            view = self._view(node)
            if any(other.node_id not in view or view[other.node_id][2] for other in running):
                return False
            views.append({node_id: entry[:2] for node_id, entry in view.items()})
        if any(view != views[0] for view in views):
            return False
        if any(views[0].get(node.node_id, ("-", ()))[1] for node in self.nodes if not node.alive):
            return False
        return all(role[0] == b"master" or role[3] == b"connected"
                   for role in (node.command("ROLE") for node in running))

    def _wait(self, condition: Callable[[], object], deadline: float, what: str) -> None:
        """Poll *condition* (a Redis error counts as not yet) until it is true or *deadline* passes."""
        last_error = ""
        while True:
            try:
                if condition():
                    return
            except redis.RedisError as exc:
                last_error = f" (last error: {exc})"
            if time.monotonic() > deadline:
                raise ClusterTimeout(f"timed out waiting for {what}{last_error}\n{self._log_tails()}")
            time.sleep(0.05)

    def _log_tails(self, lines: int = 10) -> str:
        """The last *lines* of every node's server log, for error messages."""
        tails = []
        for node in self.nodes:
            log = node.server.data_dir / "server.log"
            text = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else ["(no log)"]
            tails.append(f"--- node {node.port} ---\n" + "\n".join(text))
        return "\n".join(tails)
