"""SIGTERM around a handoff (issue 15), with real processes.

- To the running gateway while a successor takes over: the handoff finishes first; if the
  successor acknowledges, the old process exits 0 and the connections are the successor's;
  if it fails, the old process resumes and then drains as on any SIGTERM.
- To the successor before it acknowledges: it abandons the take-over (the running gateway
  keeps everything, the state file untouched); after it took over: it drains the adopted
  sessions for the grace period like its own.

The other end of the handoff is played by the test where the moment of the signal must be
certain (it holds the exchange at that step); everything else is the real gateway.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import struct

from conftest import connect, recv_exactly, roundtrip, split_address, wait_until
from test_handoff import (DEADLINE_S, HEADER, FakePredecessor, FakeSuccessor, Fleet, _frame, socket_path, take_over,
                          upstream)  # noqa: F401 (fixture)

FINISHING = "signal during a handoff: finishing it first"
FAILED = "handoff failed before the successor acknowledged; serving every session on"


class AcknowledgingSuccessor:
    """A successor played by the test: says hello and takes every frame up to `end`, keeping
    the descriptors (each session's client socket first); `acknowledge` then acks and waits
    for `released`."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(DEADLINE_S)
        self.sock.connect(path)
        self.sock.sendall(_frame({"type": "hello", "fds": 0, "version": 3, "pid": os.getpid()}))
        self.fds: list[int] = []
        self.sessions: list[list[int]] = []
        while True:
            header, fds = self._frame()
            self.fds.extend(fds)
            assert header["type"] in ("admin", "mediator", "listener", "session", "end"), header
            if header["type"] == "session":
                self.sessions.append(fds)
            if header["type"] == "end":
                self.end = header
                return

    def _frame(self) -> tuple[dict, list[int]]:
        fds: list[int] = []

        def take(count: int) -> bytes:
            data = bytearray()
            while len(data) < count:
                chunk, received, _, _ = socket.recv_fds(self.sock, count - len(data), 16)
                fds.extend(received)
                assert chunk, "the running gateway closed the handoff connection"
                data += chunk
            return bytes(data)

        header_length, payload_length = struct.unpack(">II", take(8))
        header = json.loads(take(header_length))
        take(payload_length)
        return header, fds

    def acknowledge(self) -> dict:
        self.sock.sendall(_frame({"type": "ack", "fds": 0, "sessions": self.end["sessions"],
                                  "listeners": self.end["listeners"]}))
        header, _ = self._frame()
        return header

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []
        self.sock.close()


@contextlib.contextmanager
def one_session(start_gateway, upstream, path: str, index: int):
    """A gateway accepting successors at `path`, its listener, and one client whose session
    is open and listed."""
    old = start_gateway("--handoff-socket", path, "--event-loops", "2")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
    with connect(listener["listen"]) as client:
        assert roundtrip(client, HEADER.pack(index) + b"before") == HEADER.pack(index) + b"before"
        wait_until(lambda: len(old.sessions()) == 1, message="the session listed")
        yield old, listener, client


def assert_refused(address: str) -> None:
    """Nothing accepts at `address` (a listener closed by a drain)."""
    probe = socket.socket()
    try:
        probe.settimeout(DEADLINE_S)
        assert probe.connect_ex(split_address(address)) != 0
    finally:
        probe.close()


def test_sigterm_to_the_old_process_mid_handoff_lets_the_handoff_finish(start_gateway, upstream, tmp_path):
    path = socket_path(tmp_path, "h.sock")
    with one_session(start_gateway, upstream, path, 1) as (old, _, client):
        successor = AcknowledgingSuccessor(path)
        try:
            assert len(successor.sessions) == 1
            os.kill(old.proc.pid, signal.SIGTERM)
            wait_until(lambda: FINISHING in old.stderr_text(), timeout=DEADLINE_S, message="the signal noticed")
            # The signal does not stop the handoff: acknowledged, everything is released.
            assert successor.acknowledge()["type"] == "released"
            assert old.proc.wait(timeout=DEADLINE_S) == 0, old.output()
            old.url = ""
            assert "handoff: the successor acknowledged; exiting" in old.stderr_text()
            assert "stopping: no new clients accepted" not in old.stderr_text()
            # The client's connection lives on, in the successor's hands alone.
            os.write(successor.sessions[0][0], b"from the successor")
            assert recv_exactly(client, 18) == b"from the successor"
        finally:
            successor.close()


def test_sigterm_to_the_old_process_mid_handoff_that_fails_drains_as_usual(start_gateway, upstream, tmp_path):
    path = socket_path(tmp_path, "h.sock")
    with one_session(start_gateway, upstream, path, 2) as (old, listener, client):
        successor = FakeSuccessor(path, sessions=1)
        try:
            os.kill(old.proc.pid, signal.SIGTERM)
            wait_until(lambda: FINISHING in old.stderr_text(), timeout=DEADLINE_S, message="the signal noticed")
        finally:
            # Killed before it acknowledged: its end of the connection closes.
            successor.close()
        wait_until(lambda: FAILED in old.stderr_text(), timeout=DEADLINE_S, message="the handoff to fail")
        wait_until(lambda: "stopping: no new clients accepted" in old.stderr_text(), timeout=DEADLINE_S,
                   message="the drain to begin")
        # Draining: the session goes on, new clients are refused.
        assert roundtrip(client, b"draining") == b"draining"
        assert_refused(listener["listen"])
        old.assert_alive()
        client.shutdown(socket.SHUT_WR)
        assert client.recv(1) == b""
    assert old.proc.wait(timeout=DEADLINE_S) == 0, old.output()
    old.url = ""
    assert "all sessions ended" in old.stderr_text()


def test_sigterm_to_the_new_process_before_it_acknowledges_leaves_everything_to_the_old_one(
        start_gateway, upstream, tmp_path):
    path = socket_path(tmp_path, "h.sock")
    state = tmp_path / "state.json"
    fake = FakePredecessor(path, upstream.address, os.getpid())
    try:
        successor = start_gateway("--take-over", path, "--event-loops", "2", "--state-file", str(state), wait=False)
        fake.greet()
        successor.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "signal while taking over" in successor.stderr_text(), timeout=DEADLINE_S,
                   message="the successor to notice the signal")
        with connect(fake.listen) as client:
            client.sendall(HEADER.pack(3) + b"queued")
            answer = fake.send_everything()
            assert answer["type"] == "abort", answer
            assert "stopped by signal 15 before acknowledging" in answer["reason"], answer
            assert successor.proc.wait(timeout=DEADLINE_S) == 2, successor.output()
            # The listener's queue was never touched: the client is the predecessor's.
            fake.serve_queued(client, HEADER.pack(3) + b"queued")
        assert not state.exists()
    finally:
        fake.close()


def test_sigterm_to_the_new_process_between_its_acknowledgement_and_the_release_completes_then_drains(
        start_gateway, upstream, tmp_path):
    """Acknowledged, the sessions are the successor's whatever happens: a signal then lets
    the take-over complete (the predecessor has let go) and drains afterwards."""
    path = socket_path(tmp_path, "h.sock")
    fake = FakePredecessor(path, upstream.address, os.getpid())
    try:
        successor = start_gateway("--take-over", path, "--event-loops", "2", wait=False)
        assert fake.hand_over()["type"] == "ack"
        successor.proc.send_signal(signal.SIGTERM)
        wait_until(lambda: "signal while taking over" in successor.stderr_text(), timeout=DEADLINE_S,
                   message="the successor to notice the signal")
        fake.conn.sendall(_frame({"type": "released", "fds": 0}))
        assert successor.proc.wait(timeout=DEADLINE_S) == 0, successor.output()
        output = successor.stderr_text()
        took_over = output.index("took over from the previous gateway process")
        assert output.index("stopping: no new clients accepted") > took_over, output[-4000:]
    finally:
        fake.close()


def test_sigterm_to_the_new_process_after_taking_over_drains_the_adopted_sessions(start_gateway, upstream, tmp_path):
    path = socket_path(tmp_path, "h.sock")
    old = start_gateway("--handoff-socket", path, "--event-loops", "2")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
    fleet = Fleet(listener["listen"], 10)
    try:
        fleet.wait_progress(64 * 1024)
        new = take_over(start_gateway, old, path)
        fleet.wait_progress(64 * 1024)
        os.kill(new.proc.pid, signal.SIGTERM)
        wait_until(lambda: "stopping: no new clients accepted" in new.stderr_text(), timeout=DEADLINE_S,
                   message="the drain to begin")
        # The adopted sessions stream on through the grace period; no new client gets in.
        fleet.wait_progress(128 * 1024)
        assert_refused(listener["listen"])
        fleet.finish(upstream)
        assert new.proc.wait(timeout=DEADLINE_S) == 0, new.output()
        new.url = ""
        assert "all sessions ended" in new.stderr_text()
    finally:
        fleet.close()
