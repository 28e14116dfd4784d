"""Out of file descriptors, the gateway waits instead of spinning, and recovers.

The relay core polls a listening socket level-triggered. When accept4 fails with EMFILE
the socket stays readable, so without a pause the loop would wake at once, fail again and
burn a core for as long as the limit lasts, starving every session on that loop. The
listener now stops polling for 100 ms at a time while descriptors are short.
"""

from __future__ import annotations

import os
import resource
import socket
import time

from conftest import StreamServer, echo_handler, split_address, wait_until

# Few enough that a handful of sessions use them all up.
GATEWAY_NOFILE = 64


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/PID/stat."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_descriptors(gateway) -> int:
    """The gateway's descriptor count once no admin connection is open: the test's HTTP
    client lets go of its connection, and the count is read until it stops changing."""
    gateway.session.close()
    last = -1

    def steady() -> int | None:
        nonlocal last
        count = descriptors(gateway.proc.pid)
        if count == last:
            return count
        last = count
        time.sleep(0.2)
        return None

    return wait_until(steady, message="the gateway's descriptor count to settle")


def echo_once(address: tuple[str, int], client: socket.socket | None = None) -> socket.socket:
    """A client (new unless given) whose line comes back through the gateway."""
    client = client or socket.create_connection(address, timeout=5)
    client.settimeout(5)
    client.sendall(b"ping\n")
    assert client.recv(64) == b"ping\n"
    return client


def test_descriptor_exhaustion_neither_spins_nor_sticks(start_gateway) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (GATEWAY_NOFILE, hard))
    try:
        gateway = start_gateway("--log-level", "warning")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    pid = gateway.proc.pid
    server = StreamServer(echo_handler)
    clients: list[socket.socket] = []
    try:
        address = split_address(gateway.create_listener(listen="127.0.0.1:0", upstream=server.address)["listen"])
        # Each session takes two descriptors: make the number left even (a second
        # listener takes one), so that sessions use up exactly all of them.
        free = GATEWAY_NOFILE - settled_descriptors(gateway)
        if free % 2:
            gateway.create_listener(listen="127.0.0.1:0", upstream=server.address)
            free = GATEWAY_NOFILE - settled_descriptors(gateway)
        assert free >= 4 and free % 2 == 0, f"{free} descriptors left for sessions"
        for _ in range(free // 2):
            clients.append(echo_once(address))
        wait_until(lambda: descriptors(pid) == GATEWAY_NOFILE, message="every descriptor in use")
        # These complete their handshake into the backlog; accepting them fails with EMFILE.
        waiting = [socket.create_connection(address, timeout=5) for _ in range(5)]
        clients += waiting
        before = cpu_seconds(pid)
        time.sleep(2.0)
        used = cpu_seconds(pid) - before
        # A loop spinning on the readable listener takes a whole core (~2 s here).
        assert used < 0.5, f"the gateway used {used:.2f} s of CPU in 2 s while out of descriptors"
        # The sessions already open are still served.
        echo_once(address, clients[0])
        # Descriptors come back as sessions end. Each waiting client is then accepted: served,
        # or closed at once if its server could not be dialled (a descriptor short at that
        # moment); none is left hanging.
        for client in clients[:-len(waiting)]:
            client.close()
        for client in waiting:
            client.settimeout(20)
            try:
                client.sendall(b"ping\n")
                answer = client.recv(64)
            except (ConnectionResetError, BrokenPipeError):
                answer = b""  # closed with our line unread: a reset
            assert answer in (b"ping\n", b""), f"a waiting client got {answer!r}"

        def served() -> bool:
            try:
                echo_once(address).close()
                return True
            except (AssertionError, OSError):
                return False

        wait_until(served, timeout=20, message="a new client to be served once descriptors are back")
    finally:
        for client in clients:
            client.close()
        server.close()
