"""A TCP forwarder that can freeze: the network between two peers going silent.

While frozen, nothing is forwarded either way and new connections are accepted but not
connected onwards, yet no connection is closed: what a cut cable or a dropped route looks
like to both ends until TCP gives up. Thawed, everything held moves on.
"""

from __future__ import annotations

import socket
import threading

from conftest import split_address


class FreezeProxy:
    """Listens on 127.0.0.1:0 and forwards every connection to `target` (HOST:PORT)."""

    JOIN_TIMEOUT_S = 10.0

    def __init__(self, target: str) -> None:
        self.target = split_address(target)
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = False
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.threads: list[threading.Thread] = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self._spawn(self._accept)

    def freeze(self) -> None:
        self.flowing.clear()

    def thaw(self) -> None:
        self.flowing.set()

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self.lock:
            self.threads.append(thread)
        thread.start()

    def _wait_flowing(self) -> bool:
        while not self.flowing.wait(0.05):
            if self.closed:
                return False
        return not self.closed

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.sockets.append(client)
            self._spawn(self._connect, client)

    def _connect(self, client: socket.socket) -> None:
        if not self._wait_flowing():
            return
        try:
            server = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        with self.lock:
            self.sockets.append(server)
        self._spawn(self._pump, client, server)
        self._spawn(self._pump, server, client)

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
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closed = True
        with self.lock:
            sockets, threads = [self.sock, *self.sockets], list(self.threads)
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in threads:
            thread.join(self.JOIN_TIMEOUT_S)
        for sock in sockets:
            sock.close()
