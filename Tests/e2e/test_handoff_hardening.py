"""Issue 15 handoff, hardened after an attack (branch h15-attack): what the successor
continues (Prometheus counters, the admin token), what refuses a handoff before anything
freezes (a session too large for one frame), and what a handoff does not wait for (an admin
client that sent half a request)."""

from __future__ import annotations

import os
import re
import socket
import threading

from conftest import StreamServer, connect, roundtrip, wait_until
from test_early_events import relay_fds
from test_handoff import DEADLINE_S, HEADER, socket_path, take_over, upstream  # noqa: F401 (fixture)


def _metric(gateway, name: str, listener: str) -> float:
    """The value of `name` for `listener` in `/metrics` (0 when the series is absent)."""
    text = gateway.get("/metrics").text
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf'{name}\{{([^}}]*)\}} (\S+)$', line)
        if match and f'listener="{listener}"' in match.group(1):
            total += float(match.group(2))
    return total


def test_prometheus_session_counters_continue_after_handoff(start_gateway, upstream, tmp_path):
    path = socket_path(tmp_path, "h.sock")
    old = start_gateway("--handoff-socket", path, "--event-loops", "2")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
    # A listener whose upstream refuses: each client is one failed dial.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        refusing = f"127.0.0.1:{probe.getsockname()[1]}"
    dead = old.create_listener(listen="127.0.0.1:0", upstream=refusing)
    clients = [connect(listener["listen"]) for _ in range(3)]
    try:
        for index, client in enumerate(clients):
            assert roundtrip(client, HEADER.pack(index) + b"x") == HEADER.pack(index) + b"x"
        for _ in range(2):
            with connect(dead["listen"]) as client:
                client.settimeout(DEADLINE_S)
                assert client.recv(1) == b""
        wait_until(lambda: _metric(old, "splicegate_upstream_connect_failures_total", dead["id"]) == 2,
                   timeout=DEADLINE_S, message="two failed dials counted")
        assert _metric(old, "splicegate_sessions_opened_total", listener["id"]) == 3

        new = take_over(start_gateway, old, path)
        # Counters go on from the predecessor's figures, as `sessions.total` does.
        assert _metric(new, "splicegate_sessions_opened_total", listener["id"]) == 3
        assert _metric(new, "splicegate_upstream_connect_failures_total", dead["id"]) == 2
        with connect(listener["listen"]) as extra:
            assert roundtrip(extra, HEADER.pack(9) + b"y") == HEADER.pack(9) + b"y"
        assert _metric(new, "splicegate_sessions_opened_total", listener["id"]) == 4
        moved = next(l for l in new.listeners() if l["id"] == listener["id"])
        assert moved["sessions"]["total"] == 4
    finally:
        for client in clients:
            client.close()


def test_successor_without_the_admin_token_is_refused(start_gateway, upstream, tmp_path):
    """The admin socket moves, the token does not: a successor started without it would
    serve the admin API to anyone. It refuses before its ack, and the predecessor serves on."""
    path = socket_path(tmp_path, "h.sock")
    old = start_gateway("--handoff-socket", path, "--event-loops", "2", token="s3cret-token-value")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
    with connect(listener["listen"]) as client:
        assert roundtrip(client, HEADER.pack(1) + b"a") == HEADER.pack(1) + b"a"
        successor = start_gateway("--take-over", path, "--event-loops", "2", wait=False)
        assert successor.proc.wait(timeout=DEADLINE_S) != 0
        successor.url = ""
        assert "pass the same --admin-token-file" in successor.stderr_text(), successor.output()
        wait_until(lambda: "the successor aborted" in old.stderr_text(), timeout=DEADLINE_S,
                   message="the predecessor to log the abort")
        old.assert_alive()
        assert old.get("/api/v1/sessions", auth=False).status_code == 401
        assert old.get("/api/v1/sessions").status_code == 200
        assert roundtrip(client, b"still here") == b"still here"

    # A successor with the same token takes over, and asks for it.
    new = take_over(start_gateway, old, path, env={"SPLICEGATE_ADMIN_TOKEN": "s3cret-token-value"})
    new.token = "s3cret-token-value"
    assert new.get("/api/v1/listeners", auth=False).status_code == 401
    assert [l["id"] for l in new.listeners()] == [listener["id"]]


def test_successor_with_another_admin_token_is_refused(start_gateway, upstream, tmp_path):
    path = socket_path(tmp_path, "h.sock")
    old = start_gateway("--handoff-socket", path, "--event-loops", "2", token="s3cret-token-value")
    successor = start_gateway("--take-over", path, "--event-loops", "2", wait=False,
                              env={"SPLICEGATE_ADMIN_TOKEN": "another-token-value"})
    assert successor.proc.wait(timeout=DEADLINE_S) != 0
    successor.url = ""
    assert "requires a different admin token" in successor.stderr_text(), successor.output()
    old.assert_alive()
    assert old.get("/api/v1/sessions").status_code == 200


def test_session_holding_more_than_a_frame_refuses_before_the_freeze(start_gateway, tmp_path):
    """A failover replica's held output is bounded by `buffer_bytes` (up to 1 GiB), a session's
    handoff frame by 64 MiB: such a session refuses the handoff before anything freezes,
    saying why, and the old process serves on."""
    flood = 100 << 20
    flooded = threading.Event()
    received = []

    def sink(conn):
        while data := conn.recv(65536):
            received.append(len(data))

    def replica_handler(conn):
        # The server never answers, so the replica's output is held, all of it.
        conn.sendall(b"r" * flood)
        flooded.set()
        while conn.recv(65536):
            pass

    server, replica = StreamServer(sink), StreamServer(replica_handler)
    path = socket_path(tmp_path, "h.sock")
    old = start_gateway("--handoff-socket", path, "--event-loops", "2")
    try:
        listener = old.create_listener(listen="127.0.0.1:0", upstream=server.address, splits=[
            {"address": replica.address, "direction": "client_to_server", "on_slow": "block", "failover": True,
             "buffer_bytes": 256 << 20}])
        with connect(listener["listen"]) as client:
            client.sendall(b"hello")
            # Sent in full: past what the kernel buffers (a few MiB), the gateway holds it.
            assert flooded.wait(timeout=DEADLINE_S), "the replica's output to reach the gateway"
            before = relay_fds(old)
            successor = start_gateway("--take-over", path, "--event-loops", "2", wait=False)
            assert successor.proc.wait(timeout=DEADLINE_S) != 0
            successor.url = ""
            assert "a handoff carries at most 67108864 per session" in successor.stderr_text(), successor.output()
            log = old.stderr_text()
            assert "handoff refused; serving on" in log and "a handoff carries at most" in log, log[-3000:]
            # Refused before the freeze: nothing was frozen, sent, or resumed.
            assert "handing over" not in log and "serving every session on" not in log, log[-3000:]
            old.assert_alive()
            assert relay_fds(old) == before
            client.sendall(b"more")
            wait_until(lambda: sum(received) == len(b"hellomore"), timeout=DEADLINE_S, message="bytes after the refusal")
            [session] = old.sessions()
            assert session["state"] == "open" and session["splits"][0]["state"] != "dropped", session
    finally:
        server.close()
        replica.close()


def _accepted_by(gateway, sock: socket.socket) -> bool:
    """Whether `gateway` has accepted the admin connection `sock` (a connection still in the
    listening socket's queue has no descriptor anywhere; whoever accepts it, has one)."""
    client_port = sock.getsockname()[1]
    inodes = set()
    with open("/proc/net/tcp") as lines:
        next(lines)
        for line in lines:
            fields = line.split()
            local, remote = (int(f.rsplit(":", 1)[1], 16) for f in fields[1:3])
            if local == gateway.port and remote == client_port and fields[9] != "0":
                inodes.add(f"socket:[{fields[9]}]")
    fds = f"/proc/{gateway.proc.pid}/fd"
    return any(_readlink(f"{fds}/{fd}") in inodes for fd in os.listdir(fds))


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def test_admin_client_with_half_a_request_does_not_hold_the_handoff(start_gateway, upstream, tmp_path):
    """The old process waits for the admin requests it is answering before the sessions move,
    not for a client that sent half a head: past a short grace that connection is closed
    (the client connects again and reaches the successor), while the client still holds it."""
    path = socket_path(tmp_path, "h.sock")
    old = start_gateway("--handoff-socket", path, "--event-loops", "2")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
    with connect(listener["listen"]) as client, socket.create_connection((old.host, old.port)) as half:
        assert roundtrip(client, HEADER.pack(1) + b"a") == HEADER.pack(1) + b"a"
        half.sendall(b"GET /api/v1/sessions HTTP/1.1\r\nHost: x\r\n")
        half.settimeout(DEADLINE_S)
        # Held by the old process (else the successor would accept it later, and no handoff
        # would involve it).
        wait_until(lambda: _accepted_by(old, half), timeout=DEADLINE_S, message="the old process to accept it")
        new = take_over(start_gateway, old, path)
        log = old.stderr_text()
        closed = "handoff: closed 1 admin connection(s) whose request had not arrived"
        # Closed by the drain, before the old process let go of the sessions, not by its exit.
        assert closed in log, log[-3000:]
        assert log.index(closed) < log.index("handoff: the successor acknowledged; exiting")
        # No answer: the request never arrived whole (closed with the head unread: a reset).
        try:
            assert half.recv(1) == b""
        except ConnectionResetError:
            pass
        # The same request, sent whole, reaches the successor; the session moved.
        assert len(new.sessions()) == 1
        assert roundtrip(client, b"moved") == b"moved"
