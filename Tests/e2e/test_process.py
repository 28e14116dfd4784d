"""The gateway as a process: --demo, live sessions seen and killed over the API."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from typing import Any

import pytest

from conftest import Gateway, assert_problem, connect, free_port, refused_port, recv_exactly, split_address, wait_until

IO_TIMEOUT_S = 10.0


def local_address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"{host}:{port}"


def echo_roundtrip(sock: socket.socket, payload: bytes) -> bytes:
    """Sends payload from a thread while reading the echo (so neither side stalls)."""
    errors: list[BaseException] = []

    def send() -> None:
        try:
            sock.sendall(payload)
        except BaseException as error:  # reported below
            errors.append(error)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    received = recv_exactly(sock, len(payload))
    sender.join(IO_TIMEOUT_S)
    assert not errors, errors
    return received


def closed_by_peer(sock: socket.socket, timeout: float = IO_TIMEOUT_S) -> bool:
    """True when the peer closed (EOF or reset) within timeout; extra bytes are drained."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if sock.recv(65536) == b"":
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False
    return False


def demo_listener(gateway: Gateway) -> dict[str, Any]:
    listeners = gateway.listeners()
    assert len(listeners) == 1, f"--demo should create exactly one listener: {listeners}"
    listener = listeners[0]
    host, port = split_address(listener["listen"])
    assert host == "127.0.0.1" and port != 0, listener
    return listener


def session_of(gateway: Gateway, sock: socket.socket) -> dict[str, Any]:
    client = local_address(sock)
    return wait_until(lambda: next((s for s in gateway.sessions() if s["client"] == client), None),
                      message=f"a session with client {client}")


def test_demo_listener_echoes_and_is_listed(demo_gateway: Gateway) -> None:
    listener = demo_listener(demo_gateway)
    assert demo_gateway.sessions() == []
    with connect(listener["listen"]) as sock:
        payload = os.urandom(256 * 1024)
        echoed = echo_roundtrip(sock, payload)
        assert hashlib.sha256(echoed).hexdigest() == hashlib.sha256(payload).hexdigest()

        session = session_of(demo_gateway, sock)
        assert session["listener"] == listener["id"]
        assert session["server"] == listener["upstream"]
        assert session["state"] == "open"
        assert session["mediators"] == [] and session["splits"] == []
        # Counters are bytes delivered: all of them, once the echo came back.
        def counted() -> dict[str, Any] | None:
            current = demo_gateway.get(f"/api/v1/sessions/{session['id']}").json()
            return current if current["bytes"] == {"client_to_server": len(payload),
                                                   "server_to_client": len(payload)} else None
        wait_until(counted, message="byte counters equal to the payload")

        stats = demo_gateway.get(f"/api/v1/listeners/{listener['id']}").json()["sessions"]
        assert stats == {"active": 1, "total": 1}

        assert demo_gateway.delete(f"/api/v1/sessions/{session['id']}").status_code == 204
        assert closed_by_peer(sock), "DELETE /sessions/{id} did not close the client connection"

    assert_problem(demo_gateway.get(f"/api/v1/sessions/{session['id']}"), 404)
    assert_problem(demo_gateway.delete(f"/api/v1/sessions/{session['id']}"), 404)
    wait_until(lambda: demo_gateway.sessions() == [], message="the session list to be empty")
    stats = demo_gateway.get(f"/api/v1/listeners/{listener['id']}").json()["sessions"]
    assert stats == {"active": 0, "total": 1}


def test_client_close_ends_the_session(demo_gateway: Gateway) -> None:
    listener = demo_listener(demo_gateway)
    sock = connect(listener["listen"])
    assert echo_roundtrip(sock, b"hello\n") == b"hello\n"
    session = session_of(demo_gateway, sock)
    # Half-close: the echo server still answers what was sent before, then closes.
    sock.sendall(b"last words")
    sock.shutdown(socket.SHUT_WR)
    assert recv_exactly(sock, len(b"last words")) == b"last words"
    assert closed_by_peer(sock), "the server side did not close after the client's EOF"
    sock.close()
    wait_until(lambda: demo_gateway.get(f"/api/v1/sessions/{session['id']}").status_code == 404,
               message="the closed session to leave the registry")


def test_many_sessions_listed_paginated_and_killed(demo_gateway: Gateway) -> None:
    listener = demo_listener(demo_gateway)
    count = 25
    socks = [connect(listener["listen"]) for _ in range(count)]
    try:
        for index, sock in enumerate(socks):
            message = f"client {index}\n".encode()
            assert echo_roundtrip(sock, message) == message
        clients = {local_address(sock) for sock in socks}
        wait_until(lambda: {s["client"] for s in demo_gateway.sessions()} >= clients,
                   message="all clients listed")

        # Walk pages of 7 with the cursor: every session once, ids ascending.
        seen: list[str] = []
        cursor = None
        for _ in range(count):
            params: dict[str, Any] = {"limit": 7}
            if cursor:
                params["cursor"] = cursor
            page = demo_gateway.get("/api/v1/sessions", params=params).json()
            assert len(page["sessions"]) <= 7
            seen += [s["id"] for s in page["sessions"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)) == count, seen
        assert [int(i[1:]) for i in seen] == sorted(int(i[1:]) for i in seen)

        # The listener filter.
        assert len(demo_gateway.sessions(listener=listener["id"])) == count
        assert demo_gateway.sessions(listener="l999") == []

        # Kill every other one; the rest keep echoing.
        sessions = {s["client"]: s["id"] for s in demo_gateway.sessions()}
        for index, sock in enumerate(socks):
            if index % 2 == 0:
                assert demo_gateway.delete(f"/api/v1/sessions/{sessions[local_address(sock)]}").status_code == 204
        for index, sock in enumerate(socks):
            if index % 2 == 0:
                assert closed_by_peer(sock), f"killed session {index} still open"
            else:
                assert echo_roundtrip(sock, b"still here") == b"still here"
        wait_until(lambda: len(demo_gateway.sessions()) == count // 2, message="killed sessions gone")
    finally:
        for sock in socks:
            sock.close()
    wait_until(lambda: demo_gateway.sessions() == [], message="all sessions gone after client close")


def test_api_listener_to_the_demo_upstream(demo_gateway: Gateway) -> None:
    demo = demo_listener(demo_gateway)
    created = demo_gateway.create_listener(name="second", listen="127.0.0.1:0", upstream=demo["upstream"])
    with connect(created["listen"]) as sock:
        assert echo_roundtrip(sock, b"via api listener") == b"via api listener"
        session = session_of(demo_gateway, sock)
        assert session["listener"] == created["id"]
        assert [s["id"] for s in demo_gateway.sessions(listener=created["id"])] == [session["id"]]
        assert demo_gateway.sessions(listener=demo["id"]) == []
        # Removing the listener without close_sessions leaves the session running.
        assert demo_gateway.delete(f"/api/v1/listeners/{created['id']}").status_code == 204
        assert echo_roundtrip(sock, b"still relayed") == b"still relayed"
        with pytest.raises(OSError):
            connect(created["listen"]).close()


def test_delete_listener_with_close_sessions(demo_gateway: Gateway) -> None:
    demo = demo_listener(demo_gateway)
    created = demo_gateway.create_listener(listen="127.0.0.1:0", upstream=demo["upstream"])
    with connect(created["listen"]) as sock, connect(demo["listen"]) as other:
        assert echo_roundtrip(sock, b"x") == b"x"
        assert echo_roundtrip(other, b"y") == b"y"
        session_of(demo_gateway, sock)
        response = demo_gateway.delete(f"/api/v1/listeners/{created['id']}", params={"close_sessions": "true"})
        assert response.status_code == 204
        assert closed_by_peer(sock), "close_sessions=true left the session open"
        assert echo_roundtrip(other, b"unaffected") == b"unaffected"


def test_refused_upstream_closes_client_and_is_counted(demo_gateway: Gateway) -> None:
    dead = refused_port()
    created = demo_gateway.create_listener(listen="127.0.0.1:0", upstream=f"127.0.0.1:{dead}",
                                           connect_timeout_ms=2000)
    for _ in range(3):
        with connect(created["listen"]) as sock:
            assert closed_by_peer(sock, timeout=5), "client not closed after the upstream refused"
    wait_until(lambda: demo_gateway.get(f"/api/v1/listeners/{created['id']}").json()["upstream_failures"] == 3,
               message="upstream_failures == 3")
    wait_until(lambda: demo_gateway.sessions(listener=created["id"]) == [], message="failed sessions gone")
    # The gateway keeps serving.
    with connect(demo_listener_address(demo_gateway)) as sock:
        assert echo_roundtrip(sock, b"ok") == b"ok"


def demo_listener_address(gateway: Gateway) -> str:
    return gateway.get("/api/v1/listeners/l1").json()["listen"]


def test_listener_created_on_a_fixed_port_survives_reuse(gateway: Gateway) -> None:
    """A listener on a fixed port, deleted and recreated on the same port (SO_REUSEADDR)."""
    port = free_port()
    with socket.socket() as upstream:
        upstream.bind(("127.0.0.1", 0))
        upstream.listen()
        target = f"127.0.0.1:{upstream.getsockname()[1]}"
        first = gateway.create_listener(listen=f"127.0.0.1:{port}", upstream=target)
        assert first["listen"] == f"127.0.0.1:{port}"
        with connect(first["listen"]) as sock:
            peer, _ = upstream.accept()
            with peer:
                sock.sendall(b"ping")
                assert recv_exactly(peer, 4) == b"ping"
                peer.sendall(b"pong")
                assert recv_exactly(sock, 4) == b"pong"
        assert gateway.delete(f"/api/v1/listeners/{first['id']}?close_sessions=true").status_code == 204
        second = gateway.create_listener(listen=f"127.0.0.1:{port}", upstream=target)
        assert second["id"] != first["id"]
