#!/usr/bin/env python3
"""Measures what a burst of clients that connect and close at once leaves behind.

Starts `splicegate --demo` (echo upstream), connects N clients to the demo listener one
after the other, each closed as soon as it is connected, then waits up to --settle seconds for the sessions to end and
its descriptors to return, and prints the sessions still listed and the gateway's
descriptor count before and after.

    scripts/measure-connect-close.py .build/release/splicegate --clients 2000
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import subprocess
import time
import urllib.request


def start(binary: str) -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen([binary, "--demo", "--demo-listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                             "--log-level", "error"], stdout=subprocess.PIPE, text=True)
    admin = listen = None
    assert proc.stdout is not None
    while admin is None or listen is None:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("gateway exited before it was ready")
        if match := re.match(r"admin listening on (http://\S+)", line):
            admin = match.group(1)
        if match := re.search(r"listener \S+ on (\S+)$", line.strip()):
            listen = match.group(1)
    return proc, admin, listen


def sessions(admin: str) -> int:
    with urllib.request.urlopen(f"{admin}/api/v1/sessions?limit=1000", timeout=10) as response:
        body = json.load(response)
    count = len(body["sessions"])
    while cursor := body.get("next_cursor"):
        with urllib.request.urlopen(f"{admin}/api/v1/sessions?limit=1000&cursor={cursor}", timeout=10) as response:
            body = json.load(response)
        count += len(body["sessions"])
    return count


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("binary")
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--settle", type=float, default=10.0)
    args = parser.parse_args()
    proc, admin, listen = start(args.binary)
    try:
        host, port = listen.rsplit(":", 1)
        fds_before = len(os.listdir(f"/proc/{proc.pid}/fd"))
        for _ in range(args.clients):
            socket.create_connection((host, int(port)), timeout=10).close()
        deadline = time.monotonic() + args.settle
        while (left := sessions(admin)) and time.monotonic() < deadline:
            time.sleep(0.5)
        while (fds_after := len(os.listdir(f"/proc/{proc.pid}/fd"))) > fds_before and time.monotonic() < deadline:
            time.sleep(0.5)
        print(f"clients={args.clients} sessions_left={left} fds_before={fds_before} fds_after={fds_after}")
    finally:
        proc.kill()  # the figures are taken; a graceful stop is not what is measured
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
