"""Contract tests: schemathesis against a live gateway with openapi/openapi.yaml.

Runs the schemathesis CLI in a subprocess (bounded examples and wall time)
against a gateway on 127.0.0.1, once without and once with an admin token.
Zero failures are required. ST_SEED picks the seed (default fixed, so CI runs
are reproducible); ST_MAX_EXAMPLES the examples per operation.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import socket
import subprocess
import sys
from typing import Iterator

import pytest

from conftest import SPEC, TOKEN, Gateway

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    # Valid generated data must not be refused (a 4xx other than 401/404/409), e.g. a value
    # the spec allows answered with 422.
    "positive_data_acceptance",
])
MAX_EXAMPLES = os.environ.get("ST_MAX_EXAMPLES", "100")
SEED = os.environ.get("ST_SEED", "20261127")
# A hang guard, not a speed check: on two cores kept busy by other work one run took
# over 80 s (examples 19 s, coverage 25 s, then the fuzzing phase).
RUN_TIMEOUT_S = 600


def schemathesis(gateway: Gateway, tmp_path: pathlib.Path, *extra: str) -> subprocess.CompletedProcess[str]:
    st = pathlib.Path(sys.executable).with_name("st")
    assert st.exists(), f"schemathesis CLI not found next to {sys.executable}; run scripts/deps.sh test"
    assert gateway.host == "127.0.0.1"
    env = dict(os.environ)
    env.update({
        "SCHEMATHESIS_HOOKS": "st_hooks",
        "PYTHONPATH": str(pathlib.Path(__file__).parent),
        "SPLICEGATE_E2E_URL": gateway.url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "NO_COLOR": "1",
    })
    command = [
        str(st), "run", str(SPEC),
        "--url", gateway.url,
        "--checks", CHECKS,
        "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", MAX_EXAMPLES,
        "--seed", SEED,
        "--workers", "1",
        "--request-timeout", "5",
        "--max-redirects", "0",
        "--suppress-health-check", "all",
        "--report", "junit",
        "--report-dir", str(tmp_path / "schemathesis-report"),
        "--generation-database", ":memory:",
        *extra,
    ]
    try:
        # cwd: schemathesis keeps a cache directory there; keep it out of the repo.
        result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as error:
        output = (error.stdout or b"")[-6000:] if isinstance(error.stdout, bytes) else str(error.stdout)[-6000:]
        pytest.fail(f"schemathesis did not finish in {RUN_TIMEOUT_S}s\n{output}")
    return result


@contextlib.contextmanager
def live_sessions(gateway: Gateway, count: int = 5) -> Iterator[list[socket.socket]]:
    """Clients connected to the demo listener, so session operations find real ids."""
    host, _, port = gateway.listeners()[0]["listen"].rpartition(":")
    socks = []
    try:
        for _ in range(count):
            sock = socket.create_connection((host, int(port)), timeout=5)
            sock.sendall(b"hi")
            sock.recv(2)
            socks.append(sock)
        yield socks
    finally:
        for sock in socks:
            sock.close()


def check(result: subprocess.CompletedProcess[str], gateway: Gateway) -> None:
    gateway.assert_alive()
    if result.returncode != 0:
        pytest.fail(f"schemathesis exit {result.returncode}\n--- stdout ---\n{result.stdout[-20000:]}\n"
                    f"--- stderr ---\n{result.stderr[-4000:]}\n{gateway.output(2000)}")


def test_contract_without_token(demo_gateway: Gateway, tmp_path: pathlib.Path) -> None:
    with live_sessions(demo_gateway):
        result = schemathesis(demo_gateway, tmp_path)
    check(result, demo_gateway)


def test_contract_with_token(start_gateway, tmp_path: pathlib.Path) -> None:
    gateway = start_gateway(token=TOKEN, demo=True)
    with live_sessions(gateway):
        result = schemathesis(gateway, tmp_path, "--header", f"Authorization: Bearer {TOKEN}")
    check(result, gateway)
