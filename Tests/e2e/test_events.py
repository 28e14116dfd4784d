"""The events stream, GET /api/v1/events, over plain HTTP.

Server-Sent Events with `data:` lines holding one JSON object each (`seq`, `type` and the
object concerned). One test makes an event of every kind happen, in a known order, and
reads them back in that order; others check the admin token rules of the stream.
"""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import struct
import threading
import time
from typing import Any, Iterator

import pytest
from conftest import (TOKEN, Gateway, Sink, StreamServer, assert_problem, refused_port, roundtrip, split_address,
                      wait_until)

EVENT_TIMEOUT_S = 5.0
IO_TIMEOUT_S = 5.0


class EventStream:
    """An SSE client on a plain socket (so closing it never waits on a blocked read):
    `next()` hands out the parsed events in order."""

    def __init__(self, gateway: Gateway, *, query: str = "", auth: bool = True) -> None:
        self.sock = socket.create_connection((gateway.host, gateway.port), timeout=IO_TIMEOUT_S)
        headers = "".join(f"{name}: {value}\r\n" for name, value in gateway.headers(auth).items())
        self.sock.sendall(f"GET /api/v1/events{query} HTTP/1.1\r\nHost: {gateway.host}:{gateway.port}\r\n"
                          f"Accept: text/event-stream\r\n{headers}\r\n".encode())
        self.buffer = b""
        head = self._until(b"\r\n\r\n").decode("latin-1").split("\r\n")
        self.status = int(head[0].split()[1])
        self.headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        self.chunked = "chunked" in self.headers.get("transfer-encoding", "").lower()
        self.events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.comments: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self.sock.settimeout(None)
            self.thread.start()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError
        self.buffer += chunk

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self._fill()
        data, _, self.buffer = self.buffer.partition(marker)
        return data

    def _body(self) -> Iterator[bytes]:
        while True:
            if not self.chunked:
                if not self.buffer:
                    self._fill()
                data, self.buffer = self.buffer, b""
                yield data
                continue
            size = int(self._until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                return
            while len(self.buffer) < size + 2:
                self._fill()
            yield self.buffer[:size]
            self.buffer = self.buffer[size + 2:]

    def _read(self) -> None:
        pending, data = b"", []
        try:
            for piece in self._body():
                pending += piece
                while b"\n" in pending:
                    raw, _, pending = pending.partition(b"\n")
                    line = raw.decode("utf-8").rstrip("\r")
                    if line == "":
                        if data:
                            self.events.put(json.loads("\n".join(data)))
                            data = []
                    elif line.startswith(":"):
                        self.comments.put(line[1:].strip())
                    elif line.startswith("data:"):
                        data.append(line[5:].lstrip(" "))
                    # `id:` and `retry:` lines are allowed and not needed here.
        except (OSError, EOFError, ValueError):
            pass
        finally:
            self.events.put(None)

    def wait_subscribed(self) -> None:
        """The stream's opening comment has arrived, so the subscription is in place."""
        self.comments.get(timeout=EVENT_TIMEOUT_S)

    def next(self, timeout: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        try:
            event = self.events.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no event within {timeout}s") from None
        assert event is not None, "the events stream ended"
        return event

    def expect(self, kind: str, timeout: float = EVENT_TIMEOUT_S) -> dict[str, Any]:
        event = self.next(timeout)
        assert event["type"] == kind, f"expected {kind}, got {event}"
        return event

    def close(self) -> None:
        # Shut down to wake the reader, join it, then close: closing first would free the
        # descriptor number while the reader may still call recv on it.
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def streams() -> Iterator[list[EventStream]]:
    opened: list[EventStream] = []
    yield opened
    for stream in opened:
        stream.close()


def reset_on_data(conn: socket.socket) -> None:
    """A StreamServer handler that resets the connection (SO_LINGER 0) as soon as a byte arrives."""
    conn.settimeout(30)
    with contextlib.suppress(OSError):
        conn.recv(1)
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def test_every_kind_of_event_in_order(demo_gateway: Gateway, streams: list[EventStream]) -> None:
    gateway = demo_gateway
    stream = EventStream(gateway)
    streams.append(stream)
    assert stream.status == 200, stream.headers
    assert stream.headers["content-type"].split(";")[0] == "text/event-stream"
    stream.wait_subscribed()
    upstream = gateway.listeners()[0]["upstream"]
    resetter, sink = StreamServer(reset_on_data), Sink()
    seen: list[dict[str, Any]] = []

    def expect(kind: str) -> dict[str, Any]:
        event = stream.expect(kind)
        seen.append(event)
        return event

    try:
        listener = gateway.create_listener(name="events", listen="127.0.0.1:0", upstream=upstream)
        event = expect("listener.added")
        assert event["listener"]["id"] == listener["id"] and event["listener"]["listen"] == listener["listen"]

        with socket.create_connection(split_address(listener["listen"]), timeout=IO_TIMEOUT_S) as client:
            event = expect("session.opened")
            session_id = event["session"]["id"]
            assert event["session"]["listener"] == listener["id"]
            assert event["session"]["client"] == "%s:%d" % client.getsockname()[:2]
            assert roundtrip(client, b"one\n") == b"one\n"

            # Splice and remove a registered mediator.
            response = gateway.post(f"/api/v1/sessions/{session_id}/mediators",
                                    json={"mediator": "upper", "direction": "server_to_client"})
            assert response.status_code == 201, response.text
            hop = response.json()
            event = expect("hop.spliced")
            assert event["session"] == session_id
            assert event["hop"]["id"] == hop["id"] and event["hop"]["mediator"] == "upper"
            assert event["hop"]["spliced_at"] == {"server_to_client": 4}
            assert roundtrip(client, b"two\n") == b"TWO\n"
            response = gateway.delete(f"/api/v1/sessions/{session_id}/mediators/{hop['id']}")
            assert response.status_code == 200, response.text
            event = expect("hop.removed")
            assert event["session"] == session_id and event["hop"]["id"] == hop["id"]
            assert event["hop"]["removed_at"] == response.json()["removed_at"] == {"server_to_client": 8}

            # A mediator that resets: the hop fails and, with bypass, the session goes on.
            response = gateway.post(f"/api/v1/sessions/{session_id}/mediators",
                                    json={"address": resetter.address, "direction": "client_to_server",
                                          "on_failure": "bypass"})
            assert response.status_code == 201, response.text
            failing = response.json()
            event = expect("hop.spliced")
            assert event["hop"]["id"] == failing["id"] and event["hop"]["address"] == resetter.address
            client.sendall(b"lost\n")  # the bytes inside the failed hop are lost with it
            event = expect("hop.failed")
            assert event["session"] == session_id and event["hop"]["id"] == failing["id"]
            assert event["on_failure"] == "bypass" and isinstance(event["reason"], str) and event["reason"]
            wait_until(lambda: gateway.get(f"/api/v1/sessions/{session_id}").json()["mediators"] == [],
                       timeout=EVENT_TIMEOUT_S, message="the failed hop to be bypassed")
            assert roundtrip(client, b"three\n") == b"three\n"

            # A split whose recipient resets is dropped; a healthy one is added and removed.
            response = gateway.post(f"/api/v1/sessions/{session_id}/splits",
                                    json={"address": resetter.address, "direction": "client_to_server"})
            assert response.status_code == 201, response.text
            doomed = response.json()
            event = expect("split.added")
            assert event["session"] == session_id and event["split"]["id"] == doomed["id"]
            assert event["split"]["from_offset"] == doomed["from_offset"]
            assert roundtrip(client, b"four\n") == b"four\n"
            event = expect("split.dropped")
            assert event["session"] == session_id and event["split"]["id"] == doomed["id"]
            assert event["split"]["state"] == "dropped"

            response = gateway.post(f"/api/v1/sessions/{session_id}/splits",
                                    json={"address": sink.address, "direction": "both"})
            assert response.status_code == 201, response.text
            split = response.json()
            event = expect("split.added")
            assert event["split"]["id"] == split["id"] and set(event["split"]["from_offset"]) == {
                "client_to_server", "server_to_client"}
            assert gateway.delete(f"/api/v1/sessions/{session_id}/splits/{split['id']}").status_code == 204
            event = expect("split.removed")
            assert event["session"] == session_id and event["split"]["id"] == split["id"]

            assert gateway.delete(f"/api/v1/sessions/{session_id}").status_code == 204
            event = expect("session.closed")
            assert event["session"]["id"] == session_id and event["reason"] == "killed"

        assert gateway.delete(f"/api/v1/listeners/{listener['id']}").status_code == 204
        event = expect("listener.removed")
        assert event["listener"]["id"] == listener["id"]
    finally:
        resetter.close()
        sink.close()

    sequence = [event["seq"] for event in seen]
    assert sequence == sorted(sequence) and len(set(sequence)) == len(sequence), sequence
    assert [event["type"] for event in seen] == [
        "listener.added", "session.opened", "hop.spliced", "hop.removed", "hop.spliced", "hop.failed",
        "split.added", "split.dropped", "split.added", "split.removed", "session.closed", "listener.removed"]
    # Nothing else happened after the last expected event.
    with pytest.raises(AssertionError, match="no event"):
        stream.next(timeout=0.3)


def test_every_subscriber_gets_the_same_events(gateway: Gateway, streams: list[EventStream]) -> None:
    first, second = EventStream(gateway), EventStream(gateway)
    streams += [first, second]
    first.wait_subscribed()
    second.wait_subscribed()
    created = gateway.create_listener(listen="127.0.0.1:0", upstream=f"127.0.0.1:{refused_port()}")
    assert gateway.delete(f"/api/v1/listeners/{created['id']}").status_code == 204
    for stream in (first, second):
        added, removed = stream.expect("listener.added"), stream.expect("listener.removed")
        assert added["listener"]["id"] == removed["listener"]["id"] == created["id"]
        assert removed["seq"] > added["seq"]


def test_events_need_the_token(token_gateway: Gateway, streams: list[EventStream]) -> None:
    gateway = token_gateway
    assert_problem(gateway.get("/api/v1/events", auth=False, timeout=5), 401)
    assert_problem(gateway.get("/api/v1/events?access_token=wrong-token", auth=False, timeout=5), 401)
    assert_problem(gateway.get("/api/v1/events?access_token=", auth=False, timeout=5), 401)

    by_query = EventStream(gateway, query=f"?access_token={TOKEN}", auth=False)
    by_header = EventStream(gateway)
    streams += [by_query, by_header]
    for stream in (by_query, by_header):
        assert stream.status == 200, stream.headers
        assert stream.headers["content-type"].split(";")[0] == "text/event-stream"
        stream.wait_subscribed()
    created = gateway.create_listener(listen="127.0.0.1:0", upstream=f"127.0.0.1:{refused_port()}")
    for stream in (by_query, by_header):
        assert stream.expect("listener.added")["listener"]["id"] == created["id"]


def test_a_closed_subscriber_is_cleaned_up(gateway: Gateway) -> None:
    """Clients that go away do not pile up: many open-and-drop cycles leave the gateway fine."""
    for _ in range(20):
        with socket.create_connection((gateway.host, gateway.port), timeout=IO_TIMEOUT_S) as sock:
            sock.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
            sock.settimeout(IO_TIMEOUT_S)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    created = gateway.create_listener(listen="127.0.0.1:0", upstream=f"127.0.0.1:{refused_port()}")
    assert gateway.delete(f"/api/v1/listeners/{created['id']}").status_code == 204
    time.sleep(0.2)
    assert gateway.get("/api/v1/health").status_code == 200
    gateway.assert_alive()
