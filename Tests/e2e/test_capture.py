"""Live capture as pcapng (issue 13), read back with Debian's tshark.

Each test captures real sessions through a real gateway, then checks what Wireshark's
engine makes of the file: it reads cleanly, `follow,tcp,raw` gives back exactly the bytes
each side sent (compared by SHA-256), a hop's input and output points differ by exactly
its transform, an HTTP exchange is dissected as HTTP, a listener capture holds every
session, and a reader that never reads loses packets, not bytes of the session.
"""

from __future__ import annotations

import os
import pathlib
import socket
import threading

from capture_tools import (CaptureStream, assert_clean, by_interface, follow, interface_statistics, packet_layers_only,
                           pump, run_tshark, sha, stderr_problems)
from conftest import (Gateway, Sink, StreamServer, assert_problem, connect, echo_handler, recv_exactly, session_of,
                      split_address, wait_until)

C2S = "client_to_server"
S2C = "server_to_client"
MiB = 1 << 20


def demo_listener(gateway: Gateway) -> dict:
    return next(listener for listener in gateway.listeners() if listener.get("name") == "demo")


def start_capture(gateway: Gateway, path: str, out: pathlib.Path, **params) -> CaptureStream:
    return CaptureStream(gateway.url + path, out, headers=gateway.headers(), params=params)


def test_16_mib_session_is_followed_byte_exact_on_both_legs(demo_gateway: Gateway, tmp_path: pathlib.Path) -> None:
    payload = os.urandom(16 * MiB)
    with connect(demo_listener(demo_gateway)["listen"]) as client:
        session = session_of(demo_gateway, client)
        capture = start_capture(demo_gateway, f"/api/v1/sessions/{session['id']}/capture",
                                tmp_path / "16mib.pcapng", buffer_bytes=256 * MiB)
        listed = wait_until(lambda: demo_gateway.get(f"/api/v1/sessions/{session['id']}").json()["captures"],
                            message="the capture listed on the session")
        assert listed[0]["points"] == "edges" and listed[0]["direction"] == "both" and listed[0]["dropped"] == 0
        echoed = pump(client, payload)
    assert echoed == payload
    path = capture.wait()
    assert_clean(path)
    points = by_interface(path)
    assert sorted(points) == ["client", "server"] and all(len(s) == 1 for s in points.values())
    client_host, client_port = client_address = points["client"][0]["src"]
    assert points["client"][0]["dst"] == split_address(demo_listener(demo_gateway)["listen"])
    assert f"{client_host}:{client_port}" == session["client"]
    assert points["server"][0]["dst"] == split_address(session["server"])
    followed = follow(path, points["client"][0]["stream"], points["server"][0]["stream"])
    for sent, answered in followed.values():
        assert (sha(sent), sha(answered)) == (sha(payload), sha(payload))
    stats = interface_statistics(path)
    assert stats["client"]["dropped"] == 0 and stats["server"]["dropped"] == 0
    assert stats["client"]["received"] > 16 * MiB // 65535


def test_hop_spliced_and_removed_mid_stream_shows_its_transform(demo_gateway: Gateway, tmp_path: pathlib.Path) -> None:
    """`upper` spliced client-to-server between chunks A and C: h.in holds B, h.out upper(B),
    the client leg A+B+C and the server leg A+upper(B)+C; comments mark the splice, the
    removal and a split added before C at their offsets."""
    letters = bytes(range(ord("a"), ord("z") + 1))
    a, b, c = (bytes(letters[x % 26] for x in os.urandom(256 * 1024)) for _ in range(3))
    with connect(demo_listener(demo_gateway)["listen"]) as client:
        session = session_of(demo_gateway, client)["id"]
        capture = start_capture(demo_gateway, f"/api/v1/sessions/{session}/capture", tmp_path / "hops.pcapng",
                                points="hops", buffer_bytes=64 * MiB)
        wait_until(lambda: demo_gateway.get(f"/api/v1/sessions/{session}").json()["captures"])
        client.sendall(a)
        assert recv_exactly(client, len(a)) == a
        response = demo_gateway.post(f"/api/v1/sessions/{session}/mediators", json={"mediator": "upper", "direction": C2S})
        assert response.status_code == 201, response.text
        hop = response.json()
        assert hop["spliced_at"] == {C2S: len(a)}
        client.sendall(b)
        assert recv_exactly(client, len(b)) == b.upper()
        removal = demo_gateway.delete(f"/api/v1/sessions/{session}/mediators/{hop['id']}")
        assert removal.status_code == 200, removal.text
        assert removal.json()["removed_at"] == {C2S: len(a) + len(b)}
        recipient = Sink()
        try:
            split = demo_gateway.post(f"/api/v1/sessions/{session}/splits", json={"address": recipient.address, "direction": C2S})
            assert split.status_code == 201, split.text
            assert pump(client, c) == c
            wait_until(lambda: recipient.snapshot() == [c], message="the split recipient to get C")
        finally:
            recipient.close()
    path = capture.wait()
    assert_clean(path)
    points = by_interface(path)
    assert sorted(points) == sorted(["client", "server", f"{hop['id']}.in", f"{hop['id']}.out"])
    followed = follow(path, *(found[0]["stream"] for found in points.values()))
    got = {name: followed[found[0]["stream"]] for name, found in points.items()}
    assert tuple(map(sha, got["client"])) == (sha(a + b + c), sha(a + b.upper() + c))
    assert tuple(map(sha, got["server"])) == (sha(a + b.upper() + c), sha(a + b.upper() + c))
    hop_in, hop_out = got[f"{hop['id']}.in"][0], got[f"{hop['id']}.out"][0]
    assert sha(hop_in) == sha(b) and sha(hop_out) == sha(b.upper()), "the hop's points differ by its transform"
    comments = run_tshark("-r", str(path), "-Y", "frame.comment", "-T", "fields", "-e", "frame.comment").stdout
    assert f"{hop['id']} (" in comments and f"spliced into {C2S} at offset {len(a)}" in comments
    assert f"{hop['id']} removed from {C2S} at offset {len(a) + len(b)}" in comments
    assert f"{split.json()['id']} split of {C2S} to {recipient.address} from offset {len(a) + len(b)}" in comments


def test_http_through_a_listener_capture_is_dissected_as_http(gateway: Gateway, tmp_path: pathlib.Path) -> None:
    import http.server

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            body = b"hello from upstream\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        upstream_port = server.server_address[1]
        listener = gateway.create_listener(listen="127.0.0.1:0", upstream=f"127.0.0.1:{upstream_port}")
        capture = start_capture(gateway, f"/api/v1/listeners/{listener['id']}/capture", tmp_path / "http.pcapng")
        with connect(listener["listen"]) as client:
            client.sendall(b"GET /greeting HTTP/1.0\r\nHost: upstream\r\n\r\n")
            answer = bytearray()
            while chunk := client.recv(65536):
                answer += chunk
        assert answer.endswith(b"hello from upstream\n")
        wait_until(lambda: not gateway.sessions(listener=listener["id"]), message="the session to end")
        assert gateway.delete(f"/api/v1/listeners/{listener['id']}").status_code == 204
        path = capture.wait()
    finally:
        server.shutdown()
        server.server_close()
    assert_clean(path)
    listen_port = split_address(listener["listen"])[1]
    decoded = run_tshark("-r", str(path), "-d", f"tcp.port=={listen_port},http", "-d", f"tcp.port=={upstream_port},http",
                         "-Y", "http", "-T", "fields", "-E", "separator=|", "-e", "frame.interface_name",
                         "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code").stdout
    rows = sorted(line.split("|") for line in decoded.splitlines())
    assert rows == [["client", "", "", "200"], ["client", "GET", "/greeting", ""],
                    ["server", "", "", "200"], ["server", "GET", "/greeting", ""]], decoded


def test_listener_capture_holds_200_concurrent_sessions_each_exact(gateway: Gateway, tmp_path: pathlib.Path) -> None:
    """100 sessions open before the capture starts, 100 while it runs; each sends its own
    bytes afterwards, and the file has 200 client-leg streams, each exact both ways."""
    echo = StreamServer(echo_handler)
    clients: list[socket.socket] = []
    try:
        listener = gateway.create_listener(listen="127.0.0.1:0", upstream=echo.address)
        early = [connect(listener["listen"]) for _ in range(100)]
        clients += early
        for sock in early:
            sock.sendall(b"before the capture\n")
            assert recv_exactly(sock, 19) == b"before the capture\n"
        capture = start_capture(gateway, f"/api/v1/listeners/{listener['id']}/capture", tmp_path / "listener.pcapng",
                                buffer_bytes=128 * MiB)
        wait_until(lambda: all(s["captures"] for s in gateway.sessions(listener=listener["id"])),
                   message="every open session to list the capture")
        clients += [connect(listener["listen"]) for _ in range(100)]
        payloads = {sock.getsockname()[1]: os.urandom(20_000 + index) for index, sock in enumerate(clients)}
        threads = [threading.Thread(target=lambda s=sock: payloads.__setitem__(
            -s.getsockname()[1], pump(s, payloads[s.getsockname()[1]])), daemon=True) for sock in clients]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        for port, payload in list(payloads.items()):
            if port > 0:
                assert payloads[-port] == payload, f"client {port} got other bytes back"
        wait_until(lambda: not gateway.sessions(listener=listener["id"]), timeout=30, message="sessions to end")
        assert gateway.delete(f"/api/v1/listeners/{listener['id']}").status_code == 204
        path = capture.wait(120)
    finally:
        for sock in clients:
            sock.close()
        echo.close()
    assert_clean(path)
    client_streams = by_interface(path)["client"]
    assert len(client_streams) == 200
    followed = follow(path, *(found["stream"] for found in client_streams))
    for found in client_streams:
        payload = payloads[found["src"][1]]
        sent, answered = followed[found["stream"]]
        assert (sha(sent), sha(answered)) == (sha(payload), sha(payload)), f"stream of client port {found['src'][1]}"
    assert len(by_interface(path)["server"]) == 200


def test_a_reader_that_never_reads_loses_packets_not_session_bytes(demo_gateway: Gateway, tmp_path: pathlib.Path) -> None:
    payload = os.urandom(32 * MiB)
    with connect(demo_listener(demo_gateway)["listen"]) as client:
        session = session_of(demo_gateway, client)["id"]
        host, port = split_address(demo_gateway.url.removeprefix("http://"))
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect((host, port))
        stalled.settimeout(60)
        try:
            stalled.sendall(f"GET /api/v1/sessions/{session}/capture?buffer_bytes=65536 HTTP/1.0\r\n"
                            f"Host: {host}\r\n\r\n".encode())
            wait_until(lambda: demo_gateway.get(f"/api/v1/sessions/{session}").json()["captures"],
                       message="the capture listed on the session")
            assert pump(client, payload) == payload, "the session's bytes are exact"
            # The session ended with its reader stalled; now read what the capture kept.
            received = bytearray()
            while chunk := stalled.recv(1 << 16):
                received += chunk
        finally:
            stalled.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.") and b" 200 " in head.split(b"\r\n")[0], head[:200]
    path = tmp_path / "stalled.pcapng"
    path.write_bytes(body)
    stats = interface_statistics(path)
    assert stats["client"]["dropped"] > 0 and stats["server"]["dropped"] > 0, stats
    # Packets are missing on purpose, so tshark's sequence analysis warns; nothing is malformed.
    result = run_tshark(*packet_layers_only(), "-r", str(path), "-Y", "_ws.malformed", "-T", "fields", "-e", "frame.number")
    assert result.stdout.strip() == "" and not stderr_problems(result.stderr)


def test_payload_that_looks_like_a_malformed_protocol_leaves_the_capture_clean(demo_gateway: Gateway,
                                                                             tmp_path: pathlib.Path) -> None:
    """Session bytes are the client's business: a payload tshark's Thrift heuristic takes for
    a Thrift call with a varint too large (as random test bytes once did) must not make a
    correct capture look broken."""
    thrift_like = bytes([0x82, 0x21, 0x01, 0x04]) + b"ping" + bytes([0x15, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x00])
    with connect(demo_listener(demo_gateway)["listen"]) as client:
        session = session_of(demo_gateway, client)["id"]
        capture = start_capture(demo_gateway, f"/api/v1/sessions/{session}/capture", tmp_path / "thrift.pcapng")
        wait_until(lambda: demo_gateway.get(f"/api/v1/sessions/{session}").json()["captures"])
        client.sendall(thrift_like)
        assert recv_exactly(client, len(thrift_like)) == thrift_like
    assert_clean(capture.wait())


def test_bad_capture_queries_are_400_and_unknown_ids_404(demo_gateway: Gateway) -> None:
    with connect(demo_listener(demo_gateway)["listen"]) as client:
        session = session_of(demo_gateway, client)["id"]
        listener = demo_listener(demo_gateway)["id"]
        for path in (f"/api/v1/sessions/{session}/capture", f"/api/v1/listeners/{listener}/capture"):
            assert "edges or hops" in assert_problem(demo_gateway.get(path, params={"points": "all"}), 400)["detail"]
            assert_problem(demo_gateway.get(path, params={"direction": "sideways"}), 400)
            assert_problem(demo_gateway.get(path, params={"buffer_bytes": "12"}), 400)
            assert_problem(demo_gateway.get(path, params={"snaplen": "1"}), 422)
        assert demo_gateway.get(f"/api/v1/sessions/{session}").json()["captures"] == []
    assert_problem(demo_gateway.get("/api/v1/sessions/s999999/capture"), 404)
    assert_problem(demo_gateway.get("/api/v1/listeners/l999999/capture"), 404)
