"""Mediation over HTTP against the real binary: splice and remove mediators in live sessions.

Every test drives a real gateway process over its admin API and checks the bytes a
real client socket gets back. Most run against `--demo`, whose listener fronts an
echo upstream and whose sample mediators (upper, lower, rot13, invert, identity,
deflate, inflate, delay-500) are registered at start-up.
"""

from __future__ import annotations

import json
import os
import pathlib

from conftest import (Gateway, StreamServer, assert_problem, connect, echo_handler, refused_port, recv_exactly,
                      roundtrip, session_of, transform_handler, wait_until)

C2S = "client_to_server"
S2C = "server_to_client"


def demo_listener(gateway: Gateway) -> dict:
    return next(listener for listener in gateway.listeners() if listener.get("name") == "demo")


def splice(gateway: Gateway, session: str, **body) -> dict:
    response = gateway.post(f"/api/v1/sessions/{session}/mediators", json=body)
    assert response.status_code == 201, f"{response.status_code} {response.text}"
    hop = response.json()
    assert response.headers["Location"] == f"/api/v1/sessions/{session}/mediators/{hop['id']}"
    return hop


def remove(gateway: Gateway, session: str, hop: str) -> dict:
    response = gateway.delete(f"/api/v1/sessions/{session}/mediators/{hop}")
    assert response.status_code == 200, f"{response.status_code} {response.text}"
    return response.json()


def mediator(gateway: Gateway, name: str) -> dict:
    response = gateway.get(f"/api/v1/mediators/{name}")
    assert response.status_code == 200, response.text
    return response.json()


def test_readme_walk_through_splice_upper_and_remove_it(demo_gateway: Gateway) -> None:
    """README: connect to the demo, splice `upper` client-to-server, see it, remove it."""
    with connect(demo_listener(demo_gateway)["listen"]) as client:
        assert roundtrip(client, b"hello\n") == b"hello\n"
        session = session_of(demo_gateway, client)
        assert session["mediators"] == [] and session["splits"] == []

        hop = splice(demo_gateway, session["id"], mediator="upper", direction=C2S)
        assert hop["mediator"] == "upper"
        assert hop["direction"] == C2S and hop["position"] == 0 and hop["state"] == "active"
        assert hop["on_failure"] == "close_session" and hop["drain_timeout_ms"] == 5000
        assert hop["spliced_at"] == {C2S: 6}, "spliced at the 6 bytes sent before"
        assert hop["address"] == mediator(demo_gateway, "upper")["address"]
        assert mediator(demo_gateway, "upper")["in_use"] == 1

        assert roundtrip(client, b"hello again\n") == b"HELLO AGAIN\n"
        shown = demo_gateway.get(f"/api/v1/sessions/{session['id']}").json()
        assert [h["id"] for h in shown["mediators"]] == [hop["id"]]
        assert shown["mediators"][0]["bytes"] == {C2S: {"in": 12, "out": 12}}
        listed = demo_gateway.get(f"/api/v1/sessions/{session['id']}/mediators").json()
        assert [h["id"] for h in listed["mediators"]] == [hop["id"]]

        report = remove(demo_gateway, session["id"], hop["id"])
        assert report == {"id": hop["id"], "removed_at": {C2S: 18}, "drained": {C2S: 0}}
        assert roundtrip(client, b"bye\n") == b"bye\n"

        after = demo_gateway.get(f"/api/v1/sessions/{session['id']}").json()
        assert after["mediators"] == []
        assert after["bytes"] == {C2S: 22, S2C: 22}
        assert mediator(demo_gateway, "upper")["in_use"] == 0
        assert_problem(demo_gateway.delete(f"/api/v1/sessions/{session['id']}/mediators/{hop['id']}"), 404)


def test_both_directions_and_positions_make_a_stack(demo_gateway: Gateway) -> None:
    """rot13 both ways cancels out over an echo; upper c2s then rot13 s2c composes."""
    with connect(demo_listener(demo_gateway)["listen"]) as client:
        assert roundtrip(client, b"abc") == b"abc"
        sid = session_of(demo_gateway, client)["id"]
        rot = splice(demo_gateway, sid, mediator="rot13", direction="both")
        assert rot["spliced_at"] == {C2S: 3, S2C: 3}
        assert roundtrip(client, b"Hello, World") == b"Hello, World"  # rot13 twice
        upper = splice(demo_gateway, sid, mediator="upper", direction=C2S, position=0)
        assert upper["position"] == 0
        hops = demo_gateway.get(f"/api/v1/sessions/{sid}/mediators").json()["mediators"]
        assert [(h["id"], h["position"]) for h in hops] == [(upper["id"], 0), (rot["id"], 1)]
        # client -> upper -> rot13 -> echo -> rot13 -> client: rot13 cancels, upper stays.
        assert roundtrip(client, b"Hello") == b"HELLO"
        remove(demo_gateway, sid, upper["id"])
        remove(demo_gateway, sid, rot["id"])
        assert roundtrip(client, b"tail") == b"tail"


def test_deflate_inflate_chain_is_transparent(demo_gateway: Gateway) -> None:
    """deflate then inflate in each direction: the echo sees and returns the original bytes."""
    payload = os.urandom(64 * 1024) + b"splicegate " * 20000
    with connect(demo_listener(demo_gateway)["listen"]) as client:
        assert roundtrip(client, b"start") == b"start"
        sid = session_of(demo_gateway, client)["id"]
        # Stack, client side first: deflate(c2s) inflate(c2s). Client bytes go 0 -> 1.
        deflate = splice(demo_gateway, sid, mediator="deflate", direction=C2S)
        inflate = splice(demo_gateway, sid, mediator="inflate", direction=C2S)
        # Server-to-client bytes pass the stack in reverse: add inflate at 0, deflate at the end.
        inflate_back = splice(demo_gateway, sid, mediator="inflate", direction=S2C, position=0)
        deflate_back = splice(demo_gateway, sid, mediator="deflate", direction=S2C)
        hops = demo_gateway.get(f"/api/v1/sessions/{sid}/mediators").json()["mediators"]
        assert [h["id"] for h in hops] == [inflate_back["id"], deflate["id"], inflate["id"], deflate_back["id"]]

        client.sendall(payload)
        assert recv_exactly(client, len(payload)) == payload

        session = demo_gateway.get(f"/api/v1/sessions/{sid}").json()
        assert session["bytes"][C2S] == 5 + len(payload)
        by_id = {h["id"]: h for h in session["mediators"]}
        assert by_id[deflate["id"]]["bytes"][C2S]["in"] == len(payload)
        assert by_id[deflate["id"]]["bytes"][C2S]["out"] < len(payload), "deflate compressed"
        assert by_id[inflate["id"]]["bytes"][C2S]["out"] == len(payload)

        # Each compressor goes first, so its end-of-stream marker is consumed by its inflater.
        for hop in (deflate, deflate_back, inflate, inflate_back):
            remove(demo_gateway, sid, hop["id"])
        assert roundtrip(client, b"plain again") == b"plain again"
        assert demo_gateway.get(f"/api/v1/sessions/{sid}").json()["mediators"] == []


def test_tcp_mediator_registered_over_the_api_and_unregistered(demo_gateway: Gateway) -> None:
    swap = StreamServer(transform_handler(bytes.swapcase))
    try:
        response = demo_gateway.post("/api/v1/mediators", json={"name": "swapcase", "kind": "tcp",
                                                                 "address": swap.address})
        assert response.status_code == 201, response.text
        assert response.headers["Location"] == "/api/v1/mediators/swapcase"
        assert response.json() == {"name": "swapcase", "kind": "tcp", "address": swap.address,
                                   "proxy_protocol": False, "in_use": 0}
        assert "swapcase" in [m["name"] for m in demo_gateway.get("/api/v1/mediators").json()["mediators"]]
        assert_problem(demo_gateway.post("/api/v1/mediators", json={"name": "swapcase", "address": swap.address}),
                       409)
        exec_body = {"name": "tr", "kind": "exec", "command": ["tr", "a-z", "A-Z"]}
        assert "config file" in assert_problem(demo_gateway.post("/api/v1/mediators", json=exec_body), 422)["detail"]

        with connect(demo_listener(demo_gateway)["listen"]) as client:
            assert roundtrip(client, b"ab") == b"ab"
            sid = session_of(demo_gateway, client)["id"]
            hop = splice(demo_gateway, sid, mediator="swapcase", direction=S2C)
            assert hop["spliced_at"] == {S2C: 2}
            assert roundtrip(client, b"Hello") == b"hELLO"
            assert mediator(demo_gateway, "swapcase")["in_use"] == 1

            problem = assert_problem(demo_gateway.delete("/api/v1/mediators/swapcase"), 409)
            assert "remove them first" in problem["detail"]
            assert mediator(demo_gateway, "swapcase")["in_use"] == 1, "a refused delete changes nothing"
            assert roundtrip(client, b"Still") == b"sTILL"

            assert remove(demo_gateway, sid, hop["id"])["removed_at"] == {S2C: 12}
            assert roundtrip(client, b"Plain") == b"Plain"

        assert demo_gateway.delete("/api/v1/mediators/swapcase").status_code == 204
        assert_problem(demo_gateway.get("/api/v1/mediators/swapcase"), 404)
        assert_problem(demo_gateway.delete("/api/v1/mediators/swapcase"), 404)
    finally:
        swap.close()


def test_exec_mediator_from_the_config_file_spliced_over_http(start_gateway, tmp_path: pathlib.Path) -> None:
    echo = StreamServer(echo_handler)
    try:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({
            "mediators": [{"name": "tr", "kind": "exec", "command": ["stdbuf", "-o0", "tr", "a-z", "A-Z"]}],
            "listeners": [{"name": "cfg", "listen": "127.0.0.1:0", "upstream": echo.address}],
        }))
        gateway = start_gateway("--config", str(config))
        assert mediator(gateway, "tr") == {"name": "tr", "kind": "exec",
                                           "command": ["stdbuf", "-o0", "tr", "a-z", "A-Z"], "in_use": 0}
        listener = next(item for item in gateway.listeners() if item.get("name") == "cfg")
        with connect(listener["listen"]) as client:
            assert roundtrip(client, b"one ") == b"one "
            sid = session_of(gateway, client)["id"]
            hop = splice(gateway, sid, mediator="tr", direction=C2S)
            assert hop["spliced_at"] == {C2S: 4}
            assert hop["address"] == "stdbuf -o0 tr a-z A-Z", "an exec hop shows its command line"
            assert roundtrip(client, b"two ") == b"TWO "
            assert mediator(gateway, "tr")["in_use"] == 1
            assert remove(gateway, sid, hop["id"]) == {"id": hop["id"], "removed_at": {C2S: 8}, "drained": {C2S: 0}}
            assert roundtrip(client, b"three") == b"three"
            assert mediator(gateway, "tr")["in_use"] == 0
    finally:
        echo.close()


def test_unreachable_mediator_is_502_and_the_session_goes_on(demo_gateway: Gateway) -> None:
    nowhere = f"127.0.0.1:{refused_port()}"
    with connect(demo_listener(demo_gateway)["listen"]) as client:
        assert roundtrip(client, b"before") == b"before"
        sid = session_of(demo_gateway, client)["id"]

        problem = assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/mediators",
                                                   json={"address": nowhere, "direction": "both"}), 502)
        assert problem["type"] == "/problems/peer-unreachable"
        assert roundtrip(client, b"still relaying") == b"still relaying"

        response = demo_gateway.post("/api/v1/mediators", json={"name": "gone", "address": nowhere})
        assert response.status_code == 201, response.text
        assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/mediators",
                                         json={"mediator": "gone", "direction": C2S}), 502)
        assert mediator(demo_gateway, "gone")["in_use"] == 0

        session = demo_gateway.get(f"/api/v1/sessions/{sid}").json()
        assert session["state"] == "open" and session["mediators"] == []
        assert session["bytes"] == {C2S: 20, S2C: 20}
        assert roundtrip(client, b"and after") == b"and after"
        # Invalid requests change nothing either.
        assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/mediators",
                                         json={"mediator": "no-such", "direction": C2S}), 409)
        assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/mediators",
                                         json={"mediator": "upper", "direction": "sideways"}), 422)
        assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/mediators",
                                         json={"mediator": "upper", "address": nowhere, "direction": C2S}), 422)
        assert_problem(demo_gateway.post(f"/api/v1/sessions/{sid}/mediators",
                                         json={"mediator": "upper", "direction": C2S, "position": 3}), 409)
        assert_problem(demo_gateway.post("/api/v1/sessions/s999999/mediators",
                                         json={"mediator": "upper", "direction": C2S}), 404)
        assert roundtrip(client, b"unchanged") == b"unchanged"
        demo_gateway.assert_alive()


def test_listener_mediators_template_applies_to_every_new_session(demo_gateway: Gateway) -> None:
    upstream = demo_listener(demo_gateway)["upstream"]
    listener = demo_gateway.create_listener(
        name="shouting", listen="127.0.0.1:0", upstream=upstream,
        mediators=[{"mediator": "upper", "direction": C2S}, {"mediator": "rot13", "direction": S2C}])
    assert listener["mediators"] == [
        {"mediator": "upper", "direction": C2S, "on_failure": "close_session", "drain_timeout_ms": 5000},
        {"mediator": "rot13", "direction": S2C, "on_failure": "close_session", "drain_timeout_ms": 5000},
    ]
    clients = [connect(listener["listen"]) for _ in range(3)]
    try:
        for index, client in enumerate(clients):
            # upper going in, rot13 coming back: "abc" -> "ABC" -> echo -> "NOP".
            assert roundtrip(client, b"abc%d" % index) == b"NOP%d" % index
            session = session_of(demo_gateway, client)
            assert session["listener"] == listener["id"]
            assert [(h["mediator"], h["direction"], h["spliced_at"]) for h in session["mediators"]] == [
                ("upper", C2S, {C2S: 0}), ("rot13", S2C, {S2C: 0})]
        # A template hop is an ordinary hop: it can be removed from one session.
        first = session_of(demo_gateway, clients[0])
        remove(demo_gateway, first["id"], first["mediators"][0]["id"])
        assert roundtrip(clients[0], b"abc") == b"nop"
        assert roundtrip(clients[1], b"abc") == b"NOP"
        assert mediator(demo_gateway, "upper")["in_use"] == 2
    finally:
        for client in clients:
            client.close()
    wait_until(lambda: mediator(demo_gateway, "upper")["in_use"] == 0, message="hops released at session end")
    problem = assert_problem(demo_gateway.post("/api/v1/listeners", json={
        "listen": "127.0.0.1:0", "upstream": upstream, "mediators": [{"mediator": "no-such", "direction": C2S}]}), 409)
    assert "no-such" in problem["detail"]
