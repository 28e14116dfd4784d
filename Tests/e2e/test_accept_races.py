"""A client accepted just as its listener stops accepting is not left behind.

NIO's ServerBootstrap starts a client's channel on its own event loop and closes it, never
active, when the listener has closed in the meantime. The session that channel's
initializer started must end with it: before the fix it waited for its client for ever,
which held SIGTERM's grace period open and left a session listed with 0 bytes.
"""

from __future__ import annotations

import socket
import threading

from conftest import StreamServer, echo_handler, split_address, wait_until

ROUNDS = 12
CLIENTS_BEFORE_STOP = 40


def connect_and_close_until(address: str, stop: threading.Event, counted: threading.Event) -> None:
    """Clients that connect and close at once, as fast as they can, until `stop`."""
    made = 0
    while not stop.is_set():
        try:
            socket.create_connection(split_address(address), timeout=2).close()
        except OSError:
            continue  # refused once the listener is gone: keep going until told to stop
        made += 1
        if made == CLIENTS_BEFORE_STOP:
            counted.set()


def test_clients_accepted_as_the_listener_stops_leave_no_session(gateway) -> None:
    echo = StreamServer(echo_handler)
    try:
        for _ in range(ROUNDS):
            listener = gateway.create_listener(listen="127.0.0.1:0", upstream=echo.address)
            stop, counted = threading.Event(), threading.Event()
            clients = threading.Thread(target=connect_and_close_until,
                                       args=(listener["listen"], stop, counted), daemon=True)
            clients.start()
            try:
                assert counted.wait(20), "clients could not connect"
                # Stop accepting while clients keep arriving: some are accepted as it closes.
                assert gateway.delete(f"/api/v1/listeners/{listener['id']}").status_code == 204
            finally:
                stop.set()
                clients.join(20)
            wait_until(lambda: gateway.sessions(listener=listener["id"]) == [], timeout=10,
                       message=f"sessions of {listener['id']} left behind")
    finally:
        echo.close()
