"""A throwaway splicegate cluster for the end-to-end tests: PostgreSQL, three gateways and
a HAProxy in front of them, all real processes on loopback.

- PostgreSQL: pg_tools.Postgres (Debian's initdb and pg_ctl as the `postgres` user, in a
  temp dir, on a free port).
- Nodes n1, n2, n3: `--admin 127.0.0.{2,3,4}:0 --bind-host 127.0.0.{2,3,4}
  --cluster-db URL --node nK`, so each binds every cluster listener on its own host and
  the same port.
- HAProxy (`mode tcp`, `balance roundrobin`) on 127.0.0.1:FRONT, forwarding to port
  `listener_port` on the three node hosts. Its health check (`inter 200ms fall 1`) probes
  each node's admin port, so a dead node is noticed without the checks opening sessions.

Everything is stopped and the temp dir removed at `close()`.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Any, Iterator

import pytest

from conftest import (HTTP_TIMEOUT_S, OK_STOP_CODES, STOP_TIMEOUT_S, Gateway, StreamServer, echo_handler, free_port,
                      split_address, terminate, wait_until)
from pg_tools import Postgres, running_postgres

HAPROXY = os.environ.get("HAPROXY_BIN", "/usr/sbin/haproxy")
NODE_HOSTS = {"n1": "127.0.0.2", "n2": "127.0.0.3", "n3": "127.0.0.4"}
FRONT_HOST = "127.0.0.1"
HAPROXY_START_TIMEOUT_S = 10.0
# Nodes started together know each other after a heartbeat round or two.
MEMBERS_TIMEOUT_S = 10.0


def accepts(address: str) -> bool:
    """Whether a TCP connect to `address` succeeds now (the connection is closed at once)."""
    try:
        with socket.create_connection(split_address(address), timeout=1.0):
            return True
    except OSError:
        return False


def member_names(node: Gateway) -> set[str] | None:
    """The names `node` lists in GET /api/v1/nodes; None if it does not answer 200."""
    response = node.get("/api/v1/nodes")
    if response.status_code != 200:
        return None
    return {member["name"] for member in response.json()["nodes"]}


# -- HAProxy -------------------------------------------------------------------------------


class HAProxy:
    """HAProxy in tcp mode on FRONT_HOST:`front_port`, round robin over `servers`
    (name -> (host, port, check_port)), with an admin socket to read its view."""

    def __init__(self, root: pathlib.Path, servers: dict[str, tuple[str, int, int]]) -> None:
        if not os.path.exists(HAPROXY):
            raise AssertionError(f"needs {HAPROXY}: apt-get install haproxy (scripts/deps.sh test does)")
        self.front_port = free_port()
        self.front = f"{FRONT_HOST}:{self.front_port}"
        self.stats = root / "haproxy.sock"
        config = root / "haproxy.cfg"
        lines = [
            "global",
            "    maxconn 4096",
            f"    stats socket {self.stats} mode 600 level admin",
            "defaults",
            "    mode tcp",
            "    timeout connect 2s",
            "    timeout client 120s",
            "    timeout server 120s",
            # A connect refused by a node the checks have not yet marked down goes elsewhere.
            "    retries 3",
            "    option redispatch",
            "frontend front",
            f"    bind {self.front}",
            "    default_backend nodes",
            "backend nodes",
            "    balance roundrobin",
            *(f"    server {name} {host}:{port} check port {check} inter 200ms fall 1 rise 1"
              for name, (host, port, check) in servers.items()),
        ]
        config.write_text("\n".join(lines) + "\n")
        self.log_path = root / "haproxy.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: self._ask_or_none("show info\n"), timeout=HAPROXY_START_TIMEOUT_S,
                   message=f"haproxy's admin socket{self.output()}")

    def _ask_or_none(self, command: str) -> str | None:
        assert self.proc.poll() is None, f"haproxy exited with {self.proc.returncode}{self.output()}"
        try:
            return self.ask(command)
        except OSError:
            return None

    def ask(self, command: str) -> str:
        """One command on the admin socket; its whole answer."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(HTTP_TIMEOUT_S)
            sock.connect(str(self.stats))
            sock.sendall(command.encode())
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        return answer.decode()

    def server_states(self) -> dict[str, str]:
        """Server name -> status (`UP`, `DOWN`, …) as HAProxy sees it now."""
        lines = self.ask("show stat\n").splitlines()
        header = lines[0].lstrip("# ").split(",")
        name, status = header.index("svname"), header.index("status")
        rows = [line.split(",") for line in lines[1:] if line]
        return {row[name]: row[status].split()[0] for row in rows
                if row[0] == "nodes" and row[name] not in ("BACKEND", "FRONTEND")}

    def output(self) -> str:
        with contextlib.suppress(OSError):
            self._log.flush()
            return "\n--- haproxy ---\n" + self.log_path.read_text("utf-8", "replace")[-4000:]
        return ""

    def close(self) -> None:
        terminate(self.proc)
        self._log.close()


# -- the cluster ---------------------------------------------------------------------------


class Node(Gateway):
    """One cluster member: a gateway with its name and the host it binds listeners on."""

    def __init__(self, name: str, args: list[str], log_dir: pathlib.Path) -> None:
        self.name = name
        self.bind_host = NODE_HOSTS[name]
        super().__init__(args, log_dir, None, None, admin_host=self.bind_host)

    def address(self, port: int) -> str:
        """Where this node binds a cluster listener on `port`."""
        return f"{self.bind_host}:{port}"


class Cluster:
    """Nodes n1..n3 on `postgres`, an echo upstream and the HAProxy front.

    `listener_port` is the port HAProxy forwards to on every node; the listener itself is
    created by `front_listener()` (once), through node n1.
    """

    def __init__(self, postgres: Postgres) -> None:
        self.root = pathlib.Path(tempfile.mkdtemp(prefix="splicegate-cluster-"))
        self.postgres = postgres
        self.nodes: dict[str, Node] = {}
        self.haproxy: HAProxy | None = None
        self.killed: set[str] = set()
        self._listener: dict[str, Any] | None = None
        self.echo = StreamServer(echo_handler)
        try:
            self.listener_port = free_port()
            for name in NODE_HOSTS:
                self.nodes[name] = self._start_node(name)
            for node in self.nodes.values():
                node.wait_ready()
            self.wait_members(set(NODE_HOSTS))
            self.haproxy = HAProxy(self.root, {name: (node.bind_host, self.listener_port, node.port)
                                               for name, node in self.nodes.items()})
        except BaseException:
            self.close()
            raise

    def _start_node(self, name: str) -> Node:
        host = NODE_HOSTS[name]
        args = ["--admin", f"{host}:0", "--log-level", "debug",
                "--cluster-db", self.postgres.url, "--node", name, "--bind-host", host]
        return Node(name, args, self.root)

    @property
    def n1(self) -> Node:
        return self.nodes["n1"]

    @property
    def n2(self) -> Node:
        return self.nodes["n2"]

    @property
    def n3(self) -> Node:
        return self.nodes["n3"]

    def live(self) -> list[Node]:
        return [node for name, node in self.nodes.items() if name not in self.killed]

    def wait_members(self, names: set[str], timeout: float = MEMBERS_TIMEOUT_S) -> None:
        """Every live node lists exactly `names` in GET /api/v1/nodes (nodes learn of each
        other through their heartbeats, so not at once)."""
        deadline = time.monotonic() + timeout
        for node in self.live():
            wait_until(lambda: member_names(node) == names, timeout=max(0.0, deadline - time.monotonic()),
                       message=f"{node.name} to list the nodes {sorted(names)}")

    def create_listener(self, node: Node, port: int, **extra: Any) -> dict[str, Any]:
        """A listener for the echo upstream on `port`, created through `node` only (each node
        binds it on its own host: `--bind-host`)."""
        return node.create_listener(listen=f"127.0.0.1:{port}", upstream=self.echo.address, **extra)

    def wait_accepting(self, port: int, nodes: list[Node], timeout: float) -> None:
        """Every node in `nodes` accepts on its host at `port` within `timeout`."""
        for node in nodes:
            wait_until(lambda: accepts(node.address(port)), timeout=timeout,
                       message=f"{node.name} to accept on {node.address(port)}")

    def front_listener(self) -> dict[str, Any]:
        """The listener HAProxy fronts: created on n1 the first time, accepting on every live
        node, and HAProxy seeing every live node up."""
        if self._listener is None:
            self._listener = self.create_listener(self.n1, self.listener_port, name="front")
            self.wait_accepting(self.listener_port, self.live(), timeout=5.0)
            self.wait_haproxy({node.name: "UP" for node in self.live()})
        return self._listener

    def wait_haproxy(self, states: dict[str, str], timeout: float = 5.0) -> None:
        assert self.haproxy is not None
        wait_until(lambda: all(self.haproxy.server_states().get(name) == state for name, state in states.items()),
                   timeout=timeout, message=f"haproxy to see {states}")

    def kill_hard(self, name: str) -> None:
        """SIGKILL to node `name`: it dies without a word to the others."""
        node = self.nodes[name]
        self.killed.add(name)
        os.kill(node.proc.pid, signal.SIGKILL)
        node.proc.wait(timeout=STOP_TIMEOUT_S)

    def close(self) -> None:
        """Stops everything; fails if a node died that was not killed on purpose, or did not
        stop cleanly on SIGTERM."""
        problems = []
        if self.haproxy is not None:
            self.haproxy.close()
        for name, node in self.nodes.items():
            if name not in self.killed and node.url and not node.alive():
                problems.append(f"node {name} died during the tests with exit code {node.proc.returncode}\n"
                                f"{node.output()}")
            was_running = node.alive()
            rc = node.stop()
            if was_running and rc not in OK_STOP_CODES:
                problems.append(f"node {name} exited with {rc} on SIGTERM\n{node.output()}")
        self.echo.close()
        shutil.rmtree(self.root, ignore_errors=True)
        assert not problems, "\n\n".join(problems)


# -- fixtures (import them into a test module to use them) ---------------------------------


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    """One PostgreSQL for the module."""
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module")
def cluster(postgres: Postgres) -> Iterator[Cluster]:
    """Three nodes and HAProxy on the module's PostgreSQL, shared by the module's tests."""
    running = Cluster(postgres)
    yield running
    running.close()
