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

from conftest import StreamServer, connect, recv_exactly, wait_until
from test_handoff import DEADLINE_S, _echo, socket_path, take_over

TAG = struct.Struct(">II")


def closing_echo() -> StreamServer:
    """An echo upstream (or mediator) that answers EOF with EOF and closes each connection
    as soon as it is done."""
    return StreamServer(_echo, close_when_done=True)


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
    upstream = closing_echo()
    mediator = closing_echo()
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
