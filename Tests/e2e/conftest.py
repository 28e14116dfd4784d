"""Fixtures that run the real splicegate binary as a subprocess.

Every gateway binds its admin API (and, with --demo, its demo listener) on
127.0.0.1 port 0, is read back from its stdout line
`admin listening on http://HOST:PORT`, and is stopped at teardown. A gateway
that died before teardown, or that crashes on SIGTERM, fails the test.

SPLICEGATE_BIN picks the binary (default .build/debug/splicegate).
"""

from __future__ import annotations

import collections
import contextlib
import os
import pathlib
import queue
import random
import re
import signal
import socket
import subprocess
import threading
import time
from typing import Any, Callable, Iterator

import pytest
import requests

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = ROOT / "openapi" / "openapi.yaml"
BIN = pathlib.Path(os.environ.get("SPLICEGATE_BIN", ROOT / ".build" / "debug" / "splicegate"))

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0
HTTP_TIMEOUT_S = 10.0
ADMIN_LINE = re.compile(r"^admin listening on (http://(\S+):(\d+))\s*$")

# Requests must never go through a proxy: everything here is on loopback.
for _var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
    os.environ.pop(_var, None)
os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"


class GatewayDied(AssertionError):
    """The gateway process exited when it should have been running."""


class Gateway:
    """One running splicegate process and a small HTTP client for its admin API."""

    def __init__(self, args: list[str], log_dir: pathlib.Path, token: str | None,
                 env: dict[str, str] | None, admin_host: str = "127.0.0.1") -> None:
        self.args = [str(BIN), *args]
        self.admin_host = admin_host
        self.token = token
        self.stdout_lines: list[str] = []
        self.stderr_path = log_dir / f"gateway-{id(self)}.stderr"
        self._stderr = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        full_env.pop("SPLICEGATE_ADMIN_TOKEN", None)
        full_env.update(env or {})
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
            env=full_env, cwd=ROOT, start_new_session=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self.url = ""
        self.host = ""
        self.port = 0
        self.session = requests.Session()
        self.session.trust_env = False

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stdout_lines.append(line)
            self._lines.put(line)
        self._lines.put(None)

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> "Gateway":
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"no 'admin listening on' line within {timeout}s from {self.args}\n{self.output()}")
            try:
                line = self._lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if line is None:
                rc = self.proc.wait(timeout=5)
                raise GatewayDied(f"gateway exited with {rc} before listening: {self.args}\n{self.output()}")
            match = ADMIN_LINE.match(line)
            if match:
                self.url, self.host, self.port = match.group(1), match.group(2), int(match.group(3))
                assert self.host == self.admin_host, f"admin bound to {self.host}, tests expect {self.admin_host}"
                assert self.port != 0, f"admin line shows port 0: {line!r}"
                return self

    def stderr_text(self) -> str:
        if not self._stderr.closed:
            self._stderr.flush()
        try:
            return self.stderr_path.read_text("utf-8", "replace")
        except OSError:
            return ""

    def output(self, tail: int = 4000) -> str:
        out = "\n".join(self.stdout_lines)[-tail:]
        err = self.stderr_text()[-tail:]
        return f"--- stdout ---\n{out}\n--- stderr ---\n{err}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def assert_alive(self) -> None:
        if not self.alive():
            raise GatewayDied(f"gateway died with exit code {self.proc.returncode}\n{self.output()}")

    # -- HTTP -------------------------------------------------------------

    def headers(self, auth: bool = True, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers: dict[str, str] = {}
        if auth and self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def request(self, method: str, path: str, *, auth: bool = True,
                headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", HTTP_TIMEOUT_S)
        kwargs.setdefault("allow_redirects", False)
        return self.session.request(method, self.url + path, headers=self.headers(auth, headers), **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def listeners(self) -> list[dict[str, Any]]:
        response = self.get("/api/v1/listeners")
        assert response.status_code == 200, response.text
        return response.json()["listeners"]

    def sessions(self, **params: Any) -> list[dict[str, Any]]:
        """Every session (following next_cursor), optionally filtered."""
        found: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            query = dict(params)
            query.setdefault("limit", 1000)
            if cursor:
                query["cursor"] = cursor
            response = self.get("/api/v1/sessions", params=query)
            assert response.status_code == 200, response.text
            body = response.json()
            found.extend(body["sessions"])
            cursor = body["next_cursor"]
            if not cursor:
                return found
        raise AssertionError("next_cursor never ended")

    def create_listener(self, **body: Any) -> dict[str, Any]:
        response = self.post("/api/v1/listeners", json=body)
        assert response.status_code == 201, f"{response.status_code} {response.text}"
        return response.json()

    # -- lifecycle --------------------------------------------------------

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; returns the exit code."""
        self.session.close()
        terminate(self.proc)
        self._reader.join(timeout=STOP_TIMEOUT_S)
        self._stderr.close()
        return self.proc.returncode


OK_STOP_CODES = {0, -signal.SIGTERM, -signal.SIGKILL}


def terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a process started with start_new_session; SIGKILL to its whole group if it
    has not exited after STOP_TIMEOUT_S."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)


@pytest.fixture
def start_gateway(tmp_path: pathlib.Path) -> Iterator[Callable[..., Gateway]]:
    """Factory: start_gateway(*extra_args, token=None, token_via="file"|"env", demo=False)."""
    if not BIN.exists():
        pytest.fail(f"gateway binary {BIN} not found; build it (swift build) or set SPLICEGATE_BIN")
    started: list[Gateway] = []

    def start(*extra: str, token: str | None = None, token_via: str = "file",
              demo: bool = False, admin: str = "127.0.0.1:0", wait: bool = True,
              env: dict[str, str] | None = None) -> Gateway:
        args = ["--admin", admin, "--log-level", "debug"]
        env = dict(env or {})
        if demo:
            args += ["--demo", "--demo-listen", "127.0.0.1:0"]
        if token is not None:
            if token_via == "file":
                token_file = tmp_path / f"token-{len(started)}"
                token_file.write_text(token + "\n")
                args += ["--admin-token-file", str(token_file)]
            else:
                env["SPLICEGATE_ADMIN_TOKEN"] = token
        gateway = Gateway([*args, *extra], tmp_path, token, env)
        started.append(gateway)
        return gateway.wait_ready() if wait else gateway

    yield start

    problems = []
    for gateway in started:
        if gateway.url and not gateway.alive():
            problems.append(f"gateway {gateway.args} died during the test with exit code "
                            f"{gateway.proc.returncode}\n{gateway.output()}")
            gateway.stop()
            continue
        was_running = gateway.url != ""
        rc = gateway.stop()
        if was_running and rc not in OK_STOP_CODES:
            problems.append(f"gateway {gateway.args} exited with {rc} on SIGTERM\n{gateway.output()}")
    if problems:
        pytest.fail("\n\n".join(problems))


@pytest.fixture
def gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    """A gateway with no listeners and no token."""
    return start_gateway()


@pytest.fixture
def demo_gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    """A gateway started with --demo (echo upstream and a listener on an ephemeral port)."""
    return start_gateway(demo=True)


TOKEN = "e2e-secret-token-0123456789"


@pytest.fixture
def token_gateway(start_gateway: Callable[..., Gateway]) -> Gateway:
    """A gateway whose admin token is set through --admin-token-file."""
    return start_gateway(token=TOKEN)


# -- helpers shared by the test modules --------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05,
               message: str = "condition") -> Any:
    """Polls predicate until it returns something truthy; fails after timeout. It is asked at
    least once, so a timeout of 0 (a shared deadline already reached) still sees a condition
    that holds."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {message} (last: {last!r})")


# Ports that port-0 binds never get: the kernel hands those out from ip_local_port_range,
# so a port picked below it is not also given to another test's server in the meantime.
_PICK_RANGE = (20000, 32000)
_reserved: list[socket.socket] = []


# Ports handed out lately: two picks made before either is bound must differ (also when
# two threads of one test pick at once).
_recent: collections.deque[int] = collections.deque(maxlen=2000)
_picking = threading.Lock()


def free_port() -> int:
    """A port that nothing listens on now on any address, for a test that will listen there.

    Picked outside the ephemeral range (see `_PICK_RANGE`), so a server some other test
    binds to port 0 cannot take it between this call and the test's own bind. Checked on
    the wildcard address: cluster nodes bind the same port on 127.0.0.2-4, where a check of
    127.0.0.1 alone would not see them. Not one of the ports handed out lately.
    """
    with _picking:
        for _ in range(1000):
            port = random.randrange(*_PICK_RANGE)
            if port in _recent:
                continue
            with socket.socket() as sock:
                try:
                    sock.bind(("0.0.0.0", port))
                except OSError:
                    continue
                _recent.append(port)
                return port
    raise AssertionError(f"no free port in {_PICK_RANGE}")


def refused_port() -> int:
    """A loopback port that refuses connections for the rest of the test run.

    It stays bound (never listening, without SO_REUSEADDR), so no other server, even one
    setting SO_REUSEADDR, can listen there while a test counts on the refusal.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    _reserved.append(sock)
    return sock.getsockname()[1]


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def assert_problem(response: requests.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status; returns its body."""
    described = f"{response.request.method} {response.request.url} -> {response.status_code} " \
                f"{response.headers.get('Content-Type')!r} {response.text[:500]!r}"
    assert response.status_code == status, f"expected {status}: {described}"
    media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    assert media == "application/problem+json", f"expected application/problem+json: {described}"
    body = response.json()
    assert isinstance(body, dict), described
    assert isinstance(body.get("type"), str) and body["type"], f"problem without type: {described}"
    assert isinstance(body.get("title"), str) and body["title"], f"problem without title: {described}"
    assert body.get("status") == status, f"problem status member differs: {described}"
    assert isinstance(body.get("detail"), str), f"problem without detail: {described}"
    return body


# -- helpers for the mediation and splitting tests (real sockets) ------------

IO_TIMEOUT_S = 10.0


class StreamServer:
    """A threaded TCP server on 127.0.0.1:0 that runs `handler(conn)` per connection.

    Each connection is recorded in `conns`. `close()` owns the sockets' lifetimes: it shuts
    the listening socket and every connection down (which wakes threads blocked on them),
    joins the accept and handler threads, and only then closes the descriptors, so no
    thread of this server can touch a descriptor number reused by another socket. The
    handlers below cover the tests' needs: echo, a byte-wise transform (a tcp mediator that
    flushes as it goes), and a sink that keeps what it reads (a split recipient).
    """

    JOIN_TIMEOUT_S = 10.0

    def __init__(self, handler: Callable[[socket.socket], None], close_when_done: bool = False) -> None:
        """With `close_when_done`, a connection is closed (and forgotten) as soon as its
        handler returns, so that thousands of short connections do not pile up descriptors."""
        self.handler = handler
        self.close_when_done = close_when_done
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        # The kernel's most (somaxconn, 4096): with a short queue a burst of dials that
        # outruns this Python acceptor overflows it, the gateway's handshakes and FINs are
        # dropped and retried with exponential backoff, and its sessions wait seconds for
        # a server that is merely slow to accept (TcpExtListenOverflows counts them).
        self.sock.listen(socket.SOMAXCONN if socket.SOMAXCONN > 4096 else 4096)
        self.port = self.sock.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.conns: list[socket.socket] = []
        self.finished = 0
        self.closed = False
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                if self.closed:
                    conn.close()
                    return
                self.conns.append(conn)
                thread = threading.Thread(target=self._run, args=(conn,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.handler(conn)
        except OSError:
            pass
        with self._lock:
            self.finished += 1
            # Once `close` has begun, the connection is its to close (it may be shutting it
            # down right now).
            if self.close_when_done and not self.closed:
                self.conns.remove(conn)
                self._threads.remove(threading.current_thread())
                conn.close()

    def counts(self) -> tuple[int, int]:
        """Connections accepted so far, and how many of their handlers have returned."""
        with self._lock:
            return len(self.conns), self.finished

    def close(self) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            conns, threads = list(self.conns), list(self._threads)
        for sock in (self.sock, *conns):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._acceptor.join(self.JOIN_TIMEOUT_S)
        for thread in threads:
            thread.join(self.JOIN_TIMEOUT_S)
        for sock in (self.sock, *conns):
            sock.close()


def transform_handler(transform: Callable[[bytes], bytes]) -> Callable[[socket.socket], None]:
    """A tcp mediator: writes transform(chunk) for every chunk read, answers EOF with EOF."""
    def handle(conn: socket.socket) -> None:
        while data := conn.recv(65536):
            conn.sendall(transform(data))
        conn.shutdown(socket.SHUT_WR)
    return handle


def echo_handler(conn: socket.socket) -> None:
    transform_handler(lambda data: data)(conn)


class Sink:
    """A split recipient: one buffer per accepted connection, filled until EOF."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.streams: list[bytearray] = []
        self.eof: list[bool] = []
        self.server = StreamServer(self._handle)
        self.address = self.server.address

    def _handle(self, conn: socket.socket) -> None:
        with self.lock:
            index = len(self.streams)
            self.streams.append(bytearray())
            self.eof.append(False)
        while data := conn.recv(65536):
            with self.lock:
                self.streams[index] += data
        with self.lock:
            self.eof[index] = True

    def snapshot(self) -> list[bytes]:
        with self.lock:
            return [bytes(stream) for stream in self.streams]

    def close(self) -> None:
        self.server.close()


def connect(address: str, timeout: float = IO_TIMEOUT_S) -> socket.socket:
    """A client socket connected to `host:port`, with a read timeout."""
    sock = socket.create_connection(split_address(address), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def recv_exactly(sock: socket.socket, count: int) -> bytes:
    """Reads exactly `count` bytes (the socket's timeout bounds each read)."""
    data = bytearray()
    while len(data) < count:
        chunk = sock.recv(min(65536, count - len(data)))
        assert chunk, f"EOF after {len(data)} of {count} bytes: {bytes(data[-80:])!r}"
        data += chunk
    return bytes(data)


def roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    """Sends payload and reads back as many bytes (an echo upstream's answer)."""
    sock.sendall(payload)
    return recv_exactly(sock, len(payload))


def session_of(gateway: Gateway, sock: socket.socket, timeout: float = 10.0) -> dict[str, Any]:
    """The session whose client is this socket (matched by the socket's local address)."""
    host, port = sock.getsockname()[:2]
    client = f"{host}:{port}"
    return wait_until(lambda: next((s for s in gateway.sessions() if s["client"] == client), None),
                      timeout=timeout, message=f"a session for client {client}")


@contextlib.contextmanager
def echoed_sessions(gateway: Gateway, count: int, greeting: bytes = b"hello\n") -> Iterator[tuple[list[socket.socket], list[str]]]:
    """`count` clients of the gateway's first listener (an echo upstream), each with `greeting`
    echoed back; yields their sockets and session ids, in the same order, and closes them."""
    listen = gateway.listeners()[0]["listen"]
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(connect(listen))
            assert roundtrip(socks[-1], greeting) == greeting
        yield socks, [session_of(gateway, sock)["id"] for sock in socks]
    finally:
        for sock in socks:
            sock.close()
