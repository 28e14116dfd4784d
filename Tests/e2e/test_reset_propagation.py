"""A stream cut short by a reset is passed on as a reset, not as a clean end.

When one side resets (or a mediator fails) mid-stream, the session ends and the gateway
closes the other side. With a plain close that side got a FIN after fewer bytes than were
sent, indistinguishable from a complete stream; now it gets an RST, as from HAProxy.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

import requests
from conftest import StreamServer, connect, echo_handler, roundtrip, session_of, split_address, wait_until
from test_admin_concurrency import HeldMediator

SENT = 32 << 20


def send_then_reset(conn: socket.socket, done: threading.Event) -> None:
    """Answers a request with more than the way back can hold, then resets."""
    conn.recv(64)
    conn.settimeout(1.0)
    try:
        conn.sendall(b"x" * SENT)
    except (TimeoutError, OSError):
        pass  # the client is not reading yet: the rest stays unsent
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
    done.set()


def test_a_server_reset_reaches_the_client_as_a_reset(start_gateway) -> None:
    gateway = start_gateway()
    reset_sent = threading.Event()
    server = StreamServer(lambda conn: send_then_reset(conn, reset_sent))
    try:
        listener = gateway.create_listener(listen="127.0.0.1:0", upstream=server.address)
        with socket.create_connection(split_address(listener["listen"]), timeout=10) as client:
            client.sendall(b"go\n")
            # Not reading until the server has reset: its bytes wait in the gateway and the
            # kernel, behind the reset.
            assert reset_sent.wait(10), "the server never got to its reset"
            received, outcome = 0, "eof"
            client.settimeout(10)
            try:
                while chunk := client.recv(65536):
                    received += len(chunk)
            except ConnectionResetError:
                outcome = "reset"
            assert received < SENT, "the server's whole answer arrived: the test did not cut it short"
            assert outcome == "reset", f"{received} of {SENT} bytes, then a clean EOF: the cut looked complete"
        wait_until(lambda: gateway.sessions() == [], message="the session to end")
    finally:
        server.close()


def hold_unread(conn: socket.socket, release: threading.Event) -> None:
    """Takes the connection and reads nothing until released; reports how it then ends."""
    release.wait(30)
    conn.settimeout(10)
    try:
        while conn.recv(1 << 20):
            pass
    except OSError:
        pass


def test_a_client_reset_ends_the_session_while_its_server_reads_nothing(start_gateway) -> None:
    # The gateway stops reading a client whose server does not read (back-pressure), so
    # the client's reset waits in the kernel behind bytes nobody takes. It used to wait
    # there until the server read or closed: the session stayed open with its descriptors.
    gateway = start_gateway()
    release = threading.Event()
    server = StreamServer(lambda conn: hold_unread(conn, release))
    try:
        listener = gateway.create_listener(listen="127.0.0.1:0", upstream=server.address)
        client = socket.create_connection(split_address(listener["listen"]), timeout=10)
        try:
            local = "%s:%d" % client.getsockname()[:2]
            wait_until(lambda: any(s["client"] == local and s["state"] == "open" for s in gateway.sessions()),
                       message="the session to be open")
            client.setblocking(False)
            chunk, stalled_since = b"r" * 65536, time.monotonic()
            while time.monotonic() - stalled_since < 0.5:  # until nothing more fits anywhere
                try:
                    client.send(chunk)
                    stalled_since = time.monotonic()
                except BlockingIOError:
                    time.sleep(0.01)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            client.close()
        wait_until(lambda: all(s["client"] != local for s in gateway.sessions()), timeout=10,
                   message="the session of the client that reset to end")
    finally:
        release.set()
        server.close()


def test_a_client_reset_during_a_drain_ends_the_session_instead_of_failing_the_drain(start_gateway) -> None:
    # While a client_to_server hop drains, the client's input waits; a reset behind it used
    # to wait too, so the drain ran to its timeout and the DELETE answered 504, blaming the
    # mediator, before the session ended. The reset now ends the session: 409.
    gateway = start_gateway()
    upstream = StreamServer(echo_handler)
    mediator = HeldMediator()
    answer: list[requests.Response | BaseException] = []
    try:
        listener = gateway.create_listener(listen="127.0.0.1:0", upstream=upstream.address)
        client = connect(listener["listen"])
        try:
            assert roundtrip(client, b"before\n") == b"before\n"
            sid = session_of(gateway, client)["id"]
            spliced = gateway.post(f"/api/v1/sessions/{sid}/mediators", json={
                "address": mediator.address, "direction": "client_to_server", "drain_timeout_ms": 60_000})
            assert spliced.status_code == 201, spliced.text
            assert roundtrip(client, b"through\n") == b"through\n"

            def remove() -> None:
                try:
                    answer.append(requests.delete(
                        f"{gateway.url}/api/v1/sessions/{sid}/mediators/{spliced.json()['id']}", timeout=90))
                except BaseException as error:  # reported below
                    answer.append(error)

            removal = threading.Thread(target=remove, daemon=True)
            removal.start()
            wait_until(lambda: mediator.held() == 1, message="the drain to start")
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        finally:
            client.close()
        removal.join(90)
        assert answer and isinstance(answer[0], requests.Response), answer
        assert answer[0].status_code == 409, (answer[0].status_code, answer[0].text)
        assert "client_error" in answer[0].json()["detail"], answer[0].text
        wait_until(lambda: all(s["id"] != sid for s in gateway.sessions()), message="the session to end")
    finally:
        mediator.close()
        upstream.close()
