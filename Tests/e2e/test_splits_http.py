"""Splitting and failover over HTTP against the real binary.

A split copies the bytes delivered to one direction's endpoint to a recipient
socket; a replica split (`client_to_server`, `on_slow: block`, from offset 0)
can take over as the server. The failover walk-through runs two real
`redis-server` processes (installed by scripts/deps.sh) as primary and replica.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time
from typing import Iterator

import pytest

from conftest import (Gateway, Sink, assert_problem, connect, free_port, refused_port, recv_exactly, roundtrip, session_of,
                      wait_until)

C2S = "client_to_server"
S2C = "server_to_client"
REDIS_START_TIMEOUT_S = 10.0


def demo_listener(gateway: Gateway) -> dict:
    return next(listener for listener in gateway.listeners() if listener.get("name") == "demo")


def add_split(gateway: Gateway, session: str, **body) -> dict:
    response = gateway.post(f"/api/v1/sessions/{session}/splits", json=body)
    assert response.status_code == 201, f"{response.status_code} {response.text}"
    split = response.json()
    assert response.headers["Location"] == f"/api/v1/sessions/{session}/splits/{split['id']}"
    return split


def test_split_copies_exact_bytes_from_from_offset_and_detaches(demo_gateway: Gateway) -> None:
    sink = Sink()
    try:
        with connect(demo_listener(demo_gateway)["listen"]) as client:
            prefix = os.urandom(1000)
            assert roundtrip(client, prefix) == prefix
            sid = session_of(demo_gateway, client)["id"]
            # Upper-case what the client gets, so the two copied directions differ.
            response = demo_gateway.post(f"/api/v1/sessions/{sid}/mediators",
                                         json={"mediator": "upper", "direction": S2C})
            assert response.status_code == 201, response.text

            split = add_split(demo_gateway, sid, address=sink.address, direction="both")
            assert split["from_offset"] == {C2S: 1000, S2C: 1000}
            assert split["state"] == "active" and split["on_slow"] == "drop"
            assert split["buffer_bytes"] == 1048576 and split["failover"] is False

            body = b"".join(b"line %06d of the copied stream\n" % i for i in range(20000))
            client.sendall(body)
            assert recv_exactly(client, len(body)) == body.upper()

            # One connection per direction: the client's bytes, and what the client got.
            wait_until(lambda: sorted(map(len, sink.snapshot())) == [len(body), len(body)],
                       message="both copies complete")
            assert sorted(sink.snapshot()) == sorted([body, body.upper()])
            shown = demo_gateway.get(f"/api/v1/sessions/{sid}/splits").json()["splits"]
            assert [s["id"] for s in shown] == [split["id"]]
            assert shown[0]["bytes"] == {C2S: {"sent": len(body), "dropped": 0, "discarded": 0},
                                         S2C: {"sent": len(body), "dropped": 0, "discarded": 0}}

            assert demo_gateway.delete(f"/api/v1/sessions/{sid}/splits/{split['id']}").status_code == 204
            assert demo_gateway.get(f"/api/v1/sessions/{sid}").json()["splits"] == []
            assert_problem(demo_gateway.delete(f"/api/v1/sessions/{sid}/splits/{split['id']}"), 404)
            wait_until(lambda: sink.eof == [True, True], message="EOF to the detached recipient")
            # Detached: later bytes still relay, and are not copied.
            assert roundtrip(client, b"after") == b"AFTER"
            time.sleep(0.2)
            assert sorted(map(len, sink.snapshot())) == [len(body), len(body)]
    finally:
        sink.close()


def test_split_request_errors(demo_gateway: Gateway) -> None:
    sink = Sink()
    try:
        with connect(demo_listener(demo_gateway)["listen"]) as client:
            assert roundtrip(client, b"x") == b"x"
            sid = session_of(demo_gateway, client)["id"]
            base = f"/api/v1/sessions/{sid}/splits"
            # failover on something that cannot be a replica: 422.
            assert_problem(demo_gateway.post(base, json={"address": sink.address, "direction": "both",
                                                         "failover": True}), 422)
            assert_problem(demo_gateway.post(base, json={"address": sink.address, "direction": C2S,
                                                         "failover": True}), 422)
            # A replica must see the stream from offset 0: this session has moved a byte.
            assert_problem(demo_gateway.post(base, json={"address": sink.address, "direction": C2S,
                                                         "on_slow": "block", "failover": True}), 409)
            assert_problem(demo_gateway.post(base, json={"address": f"127.0.0.1:{refused_port()}",
                                                         "direction": C2S}), 502)
            assert_problem(demo_gateway.post(base, json={"address": sink.address, "direction": C2S,
                                                         "buffer_bytes": 10}), 422)
            assert_problem(demo_gateway.post("/api/v1/sessions/s999999/splits",
                                             json={"address": sink.address, "direction": C2S}), 404)
            assert demo_gateway.get(base).json() == {"splits": []}
            # A split that is not a replica cannot take over: 409.
            split = add_split(demo_gateway, sid, address=sink.address, direction=C2S)
            problem = assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/failover",
                                                       json={"split": split["id"]}), 409)
            assert "cannot take over" in problem["detail"]
            assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/failover", json={"split": "x999999"}), 404)
            assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/failover", json={"split": "h1"}), 422)
            assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/failover", json={}), 422)
            assert roundtrip(client, b"unchanged") == b"unchanged"
    finally:
        sink.close()


# -- failover with two real redis-servers -------------------------------------


class Redis:
    """One `redis-server` process on 127.0.0.1, no persistence, in its own directory."""

    def __init__(self, directory: pathlib.Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(directory), "--daemonize", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + REDIS_START_TIMEOUT_S
        while True:
            try:
                with connect(self.address, timeout=1) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"redis-server on {self.address} did not start")
            time.sleep(0.05)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture
def redis_pair(tmp_path: pathlib.Path) -> Iterator[tuple[Redis, Redis]]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server not installed; run scripts/deps.sh test")
    primary = Redis(tmp_path / "primary")
    try:
        replica = Redis(tmp_path / "replica")
    except BaseException:
        primary.stop()
        raise
    yield primary, replica
    primary.stop()
    replica.stop()


def command(*args: str) -> bytes:
    """A RESP array of bulk strings, as redis clients send commands."""
    out = b"*%d\r\n" % len(args)
    for arg in args:
        data = arg.encode()
        out += b"$%d\r\n%s\r\n" % (len(data), data)
    return out


def read_line(sock: socket.socket, buffer: bytearray) -> bytes:
    while b"\r\n" not in buffer:
        chunk = sock.recv(4096)
        assert chunk, f"EOF from the gateway; buffered {bytes(buffer)!r}"
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\r\n")
    buffer[:] = rest
    return line


def incr(sock: socket.socket, buffer: bytearray, key: str) -> int:
    sock.sendall(command("INCR", key))
    line = read_line(sock, buffer)
    assert line.startswith(b":"), f"unexpected reply {line!r}"
    return int(line[1:])


def replica_listener(gateway: Gateway, primary: Redis, replica: Redis) -> dict:
    listener = gateway.create_listener(
        name="redis", listen="127.0.0.1:0", upstream=primary.address,
        splits=[{"address": replica.address, "direction": C2S, "on_slow": "block", "failover": True}])
    assert listener["splits"] == [{"address": replica.address, "direction": C2S, "on_slow": "block",
                                   "buffer_bytes": 1048576, "failover": True}]
    return listener


def test_failover_to_a_replica_redis_when_the_primary_is_killed(
        start_gateway, redis_pair: tuple[Redis, Redis]) -> None:
    primary, replica = redis_pair
    gateway = start_gateway()
    listener = replica_listener(gateway, primary, replica)
    total, kill_at, pipelined = 400, 200, 50
    with connect(listener["listen"]) as client:
        buffer = bytearray()
        assert incr(client, buffer, "counter") == 1
        session = session_of(gateway, client)
        assert session["server"] == primary.address
        [split] = session["splits"]
        assert split["failover"] is True and split["from_offset"] == {C2S: 0}

        seen = [1]
        while len(seen) < total:
            if len(seen) + 1 == kill_at:
                # Mid-conversation: a pipelined batch is in flight when the primary dies.
                client.sendall(command("INCR", "counter") * pipelined)
                primary.kill()
                for _ in range(pipelined):
                    line = read_line(client, buffer)
                    assert line.startswith(b":"), f"unexpected reply {line!r}"
                    seen.append(int(line[1:]))
            else:
                seen.append(incr(client, buffer, "counter"))
        assert seen == list(range(1, total + 1)), "one unbroken sequence across the failover"

        after = gateway.get(f"/api/v1/sessions/{session['id']}").json()
        assert after["server"] == replica.address
        assert after["splits"] == [], "the replica became the server"
        assert after["state"] == "open"
        client.sendall(command("GET", "counter"))
        assert read_line(client, buffer) == b"$3" and read_line(client, buffer) == b"400"
    gateway.assert_alive()


def test_failover_on_demand_and_only_to_a_replica(start_gateway, redis_pair: tuple[Redis, Redis]) -> None:
    primary, replica = redis_pair
    gateway = start_gateway()
    listener = replica_listener(gateway, primary, replica)
    sink = Sink()
    try:
        with connect(listener["listen"]) as client:
            buffer = bytearray()
            assert [incr(client, buffer, "k") for _ in range(5)] == [1, 2, 3, 4, 5]
            session = session_of(gateway, client)
            [replica_split] = session["splits"]
            other = add_split(gateway, session["id"], address=sink.address, direction=C2S)
            problem = assert_problem(gateway.post(f"/api/v1/sessions/{session['id']}/failover",
                                                  json={"split": other["id"]}), 409)
            assert "cannot take over" in problem["detail"]

            response = gateway.post(f"/api/v1/sessions/{session['id']}/failover", json={"split": replica_split["id"]})
            assert response.status_code == 200, response.text
            moved = response.json()
            assert moved["id"] == session["id"] and moved["server"] == replica.address
            assert [s["id"] for s in moved["splits"]] == [other["id"]]

            assert [incr(client, buffer, "k") for _ in range(5)] == [6, 7, 8, 9, 10]
            assert_problem(gateway.post(f"/api/v1/sessions/{session['id']}/failover",
                                        json={"split": replica_split["id"]}), 404)
        # The primary, no longer fed, stopped at 5; the replica has all ten.
        with connect(primary.address) as direct:
            assert incr(direct, bytearray(), "k") == 6
    finally:
        sink.close()
    gateway.assert_alive()
