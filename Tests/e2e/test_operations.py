"""Operating the gateway as a process: the state file across kill -9, a corrupt state file,
graceful shutdown on SIGTERM, and /metrics as Prometheus text."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import socket
import subprocess
import time
from typing import Any, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import TOKEN, Gateway, StreamServer, connect, echo_handler, roundtrip, split_address, wait_until

EXIT_TIMEOUT_S = 15.0


@pytest.fixture
def echo() -> Iterator[StreamServer]:
    server = StreamServer(echo_handler)
    yield server
    server.close()


def refused(address: str) -> bool:
    """True when a connection to address is refused (or closed at once without relaying)."""
    try:
        sock = socket.create_connection(split_address(address), timeout=2)
    except (ConnectionRefusedError, socket.timeout, OSError):
        return True
    sock.close()
    return False


def exit_code(gateway: Gateway, timeout: float = EXIT_TIMEOUT_S) -> int:
    """Waits for the process to exit by itself; the fixture then no longer counts it as died."""
    try:
        rc = gateway.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the gateway did not exit within {timeout} s; its output:\n{gateway.output(tail=12000)}")
    gateway.url = ""
    return rc


def kill_hard(gateway: Gateway) -> None:
    os.kill(gateway.proc.pid, signal.SIGKILL)
    gateway.proc.wait(timeout=EXIT_TIMEOUT_S)
    gateway.url = ""


# -- state file ----------------------------------------------------------------------


def test_kill_9_right_after_changes_keeps_them(start_gateway, echo: StreamServer, tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state.json"
    first = start_gateway("--state-file", str(state))
    listener = first.create_listener(listen="127.0.0.1:0", upstream=echo.address, name="kept",
                                     max_sessions=7, idle_timeout_ms=60000)
    mediator = first.post("/api/v1/mediators", json={"name": "upper", "kind": "tcp", "address": "127.0.0.1:9"})
    assert mediator.status_code == 201, mediator.text
    # The API answered, so the change is on disk: no grace, no clean exit.
    kill_hard(first)

    second = start_gateway("--state-file", str(state))
    listeners = second.listeners()
    assert [l["id"] for l in listeners] == [listener["id"]], listeners
    restored = listeners[0]
    assert restored["listen"] == listener["listen"], "a restored listener must come back on its bound port"
    assert restored["upstream"] == echo.address
    assert restored["name"] == "kept"
    assert restored.get("max_sessions") == 7 and restored.get("idle_timeout_ms") == 60000, restored
    names = [m["name"] for m in second.get("/api/v1/mediators").json()["mediators"]]
    assert names == ["upper"], names
    with connect(restored["listen"]) as sock:
        assert roundtrip(sock, b"still relaying") == b"still relaying"

    # Deletions are saved as well.
    assert second.delete(f"/api/v1/listeners/{listener['id']}").status_code == 204
    assert second.delete("/api/v1/mediators/upper").status_code == 204
    kill_hard(second)
    third = start_gateway("--state-file", str(state))
    assert third.listeners() == []
    assert third.get("/api/v1/mediators").json()["mediators"] == []
    # New listeners do not reuse the ids of deleted ones.
    assert third.create_listener(listen="127.0.0.1:0", upstream=echo.address)["id"] != listener["id"]


def test_state_file_wins_over_config_which_only_seeds_the_first_start(
        start_gateway, echo: StreamServer, tmp_path: pathlib.Path) -> None:
    state = tmp_path / "state.json"
    config = tmp_path / "config.json"
    config.write_text(json.dumps({
        "listeners": [{"name": "from-config", "listen": "127.0.0.1:0", "upstream": echo.address}],
        "mediators": [{"name": "cat", "kind": "exec", "command": ["cat"]}],
    }))
    first = start_gateway("--config", str(config), "--state-file", str(state))
    seeded = first.listeners()
    assert [l["name"] for l in seeded] == ["from-config"]
    assert json.loads(state.read_text())["listeners"][0]["listen"] == seeded[0]["listen"]
    assert first.delete(f"/api/v1/listeners/{seeded[0]['id']}").status_code == 204
    kill_hard(first)

    second = start_gateway("--config", str(config), "--state-file", str(state))
    assert second.listeners() == [], "the config must not re-create what the state file says was deleted"
    mediators = second.get("/api/v1/mediators").json()["mediators"]
    assert [(m["name"], m["kind"], m.get("command")) for m in mediators] == [("cat", "exec", ["cat"])]


@pytest.mark.parametrize("content", [
    "{not json",
    "",
    json.dumps({"version": 1, "listeners": [{"id": "l1", "listen": "127.0.0.1:0"}]}),
    json.dumps({"version": 99}),
    # the largest listener id leaves none to issue next; it must not trap
    json.dumps({"version": 1, "listeners": [
        {"id": "l18446744073709551615", "listen": "127.0.0.1:0", "upstream": "127.0.0.1:9"}]}),
])
def test_corrupt_state_file_stops_start_up(start_gateway, tmp_path: pathlib.Path, content: str) -> None:
    state = tmp_path / "state.json"
    state.write_text(content)
    gateway = start_gateway("--state-file", str(state), wait=False)
    try:
        rc = gateway.proc.wait(timeout=EXIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"gateway started with a corrupt state file:\n{gateway.output()}")
    assert rc > 0, f"expected a non-zero exit, got {rc}\n{gateway.output()}"
    text = gateway.output()
    assert "state file" in text and str(state) in text, text
    assert not any(line.startswith("admin listening") for line in gateway.stdout_lines)
    assert state.read_text() == content, "a corrupt state file must be left as it was"


# -- graceful shutdown ---------------------------------------------------------------


def test_sigterm_lets_a_live_session_finish(start_gateway, echo: StreamServer) -> None:
    gateway = start_gateway("--grace-period", "30")
    listener = gateway.create_listener(listen="127.0.0.1:0", upstream=echo.address)
    live = connect(listener["listen"])
    try:
        assert roundtrip(live, b"before") == b"before"
        gateway.proc.send_signal(signal.SIGTERM)

        wait_until(lambda: refused(listener["listen"]), timeout=5, message="new connections refused")
        assert roundtrip(live, b"during the grace period" * 1000) == b"during the grace period" * 1000
        health = gateway.get("/api/v1/health")
        assert health.status_code == 200, "the admin API must answer during the grace period"
        assert [s["id"] for s in gateway.sessions()] != []
        assert gateway.alive()

        live.shutdown(socket.SHUT_WR)
        assert live.recv(1) == b""
    finally:
        live.close()
    started = time.monotonic()
    assert exit_code(gateway) == 0, gateway.output()
    assert time.monotonic() - started < 10, "the gateway should exit once its last session ends"


def test_sigterm_closes_what_is_left_after_the_grace_period(start_gateway, echo: StreamServer) -> None:
    gateway = start_gateway("--grace-period", "1")
    listener = gateway.create_listener(listen="127.0.0.1:0", upstream=echo.address)
    with connect(listener["listen"]) as live:
        assert roundtrip(live, b"x") == b"x"
        started = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        assert exit_code(gateway) == 0, gateway.output()
        assert 0.8 <= time.monotonic() - started < 10
        try:
            assert live.recv(1) == b""
        except ConnectionResetError:
            pass


# -- metrics -------------------------------------------------------------------------


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def test_metrics_are_prometheus_text_and_count_a_session(start_gateway, echo: StreamServer) -> None:
    gateway = start_gateway(token=TOKEN)
    assert gateway.get("/metrics", auth=False).status_code == 401
    listener = gateway.create_listener(listen="127.0.0.1:0", upstream=echo.address)
    with connect(listener["listen"]) as sock:
        assert roundtrip(sock, b"m" * 1234) == b"m" * 1234
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(1) == b""
    wait_until(lambda: gateway.sessions() == [], message="the session to end")

    response = gateway.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    found = samples(response.text)
    lid = ("listener", listener["id"])
    assert found[("splicegate_sessions_opened_total", frozenset([lid]))] == 1
    assert found[("splicegate_sessions_closed_total", frozenset([lid, ("reason", "completed")]))] == 1
    assert found[("splicegate_sessions_active", frozenset([lid]))] == 0
    for direction in ("client_to_server", "server_to_client"):
        assert found[("splicegate_relayed_bytes_total", frozenset([("direction", direction)]))] == 1234
    created = frozenset([("method", "POST"), ("route", "/api/v1/listeners"), ("status", "201")])
    assert found[("splicegate_admin_requests_total", created)] == 1
    assert found[("splicegate_admin_request_duration_seconds_count",
                  frozenset([("method", "POST"), ("route", "/api/v1/listeners")]))] == 1
    for name in ("splicegate_hops_spliced_total", "splicegate_splits_added_total",
                 "splicegate_split_dropped_bytes_total"):
        assert (name, frozenset()) in found, name


# -- limits --------------------------------------------------------------------------


def test_max_sessions_closes_the_extra_client_and_counts_it(start_gateway, echo: StreamServer) -> None:
    gateway = start_gateway()
    listener = gateway.create_listener(listen="127.0.0.1:0", upstream=echo.address, max_sessions=1)
    with connect(listener["listen"]) as admitted:
        assert roundtrip(admitted, b"first") == b"first"
        with connect(listener["listen"]) as extra:
            try:
                assert extra.recv(1) == b"", "the client over the limit must be closed"
            except ConnectionResetError:
                pass
        assert roundtrip(admitted, b"unaffected") == b"unaffected"
        shown = gateway.get(f"/api/v1/listeners/{listener['id']}").json()
        assert shown["rejected_sessions"] == 1 and shown["max_sessions"] == 1, shown
        found = samples(gateway.get("/metrics").text)
        key = frozenset([("listener", listener["id"]), ("limit", "listener")])
        assert found[("splicegate_sessions_rejected_total", key)] == 1


# -- event loops ---------------------------------------------------------------------


def relay_threads(gateway: Gateway) -> list[str]:
    """Names of the gateway's relay threads (the relay core names its loops relay-0, relay-1, …)."""
    tasks = pathlib.Path(f"/proc/{gateway.proc.pid}/task")
    names = [(task / "comm").read_text().strip() for task in tasks.iterdir()]
    return [name for name in names if name.startswith("relay-")]


@pytest.mark.parametrize("loops", [1, 3])
def test_event_loops_sets_the_relay_threads(start_gateway, echo: StreamServer, loops: int) -> None:
    gateway = start_gateway("--event-loops", str(loops))
    assert len(relay_threads(gateway)) == loops, relay_threads(gateway)
    listener = gateway.create_listener(listen="127.0.0.1:0", upstream=echo.address)
    clients = [connect(listener["listen"]) for _ in range(6)]
    try:
        for index, client in enumerate(clients):
            payload = f"client {index} ".encode() * 1000
            assert roundtrip(client, payload) == payload
    finally:
        for client in clients:
            client.close()


@pytest.mark.parametrize("value", ["0", "-1", "1025", "many"])
def test_bad_event_loops_stops_start_up(start_gateway, value: str) -> None:
    gateway = start_gateway("--event-loops", value, wait=False)
    assert exit_code(gateway) > 0
    assert "event-loops" in gateway.output(), gateway.output()
