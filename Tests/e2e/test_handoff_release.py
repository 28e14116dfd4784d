"""The window between a successor's `ack` and the predecessor's `released` (issue 15).

Nobody may lose the sessions there: a successor that dies after its ack leaves them with the
old process, which serves on; a predecessor stopped after the ack (SIGSTOP), for however long,
is waited for by the successor, which takes over once it is released. Real processes, real
sockets, every byte checked.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct

from conftest import connect, recv_exactly, roundtrip, wait_until
from test_handoff import (DEADLINE_S, HEADER, FakePredecessor, Fleet, _frame, socket_path, take_over,  # noqa: F401
                          upstream)

RESUMED = "handoff: the successor went away after acknowledging; serving every session on"


def _take_everything(sock: socket.socket) -> tuple[int, int]:
    """Plays a successor up to its ack: takes every frame up to `end`, closing the
    descriptors; returns the announced session and listener counts."""
    def take(count: int) -> bytes:
        data = bytearray()
        while len(data) < count:
            chunk, fds, _, _ = socket.recv_fds(sock, count - len(data), 16)
            for fd in fds:
                os.close(fd)
            assert chunk, "the running gateway closed the handoff connection"
            data += chunk
        return bytes(data)
    while True:
        header_length, payload_length = struct.unpack(">II", take(8))
        header = json.loads(take(header_length))
        take(payload_length)
        assert header["type"] != "refused", header
        if header["type"] == "end":
            return header["sessions"], header["listeners"]


def _serves_on(old, fleet: Fleet, listener: dict, ids: dict, path: str, start_gateway, upstream) -> None:
    """The old process kept everything: the same sessions stream on, new clients and admin
    requests are served, and a later successor takes it all, every byte intact."""
    fleet.wait_progress(256 * 1024)
    old.assert_alive()
    assert {s["client"]: s["id"] for s in old.sessions()} == ids
    with connect(listener["listen"]) as late:
        assert roundtrip(late, HEADER.pack(99) + b"late") == HEADER.pack(99) + b"late"
    new = take_over(start_gateway, old, path)
    fleet.wait_progress(64 * 1024)
    assert {s["client"]: s["id"] for s in new.sessions()} == ids
    fleet.finish(upstream)


def test_successor_gone_right_after_its_ack_leaves_everything_served(start_gateway, upstream, tmp_path):
    """A successor that acknowledges and is gone at once (killed, out of memory) never
    touched a socket: the old process sees it gone before letting go, and serves on."""
    path = socket_path(tmp_path, "h.sock")
    old = start_gateway("--handoff-socket", path, "--event-loops", "2")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
    fleet = Fleet(listener["listen"], 10)
    try:
        fleet.wait_progress(64 * 1024)
        ids = {s["client"]: s["id"] for s in old.sessions()}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as successor:
            successor.settimeout(DEADLINE_S)
            successor.connect(path)
            successor.sendall(_frame({"type": "hello", "fds": 0, "version": 3, "pid": os.getpid()}))
            sessions, listeners = _take_everything(successor)
            assert sessions == len(ids)
            successor.sendall(_frame({"type": "ack", "fds": 0, "sessions": sessions, "listeners": listeners}))
        wait_until(lambda: RESUMED in old.stderr_text() or not old.alive(), timeout=DEADLINE_S,
                   message="the old gateway to notice the successor is gone")
        assert old.alive(), old.output()
        assert "it closed the handoff connection" in old.stderr_text()
        _serves_on(old, fleet, listener, ids, path, start_gateway, upstream)
    finally:
        fleet.close()


def test_successor_killed_between_ack_and_released_leaves_everything_served(start_gateway, upstream, tmp_path):
    """A real successor SIGKILLed after its ack, while the old process still finishes an
    admin request (half sent, so the old process waits for it): the old process sees it gone
    and serves on, the admin API included."""
    path = socket_path(tmp_path, "h.sock")
    old = start_gateway("--handoff-socket", path, "--event-loops", "2")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
    fleet = Fleet(listener["listen"], 10)
    successor = None
    try:
        fleet.wait_progress(64 * 1024)
        ids = {s["client"]: s["id"] for s in old.sessions()}
        with socket.create_connection((old.host, old.port), timeout=DEADLINE_S) as half:
            half.sendall(b"GET /api/v1/listeners HTTP/1.1\r\nHost: x\r\n")
            # Once the old process has accepted it, the request is its to finish.
            wait_until(lambda: _accepted_by(old.proc.pid, half), timeout=DEADLINE_S,
                       message="the half request to be accepted")
            successor = start_gateway("--take-over", path, "--event-loops", "2", wait=False)
            wait_until(lambda: "handoff: the successor acknowledged; finishing admin requests" in old.stderr_text(),
                       timeout=DEADLINE_S, interval=0.005, message="the old gateway to receive the ack")
            successor.proc.send_signal(signal.SIGKILL)
            successor.proc.wait(timeout=DEADLINE_S)
            successor.url = ""
            assert "took over" not in successor.stderr_text()
            half.sendall(b"\r\n")
            assert recv_exactly(half, 12) == b"HTTP/1.1 200"
        wait_until(lambda: RESUMED in old.stderr_text() or not old.alive(), timeout=DEADLINE_S,
                   message="the old gateway to notice the successor is gone")
        assert old.alive(), old.output()
        assert old.get("/api/v1/listeners").ok
        _serves_on(old, fleet, listener, ids, path, start_gateway, upstream)
    finally:
        fleet.close()


def _accepted_by(pid: int, conn: socket.socket) -> bool:
    """Whether process `pid` holds the server end of TCP connection `conn` (it accepted it):
    the kernel's socket table names the inode, the process's descriptors the sockets."""
    local_port = conn.getsockname()[1]
    remote_port = conn.getpeername()[1]
    inodes = set()
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{remote_port:04X}") and fields[2].endswith(f":{local_port:04X}"):
                inodes.add(fields[9])
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            held.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue
    return any(f"socket:[{inode}]" in held for inode in inodes if inode != "0")


def test_successor_waits_for_a_predecessor_stopped_past_a_minute(start_gateway, upstream, tmp_path):
    """A predecessor stopped after the ack (SIGSTOP) lets go whenever it runs again: the
    successor waits for as long as the connection is open (saying so every minute), so
    that the sessions are never left to nobody, and serves once released. Lasts a minute:
    a successor that gave up earlier (it used to, after 60 s) is the bug this catches."""
    path = socket_path(tmp_path, "h.sock")
    fake = FakePredecessor(path, upstream.address, os.getpid())
    try:
        successor = start_gateway("--take-over", path, "--event-loops", "2", wait=False)
        ack = fake.hand_over()
        assert ack == {"type": "ack", "fds": 0, "sessions": 0, "listeners": 1}, ack
        wait_until(lambda: "still waiting for the predecessor to release" in successor.stderr_text()
                   or not successor.alive(), timeout=90, interval=0.5,
                   message="the successor to wait past a minute")
        assert successor.alive(), successor.output()
        with connect(fake.listen) as client:
            client.sendall(HEADER.pack(5) + b"queued")
            fake.conn.sendall(_frame({"type": "released", "fds": 0}))
            fake.conn.close()
            successor.wait_ready(timeout=DEADLINE_S)
            assert recv_exactly(client, HEADER.size + 6) == HEADER.pack(5) + b"queued"
        assert "the predecessor ended without releasing" not in successor.stderr_text()
        assert [l["listen"] for l in successor.listeners()] == [fake.listen]
    finally:
        fake.close()
