"""Issue 14's cluster, end to end: three gateways on one PostgreSQL behind HAProxy.

The nodes (n1, n2, n3 on 127.0.0.2, .3, .4; see cluster_tools.py) share their listeners
and mediators through PostgreSQL. Every test drives real sockets and checks the contract
of DESIGN.md "Cluster": a change made on one node is applied by all; any node lists,
streams and acts on every live node's sessions, the answer being the owner's; a dead node
loses only its own sessions; a dead database stops changes (503) but not the traffic.

One cluster serves the whole module. The two destructive tests come last, in this order:
kill -9 of n2, then PostgreSQL stopped and started again (which needs only n1 and n3).
"""

from __future__ import annotations

import collections
import contextlib
import os
import pathlib
import socket
import time
from typing import Any, Callable, Iterator

import requests

from capture_tools import CaptureStream, assert_clean, by_interface, follow, pump, sha
from cluster_tools import Cluster, Node, accepts, cluster, member_names, postgres  # noqa: F401 (fixtures)
from conftest import (Sink, StreamServer, assert_problem, connect, free_port, recv_exactly, roundtrip, session_of,
                      split_address, transform_handler, wait_until)
from test_events import EventStream

C2S = "client_to_server"
S2C = "server_to_client"
# DESIGN.md: every node applies a change within a second; a silent node leaves in 5 s.
APPLY_DEADLINE_S = 1.0
NODE_GONE_DEADLINE_S = 5.0
# The list requests that observe it take time too, on a loaded two-core machine.
OBSERVE_MARGIN_S = 1.0
STORE_BACK_DEADLINE_S = 20.0
CLIENTS = 300
PAGE = 7
STORE_UNAVAILABLE = "/problems/cluster-store-unavailable"


def left(deadline: float) -> float:
    """Seconds until `deadline` (time.monotonic()), at least 0: several waits share one deadline."""
    return max(0.0, deadline - time.monotonic())


def listed_ids(node: Node) -> list[str]:
    return [session["id"] for session in node.sessions()]


def paged_ids(node: Node, limit: int) -> list[str]:
    """Every session id `node` lists, page by page (`limit` a page) through next_cursor."""
    ids: list[str] = []
    cursor = None
    for _ in range(10000):
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = node.get("/api/v1/sessions", params=params)
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["sessions"]) <= limit
        ids += [session["id"] for session in body["sessions"]]
        cursor = body["next_cursor"]
        if not cursor:
            return ids
    raise AssertionError("next_cursor never ended")


def new_sessions(node: Node, before: set[str], listener: str, count: int) -> list[dict[str, Any]]:
    """Waits until `node` lists exactly `count` sessions of `listener` not in `before`."""
    def found() -> list[dict[str, Any]] | None:
        fresh = [s for s in node.sessions() if s["id"] not in before and s["listener"] == listener]
        return fresh if len(fresh) == count else None
    return wait_until(found, timeout=10.0, message=f"{count} new sessions of {listener} on {node.name}")


@contextlib.contextmanager
def clients(address: str, count: int, greeting: bytes = b"hello cluster\n") -> Iterator[list[socket.socket]]:
    """`count` clients of `address`, each with `greeting` echoed back; closed afterwards."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            socks.append(connect(address))
            assert roundtrip(socks[-1], greeting) == greeting
        yield socks
    finally:
        for sock in socks:
            sock.close()


def relays(sock: socket.socket, payload: bytes) -> bool:
    """True if `payload` comes back exactly; False if the connection ends (EOF or reset)
    instead. Any other answer, or silence until the read timeout, fails the test."""
    try:
        sock.sendall(payload)
        data = b""
        while len(data) < len(payload):
            chunk = sock.recv(len(payload) - len(data))
            if not chunk:
                assert data == b"", f"EOF after a partial echo {data!r}"
                return False
            data += chunk
    except (ConnectionResetError, BrokenPipeError):
        return False
    assert data == payload, data
    return True


def lists_none_of(node: Node, owner: str) -> bool:
    """`node` lists its sessions (every page answered 200) and none is owned by `owner`.
    While a dead node is still in the view, a list may fail: that counts as not yet."""
    cursor = None
    while True:
        response = node.get("/api/v1/sessions", params={"limit": 1000, **({"cursor": cursor} if cursor else {})})
        if response.status_code != 200:
            return False
        body = response.json()
        if any(session.get("node") == owner for session in body["sessions"]):
            return False
        cursor = body["next_cursor"]
        if not cursor:
            return True


def until_store_takes(change: Callable[[], requests.Response], status: int, what: str) -> requests.Response:
    """Sends `change` until it is answered `status`; meanwhile only the 503 of an
    unavailable store is accepted (it changes nothing, so sending it again is safe)."""
    def attempt() -> requests.Response | None:
        response = change()
        if response.status_code == status:
            return response
        assert assert_problem(response, 503)["type"].endswith(STORE_UNAVAILABLE)
        return None
    return wait_until(attempt, timeout=STORE_BACK_DEADLINE_S, interval=0.2, message=what)


def closed_by_peer(sock: socket.socket) -> bool:
    """The peer closed (EOF or reset) before the socket's read timeout."""
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    return True


def bind_states(node: Node, listener: str) -> list[tuple[str, str, str]]:
    """The listener's `nodes` entries as `node` shows them: (node, state, listen), sorted."""
    shown = node.get(f"/api/v1/listeners/{listener}").json()
    return sorted((bind["node"], bind["state"], bind["listen"]) for bind in shown.get("nodes", []))


# -- membership and configuration ----------------------------------------------------------


def test_every_node_lists_the_three_members_with_their_admin_urls(cluster: Cluster) -> None:
    for node in cluster.nodes.values():
        response = node.get("/api/v1/nodes")
        assert response.status_code == 200, response.text
        members = {member["name"]: member for member in response.json()["nodes"]}
        assert set(members) == {"n1", "n2", "n3"}, members
        for name, member in members.items():
            assert member["admin_url"].rstrip("/") == cluster.nodes[name].url, member
            assert isinstance(member["version"], str) and member["version"]
            assert isinstance(member["sessions"], int) and member["sessions"] >= 0
            assert isinstance(member["last_heartbeat"], str) and member["last_heartbeat"]


def test_a_listener_created_on_n1_accepts_on_every_node_within_a_second(cluster: Cluster) -> None:
    port = free_port()
    listener = cluster.create_listener(cluster.n1, port, name="spread")
    deadline = time.monotonic() + APPLY_DEADLINE_S
    for node in cluster.nodes.values():
        wait_until(lambda: accepts(node.address(port)), timeout=left(deadline),
                   message=f"{node.name} to accept on {node.address(port)} within {APPLY_DEADLINE_S}s")
    for node in cluster.nodes.values():
        shown = node.get(f"/api/v1/listeners/{listener['id']}")
        assert shown.status_code == 200, f"{node.name}: {shown.text}"
        assert shown.json()["name"] == "spread" and shown.json()["upstream"] == cluster.echo.address
    with clients(cluster.n3.address(port), 1):
        pass
    # Each node's bind state is part of the listener, on every node.
    bound = sorted((node.name, "bound", node.address(port)) for node in cluster.nodes.values())
    for node in cluster.nodes.values():
        wait_until(lambda: bind_states(node, listener["id"]) == bound, timeout=5.0,
                   message=f"{node.name} to show the listener bound on every node")

    # Removed through another node: no node accepts any more, within the same second.
    assert cluster.n3.delete(f"/api/v1/listeners/{listener['id']}").status_code == 204
    deadline = time.monotonic() + APPLY_DEADLINE_S
    for node in cluster.nodes.values():
        wait_until(lambda: not accepts(node.address(port)), timeout=left(deadline),
                   message=f"{node.name} to stop accepting on {node.address(port)} within {APPLY_DEADLINE_S}s")
        assert_problem(node.get(f"/api/v1/listeners/{listener['id']}"), 404)


# -- one view of every session -------------------------------------------------------------


def test_300_clients_through_haproxy_are_listed_and_paged_exactly_on_every_node(cluster: Cluster) -> None:
    front = cluster.front_listener()
    before = set(listed_ids(cluster.n1))
    with clients(cluster.haproxy.front, CLIENTS):
        fresh = new_sessions(cluster.n1, before, front["id"], CLIENTS)
        owners = collections.Counter(session.get("node") for session in fresh)
        assert set(owners) == {"n1", "n2", "n3"} and all(owners.values()), owners
        assert len({session["id"] for session in fresh}) == CLIENTS, "session ids are unique in the cluster"
        wanted = {session["id"] for session in fresh}
        for node in cluster.nodes.values():
            listed = {s["id"]: s for s in node.sessions() if s["listener"] == front["id"]}
            assert wanted <= set(listed), f"{node.name} misses {sorted(wanted - set(listed))[:10]}"
            assert {listed[sid]["node"] for sid in wanted} == {"n1", "n2", "n3"}
            assert collections.Counter(listed[sid]["node"] for sid in wanted) == owners, node.name
            ids = paged_ids(node, PAGE)
            repeated = [sid for sid, seen in collections.Counter(ids).items() if seen > 1]
            assert not repeated, f"{node.name} pages list {repeated[:10]} more than once"
            assert wanted <= set(ids), f"{node.name} pages miss {sorted(wanted - set(ids))[:10]}"


# -- actions go to the owner ---------------------------------------------------------------


def test_splice_split_remove_and_kill_sent_to_n1_act_on_a_session_of_n3(cluster: Cluster) -> None:
    cluster.front_listener()
    n1, n3 = cluster.n1, cluster.n3
    upper = StreamServer(transform_handler(bytes.upper))
    sink = Sink()
    try:
        registered = n1.post("/api/v1/mediators", json={"name": "cluster-upper", "kind": "tcp",
                                                        "address": upper.address})
        assert registered.status_code == 201, registered.text
        wait_until(lambda: n3.get("/api/v1/mediators/cluster-upper").status_code == 200,
                   timeout=APPLY_DEADLINE_S, message="n3 to know the mediator registered on n1")

        with connect(n3.address(cluster.listener_port)) as client:
            prefix = b"hello cluster\n" * 10
            assert roundtrip(client, prefix) == prefix
            session = session_of(n1, client)
            sid = session["id"]
            assert session["node"] == "n3"
            assert n1.get(f"/api/v1/sessions/{sid}").json()["node"] == "n3"
            base = f"/api/v1/sessions/{sid}"

            # Splice through n1: the owner's answer, with the offset of the bytes sent so far.
            spliced = n1.post(f"{base}/mediators", json={"mediator": "cluster-upper", "direction": C2S})
            assert spliced.status_code == 201, spliced.text
            hop = spliced.json()
            assert hop["spliced_at"] == {C2S: len(prefix)} and hop["mediator"] == "cluster-upper"
            assert spliced.headers["Location"] == f"{base}/mediators/{hop['id']}"
            assert roundtrip(client, b"abc\n") == b"ABC\n"
            on_n3 = n3.get(base).json()
            assert [h["id"] for h in on_n3["mediators"]] == [hop["id"]]
            assert on_n3["mediators"][0]["bytes"] == {C2S: {"in": 4, "out": 4}}

            # Split through n1: the recipient gets exactly what the server got from from_offset on.
            split_answer = n1.post(f"{base}/splits", json={"address": sink.address, "direction": C2S})
            assert split_answer.status_code == 201, split_answer.text
            split = split_answer.json()
            assert split["from_offset"] == {C2S: len(prefix) + 4}
            assert [s["id"] for s in n3.get(base).json()["splits"]] == [split["id"]]
            body = b"".join(b"line %05d of the split stream\n" % i for i in range(2000))
            client.sendall(body)
            assert recv_exactly(client, len(body)) == body.upper()
            wait_until(lambda: sink.snapshot() == [body.upper()], message="the split copy")

            # Removal through n1: the owner drains, reports the offset, the echo is plain again.
            removed = n1.delete(f"{base}/mediators/{hop['id']}")
            assert removed.status_code == 200, removed.text
            assert removed.json() == {"id": hop["id"], "removed_at": {C2S: len(prefix) + 4 + len(body)},
                                      "drained": {C2S: 0}}
            assert roundtrip(client, b"tail\n") == b"tail\n"
            wait_until(lambda: sink.snapshot() == [body.upper() + b"tail\n"], message="the copy after removal")
            assert n3.get(base).json()["mediators"] == []
            assert n1.get(base).json()["bytes"] == {C2S: len(prefix) + 4 + len(body) + 5,
                                                    S2C: len(prefix) + 4 + len(body) + 5}

            # Detach the split through n1, then kill the session through n1.
            assert n1.delete(f"{base}/splits/{split['id']}").status_code == 204
            assert n3.get(base).json()["splits"] == []
            wait_until(lambda: sink.eof == [True], message="EOF to the detached recipient")
            assert n1.delete(base).status_code == 204
            assert closed_by_peer(client)
            for node in cluster.nodes.values():
                wait_until(lambda: node.get(base).status_code == 404, message=f"{sid} gone from {node.name}")
                assert_problem(node.get(base), 404)
        assert n1.delete("/api/v1/mediators/cluster-upper").status_code == 204
    finally:
        sink.close()
        upper.close()


def test_failover_sent_to_n1_moves_a_session_of_n3_to_its_replica(cluster: Cluster) -> None:
    """A listener template (made on n1, applied on n3) gives each session a replica split;
    a failover asked of n1 makes n3 switch. The replica upper-cases, so what the client gets
    after the switch shows where it came from; its first N bytes (what the primary had
    answered) are dropped by the usual alignment."""
    replica = StreamServer(transform_handler(bytes.upper))
    port = free_port()
    template = {"address": replica.address, "direction": C2S, "on_slow": "block", "failover": True}
    listener = cluster.create_listener(cluster.n1, port, name="replicated", splits=[template])
    try:
        cluster.wait_accepting(port, [cluster.n3], timeout=APPLY_DEADLINE_S)
        with connect(cluster.n3.address(port)) as client:
            assert roundtrip(client, b"before\n") == b"before\n"
            session = session_of(cluster.n1, client)
            [split] = session["splits"]
            assert session["node"] == "n3" and split["from_offset"] == {C2S: 0}
            base = f"/api/v1/sessions/{session['id']}"
            moved = cluster.n1.post(f"{base}/failover", json={"split": split["id"]})
            assert moved.status_code == 200, moved.text
            assert moved.json()["server"] == replica.address and moved.json()["splits"] == []
            assert roundtrip(client, b"after\n") == b"AFTER\n"
            on_n3 = cluster.n3.get(base).json()
            assert on_n3["server"] == replica.address and on_n3["splits"] == [] and on_n3["state"] == "open"
        removed = cluster.n2.delete(f"/api/v1/listeners/{listener['id']}")
        assert removed.status_code == 204, removed.text
    finally:
        replica.close()


def test_a_capture_asked_of_n1_streams_a_session_of_n3(cluster: Cluster, tmp_path: pathlib.Path) -> None:
    """The owner's pcapng, relayed as it streams: both legs hold the bytes exactly."""
    cluster.front_listener()
    n1, n3 = cluster.n1, cluster.n3
    payload = os.urandom(1 << 20)
    with connect(n3.address(cluster.listener_port)) as client:
        session = session_of(n1, client)
        assert session["node"] == "n3"
        capture = CaptureStream(f"{n1.url}/api/v1/sessions/{session['id']}/capture", tmp_path / "n3.pcapng",
                                headers=n1.headers())
        try:
            wait_until(lambda: n3.get(f"/api/v1/sessions/{session['id']}").json()["captures"],
                       message="the capture listed on n3's own view of the session")
            assert pump(client, payload) == payload
            path = capture.wait()
        finally:
            capture.close()
    assert_clean(path)
    points = by_interface(path)
    assert sorted(points) == ["client", "server"] and all(len(found) == 1 for found in points.values())
    assert points["client"][0]["dst"] == split_address(n3.address(cluster.listener_port))
    followed = follow(path, points["client"][0]["stream"], points["server"][0]["stream"])
    for sent, answered in followed.values():
        assert (sha(sent), sha(answered)) == (sha(payload), sha(payload))


def test_n1_event_stream_carries_a_session_opened_on_n3(cluster: Cluster) -> None:
    cluster.front_listener()
    stream = EventStream(cluster.n1)
    try:
        assert stream.status == 200
        stream.wait_subscribed()
        with connect(cluster.n3.address(cluster.listener_port)) as client:
            assert roundtrip(client, b"events\n") == b"events\n"
            mine = f"{client.getsockname()[0]}:{client.getsockname()[1]}"
            deadline = time.monotonic() + 10.0
            while True:
                event = stream.next(timeout=left(deadline))
                if event["type"] == "session.opened" and event["session"]["client"] == mine:
                    break
            assert event["node"] == "n3", event
            assert event["session"]["node"] == "n3", event
    finally:
        stream.close()


def test_actions_on_an_unknown_session_are_404_on_every_node(cluster: Cluster) -> None:
    cluster.front_listener()
    # A session of n3 that has ended: its id is known to be nobody's any more.
    with connect(cluster.n3.address(cluster.listener_port)) as client:
        assert roundtrip(client, b"soon gone\n") == b"soon gone\n"
        ended = session_of(cluster.n1, client)["id"]
    for node in cluster.nodes.values():
        wait_until(lambda: node.get(f"/api/v1/sessions/{ended}").status_code == 404,
                   message=f"{ended} to end on {node.name}")
    # An ended session of n3, an id no node issues, and one that would name a node that
    # never was (ids need not look like that: an unknown id is a 404, whatever it looks like).
    for sid in (ended, "s999999999", "s99000000000001"):
        base = f"/api/v1/sessions/{sid}"
        for node in cluster.nodes.values():
            assert_problem(node.get(base), 404)
            assert_problem(node.delete(base), 404)
            assert_problem(node.post(f"{base}/mediators", json={"address": cluster.echo.address,
                                                               "direction": "both"}), 404)
            assert_problem(node.delete(f"{base}/mediators/h1"), 404)
            assert_problem(node.post(f"{base}/splits", json={"address": cluster.echo.address,
                                                            "direction": C2S}), 404)
            assert_problem(node.delete(f"{base}/splits/x1"), 404)
            assert_problem(node.post(f"{base}/failover", json={"split": "x1"}), 404)
            assert_problem(node.get(f"{base}/capture"), 404)


# -- failures (destructive: last, in this order) -------------------------------------------


def test_kill_9_of_n2_loses_only_its_sessions(cluster: Cluster) -> None:
    front = cluster.front_listener()
    port = cluster.listener_port
    before = set(listed_ids(cluster.n1))
    with clients(cluster.n1.address(port), 1) as on_n1, clients(cluster.n3.address(port), 1) as on_n3, \
            clients(cluster.haproxy.front, 30) as balanced:
        fresh = new_sessions(cluster.n1, before, front["id"], 32)
        owners = collections.Counter(session["node"] for session in fresh)
        assert owners["n2"] > 0, owners
        lost = {session["id"] for session in fresh if session["node"] == "n2"}

        cluster.kill_hard("n2")
        deadline = time.monotonic() + NODE_GONE_DEADLINE_S + OBSERVE_MARGIN_S
        for node in cluster.live():
            wait_until(lambda: member_names(node) == {"n1", "n3"}, timeout=left(deadline),
                       message=f"n2 to leave {node.name}'s /api/v1/nodes")
            wait_until(lambda: lists_none_of(node, "n2"), timeout=left(deadline),
                       message=f"n2's sessions to leave {node.name}'s list")
            assert not lost & set(listed_ids(node))
        # Gone with their node: unknown, not an error of reaching it.
        for node in cluster.live():
            for sid in sorted(lost)[:3]:
                assert_problem(node.get(f"/api/v1/sessions/{sid}"), 404)

        # The others keep relaying, both ways; through HAProxy exactly n2's clients lost theirs.
        payload = os.urandom(4096)
        assert relays(on_n1[0], payload) and relays(on_n3[0], payload)
        still = sum(relays(sock, payload) for sock in balanced)
        assert still == len(fresh) - len(lost) - 2, (still, owners)

        # HAProxy notices (its own checks), and new clients land on n1 and n3.
        cluster.wait_haproxy({"n1": "UP", "n2": "DOWN", "n3": "UP"})
        before = set(listed_ids(cluster.n1))
        with clients(cluster.haproxy.front, 12):
            landed = new_sessions(cluster.n3, before, front["id"], 12)
            assert {s["node"] for s in landed} == {"n1", "n3"}, landed


def test_postgres_down_keeps_traffic_and_refuses_changes_until_it_is_back(cluster: Cluster) -> None:
    cluster.front_listener()
    port = cluster.listener_port
    live = cluster.live()
    kept_port = free_port()
    kept = cluster.create_listener(cluster.n1, kept_port, name="kept")
    cluster.wait_accepting(kept_port, live, timeout=APPLY_DEADLINE_S)
    listeners_before = {node.name: sorted(l["id"] for l in node.listeners()) for node in live}
    with contextlib.ExitStack() as stack:
        streams = [stack.enter_context(clients(node.address(port), 1))[0] for node in live]
        cluster.postgres.stop()
        try:
            payload = os.urandom(8192)
            for sock in streams:
                assert relays(sock, payload)
            for node in live:
                refused = assert_problem(node.post("/api/v1/listeners", json={
                    "listen": f"127.0.0.1:{free_port()}", "upstream": cluster.echo.address}), 503)
                assert refused["type"].endswith(STORE_UNAVAILABLE), refused
                refused = assert_problem(node.delete(f"/api/v1/listeners/{kept['id']}"), 503)
                assert refused["type"].endswith(STORE_UNAVAILABLE), refused
                refused = assert_problem(node.post("/api/v1/mediators", json={
                    "name": "while-down", "kind": "tcp", "address": cluster.echo.address}), 503)
                assert refused["type"].endswith(STORE_UNAVAILABLE), refused
            # Nothing changed, and the configuration the nodes have still works.
            for node in live:
                assert sorted(l["id"] for l in node.listeners()) == listeners_before[node.name]
                with clients(node.address(kept_port), 1), clients(node.address(port), 1):
                    pass
            for sock in streams:
                assert relays(sock, payload)
        finally:
            cluster.postgres.start()

        # Back: a change made now (once a node takes changes again) reaches every node.
        added_port = free_port()
        body = {"listen": f"127.0.0.1:{added_port}", "upstream": cluster.echo.address, "name": "after"}
        added = until_store_takes(lambda: cluster.n1.post("/api/v1/listeners", json=body), 201,
                                  "n1 to take listener changes again").json()
        cluster.wait_accepting(added_port, live, timeout=STORE_BACK_DEADLINE_S)
        until_store_takes(lambda: cluster.n3.delete(f"/api/v1/listeners/{kept['id']}"), 204,
                          "n3 to take listener changes again")
        for node in live:
            wait_until(lambda: not accepts(node.address(kept_port)), timeout=STORE_BACK_DEADLINE_S,
                       message=f"{node.name} to drop listener {kept['id']}")
        for sock in streams:
            assert relays(sock, b"still here\n")
        assert added["name"] == "after"
