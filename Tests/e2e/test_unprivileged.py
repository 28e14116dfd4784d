"""The gateway as an unprivileged user (the systemd unit's User=splicegate): it must relay.

Every other test runs as root, which hides socket options only root may set (an option
meant for TCP set at the SOL_SOCKET level once made every session fail as non-root).
"""
from __future__ import annotations

import os
import queue
import threading
import shutil
import socket
import subprocess
import time

import pytest

from conftest import BIN  # type: ignore

SETPRIV = shutil.which("setpriv")


@pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None, reason="needs root to drop to nobody (setpriv)")
def test_relays_as_nobody() -> None:
    proc = subprocess.Popen(
        [SETPRIV, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
         BIN, "--admin", "127.0.0.1:0", "--demo", "--demo-listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines: list[str] = []
        # A reader thread: select() on a buffered pipe misses lines already read ahead.
        arrived: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [arrived.put(line.strip()) for line in proc.stdout], daemon=True).start()
        deadline = time.monotonic() + 15
        while not any(line.startswith("admin listening on ") for line in lines):
            remaining = deadline - time.monotonic()
            assert remaining > 0 and proc.poll() is None, f"no admin URL (exit {proc.poll()}); stdout so far {lines}"
            try:
                lines.append(arrived.get(timeout=remaining))
            except queue.Empty:
                pass
        url = next(line for line in lines if line.startswith("admin listening on "))
        demo = next(line for line in lines if line.startswith("demo: echo upstream"))
        port = int(demo.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.settimeout(5)
            for _ in range(3):
                client.sendall(b"as nobody\n")
                got = b""
                while len(got) < 10:
                    chunk = client.recv(64)
                    assert chunk, f"the gateway closed the session; url {url}"
                    got += chunk
                assert got == b"as nobody\n"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
