"""redis-benchmark through the gateway while its sessions are handed to new processes
(issue 15): a real Redis client and server, 50 connections, and two handoffs while the
benchmark runs; it must finish without a single error.

The benchmark must still be running when the handoffs happen, whatever the machine's
speed: the test holds it with Redis's own `CLIENT PAUSE … WRITE` (commands that write
wait; PING and GET do not), issued before the benchmark starts and lifted only after both
old gateways have exited. The benchmark's PING tests run freely meanwhile, so the first
handoff happens while commands flow; the second waits until all 50 clients of the SET
test have sent a SET that waits in the server, so it moves exactly those 50 sessions.
"""

from __future__ import annotations

import csv
import io
import shutil
import subprocess

import pytest

from conftest import connect, recv_exactly, split_address, wait_until
from test_handoff import DEADLINE_S, first_event, socket_path, take_over
from test_splits_http import Redis, command, read_line

CLIENTS = 50
REQUESTS = 20_000
TESTS = ["PING_INLINE", "PING_MBULK", "SET", "GET"]
PING_MBULK = command("PING")


def redis_call(redis: Redis, *args: str) -> bytes:
    """One command on a connection of its own, straight to the server; the reply's first
    line, or the whole of a bulk string."""
    with connect(redis.address) as sock:
        sock.sendall(command(*args))
        buffer = bytearray()
        line = read_line(sock, buffer)
        if not line.startswith(b"$"):
            return line
        size = int(line[1:])
        while len(buffer) < size + 2:
            chunk = sock.recv(65536)
            assert chunk, "EOF from redis-server in a bulk reply"
            buffer += chunk
        return bytes(buffer[:size])


def connections_received(redis: Redis) -> int:
    """Connections the server has accepted so far, this call's own included."""
    stats = redis_call(redis, "INFO", "stats").decode()
    return int(next(line.split(":")[1] for line in stats.splitlines()
                    if line.startswith("total_connections_received:")))


@pytest.fixture
def redis(tmp_path):
    if shutil.which("redis-server") is None or shutil.which("redis-benchmark") is None:
        pytest.fail("redis-server and redis-benchmark not installed; run scripts/deps.sh test")
    server = Redis(tmp_path / "redis")
    yield server
    server.stop()


def test_redis_benchmark_runs_through_two_handoffs_without_an_error(start_gateway, redis, tmp_path):
    first_path, second_path = socket_path(tmp_path, "h1.sock"), socket_path(tmp_path, "h2.sock")
    old = start_gateway("--handoff-socket", first_path, "--event-loops", "2")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=redis.address)
    host, port = split_address(listener["listen"])
    before = connections_received(redis)
    assert redis_call(redis, "CLIENT", "PAUSE", str(int(DEADLINE_S * 20 * 1000)), "WRITE") == b"+OK"
    bench = subprocess.Popen(
        [shutil.which("redis-benchmark"), "-h", host, "-p", str(port), "-c", str(CLIENTS), "-n", str(REQUESTS),
         "-t", "ping,set,get", "--csv"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        # First handoff: as soon as the benchmark's clients are there (PINGs flowing).
        wait_until(lambda: bench.poll() is not None or len(old.sessions()) >= CLIENTS, timeout=DEADLINE_S,
                   message=f"{CLIENTS} benchmark sessions")
        assert bench.poll() is None, bench.communicate()
        middle = take_over(start_gateway, old, first_path, "--handoff-socket", second_path)
        assert bench.poll() is None

        # Second handoff: every client of the SET test waits for its first answer (a SET
        # is longer than a PING; one request at a time per client, no answer yet).
        def set_clients_waiting():
            sessions = middle.sessions()
            return len(sessions) == CLIENTS and all(
                s["bytes"]["client_to_server"] > len(PING_MBULK) and s["bytes"]["server_to_client"] == 0
                for s in sessions)
        wait_until(lambda: bench.poll() is not None or set_clients_waiting(), timeout=DEADLINE_S,
                   message="the SET test's clients all waiting on the paused server")
        assert bench.poll() is None, bench.communicate()
        waiting = {s["id"] for s in middle.sessions()}
        last = take_over(start_gateway, middle, second_path)
        event = first_event(last)
        assert event["type"] == "gateway.handoff" and event["sessions"] == CLIENTS, event
        assert {s["id"] for s in last.sessions()} == waiting

        # Both old processes are gone and the benchmark still runs: let it finish.
        assert bench.poll() is None
        assert redis_call(redis, "CLIENT", "UNPAUSE") == b"+OK"
        out, err = bench.communicate(timeout=DEADLINE_S * 4)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.communicate()
    assert bench.returncode == 0 and err == "", f"redis-benchmark exit {bench.returncode}\n{out}\n{err}"
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["test"] for row in rows] == TESTS, out
    assert all(float(row["rps"]) > 0 for row in rows), out
    assert "error" not in out.lower(), out

    # Every benchmark connection was one session, counted on: the last process's
    # listener counts the sessions of all three, and the server saw as many connections
    # (besides this test's own: the pause, the unpause, and the two INFO calls, the first
    # of which `before` includes).
    wait_until(lambda: last.sessions() == [], timeout=DEADLINE_S, message="every benchmark session to end")
    total = next(l for l in last.listeners() if l["id"] == listener["id"])["sessions"]["total"]
    assert total == connections_received(redis) - before - 3
    # Ids go on from there.
    with connect(listener["listen"]) as client:
        client.sendall(b"PING\r\n")
        assert recv_exactly(client, 7) == b"+PONG\r\n"
        newest = wait_until(lambda: last.sessions(), message="the new client's session")
        assert newest[0]["id"] == f"s{total + 1}", newest
