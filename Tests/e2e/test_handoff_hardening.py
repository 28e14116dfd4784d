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

