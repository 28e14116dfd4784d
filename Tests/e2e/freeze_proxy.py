"""A TCP forwarder that can freeze: the network between two peers going silent.

While frozen, nothing is forwarded either way and new connections are accepted but not
connected onwards, yet no connection is closed: what a cut cable or a dropped route looks
like to both ends until TCP gives up. Thawed, everything held moves on.
"""

from __future__ import annotations

import socket
import threading

from conftest import StreamServer, split_address


class FreezeProxy:
    """Listens on 127.0.0.1:0 (a StreamServer) and forwards every connection to `target`."""

    JOIN_TIMEOUT_S = 10.0

    def __init__(self, target: str) -> None:
        self.target = split_address(target)
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = threading.Event()
        self.lock = threading.Lock()
        self.upstreams: list[socket.socket] = []
        self.pumps: list[threading.Thread] = []
        self.server = StreamServer(self._forward)
        self.port = self.server.port

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def _wait_flowing(self) -> bool:
        while not self.flowing.wait(0.05):
            if self.closed.is_set():
                return False
        return not self.closed.is_set()

    def _forward(self, client: socket.socket) -> None:
        """One accepted connection: connected onwards once flowing, then pumped both ways."""
        if not self._wait_flowing():
            return
        upstream = socket.create_connection(self.target, timeout=5)
        upstream.settimeout(None)
        pump = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        with self.lock:
            self.upstreams.append(upstream)
            self.pumps.append(pump)
        pump.start()
        self._pump(client, upstream)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while self._wait_flowing():
                data = source.recv(65536)
                if not data:
                    sink.shutdown(socket.SHUT_WR)
                    return
                if not self._wait_flowing():
                    return
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Closes every connection, both sides, and joins every thread."""
        self.closed.set()
        with self.lock:
            upstreams, pumps = list(self.upstreams), list(self.pumps)
        for sock in upstreams:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.server.close()
        for pump in pumps:
            pump.join(self.JOIN_TIMEOUT_S)
        for sock in upstreams:
            sock.close()
