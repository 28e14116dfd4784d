"""A hop that fails is handled once: its mediator's use is given back exactly once.

A stopped mediator (SIGSTOP) with bytes queued for it makes a `bypass` removal time out;
dropping the hop then fails the queued writes, which used to be handled as a second
failure of the same hop and gave the mediator's use back twice (`in_use` -1, and the
mediator could be unregistered while spliced).
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import threading

from conftest import (IO_TIMEOUT_S, StreamServer, connect, echo_handler, roundtrip, session_of,
                      wait_until)

PIPE_CAPACITY = 65536  # Linux's default pipe buffer: what a stopped `cat` can hold unread


def echo_gateway_with_exec_mediator(start_gateway, tmp_path: pathlib.Path, name: str,
                                    command: list[str]):
    """A gateway started from a config with one listener to a new echo server and one exec
    mediator: (gateway, echo server). The caller closes the echo server."""
    echo = StreamServer(echo_handler)
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "upstream": echo.address}],
        "mediators": [{"name": name, "kind": "exec", "command": command}],
    }))
    return start_gateway("--config", str(config)), echo


def children(pid: int, comm: str) -> list[int]:
    """Ids of `pid`'s child processes named `comm`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = pathlib.Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if name == comm and int(fields[1]) == pid:
            found.append(int(entry))
    return found


def process_state(pid: int) -> str:
    stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()[0]


def in_use(gateway) -> int:
    response = gateway.get("/api/v1/mediators/cat")
    assert response.status_code == 200, response.text
    return response.json()["in_use"]


def splice_cat(gateway, session_id: str, **extra) -> dict:
    response = gateway.post(f"/api/v1/sessions/{session_id}/mediators",
                            json={"mediator": "cat", "direction": "client_to_server", **extra})
    assert response.status_code == 201, response.text
    return response.json()


def drain(sock) -> None:
    """Reads and discards until EOF or close, so the client never holds the session back."""
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def test_a_hop_dropped_after_its_drain_timed_out_gives_its_mediator_back_once(
        start_gateway, tmp_path: pathlib.Path) -> None:
    gateway, echo = echo_gateway_with_exec_mediator(start_gateway, tmp_path, "cat", ["cat"])
    listen = gateway.listeners()[0]["listen"]
    stopped: list[int] = []
    threads: list[threading.Thread] = []
    first = connect(listen)
    second = connect(listen)
    try:
        assert roundtrip(first, b"hello\n") == b"hello\n"
        session = session_of(gateway, first)
        hop = splice_cat(gateway, session["id"], on_failure="bypass", drain_timeout_ms=300)
        assert roundtrip(first, b"through cat\n") == b"through cat\n"
        assert in_use(gateway) == 1

        # Stop the mediator, then queue more for it than its pipe holds: writes wait in the gateway.
        [cat] = children(gateway.proc.pid, "cat")
        os.kill(cat, signal.SIGSTOP)
        stopped.append(cat)
        wait_until(lambda: process_state(cat) == "T", message="cat to stop")
        for target, args in ((first.sendall, (b"x" * (4 * PIPE_CAPACITY),)), (drain, (first,))):
            thread = threading.Thread(target=lambda t=target, a=args: _quietly(t, *a), daemon=True)
            threads.append(thread)
            thread.start()

        def unread() -> int:
            hops = gateway.get(f"/api/v1/sessions/{session['id']}/mediators").json()["mediators"]
            counts = hops[0]["bytes"]["client_to_server"]
            return counts["in"] - counts["out"]
        wait_until(lambda: unread() > PIPE_CAPACITY, message="bytes queued past the stopped mediator's pipe")

        response = gateway.delete(f"/api/v1/sessions/{session['id']}/mediators/{hop['id']}")
        assert response.status_code == 504, response.text
        assert gateway.get(f"/api/v1/sessions/{session['id']}").json()["mediators"] == []
        assert in_use(gateway) == 0

        # Spliced elsewhere, the mediator must not be unregistrable.
        assert roundtrip(second, b"two\n") == b"two\n"
        other = session_of(gateway, second)
        again = splice_cat(gateway, other["id"])
        assert in_use(gateway) == 1
        assert gateway.delete("/api/v1/mediators/cat").status_code == 409
        assert roundtrip(second, b"still\n") == b"still\n"
        response = gateway.delete(f"/api/v1/sessions/{other['id']}/mediators/{again['id']}")
        assert response.status_code == 200, response.text
        assert in_use(gateway) == 0
        assert "half-closing its input failed" not in gateway.stderr_text()
    finally:
        for pid in stopped:
            if pid in children(gateway.proc.pid, "cat"):
                os.kill(pid, signal.SIGCONT)
        for sock in (first, second):
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked on it
            except OSError:
                pass
            sock.close()
        for thread in threads:
            thread.join(timeout=IO_TIMEOUT_S)
        echo.close()


def _quietly(target, *args) -> None:
    try:
        target(*args)
    except OSError:
        pass
