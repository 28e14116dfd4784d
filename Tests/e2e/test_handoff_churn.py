"""Handoffs under churn (issue 15): clients connect, talk and close all the time, so at any
moment some sessions are dialing their server and some are passing an EOF on. A handoff
pauses the listeners (new clients wait in the kernel's backlog, which moves with the
listening socket), lets every session in flight settle, freezes each as soon as it has,
and succeeds at the first attempt; no client is refused or reset, no byte is lost.

Everything is real: two gateway processes, client threads opening and closing connections
as fast as they can, an echo upstream.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
import time

import pytest

from conftest import connect, recv_exactly, wait_until
from test_handoff import DEADLINE_S, socket_path, take_over

TAG = struct.Struct(">II")


class ClosingEcho:
    """An echo upstream that shuts its side once the client has (each connection on a
    thread of its own, closed as soon as it is done, so that thousands of connections do
    not pile up descriptors)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.address = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.live: set[socket.socket] = set()
        self.closed = False
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                if self.closed:
                    conn.close()
                    return
                self.live.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(DEADLINE_S)
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        finally:
            with self.lock:
                self.live.discard(conn)
                conn.close()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            for conn in self.live:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        # Wakes the blocked accept; the descriptor is closed once the acceptor has ended.
        self.sock.shutdown(socket.SHUT_RDWR)
        self.acceptor.join(timeout=DEADLINE_S)
        self.sock.close()


class Churn:
    """`threads` clients each opening a connection, sending a tagged pseudo-random pattern,
    checking the echo byte for byte, half-closing and waiting for the gateway's EOF, then
    starting over, until stopped. Any refusal, reset, short or wrong echo is an error."""

    def __init__(self, address: str, threads: int) -> None:
        self.address = address
        self.lock = threading.Lock()
        self.errors: list[str] = []
        self.completed = 0
        self.stopping = threading.Event()
        self.workers = [threading.Thread(target=self._run, args=(index,), daemon=True) for index in range(threads)]
        for worker in self.workers:
            worker.start()

    def _run(self, worker: int) -> None:
        rng = random.Random(worker)
        sequence = 0
        while not self.stopping.is_set():
            sequence += 1
            pattern = TAG.pack(worker, sequence) + rng.randbytes(rng.randrange(1, 4096))
            try:
                with connect(self.address, timeout=DEADLINE_S) as client:
                    client.sendall(pattern)
                    echoed = recv_exactly(client, len(pattern))
                    client.shutdown(socket.SHUT_WR)
                    tail = client.recv(1)
            except (OSError, AssertionError) as error:
                self._fail(f"worker {worker} connection {sequence}: {type(error).__name__}: {error}")
                return
            if echoed != pattern or tail != b"":
                self._fail(f"worker {worker} connection {sequence}: echo differs or no EOF ({tail!r})")
                return
            with self.lock:
                self.completed += 1

    def _fail(self, why: str) -> None:
        with self.lock:
            self.errors.append(why)

    def count(self) -> int:
        with self.lock:
            return self.completed

    def stop(self) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.join(timeout=DEADLINE_S)


@pytest.mark.parametrize("template", [False, True], ids=["plain", "mediator-template"])
def test_handoff_under_churn_succeeds_at_the_first_attempt(start_gateway, tmp_path, template):
    """With `template`, every session first splices the listener's mediator (a TCP echo, in
    both directions) before it reads: sessions are also caught applying templates."""
    upstream = ClosingEcho()
    mediator = ClosingEcho()
    path = socket_path(tmp_path, "h.sock")
    old = start_gateway("--handoff-socket", path, "--event-loops", "2")
    spec = {"listen": "127.0.0.1:0", "upstream": upstream.address}
    if template:
        registered = old.post("/api/v1/mediators", json={"name": "relay", "address": mediator.address})
        assert registered.status_code == 201, registered.text
        spec["mediators"] = [{"mediator": "relay", "direction": "both"}]
    listener = old.create_listener(**spec)
    churn = Churn(listener["listen"], threads=6)
    started = time.monotonic()
    try:
        wait_until(lambda: churn.count() >= 300 or churn.errors, timeout=DEADLINE_S,
                   message="the churn to get going")
        assert not churn.errors, churn.errors[:5]
        before = churn.count()
        new = take_over(start_gateway, old, path)
        during = churn.count() - before
        after = churn.count()
        wait_until(lambda: churn.count() >= after + 300 or churn.errors, timeout=DEADLINE_S,
                   message="the churn to go on through the new process")
        churn.stop()
        assert not churn.errors, churn.errors[:5]
        assert "handoff refused" not in old.stderr_text(), old.output()
        rate = churn.count() / (time.monotonic() - started)
        print(f"{before} connections before the handoff, {during} while it ran, {churn.count() - after} after "
              f"({rate:.0f} per second)")
        # Every connection completed: none is left open in the new process.
        wait_until(lambda: new.sessions() == [], timeout=DEADLINE_S, message="no session left")
    finally:
        churn.stop()
        upstream.close()
        mediator.close()
