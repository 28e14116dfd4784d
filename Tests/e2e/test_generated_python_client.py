"""A Python client generated from openapi/openapi.yaml drives a real gateway.

openapi-python-client writes the client into .build/e2e/python-client (with
--fail-on-warning: a spec it cannot read whole fails here), and every call below
goes through its typed functions and models: answers are read as the generated
`Session`, `Hop`, `Split`, `HopRemoval` … and every error as the generated
`Problem`. A response field removed from the spec is an attribute the generated
model no longer has, so these tests fail.
"""

from __future__ import annotations

import importlib
import os
import pathlib
import shutil
import subprocess
import sys
from types import ModuleType
from typing import Any, Iterator

import httpx
import pytest

from conftest import (ROOT, SPEC, TOKEN, Gateway, Sink, StreamServer, connect, echo_handler, echoed_sessions,
                      refused_port, roundtrip, session_of, transform_handler, wait_until)

CONFIG = ROOT / "openapi" / "python-client-config.yaml"
OUT = ROOT / ".build" / "e2e" / "python-client"
PACKAGE = "splicegate_client"
GENERATE_TIMEOUT_S = 120
TIMEOUT = httpx.Timeout(10.0)


@pytest.fixture(scope="module")
def api() -> Iterator[ModuleType]:
    """The generated package, written afresh from the spec for this run."""
    generator = pathlib.Path(sys.executable).with_name("openapi-python-client")
    assert generator.exists(), f"{generator} missing; run scripts/deps.sh test"
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    env = dict(os.environ)
    # The generator formats its output with ruff from the same venv.
    env["PATH"] = f"{generator.parent}{os.pathsep}{env.get('PATH', '')}"
    result = subprocess.run(
        [str(generator), "generate", "--path", str(SPEC), "--config", str(CONFIG), "--meta", "none",
         "--output-path", str(OUT / PACKAGE), "--fail-on-warning"],
        cwd=OUT, env=env, capture_output=True, text=True, timeout=GENERATE_TIMEOUT_S, stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "warning" not in output.lower(), f"generator:\n{output}"
    sys.path.insert(0, str(OUT))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(OUT))
        for name in [name for name in sys.modules if name == PACKAGE or name.startswith(PACKAGE + ".")]:
            del sys.modules[name]


class Tag:
    """The generated operations of one tag: `Tag("sessions").list_sessions` is that module."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __getattr__(self, operation: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.api.{self.tag}.{operation}")


def module(name: str) -> Any:
    """A generated module (`models`, `types`) or, for `api.TAG`, that tag's operations."""
    if name.startswith("api."):
        return Tag(name.removeprefix("api."))
    return importlib.import_module(f"{PACKAGE}.{name}")


def client_for(gateway: Gateway, api: ModuleType, token: str | None = None) -> Any:
    if token is None:
        return api.Client(base_url=gateway.url, raise_on_unexpected_status=True, timeout=TIMEOUT)
    return api.AuthenticatedClient(base_url=gateway.url, token=token, raise_on_unexpected_status=True,
                                   timeout=TIMEOUT)


def problem(answer: Any, status: int) -> Any:
    """The answer is the generated Problem with this status."""
    models = module("models")
    assert isinstance(answer, models.Problem), f"expected a Problem, got {answer!r}"
    assert answer.status == status and answer.type_ and answer.title and answer.detail, answer
    return answer


def test_sessions_hops_splits_and_paging(demo_gateway: Gateway, api: ModuleType) -> None:
    models, sessions, mediation, splitting = (module("models"), module("api.sessions"), module("api.mediation"),
                                              module("api.splitting"))
    client = client_for(demo_gateway, api)
    upper = StreamServer(transform_handler(bytes.upper))
    sink = Sink()
    try:
        with echoed_sessions(demo_gateway, 3) as (socks, ids):
            by_name = mediation.splice_mediator.sync(ids[0], client=client, body=models.HopCreateByName(
                mediator="upper", direction=models.DirectionSelection.CLIENT_TO_SERVER))
            assert isinstance(by_name, models.Hop) and by_name.mediator == "upper"
            assert by_name.spliced_at.client_to_server == 6 and not by_name.spliced_at.server_to_client
            by_address = mediation.splice_mediator.sync(ids[0], client=client, body=models.HopCreateByAddress(
                address=upper.address, direction=models.DirectionSelection.SERVER_TO_CLIENT, position=0,
                on_failure=models.FailurePolicy.BYPASS))
            assert isinstance(by_address, models.Hop) and by_address.address == upper.address
            assert by_address.on_failure == models.FailurePolicy.BYPASS and by_address.position == 0
            split = splitting.add_split.sync(ids[0], client=client, body=models.SplitCreate(
                address=sink.address, direction=models.DirectionSelection.BOTH))
            assert isinstance(split, models.Split) and split.from_offset.client_to_server == 6
            assert split.from_offset.server_to_client == 6 and split.on_slow == models.SlowPolicy.DROP

            # client_to_server passes `upper` by name, server_to_client the ad-hoc one again.
            assert roundtrip(socks[0], b"abc\n") == b"ABC\n"
            wait_until(lambda: sorted(sink.snapshot()) == [b"ABC\n", b"ABC\n"], message="both copies")

            seen: list[Any] = []
            cursor: Any = module("types").UNSET
            for _ in range(10):
                page = sessions.list_sessions.sync(client=client, limit=1, cursor=cursor)
                assert isinstance(page, models.SessionList) and len(page.sessions) <= 1
                seen += page.sessions
                if page.next_cursor is None:
                    break
                cursor = page.next_cursor
            # By ascending id, one per page, each exactly once.
            assert [s.id for s in seen] == sorted(ids, key=lambda sid: int(sid[1:]))
            first = next(s for s in seen if s.id == ids[0])
            assert [hop.id for hop in first.mediators] == [by_address.id, by_name.id]
            assert first.mediators[1].bytes_.client_to_server.in_ == 4
            assert first.mediators[1].bytes_.client_to_server.out == 4
            assert first.bytes_.client_to_server == 10 and first.bytes_.server_to_client == 10
            copied = first.splits[0]
            assert copied.id == split.id and copied.bytes_.client_to_server.sent == 4
            assert copied.bytes_.server_to_client.sent == 4 and copied.state == models.SplitState.ACTIVE

            removal = mediation.remove_hop.sync(ids[0], by_name.id, client=client)
            assert isinstance(removal, models.HopRemoval) and removal.id == by_name.id
            assert removal.removed_at.client_to_server == 10 and removal.drained.client_to_server == 0
            # Only the ad-hoc hop is left: server_to_client still upper case, client_to_server direct.
            assert roundtrip(socks[0], b"plain\n") == b"PLAIN\n"
            assert splitting.delete_split.sync_detailed(ids[0], split.id, client=client).status_code == 204
            hops = mediation.list_hops.sync(ids[0], client=client)
            assert isinstance(hops, models.HopList) and [hop.id for hop in hops.mediators] == [by_address.id]
    finally:
        upper.close()
        sink.close()


def test_failover_and_kill(start_gateway, api: ModuleType) -> None:
    models, sessions, splitting, listeners = (module("models"), module("api.sessions"), module("api.splitting"),
                                              module("api.listeners"))
    primary, replica = StreamServer(echo_handler), StreamServer(echo_handler)
    gateway = start_gateway()
    client = client_for(gateway, api)
    try:
        listener = listeners.create_listener.sync(client=client, body=models.ListenerCreate(
            listen="127.0.0.1:0", upstream=primary.address, splits=[models.SplitCreate(
                address=replica.address, direction=models.DirectionSelection.CLIENT_TO_SERVER,
                on_slow=models.SlowPolicy.BLOCK, failover=True)]))
        assert isinstance(listener, models.Listener) and listener.splits[0].failover is True
        with connect(listener.listen) as sock:
            assert roundtrip(sock, b"one\n") == b"one\n"
            session = sessions.get_session.sync(session_of(gateway, sock)["id"], client=client)
            assert isinstance(session, models.Session) and session.server == primary.address
            replica_split = session.splits[0]
            assert replica_split.failover and replica_split.from_offset.client_to_server == 0

            moved = splitting.failover.sync(session.id, client=client,
                                            body=models.FailoverRequest(split=replica_split.id))
            assert isinstance(moved, models.Session) and moved.server == replica.address and moved.splits == []
            assert roundtrip(sock, b"two\n") == b"two\n"

            assert sessions.delete_session.sync_detailed(session.id, client=client).status_code == 204
            problem(sessions.get_session.sync(session.id, client=client), 404)
            assert sock.recv(1) == b""
    finally:
        primary.close()
        replica.close()


def test_every_error_is_a_typed_problem(demo_gateway: Gateway, api: ModuleType) -> None:
    models, sessions, mediation, splitting, mediators, listeners = (
        module("models"), module("api.sessions"), module("api.mediation"), module("api.splitting"),
        module("api.mediators"), module("api.listeners"))
    client = client_for(demo_gateway, api)
    with connect(demo_gateway.listeners()[0]["listen"]) as sock:
        assert roundtrip(sock, b"x") == b"x"
        sid = session_of(demo_gateway, sock)["id"]
        problem(sessions.get_session.sync("s999999", client=client), 404)
        problem(mediation.splice_mediator.sync(sid, client=client, body=models.HopCreateByName(
            mediator="no-such-mediator", direction=models.DirectionSelection.BOTH)), 409)
        problem(mediation.splice_mediator.sync(sid, client=client, body=models.HopCreateByAddress(
            address=f"127.0.0.1:{refused_port()}", direction=models.DirectionSelection.BOTH)), 502)
        problem(mediation.remove_hop.sync(sid, "h999999", client=client), 404)
        problem(splitting.add_split.sync(sid, client=client, body=models.SplitCreate(
            address="127.0.0.1:9", direction=models.DirectionSelection.BOTH, buffer_bytes=10)), 422)
        problem(splitting.failover.sync(sid, client=client, body=models.FailoverRequest(split="x999999")), 404)
        problem(mediators.delete_mediator.sync("no-such-mediator", client=client), 404)
        problem(listeners.create_listener.sync(client=client, body=models.ListenerCreate(
            listen=demo_gateway.listeners()[0]["listen"], upstream="127.0.0.1:9")), 409)
        mediator = mediators.get_mediator.sync("upper", client=client)
        assert isinstance(mediator, models.TcpMediator) and mediator.kind == "tcp" and mediator.in_use == 0
        listed = mediators.list_mediators.sync(client=client)
        assert isinstance(listed, models.MediatorList) and "upper" in [m.name for m in listed.mediators]
        document = module("api.system").get_open_api.sync(client=client)
        assert isinstance(document, str) and document == SPEC.read_text()


def test_token_problems(token_gateway: Gateway, api: ModuleType) -> None:
    models, listeners, system = module("models"), module("api.listeners"), module("api.system")
    problem(listeners.list_listeners.sync(client=client_for(token_gateway, api)), 401)
    problem(listeners.list_listeners.sync(client=client_for(token_gateway, api, token="wrong")), 401)
    listed = listeners.list_listeners.sync(client=client_for(token_gateway, api, token=TOKEN))
    assert isinstance(listed, models.ListenerList) and listed.listeners == []
    health = system.get_health.sync(client=client_for(token_gateway, api))
    assert isinstance(health, models.Health) and health.status == "ok"
