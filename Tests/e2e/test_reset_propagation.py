"""A stream cut short by a reset is passed on as a reset, not as a clean end.

When one side resets (or a mediator fails) mid-stream, the session ends and the gateway
closes the other side. With a plain close that side got a FIN after fewer bytes than were
sent, indistinguishable from a complete stream; now it gets an RST, as from HAProxy.
"""

from __future__ import annotations

import socket
import struct
import threading

from conftest import StreamServer, split_address, wait_until

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
