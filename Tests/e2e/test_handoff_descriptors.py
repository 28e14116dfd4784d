"""Handoff and the descriptor budget (issue 15): the running gateway sends its sessions' own
descriptors, pinned while frozen, instead of copies of them. A copy per descriptor doubled
the gateway's descriptors at the moment of the handoff, so a gateway past half its limit
(about 5,000 sessions under the container's 20,000) could never hand off.

Everything is real: gateway processes with a lowered RLIMIT_NOFILE, TCP clients, an echo
upstream, admin DELETEs racing the freeze.
"""

from __future__ import annotations

import os
import resource
import socket
import threading

import requests

from conftest import connect, roundtrip, wait_until
from test_handoff import DEADLINE_S, HEADER, socket_path, take_over, upstream  # noqa: F401 (fixture)


def _gateway_with_sessions(start_gateway, upstream, tmp_path, count: int):
    """A gateway with a handoff socket and `count` live sessions to `upstream`, each with
    its 8-byte index and a first message echoed back; returns the gateway, the socket's
    path and the clients (in index order)."""
    path = socket_path(tmp_path, "h.sock")
    old = start_gateway("--handoff-socket", path, "--event-loops", "2")
    listener = old.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
    clients = []
    try:
        for index in range(count):
            client = connect(listener["listen"], timeout=DEADLINE_S)
            clients.append(client)
            message = HEADER.pack(index) + b"before"
            assert roundtrip(client, message) == message
        wait_until(lambda: len(old.sessions()) == count, timeout=DEADLINE_S, message="every session listed")
    except BaseException:
        for client in clients:
            client.close()
        raise
    return old, path, clients


def _client_names(clients: list[socket.socket]) -> set[str]:
    return {"%s:%d" % client.getsockname()[:2] for client in clients}


def test_handoff_past_half_the_descriptor_limit(start_gateway, upstream, tmp_path):
    """200 sessions (400 descriptors) under a limit of their descriptors plus a few dozen:
    more than half the limit is sessions, and the handoff still moves every one."""
    count = 200
    old, path, clients = _gateway_with_sessions(start_gateway, upstream, tmp_path, count)
    try:
        in_use = len(os.listdir(f"/proc/{old.proc.pid}/fd"))
        limit = in_use + 48
        assert 2 * count > limit // 2, (in_use, limit)
        _, hard = resource.prlimit(old.proc.pid, resource.RLIMIT_NOFILE)
        resource.prlimit(old.proc.pid, resource.RLIMIT_NOFILE, (limit, hard))
        new = take_over(start_gateway, old, path)
        assert {s["client"] for s in new.sessions()} == _client_names(clients)
        for index, client in enumerate(clients):
            message = b"after %d" % index
            assert roundtrip(client, message) == message
    finally:
        for client in clients:
            client.close()


def test_admin_kills_racing_the_freeze_close_only_their_own_sessions(start_gateway, upstream, tmp_path):
    """Admin DELETEs of half the sessions race a handoff. Each is answered: killed (by one
    process or the other), or refused with 409 while its session is frozen and retried.
    The killed clients see their connection end; every other session moves with its own
    connection (a descriptor closed under the freeze and its number reused would hand the
    successor somebody else's socket, or fail the handoff)."""
    count = 120
    old, path, clients = _gateway_with_sessions(start_gateway, upstream, tmp_path, count)
    try:
        by_client = {s["client"]: s["id"] for s in old.sessions()}
        doomed = clients[::2]
        survivors = clients[1::2]
        targets = [by_client["%s:%d" % client.getsockname()[:2]] for client in doomed]
        answers: list[object] = []
        killing = threading.Event()
        # The admin socket's address: the new process serves it once the old one is gone.
        url, headers = old.url, old.headers()

        def kill_all() -> None:
            admin = requests.Session()
            admin.trust_env = False
            killing.wait(DEADLINE_S)
            for sid in targets:
                while True:
                    try:
                        code = admin.delete(url + f"/api/v1/sessions/{sid}", headers=headers,
                                            timeout=DEADLINE_S).status_code
                    except requests.ConnectionError as error:
                        # The old process finished this connection and exited: the same
                        # admin socket is the new process's now.
                        answers.append(f"{sid}: {error!r}")
                        admin = requests.Session()
                        admin.trust_env = False
                        continue
                    answers.append(code)
                    if code != 409:
                        break

        killer = threading.Thread(target=kill_all, daemon=True)
        killer.start()
        new = start_gateway("--take-over", path, "--event-loops", "2", wait=False)
        killing.set()
        new.wait_ready(timeout=DEADLINE_S)
        assert old.proc.wait(timeout=DEADLINE_S) == 0, old.output()
        old.url = ""
        killer.join(timeout=DEADLINE_S)
        assert not killer.is_alive()
        codes = [answer for answer in answers if isinstance(answer, int)]
        assert set(codes) <= {200, 204, 404, 409}, answers
        print(f"{codes.count(409)} kills refused during the handoff and retried, "
              f"{len(answers) - len(codes)} connections lost to the old process's exit")
        assert {s["client"] for s in new.sessions()} == _client_names(survivors)
        for client in doomed:
            try:
                assert client.recv(65536) == b""
            except ConnectionResetError:
                pass
        for index, client in zip(range(1, count, 2), survivors):
            message = HEADER.pack(index) + b"after"
            assert roundtrip(client, message) == message
    finally:
        for client in clients:
            client.close()
