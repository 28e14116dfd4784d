"""An exec mediator that ignores SIGTERM is killed once its hop is gone.

The gateway asks an exec mediator to stop with SIGTERM when its session ends or its hop
is removed. A filter that ignores SIGTERM (or one stopped with SIGSTOP) used to stay for
ever, with its reaper thread; now it gets SIGKILL after a grace period.
"""

from __future__ import annotations

import json
import pathlib
import socket

from conftest import StreamServer, echo_handler, split_address, wait_until
from test_hop_failure_once import children


def test_an_exec_mediator_that_ignores_sigterm_is_killed(start_gateway, tmp_path: pathlib.Path) -> None:
    echo = StreamServer(echo_handler)
    config = tmp_path / "config.json"
    # A filter that outlives its input and ignores SIGTERM (an ignored signal stays ignored
    # across exec): cat relays, then the shell becomes a sleep that nothing but SIGKILL ends.
    config.write_text(json.dumps({
        "listeners": [{"name": "l", "listen": "127.0.0.1:0", "upstream": echo.address}],
        "mediators": [{"name": "stubborn", "kind": "exec",
                       "command": ["sh", "-c", "trap '' TERM; cat; exec sleep 600"]}],
    }))
    gateway = start_gateway("--config", str(config))
    try:
        with socket.create_connection(split_address(gateway.listeners()[0]["listen"]), timeout=10) as client:
            client.sendall(b"hello\n")
            assert client.recv(64) == b"hello\n"
            [session] = gateway.sessions()
            response = gateway.post(f"/api/v1/sessions/{session['id']}/mediators",
                                    json={"mediator": "stubborn", "direction": "both"})
            assert response.status_code == 201, response.text
            client.sendall(b"through cat\n")
            assert client.recv(64) == b"through cat\n"
            assert len(children(gateway.proc.pid, "sh")) == 2
            assert gateway.delete(f"/api/v1/sessions/{session['id']}").status_code == 204
        wait_until(lambda: children(gateway.proc.pid, "sh") == [] and children(gateway.proc.pid, "sleep") == [],
                   timeout=15, message="the mediators that ignore SIGTERM to be gone")
    finally:
        echo.close()
