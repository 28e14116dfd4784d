"""Memory of the real binary stays flat: finished sessions and removed hops give back
what they held.

Issue 11, finding 4: every finished session left ~8 KB behind (a session's ports, their
handlers and both NIO channels with their receive buffers), ~39 MB per 5,000 sessions,
and every splice/remove cycle as much again. These tests read the gateway's VmRSS from
/proc between rounds. After warm-up, the growth allowed is many times what the fixed
gateway shows (< 0.2 MB) and a fraction of what the leak added, so a busy machine cannot
make them fail by chance while the leak fails them clearly.
"""

from __future__ import annotations

import pathlib
import socket
import threading

from conftest import Gateway, connect, roundtrip, session_of, wait_until

SESSIONS_PER_ROUND = 5_000
WARM_UP_ROUNDS = 1
MEASURED_ROUNDS = 2
CLIENT_THREADS = 8
# The leak added ~39 MB per round, ~78 MB over the measured rounds; fixed, they add < 0.1 MB.
MAX_SESSION_GROWTH_KB = 10 * 1024

WARM_UP_CYCLES = 100
MEASURED_CYCLES = 1_000
# The leak added 7.9-9.5 KB per cycle, ~8 MB over the measured cycles; fixed, < 0.2 MB.
MAX_CYCLE_GROWTH_KB = 3 * 1024


def rss_kb(gateway: Gateway) -> int:
    """The gateway's resident set size, from /proc."""
    for line in pathlib.Path(f"/proc/{gateway.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS line for pid {gateway.proc.pid}")


def demo_gateway(start_gateway) -> tuple[Gateway, str]:
    """A demo gateway that logs only errors (a log line per session would dominate the run)."""
    gateway = start_gateway("--log-level", "error", demo=True)
    return gateway, gateway.listeners()[0]["listen"]


def one_session(address: str, payload: bytes) -> None:
    """Connects, checks the echo, half-closes and reads the gateway's EOF: a clean close."""
    with connect(address) as sock:
        assert roundtrip(sock, payload) == payload
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b"", "the session did not end with an EOF"


def run_round(gateway: Gateway, address: str, count: int) -> None:
    """`count` sessions from CLIENT_THREADS threads; returns once none is live."""
    errors: list[BaseException] = []

    def work(index: int) -> None:
        payload = f"memory round client {index}\n".encode()
        try:
            for _ in range(count // CLIENT_THREADS):
                one_session(address, payload)
        except BaseException as error:  # reported by the test thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(CLIENT_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a client thread did not finish in 120 s"
    assert not errors, f"{len(errors)} client thread(s) failed, first: {errors[0]!r}"
    wait_until(lambda: gateway.get("/api/v1/sessions").json()["sessions"] == [], timeout=30,
               message="no live session after the round")


def test_rss_is_flat_over_rounds_of_finished_sessions(start_gateway) -> None:
    gateway, address = demo_gateway(start_gateway)
    for _ in range(WARM_UP_ROUNDS):
        run_round(gateway, address, SESSIONS_PER_ROUND)
    start = rss_kb(gateway)
    readings = []
    for _ in range(MEASURED_ROUNDS):
        run_round(gateway, address, SESSIONS_PER_ROUND)
        readings.append(rss_kb(gateway))
    growth = readings[-1] - start
    assert growth <= MAX_SESSION_GROWTH_KB, (
        f"RSS grew {growth} kB over {MEASURED_ROUNDS} rounds of {SESSIONS_PER_ROUND} finished sessions "
        f"({growth * 1024 // (MEASURED_ROUNDS * SESSIONS_PER_ROUND)} B/session): {start} kB -> {readings}")
    gateway.assert_alive()


def splice_and_remove(gateway: Gateway, session: str, sock: socket.socket, cycles: int) -> None:
    for index in range(cycles):
        response = gateway.post(f"/api/v1/sessions/{session}/mediators",
                                json={"mediator": "identity", "direction": "both"})
        assert response.status_code == 201, f"cycle {index}: {response.status_code} {response.text}"
        hop = response.json()["id"]
        payload = f"cycle {index}\n".encode()
        assert roundtrip(sock, payload) == payload
        response = gateway.delete(f"/api/v1/sessions/{session}/mediators/{hop}")
        assert response.status_code == 200, f"cycle {index}: {response.status_code} {response.text}"


def test_rss_is_flat_over_splice_and_remove_cycles(start_gateway) -> None:
    gateway, address = demo_gateway(start_gateway)
    with connect(address) as sock:
        assert roundtrip(sock, b"hello\n") == b"hello\n"
        session = session_of(gateway, sock)["id"]
        splice_and_remove(gateway, session, sock, WARM_UP_CYCLES)
        start = rss_kb(gateway)
        splice_and_remove(gateway, session, sock, MEASURED_CYCLES)
        growth = rss_kb(gateway) - start
        assert growth <= MAX_CYCLE_GROWTH_KB, (
            f"RSS grew {growth} kB over {MEASURED_CYCLES} splice/remove cycles "
            f"({growth * 1024 // MEASURED_CYCLES} B/cycle)")
        # The session still relays, with no hop left.
        assert roundtrip(sock, b"after\n") == b"after\n"
        assert gateway.get(f"/api/v1/sessions/{session}").json()["mediators"] == []
    gateway.assert_alive()
