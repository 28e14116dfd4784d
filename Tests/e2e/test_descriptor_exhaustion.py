"""Short of file descriptors, the gateway waits instead of spinning, keeps its admin API
answering, and recovers.

The relay core polls a listening socket level-triggered. When accept4 fails with EMFILE
the socket stays readable, so without a pause the loop would wake at once, fail again and
burn a core for as long as the limit lasts, starving every session on that loop. Accepting
also stops short of the limit: the last descriptors (a sixteenth, at least 8) are kept for
the admin API and for dialing, so an operator can still see and kill sessions while
clients wait in the backlog. Before that reserve, clients took every descriptor and the
admin API could not accept a connection.
"""

from __future__ import annotations

import os
import resource
import socket
import time

from conftest import StreamServer, echo_handler, split_address, wait_until

# Few enough that a handful of sessions use them all up.
GATEWAY_NOFILE = 64
# Where the listeners stop accepting: the reserve is max(8, min(256, limit / 16)).
CEILING = GATEWAY_NOFILE - max(8, min(256, GATEWAY_NOFILE // 16))


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


def test_descriptor_exhaustion_neither_spins_nor_sticks_nor_locks_the_operator_out(start_gateway) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (GATEWAY_NOFILE, hard))
    try:
        gateway = start_gateway("--log-level", "warning")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    pid = gateway.proc.pid
    server = StreamServer(echo_handler)
    clients: list[socket.socket] = []
    waiting: list[socket.socket] = []
    try:
        address = split_address(gateway.create_listener(listen="127.0.0.1:0", upstream=server.address)["listen"])
        settled_descriptors(gateway)
        # Sessions (two descriptors each) up to the ceiling.
        while descriptors(pid) < CEILING:
            clients.append(echo_once(address))
        # Past it, clients complete their handshake into the backlog and wait there (at
        # most one more per loop is taken as its accept crosses the ceiling).
        for _ in range(5):
            client = socket.create_connection(address, timeout=5)
            client.sendall(b"ping\n")
            waiting.append(client)
        before = cpu_seconds(pid)
        time.sleep(2.0)
        used = cpu_seconds(pid) - before
        # A loop spinning on the readable listener takes a whole core (~2 s here).
        assert used < 0.5, f"the gateway used {used:.2f} s of CPU in 2 s while short of descriptors"
        assert descriptors(pid) < GATEWAY_NOFILE, "the clients took the descriptors kept in reserve"
        # The operator is not locked out: the admin API lists the sessions and kills them.
        listed = gateway.sessions()
        assert len(listed) >= len(clients), f"{len(listed)} sessions listed, {len(clients)} opened"
        # The sessions already open are still served.
        echo_once(address, clients[0])
        ports = {client.getsockname()[1] for client in clients}
        killed = [s for s in listed if int(s["client"].rsplit(":", 1)[1]) in ports]
        assert len(killed) == len(clients), "every filled session is listed with its client's address"
        for session in killed:
            answer = gateway.delete(f"/api/v1/sessions/{session['id']}")
            assert answer.status_code == 204, answer.text
        # Descriptors come back as the sessions end; every waiting client is then accepted
        # and served (the reserve left room to dial its server).
        for client in waiting:
            client.settimeout(20)
            assert client.recv(64) == b"ping\n", "a client waiting in the backlog was not served"
        echo_once(address).close()
    finally:
        for client in clients + waiting:
            client.close()
        server.close()


BURST_NOFILE = 300
BURST_CLIENTS = 200


def test_a_burst_of_clients_over_several_loops_leaves_the_reserve_to_the_operator(start_gateway) -> None:
    # With several loops, the loop that accepts hands clients to the others, which dial
    # their servers later: a burst accepted up to the ceiling then dialled past it took the
    # reserve, the dials failed for want of descriptors (their sessions ended, freeing low
    # numbers, so accepting resumed and the churn went on) and the admin API, out of
    # descriptors too, answered nothing.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (BURST_NOFILE, hard))
    try:
        gateway = start_gateway("--log-level", "warning", "--event-loops", "4")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    server = StreamServer(echo_handler)
    clients: list[socket.socket] = []
    try:
        listener = gateway.create_listener(listen="127.0.0.1:0", upstream=server.address)
        address = split_address(listener["listen"])
        settled_descriptors(gateway)
        for _ in range(BURST_CLIENTS):  # all at once: connects complete into the backlog
            client = socket.socket()
            client.setblocking(False)
            try:
                client.connect(address)
            except BlockingIOError:
                pass
            clients.append(client)
        # The burst accepted and dialled as far as the reserve lets it (a churn of failing
        # dials never settles).
        settled_descriptors(gateway)
        health = gateway.get("/api/v1/health", timeout=10)
        assert health.status_code == 200, health.text
        stats = gateway.get(f"/api/v1/listeners/{listener['id']}").json()
        assert stats["upstream_failures"] == 0, \
            f"dials failed for want of descriptors: {stats}"
    finally:
        for client in clients:
            client.close()
        server.close()
