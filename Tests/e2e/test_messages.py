"""What a person reads: start-up errors, problem details, log lines and --help say what
happened in plain words (no NIO error dumps, no HTTP status in a start-up error, no Swift
type names in logs)."""

from __future__ import annotations

import re
import socket
import subprocess
from typing import Any

from conftest import (BIN, Gateway, assert_problem, connect, refused_port, roundtrip, session_of,
                      wait_until)

RUN_TIMEOUT_S = 20.0
C2S = "client_to_server"


def run_gateway(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs the binary to its exit (a start-up that fails); stdin closed, bounded in time."""
    return subprocess.run([str(BIN), *args], capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)


def demo_listen(gateway: Gateway) -> str:
    return gateway.listeners()[0]["listen"]


def readable(text: str) -> None:
    """No NIO error description and no errno dump in a message."""
    assert "error set" not in text and "errno" not in text, text


def test_refused_mediator_and_split_say_cannot_connect(demo_gateway: Gateway) -> None:
    nowhere = f"127.0.0.1:{refused_port()}"
    with connect(demo_listen(demo_gateway)) as client:
        assert roundtrip(client, b"hi") == b"hi"
        sid = session_of(demo_gateway, client)["id"]
        mediator = assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/mediators",
                                                    json={"address": nowhere, "direction": C2S}), 502)
        assert mediator["detail"].endswith(f"unreachable: cannot connect to {nowhere}: connection refused"), mediator
        readable(mediator["detail"])
        split = assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/splits",
                                                 json={"address": nowhere, "direction": C2S}), 502)
        assert split["detail"] == f"split recipient unreachable: cannot connect to {nowhere}: connection refused", split


def test_refused_upstream_is_logged_in_words(demo_gateway: Gateway) -> None:
    nowhere = f"127.0.0.1:{refused_port()}"
    created = demo_gateway.create_listener(listen="127.0.0.1:0", upstream=nowhere)
    with connect(created["listen"]) as client:
        client.settimeout(10)
        assert client.recv(1) == b""
    line = wait_until(lambda: next((l for l in demo_gateway.stderr_text().splitlines()
                                    if "upstream unreachable" in l), None), message="the log line")
    assert f"error=cannot connect to {nowhere}: connection refused" in line, line
    readable(line)


def test_log_lines_name_directions_as_the_api_does(demo_gateway: Gateway) -> None:
    with connect(demo_listen(demo_gateway)) as client:
        assert roundtrip(client, b"hi") == b"hi"
        sid = session_of(demo_gateway, client)["id"]
        response = demo_gateway.post(f"/api/v1/sessions/{sid}/mediators", json={"mediator": "upper", "direction": C2S})
        assert response.status_code == 201, response.text
        line = wait_until(lambda: next((l for l in demo_gateway.stderr_text().splitlines() if "spliced_at=" in l), None),
                          message="the splice's log line")
    assert "spliced_at=[client_to_server: 2]" in line, line
    assert "SpliceCore." not in demo_gateway.stderr_text()


def test_demo_port_in_use_says_so_without_an_http_status() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        result = run_gateway("--admin", "127.0.0.1:0", "--demo", "--demo-listen", address)
    assert result.returncode == 2, result
    assert f"cannot start the demo: listen address {address} is already in use" in result.stderr, result.stderr
    # The status's reason phrase, not "409" alone: the demo mediators' log lines carry
    # ephemeral ports, which may contain those digits.
    assert "Conflict" not in result.stderr, result.stderr


def test_admin_port_in_use_names_the_address() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        address = "127.0.0.1:%d" % taken.getsockname()[1]
        result = run_gateway("--admin", address)
    assert result.returncode == 2, result
    assert f"admin API: cannot listen on {address}: address already in use" in result.stderr, result.stderr


def test_unreadable_config_file_says_why(tmp_path) -> None:
    missing = tmp_path / "missing.json"
    result = run_gateway("--admin", "127.0.0.1:0", "--config", str(missing))
    assert result.returncode == 2, result
    assert f"cannot read config file {missing}: no such file or directory" in result.stderr, result.stderr
    result = run_gateway("--admin", "127.0.0.1:0", "--config", str(tmp_path))
    assert f"cannot read config file {tmp_path}: is a directory" in result.stderr, result.stderr


def listener_labels(metrics: str) -> set[str]:
    return set(re.findall(r'listener="([^"]+)"', metrics))


def test_a_failed_post_listeners_takes_no_id_and_no_metrics(gateway: Gateway) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        for _ in range(2):
            assert_problem(gateway.post("/api/v1/listeners",
                                        json={"listen": f"127.0.0.1:{port}", "upstream": "127.0.0.1:9"}), 409)
    created = gateway.create_listener(listen="127.0.0.1:0", upstream="127.0.0.1:9")
    assert created["id"] == "l1", created
    metrics = gateway.get("/metrics").text
    assert listener_labels(metrics) <= {"l1"}, metrics


def test_help_shows_defaults_and_no_subcommand_placeholder() -> None:
    result = run_gateway("--help")
    assert result.returncode == 0, result
    usage = next(l for l in result.stdout.splitlines() if l.startswith("USAGE:"))
    assert usage.strip() == "USAGE: splicegate [<options>]", usage
    assert "<subcommand>" not in result.stdout.split("SUBCOMMANDS:")[0], result.stdout
    flat = " ".join(result.stdout.split())
    for shown in ("(default: 127.0.0.1:8080", "(default: 30)", "(default: info)", "(default: no limit)",
                  "(default: 127.0.0.1:7000)", "(default: one per core)"):
        assert shown in flat, f"{shown} missing from --help:\n{result.stdout}"
