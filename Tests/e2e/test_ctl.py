"""`splicegate ctl` against a real gateway process.

ctl is built on the Swift client that swift-openapi-generator makes from
openapi/openapi.yaml; `--json` prints the generated models encoded again, so a
field the spec stops describing disappears from this output (and code of ctl
that reads it stops compiling). Exit codes are DESIGN.md's: 0 done, 1 a problem
(its detail on stderr), 2 usage, 3 gateway unreachable.
"""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import threading
import time
from typing import Any

from capture_tools import assert_clean, by_interface, follow, pump, sha
from conftest import (BIN, TOKEN, Gateway, Sink, StreamServer, connect, echo_handler, echoed_sessions, refused_port,
                      roundtrip, session_of, split_address, transform_handler, wait_until)

CTL_TIMEOUT_S = 30
C2S, S2C = "client_to_server", "server_to_client"


def ctl(gateway: Gateway | str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Runs `splicegate ctl ARGS` with SPLICEGATE_ADMIN_URL pointing at the gateway."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SPLICEGATE_ADMIN_")}
    full_env["SPLICEGATE_ADMIN_URL"] = gateway if isinstance(gateway, str) else gateway.url
    full_env.update(env or {})
    return subprocess.run([str(BIN), "ctl", *args], capture_output=True, text=True, env=full_env,
                          timeout=CTL_TIMEOUT_S, stdin=subprocess.DEVNULL)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0 and result.stderr == "", \
        f"{result.args}: exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def ok_json(gateway: Gateway | str, *args: str, env: dict[str, str] | None = None) -> Any:
    return json.loads(ok(ctl(gateway, *args, "--json", env=env)))


def failed(result: subprocess.CompletedProcess[str], code: int) -> str:
    """The command exited `code` with nothing on stdout; returns its stderr."""
    assert result.returncode == code and result.stdout == "", \
        f"{result.args}: expected exit {code}, got {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stderr.strip(), f"{result.args}: nothing on stderr"
    return result.stderr


def test_sessions_splice_split_remove_kill(demo_gateway: Gateway) -> None:
    upper = StreamServer(transform_handler(bytes.upper))
    sink = Sink()
    try:
        with echoed_sessions(demo_gateway, 3) as (socks, ids):
            sid = ids[0]

            # Paged one by one (the listing follows next_cursor), the API's JSON back.
            listed = ok_json(demo_gateway, "sessions", "list", "--limit", "1")
            assert listed["next_cursor"] is None
            assert [s["id"] for s in listed["sessions"]] == sorted(ids, key=lambda s: int(s[1:]))
            assert listed == demo_gateway.get("/api/v1/sessions").json()
            only_l1 = ok_json(demo_gateway, "sessions", "list", "--listener", "l1")
            assert len(only_l1["sessions"]) == 3
            assert ok_json(demo_gateway, "sessions", "list", "--listener", "l999")["sessions"] == []

            by_name = ok_json(demo_gateway, "splice", sid, "upper", "--direction", C2S)
            assert by_name["mediator"] == "upper" and by_name["spliced_at"] == {C2S: 6}
            by_address = ok_json(demo_gateway, "splice", sid, "--address", upper.address, "--direction", S2C,
                                 "--position", "0", "--on-failure", "bypass", "--drain-timeout-ms", "2000")
            assert by_address["address"] == upper.address and by_address["spliced_at"] == {S2C: 6}
            assert by_address["on_failure"] == "bypass" and by_address["drain_timeout_ms"] == 2000
            split = ok_json(demo_gateway, "split", sid, sink.address)
            assert split["direction"] == "both" and split["from_offset"] == {C2S: 6, S2C: 6}

            assert roundtrip(socks[0], b"abc\n") == b"ABC\n"
            wait_until(lambda: sorted(sink.snapshot()) == [b"ABC\n", b"ABC\n"], message="both copies")

            shown = ok_json(demo_gateway, "sessions", "show", sid)
            assert shown == demo_gateway.get(f"/api/v1/sessions/{sid}").json()
            assert [h["id"] for h in shown["mediators"]] == [by_address["id"], by_name["id"]]
            assert shown["mediators"][1]["bytes"] == {C2S: {"in": 4, "out": 4}}
            assert shown["splits"][0]["bytes"][C2S] == {"sent": 4, "dropped": 0, "discarded": 0}
            table = ok(ctl(demo_gateway, "sessions", "show", sid))
            assert by_name["id"] in table and split["id"] in table and "upper" in table
            rows = ok(ctl(demo_gateway, "sessions", "list")).splitlines()
            assert rows[0].split()[:3] == ["ID", "LISTENER", "CLIENT"] and len(rows) == 4

            removal = ok_json(demo_gateway, "remove", sid, by_name["id"])
            assert removal == {"id": by_name["id"], "removed_at": {C2S: 10}, "drained": {C2S: 0}}
            assert roundtrip(socks[0], b"plain\n") == b"PLAIN\n"
            assert f"{by_address['id']} removed from {sid}" in ok(ctl(demo_gateway, "remove", sid, by_address["id"]))
            assert roundtrip(socks[0], b"plain\n") == b"plain\n"
            assert ok(ctl(demo_gateway, "unsplit", sid, split["id"], "--json")) == ""  # 204: no JSON to print
            assert demo_gateway.get(f"/api/v1/sessions/{sid}/splits").json() == {"splits": []}
            assert "no split" in failed(ctl(demo_gateway, "unsplit", sid, split["id"]), 1)

            assert ok(ctl(demo_gateway, "sessions", "kill", sid)).strip() == f"session {sid} closed"
            assert socks[0].recv(1) == b""
            detail = demo_gateway.get(f"/api/v1/sessions/{sid}").json()["detail"]
            assert detail in failed(ctl(demo_gateway, "sessions", "show", sid), 1)
            assert detail in failed(ctl(demo_gateway, "sessions", "kill", sid, "--json"), 1)
    finally:
        upper.close()
        sink.close()


def test_failover(start_gateway) -> None:
    primary, replica = StreamServer(echo_handler), StreamServer(echo_handler)
    gateway = start_gateway()
    try:
        listener = gateway.create_listener(listen="127.0.0.1:0", upstream=primary.address, splits=[
            {"address": replica.address, "direction": C2S, "on_slow": "block", "failover": True}])
        with connect(listener["listen"]) as sock:
            assert roundtrip(sock, b"one\n") == b"one\n"
            sid = session_of(gateway, sock)["id"]
            replica_split = ok_json(gateway, "sessions", "show", sid)["splits"][0]
            assert replica_split["failover"] is True and replica_split["from_offset"] == {C2S: 0}
            moved = ok_json(gateway, "failover", sid, replica_split["id"])
            assert moved["server"] == replica.address and moved["splits"] == []
            assert roundtrip(sock, b"two\n") == b"two\n"
            # Not a split any more: the API's 404 detail, exit 1.
            assert "split" in failed(ctl(gateway, "failover", sid, replica_split["id"]), 1)
    finally:
        primary.close()
        replica.close()


def test_listeners_and_mediators(gateway: Gateway) -> None:
    added = ok_json(gateway, "mediators", "add", "m1", "127.0.0.1:9", "--proxy-protocol")
    assert added == {"name": "m1", "kind": "tcp", "address": "127.0.0.1:9", "proxy_protocol": True, "in_use": 0}
    assert ok_json(gateway, "mediators", "list") == gateway.get("/api/v1/mediators").json()
    assert "m1" in ok(ctl(gateway, "mediators", "list"))
    assert "already" in failed(ctl(gateway, "mediators", "add", "m1", "127.0.0.1:9"), 1)
    assert ok(ctl(gateway, "mediators", "remove", "m1")).strip() == "mediator m1 unregistered"
    failed(ctl(gateway, "mediators", "remove", "m1"), 1)

    listener = ok_json(gateway, "listeners", "add", "127.0.0.1:0", "127.0.0.1:9", "--name", "ctl test",
                       "--connect-timeout-ms", "1000")
    assert listener["name"] == "ctl test" and listener["connect_timeout_ms"] == 1000
    assert listener["listen"] != "127.0.0.1:0"
    assert ok_json(gateway, "listeners", "list") == gateway.get("/api/v1/listeners").json()
    assert ok_json(gateway.url + "/", "listeners", "list") == gateway.get("/api/v1/listeners").json()
    assert listener["listen"] in ok(ctl(gateway, "listeners", "list"))
    failed(ctl(gateway, "listeners", "add", listener["listen"], "127.0.0.1:9"), 1)  # address in use: 409
    failed(ctl(gateway, "listeners", "add", "127.0.0.1:0", "127.0.0.1:0"), 1)  # upstream port 0: 422
    ok(ctl(gateway, "listeners", "remove", listener["id"], "--close-sessions"))
    assert gateway.listeners() == []
    failed(ctl(gateway, "listeners", "remove", listener["id"]), 1)


def test_usage_errors_exit_2(gateway: Gateway) -> None:
    for args in (["splice", "s1"], ["splice", "s1", "upper", "--address", "127.0.0.1:9"],
                 ["splice", "s1", "upper", "--direction", "sideways"], ["sessions", "show"], ["bogus"],
                 ["split", "s1", "127.0.0.1:9", "--on-slow", "never"], ["sessions", "list", "--limit", "x"], []):
        failed(ctl(gateway, *args), 2)
    assert "admin URL" in failed(ctl("not a url", "sessions", "list"), 2)
    failed(ctl(gateway, "sessions", "list", "--token-file", "/nonexistent/token"), 2)
    help_text = ok(ctl(gateway, "--help"))
    assert "sessions" in help_text and "Exit codes" in help_text


def test_unreachable_gateway_exits_3() -> None:
    url = f"http://127.0.0.1:{refused_port()}"
    assert "unreachable" in failed(ctl(url, "sessions", "list"), 3)
    failed(ctl(url, "splice", "s1", "upper", "--json"), 3)


def test_token_from_file_and_environment(token_gateway: Gateway, tmp_path) -> None:
    stderr = failed(ctl(token_gateway, "listeners", "list"), 1)
    assert "401" in stderr
    failed(ctl(token_gateway, "listeners", "list", env={"SPLICEGATE_ADMIN_TOKEN": "wrong"}), 1)
    assert ok_json(token_gateway, "listeners", "list", env={"SPLICEGATE_ADMIN_TOKEN": TOKEN}) == {"listeners": []}
    token_file = tmp_path / "ctl-token"
    token_file.write_text(TOKEN + "\n")
    assert ok_json(token_gateway, "listeners", "list", "--token-file", str(token_file)) == {"listeners": []}


def ctl_process(gateway: Gateway, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPLICEGATE_ADMIN_")}
    env["SPLICEGATE_ADMIN_URL"] = gateway.url
    return subprocess.Popen([str(BIN), "ctl", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, stdin=subprocess.DEVNULL)


class Lines:
    """A process's stdout lines, read on a thread so a test can wait for them with a deadline."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.queue.put(line)
        self.queue.put(None)

    def next(self, timeout: float) -> str | None:
        """The next line, or None when none came within `timeout` (or the output ended)."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


def subscribed(gateway: Gateway, lines: Lines) -> dict[str, Any]:
    """Adds listeners until ctl prints one's event: from then on it sees every event."""
    for _ in range(100):
        added = gateway.create_listener(listen="127.0.0.1:0", upstream="127.0.0.1:9")
        line = lines.next(timeout=0.5)
        if line is not None:
            event = json.loads(line)
            assert event["type"] == "listener.added", event
            return event
    raise AssertionError(f"ctl events printed nothing (last listener {added['id']})")


def test_events_follow(demo_gateway: Gateway) -> None:
    process = ctl_process(demo_gateway, "events", "--follow", "--json")
    try:
        lines = Lines(process)
        subscribed(demo_gateway, lines)
        with connect(demo_gateway.listeners()[0]["listen"]) as sock:
            assert roundtrip(sock, b"hi") == b"hi"
            sid = session_of(demo_gateway, sock)["id"]
            hop = demo_gateway.post(f"/api/v1/sessions/{sid}/mediators",
                                    json={"mediator": "upper", "direction": "both"}).json()
            assert demo_gateway.delete(f"/api/v1/sessions/{sid}").status_code == 204
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + 10
        while not any(e["type"] == "session.closed" for e in seen) and time.monotonic() < deadline:
            line = lines.next(timeout=max(0.0, deadline - time.monotonic()))
            assert line is not None, f"event stream ended early: {seen}\n{process.stderr}"
            event = json.loads(line)
            if event["type"] != "listener.added":
                seen.append(event)
        assert [e["type"] for e in seen] == ["session.opened", "hop.spliced", "session.closed"]
        assert [e["seq"] for e in seen] == sorted(e["seq"] for e in seen)
        assert seen[0]["session"]["id"] == sid and seen[1]["hop"]["id"] == hop["id"]
        assert seen[2]["reason"] == "killed"
        assert process.poll() is None, "--follow ended by itself"
    finally:
        process.terminate()
        process.wait(timeout=CTL_TIMEOUT_S)
        process.stdout.close()
        process.stderr.close()


def test_events_count_prints_and_exits(gateway: Gateway) -> None:
    process = ctl_process(gateway, "events", "--count", "1")
    try:
        lines = Lines(process)
        for _ in range(100):
            listener = gateway.create_listener(listen="127.0.0.1:0", upstream="127.0.0.1:9")
            line = lines.next(timeout=0.5)
            if line is not None:
                break
        assert line is not None and " listener.added listener=" in line, line
        assert process.wait(timeout=CTL_TIMEOUT_S) == 0
        assert lines.next(timeout=CTL_TIMEOUT_S) is None, "more than --count events"
        assert listener["id"]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=CTL_TIMEOUT_S)
        process.stdout.close()
        process.stderr.close()


# -- capture ----------------------------------------------------------------------------------

PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"  # a section header block opens every pcapng file


def capture_process(gateway: Gateway, *args: str) -> subprocess.Popen[bytes]:
    """`splicegate ctl capture ARGS` in the background, stdout and stderr as pipes of bytes."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPLICEGATE_ADMIN_")}
    env["SPLICEGATE_ADMIN_URL"] = gateway.url
    return subprocess.Popen([str(BIN), "ctl", "capture", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, stdin=subprocess.DEVNULL)


def ended_cleanly(process: subprocess.Popen[bytes]) -> bytes:
    """The capture exits 0 by itself with nothing on stderr; returns what it wrote to stdout."""
    stdout, stderr = process.communicate(timeout=CTL_TIMEOUT_S)
    assert process.returncode == 0 and stderr == b"", f"exit {process.returncode}: {stderr.decode(errors='replace')}"
    return stdout


def stop(process: subprocess.Popen[bytes]) -> None:
    """Cleanup: kills the process if it still runs and closes its pipes."""
    if process.poll() is None:
        process.kill()
    process.wait(timeout=CTL_TIMEOUT_S)
    for pipe in (process.stdout, process.stderr):
        if pipe is not None:
            pipe.close()


def lowercase(size: int) -> bytes:
    return bytes(ord("a") + byte % 26 for byte in os.urandom(size))


def test_capture_session_to_file_holds_each_direction_exactly(gateway: Gateway, tmp_path) -> None:
    """An upstream that answers in upper case, so each direction's bytes are its own."""
    upper = StreamServer(transform_handler(bytes.upper))
    out = tmp_path / "session.pcapng"
    process = None
    try:
        listener = gateway.create_listener(listen="127.0.0.1:0", upstream=upper.address)
        with connect(listener["listen"]) as sock:
            session = session_of(gateway, sock)
            process = capture_process(gateway, session["id"], "-o", str(out))
            wait_until(lambda: gateway.get(f"/api/v1/sessions/{session['id']}").json()["captures"],
                       message="the capture listed on the session")
            sent = lowercase(300_000)
            assert pump(sock, sent) == sent.upper()
        # The session has ended, and with it the capture.
        assert ended_cleanly(process) == b"", "-o FILE writes nothing on stdout"
    finally:
        if process is not None:
            stop(process)
        upper.close()
    assert_clean(out)
    points = by_interface(out)
    assert sorted(points) == ["client", "server"] and all(len(found) == 1 for found in points.values())
    assert points["client"][0]["src"] == split_address(session["client"])
    followed = follow(out, points["client"][0]["stream"], points["server"][0]["stream"])
    for to_server, to_client in followed.values():
        assert (sha(to_server), sha(to_client)) == (sha(sent), sha(sent.upper()))


def test_capture_listener_holds_a_stream_per_session(gateway: Gateway, tmp_path) -> None:
    """One session open when the capture starts, one opened while it runs."""
    upper = StreamServer(transform_handler(bytes.upper))
    out = tmp_path / "listener.pcapng"
    try:
        listener = gateway.create_listener(listen="127.0.0.1:0", upstream=upper.address)
        with connect(listener["listen"]) as first:
            first_id = session_of(gateway, first)["id"]
            process = capture_process(gateway, "--listener", listener["id"], "-o", str(out), "--points", "edges",
                                      "--direction", "both", "--buffer-bytes", str(1 << 20))
            try:
                wait_until(lambda: gateway.get(f"/api/v1/sessions/{first_id}").json()["captures"],
                           message="the listener's capture listed on its open session")
                with connect(listener["listen"]) as second:
                    sent = {first.getsockname()[1]: lowercase(40_000), second.getsockname()[1]: lowercase(50_000)}
                    for sock in (first, second):
                        payload = sent[sock.getsockname()[1]]
                        assert pump(sock, payload) == payload.upper()
                wait_until(lambda: not gateway.sessions(listener=listener["id"]), message="both sessions to end")
                assert gateway.delete(f"/api/v1/listeners/{listener['id']}").status_code == 204
                assert ended_cleanly(process) == b""
            finally:
                stop(process)
    finally:
        upper.close()
    assert_clean(out)
    points = by_interface(out)
    assert len(points["client"]) == 2 and len(points["server"]) == 2
    followed = follow(out, *(found["stream"] for found in points["client"]))
    for found in points["client"]:
        payload = sent[found["src"][1]]
        to_server, to_client = followed[found["stream"]]
        assert (sha(to_server), sha(to_client)) == (sha(payload), sha(payload.upper()))


def test_capture_to_a_pipe_streams_and_ends_cleanly_when_interrupted_or_the_reader_leaves(demo_gateway: Gateway) -> None:
    listen = demo_gateway.listeners()[0]["listen"]
    for ending in ("SIGINT", "reader left"):
        with connect(listen) as sock:
            sid = session_of(demo_gateway, sock)["id"]
            process = capture_process(demo_gateway, sid)
            try:
                wait_until(lambda sid=sid: demo_gateway.get(f"/api/v1/sessions/{sid}").json()["captures"],
                           message="the capture listed on the session")
                assert roundtrip(sock, b"live\n") == b"live\n"
                # Written as it arrives: the file's start is readable while the session lives.
                assert process.stdout is not None
                ready, _, _ = select.select([process.stdout], [], [], CTL_TIMEOUT_S)
                assert ready, "nothing written while the session is open"
                assert os.read(process.stdout.fileno(), 4) == PCAPNG_MAGIC
                if ending == "SIGINT":
                    process.send_signal(signal.SIGINT)
                else:
                    process.stdout.close()
                    assert roundtrip(sock, b"more\n") == b"more\n"  # packets for a closed pipe
                assert process.wait(timeout=CTL_TIMEOUT_S) == 0
                assert process.stderr is not None and process.stderr.read() == b""
                # The session lives on; its capture ends. The gateway notices a reader that
                # left when a write to it fails, which can take more than one batch of packets.
                wait_until(lambda sock=sock, sid=sid: roundtrip(sock, b"still\n") == b"still\n" and
                           demo_gateway.get(f"/api/v1/sessions/{sid}").json()["captures"] == [],
                           message=f"the capture to end after {ending}")
            finally:
                stop(process)


def test_capture_problems_exit_1_and_usage_errors_2(demo_gateway: Gateway, tmp_path) -> None:
    out = tmp_path / "never.pcapng"
    detail = demo_gateway.get("/api/v1/sessions/s999999/capture").json()["detail"]
    assert detail in failed(ctl(demo_gateway, "capture", "s999999", "-o", str(out)), 1)
    assert demo_gateway.get("/api/v1/listeners/l999999/capture").json()["detail"] in \
        failed(ctl(demo_gateway, "capture", "--listener", "l999999", "-o", str(out)), 1)
    with connect(demo_gateway.listeners()[0]["listen"]) as sock:
        sid = session_of(demo_gateway, sock)["id"]
        assert "400" in failed(ctl(demo_gateway, "capture", sid, "--buffer-bytes", "12", "-o", str(out)), 1)
        for args in ([], [sid, "--listener", "l1"], [sid, "--points", "all"], [sid, "--direction", "sideways"]):
            failed(ctl(demo_gateway, "capture", *args, "-o", str(out)), 2)
        assert demo_gateway.get(f"/api/v1/sessions/{sid}").json()["captures"] == []
    assert not out.exists(), "a refused capture leaves no file"
    help_text = ok(ctl(demo_gateway, "capture", "--help"))
    assert "--json" in help_text and "pcapng" in help_text
    assert "unreachable" in failed(ctl(f"http://127.0.0.1:{refused_port()}", "capture", "s1", "-o", str(out)), 3)
