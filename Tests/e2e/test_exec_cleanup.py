"""An exec mediator that ignores SIGTERM is killed once its hop is gone.

The gateway asks an exec mediator to stop with SIGTERM when its session ends or its hop
is removed. A filter that ignores SIGTERM (or one stopped with SIGSTOP) used to stay for
ever, with its reaper thread; now it gets SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket

from conftest import StreamServer, echo_handler, split_address, wait_until
from test_hop_failure_once import children, echo_gateway_with_exec_mediator


def splice_stubborn(gateway, client: socket.socket) -> dict:
    """Splices the "stubborn" exec mediator into the gateway's only session, that of
    `client`, both ways, and checks bytes pass through it; returns the session."""
    client.sendall(b"hello\n")
    assert client.recv(64) == b"hello\n"
    [session] = gateway.sessions()
    response = gateway.post(f"/api/v1/sessions/{session['id']}/mediators",
                            json={"mediator": "stubborn", "direction": "both"})
    assert response.status_code == 201, response.text
    client.sendall(b"through cat\n")
    assert client.recv(64) == b"through cat\n"
    return session


def test_an_exec_mediator_that_ignores_sigterm_is_killed(start_gateway, tmp_path: pathlib.Path) -> None:
    # A filter that outlives its input and ignores SIGTERM (an ignored signal stays ignored
    # across exec): cat relays, then the shell becomes a sleep that nothing but SIGKILL ends.
    gateway, echo = echo_gateway_with_exec_mediator(
        start_gateway, tmp_path, "stubborn", ["sh", "-c", "trap '' TERM; cat; exec sleep 600"])
    try:
        with socket.create_connection(split_address(gateway.listeners()[0]["listen"]), timeout=10) as client:
            session = splice_stubborn(gateway, client)
            assert len(children(gateway.proc.pid, "sh")) == 2
            assert gateway.delete(f"/api/v1/sessions/{session['id']}").status_code == 204
        wait_until(lambda: children(gateway.proc.pid, "sh") == [] and children(gateway.proc.pid, "sleep") == [],
                   timeout=15, message="the mediators that ignore SIGTERM to be gone")
    finally:
        echo.close()


def running(pid: int) -> bool:
    """Whether `pid` exists and has not exited (a zombie waiting for init has)."""
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_an_exec_mediator_that_ignores_sigterm_does_not_outlive_the_gateway(start_gateway,
                                                                            tmp_path: pathlib.Path) -> None:
    # Its SIGKILL was a timer on the session's loop, which stops with the gateway: after a
    # SIGTERM to the gateway such a mediator ran on, reparented to init.
    echo = StreamServer(echo_handler)
    mediators: list[int] = []
    try:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({
            "listeners": [{"name": "l", "listen": "127.0.0.1:0", "upstream": echo.address}],
            "mediators": [{"name": "stubborn", "kind": "exec",
                           "command": ["sh", "-c", "trap '' TERM; cat; exec sleep 600"]}],
        }))
        gateway = start_gateway("--config", str(config), "--grace-period", "1")
        with socket.create_connection(split_address(gateway.listeners()[0]["listen"]), timeout=10) as client:
            splice_stubborn(gateway, client)
            mediators = children(gateway.proc.pid, "sh")
            assert len(mediators) == 2
            gateway.proc.send_signal(signal.SIGTERM)
            assert gateway.proc.wait(timeout=30) == 0, gateway.output()
            gateway.url = ""
        wait_until(lambda: not any(running(pid) for pid in mediators), timeout=15,
                   message=f"the mediators {mediators} to be gone after the gateway exited")
    finally:
        for pid in mediators:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
        echo.close()


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def test_exec_mediators_are_reaped_without_a_thread_each(start_gateway, tmp_path: pathlib.Path) -> None:
    """Each exec mediator used to get a thread blocked in waitpid for its whole life, so 200
    live exec legs meant 200 threads. Children are now watched through pidfds on the
    session's loop: the thread count stays flat, and every child is reaped (no zombie) once
    its hop or session goes."""
    gateway, echo = echo_gateway_with_exec_mediator(start_gateway, tmp_path, "cat", ["cat"])
    pid = gateway.proc.pid
    address = split_address(gateway.listeners()[0]["listen"])
    clients: list[socket.socket] = []
    try:
        for _ in range(30):
            client = socket.create_connection(address, timeout=10)
            client.sendall(b"hi\n")
            assert client.recv(64) == b"hi\n"
            clients.append(client)
        sessions = gateway.sessions()
        before = threads(pid)
        hops = []
        for session in sessions:
            response = gateway.post(f"/api/v1/sessions/{session['id']}/mediators",
                                    json={"mediator": "cat", "direction": "both"})
            assert response.status_code == 201, response.text
            hops.append((session["id"], response.json()["id"]))
        cats = children(pid, "cat")
        assert len(cats) == 60
        # They start as processes of their own would: SIGPIPE (13) and SIGTERM (15) at
        # their default actions, not ignored as in the gateway.
        for cat in cats:
            status = pathlib.Path(f"/proc/{cat}/status").read_text()
            ignored = int(next(line for line in status.splitlines() if line.startswith("SigIgn:")).split()[1], 16)
            assert ignored & (1 << 12 | 1 << 14) == 0, f"exec mediator {cat} ignores signals: SigIgn {ignored:#x}"
        for client in clients:
            client.sendall(b"through cat\n")
            assert client.recv(64) == b"through cat\n"
        grown = threads(pid) - before
        assert grown < 8, f"{grown} more threads for 60 exec mediator processes"
        # Removing half the hops reaps their processes; ending the sessions reaps the rest.
        for session_id, hop_id in hops[:15]:
            assert gateway.delete(f"/api/v1/sessions/{session_id}/mediators/{hop_id}").status_code == 200
        wait_until(lambda: len(children(pid, "cat")) == 30, timeout=15,
                   message="the removed hops' processes to be reaped")
        for session in sessions:
            assert gateway.delete(f"/api/v1/sessions/{session['id']}").status_code == 204
        wait_until(lambda: children(pid, "cat") == [], timeout=15, message="every exec mediator to be reaped")
        gateway.assert_alive()
    finally:
        for client in clients:
            client.close()
        echo.close()
