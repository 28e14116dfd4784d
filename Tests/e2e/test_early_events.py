"""What a client does while the gateway is still dialing its upstream is not lost.

The slow dial is real: the upstream listens with backlog 0 and a filler connection
occupies its one accept slot, so the kernel drops the gateway's SYN. Once the test frees
the slot, the gateway's SYN retransmit (about a second after the first) completes the
dial. Everything the client did before that must reach the server in order, and a
session whose client went away must end and give back its descriptors.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from typing import Callable

import pytest

from conftest import (IO_TIMEOUT_S, StreamServer, connect, echo_handler, split_address, wait_until)

# SYN retransmits come at 1 s, 3 s, 7 s; the dial must outlive a few of them.
CONNECT_TIMEOUT_MS = 20000
DEADLINE_S = 30.0


def relay_fds(gateway) -> list[str]:
    """What the gateway's descriptors point at, leaving out admin API connections (the
    test's own requests open and close those as they please)."""
    admin_port = int(gateway.url.rsplit(":", 1)[1])
    admin_inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == admin_port:
                    admin_inodes.add(fields[9])
    found = []
    for fd in os.listdir(f"/proc/{gateway.proc.pid}/fd"):
        try:
            target = os.readlink(f"/proc/{gateway.proc.pid}/fd/{fd}")
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:[") and target[8:-1] in admin_inodes:
            continue
        found.append(target)
    return sorted(found)


def assert_fds_return_to(gateway, baseline: list[str]) -> None:
    """Polls until the gateway holds no more descriptors than `baseline` (admin aside)."""
    deadline = time.monotonic() + DEADLINE_S
    while len(now := relay_fds(gateway)) > len(baseline):
        assert time.monotonic() < deadline, \
            f"the gateway holds {len(now)} descriptors, {len(baseline)} before: {now}, before: {baseline}"
        time.sleep(0.1)


def wake_and_close(sock: socket.socket) -> None:
    """Closes a listening socket; the shutdown first wakes a thread blocked in accept()."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


class SlowUpstream:
    """An echo upstream that accepts nothing until `open()` (see the module docstring).

    Records, per accepted connection, the bytes it read and how its input ended.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        # Takes the only accept slot of a backlog-0 listener: later SYNs are dropped.
        self.filler = socket.create_connection(split_address(self.address), timeout=IO_TIMEOUT_S)
        self.lock = threading.Lock()
        self.received: list[bytearray] = []
        self.ended: dict[int, str] = {}  # connection index -> "eof", "reset" or "timeout"
        self.conns: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.closed = False

    def open(self) -> None:
        """Frees the accept slot and serves every connection from now on."""
        thread = threading.Thread(target=self._accept, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        filler_peer, _ = self.sock.accept()
        filler_peer.close()
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(IO_TIMEOUT_S)
            with self.lock:
                index = len(self.received)
                self.received.append(bytearray())
                self.conns.append(conn)
            thread = threading.Thread(target=self._echo, args=(conn, index), daemon=True)
            with self.lock:
                self.threads.append(thread)
            thread.start()

    def _echo(self, conn: socket.socket, index: int) -> None:
        """Echoes until EOF; `ended` records how the input ended. A failure after the EOF
        does not count: a client that closed entirely answers the echo with a reset (its
        kernel's, passed on by the gateway as it would reach a server directly), which can
        beat this thread's shutdown."""
        ending = "eof"
        try:
            while data := conn.recv(65536):
                with self.lock:
                    self.received[index] += data
                conn.sendall(data)
        except TimeoutError:
            ending = "timeout"
        except OSError:
            ending = "reset"
        else:
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        with self.lock:
            self.ended[index] = ending

    def connections(self) -> list[tuple[bytes, str | None]]:
        """Per connection: the bytes read so far, and how its input ended (None: not yet)."""
        with self.lock:
            return [(bytes(data), self.ended.get(i)) for i, data in enumerate(self.received)]

    def close(self) -> None:
        self.closed = True
        wake_and_close(self.sock)
        for thread in list(self.threads):
            thread.join(timeout=IO_TIMEOUT_S)
        self.filler.close()
        for conn in self.conns:
            conn.close()


@pytest.fixture
def slow_upstream() -> SlowUpstream:
    upstream = SlowUpstream()
    yield upstream
    upstream.close()


def read_to_eof(sock: socket.socket) -> bytes:
    data = bytearray()
    while chunk := sock.recv(65536):
        data += chunk
    return bytes(data)


def half_close(payload: bytes) -> Callable[[socket.socket], None]:
    """Sends payload and half-closes; the client stays to read the echo."""
    def act(sock: socket.socket) -> None:
        if payload:
            sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
    return act


def close(payload: bytes) -> Callable[[socket.socket], None]:
    """Sends payload and closes the socket entirely."""
    def act(sock: socket.socket) -> None:
        if payload:
            sock.sendall(payload)
        sock.close()
    return act


def reset(sock: socket.socket) -> None:
    """Closes with SO_LINGER 0: the gateway gets a reset."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


# (client action, bytes the server must get, whether the client stays to read the echo, how
# the server's connection must end: a client's reset is passed on as a reset)
CASES = {
    "half_close_with_data": (half_close(b"hi\n"), b"hi\n", True, "eof"),
    "half_close_no_data": (half_close(b""), b"", True, "eof"),
    "full_close_no_data": (close(b""), b"", False, "eof"),
    "data_then_close": (close(b"ping"), b"ping", False, "eof"),
    "reset": (reset, b"", False, "reset"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_client_events_during_a_slow_dial_are_kept(gateway, slow_upstream: SlowUpstream, case: str) -> None:
    act, expected, stays, ending = CASES[case]
    listener = gateway.create_listener(listen="127.0.0.1:0", upstream=slow_upstream.address,
                                       connect_timeout_ms=CONNECT_TIMEOUT_MS)
    baseline = relay_fds(gateway)
    client = connect(listener["listen"])
    try:
        local = "%s:%d" % client.getsockname()[:2]
        session = wait_until(lambda: next((s for s in gateway.sessions() if s["client"] == local), None),
                             message="the session to be listed")
        assert session["state"] == "connecting", session
        act(client)
        slow_upstream.open()
        if stays:
            assert read_to_eof(client) == expected, "the client must get the echo, then EOF"
        wait_until(lambda: slow_upstream.connections() and slow_upstream.connections()[0][1],
                   timeout=DEADLINE_S, message="the server connection to end")
        assert slow_upstream.connections() == [(expected, ending)]
        wait_until(lambda: all(s["id"] != session["id"] for s in gateway.sessions()),
                   timeout=DEADLINE_S, message=f"session {session['id']} to leave the listing")
    finally:
        client.close()
    assert_fds_return_to(gateway, baseline)


BURST = 2000


def wait_for_sessions_to_end(gateway, upstream: StreamServer, stall_s: float = 20.0) -> None:
    """Waits while the live sessions keep ending; fails once none has ended for `stall_s`.

    2,000 sessions end through a thread-per-connection Python upstream: on a loaded
    machine that took 29 s, so a fixed deadline failed a run whose sessions were all
    ending. A session that never ends stops the count from falling, which is what this
    catches."""
    left = len(gateway.sessions())
    stalled_since = time.monotonic()
    while left:
        time.sleep(0.2)
        now = len(gateway.sessions())
        if now < left:
            left, stalled_since = now, time.monotonic()
        accepted, answered = upstream.counts()
        assert time.monotonic() - stalled_since < stall_s, \
            (f"{left} sessions have not ended, none of them for {stall_s:.0f} s (the upstream accepted "
             f"{accepted} connections and answered EOF on {answered}): {gateway.sessions()[:5]}")


def test_a_burst_of_connect_and_close_clients_leaves_nothing_behind(gateway) -> None:
    # The upstream lives in the test process, so the gateway's descriptors are its own.
    upstream = StreamServer(echo_handler)
    try:
        listen = gateway.create_listener(listen="127.0.0.1:0", upstream=upstream.address)["listen"]
        baseline = relay_fds(gateway)
        for _ in range(BURST):
            # Closed as soon as connected: the FIN often comes before the gateway has dialed.
            connect(listen).close()
        wait_for_sessions_to_end(gateway, upstream)
        assert_fds_return_to(gateway, baseline)
    finally:
        upstream.close()


def syn_sent_to(port: int) -> bool:
    """Whether some socket on this host is dialing 127.0.0.1:port (state SYN_SENT)."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if int(fields[2].split(":")[1], 16) == port and fields[3] == "02":
                return True
    return False


class HalfDeadMediator:
    """A tcp mediator whose first connection ends its output at once (and reads on), and
    whose later ones echo. With backlog 0 one of the gateway's two legs waits in the
    accept queue and the other's SYN is dropped; only then is the first accepted and
    half-closed, so its EOF reaches the gateway a SYN retransmit (about a second) before
    the second leg connects and the hop is wired in."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(0)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        first = True
        port = self.sock.getsockname()[1]
        wait_until(lambda: syn_sent_to(port), timeout=DEADLINE_S, message="a leg's SYN to be dropped")
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.settimeout(DEADLINE_S)
            self.conns.append(conn)
            if first:
                conn.shutdown(socket.SHUT_WR)
            thread = threading.Thread(target=self._serve, args=(conn, not first), daemon=True)
            self.threads.append(thread)
            thread.start()
            first = False

    @staticmethod
    def _serve(conn: socket.socket, echo: bool) -> None:
        try:
            while data := conn.recv(65536):
                if echo:
                    conn.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        wake_and_close(self.sock)
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the gateway has closed it already
        for thread in self.threads:
            thread.join(timeout=DEADLINE_S)
        for conn in self.conns:
            conn.close()


def test_a_mediator_eof_before_the_hop_is_wired_in_fails_the_hop(demo_gateway) -> None:
    listen = demo_gateway.listeners()[0]["listen"]
    mediator = HalfDeadMediator()
    try:
        with connect(listen) as client:
            client.sendall(b"one\n")
            assert client.recv(4) == b"one\n"
            local = "%s:%d" % client.getsockname()[:2]
            session = next(s for s in demo_gateway.sessions() if s["client"] == local)
            response = demo_gateway.post(f"/api/v1/sessions/{session['id']}/mediators",
                                         json={"address": mediator.address, "direction": "both",
                                               "on_failure": "bypass"})
            assert response.status_code == 201, response.text
            wait_until(lambda: demo_gateway.get(f"/api/v1/sessions/{session['id']}").json()["mediators"] == [],
                       timeout=DEADLINE_S, message="the hop whose mediator ended its output to be dropped")
            client.sendall(b"two\n")
            assert client.recv(4) == b"two\n"
    finally:
        mediator.close()
