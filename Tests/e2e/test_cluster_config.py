"""The cluster's configuration and membership in PostgreSQL (`--cluster-db`), with real
gateways and a real, throwaway PostgreSQL (pg_tools).

Three nodes run on one machine: each binds its admin API on 127.0.0.1:0 and every
cluster listener on its own loopback address (`--bind-host 127.0.0.2/3/4`), so one fixed
listener port serves all three.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import signal
import socket
import time
from typing import Callable, Iterator

import pytest
import requests

from conftest import (Gateway, StreamServer, assert_problem, connect, echo_handler, free_port, recv_exactly,
                      roundtrip, session_of, transform_handler, wait_until)
from freeze_proxy import FreezeProxy
from pg_tools import Postgres, make_ca, running_postgres

HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
# How long a change may take to reach every node before the test fails. The contract is
# one second; the deadline is wider so that a loaded CI machine does not make the test flaky
# (the time it took is what bench/ measures).
PROPAGATION_S = 10.0
# A node silent for 5 s leaves the view; allow for the heartbeat round on top.
LEAVE_S = 15.0
UNAVAILABLE = "/problems/cluster-store-unavailable"


@pytest.fixture
def pg() -> Iterator[Postgres]:
    """A fresh database per test. Tests name it before start_gateway, so that it is set up
    first and torn down last: the nodes leave the cluster cleanly at their SIGTERM."""
    with running_postgres() as server:
        yield server


def start_node(start_gateway: Callable[..., Gateway], pg: Postgres, index: int, *extra: str,
               wait: bool = True, url: str | None = None) -> Gateway:
    """Node `n<index+1>` of the cluster, binding its listeners on HOSTS[index]."""
    return start_gateway("--cluster-db", url or pg.url, "--node", f"n{index + 1}", "--bind-host", HOSTS[index],
                         *extra, wait=wait)


def start_cluster(start_gateway: Callable[..., Gateway], pg: Postgres, count: int = 3,
                  url: str | None = None) -> list[Gateway]:
    """`count` nodes started at the same moment (they race to create the schema)."""
    nodes = [start_node(start_gateway, pg, index, wait=False, url=url) for index in range(count)]
    return [node.wait_ready() for node in nodes]


@pytest.fixture
def echo() -> Iterator[StreamServer]:
    server = StreamServer(echo_handler)
    yield server
    server.close()


def relays(host: str, port: int) -> bool:
    """Whether host:port accepts and relays to the echo upstream."""
    try:
        with connect(f"{host}:{port}", timeout=2.0) as sock:
            return roundtrip(sock, b"ping\n") == b"ping\n"
    except OSError:
        return False


def refuses(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return False
    except ConnectionRefusedError:
        return True


def wait_equal(read: Callable[[], object], expected: object, message: str,
               timeout: float = PROPAGATION_S) -> None:
    """Polls `read()` until it equals `expected`; the failure shows the last value read."""
    seen: list[object] = []

    def check() -> bool:
        seen[:] = [read()]
        return seen[0] == expected

    try:
        wait_until(check, timeout=timeout, message=message)
    except AssertionError as error:
        raise AssertionError(f"{error}; last read {seen[0]!r}, expected {expected!r}") from None


def listener_ids(node: Gateway) -> list[str]:
    return [listener["id"] for listener in node.listeners()]


def mediator_names(node: Gateway) -> list[str]:
    response = node.get("/api/v1/mediators")
    assert response.status_code == 200, response.text
    return sorted(mediator["name"] for mediator in response.json()["mediators"])


def node_names(node: Gateway) -> list[str]:
    response = node.get("/api/v1/nodes")
    assert response.status_code == 200, response.text
    return [entry["name"] for entry in response.json()["nodes"]]


def db_count(pg: Postgres, table: str) -> int:
    return int(pg.query(f"SELECT count(*) FROM {table}")[0][0])


def stop_node(node: Gateway) -> int:
    """SIGTERM (a clean leave); the fixture then takes it for stopped, not dead."""
    rc = node.stop()
    node.url = ""
    return rc


def kill_hard(node: Gateway) -> None:
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait(timeout=10)
    node.url = ""


def test_three_nodes_starting_together_create_the_schema_once(pg: Postgres, start_gateway) -> None:
    nodes = start_cluster(start_gateway, pg)
    assert pg.query("SELECT version FROM splicegate_schema ORDER BY version") == [["1"], ["2"], ["3"]]
    rows = pg.query("SELECT name, number FROM nodes ORDER BY name")
    assert [row[0] for row in rows] == ["n1", "n2", "n3"]
    assert len({row[1] for row in rows}) == 3, f"node numbers not unique: {rows}"
    for node in nodes:
        wait_until(lambda: node_names(node) == ["n1", "n2", "n3"], timeout=PROPAGATION_S,
                   message="every node listing all three")


def test_listener_created_on_one_node_accepts_on_every_node_and_a_delete_stops_it_everywhere(
        pg: Postgres, start_gateway, echo: StreamServer) -> None:
    nodes = start_cluster(start_gateway, pg)
    port = free_port()
    started = time.monotonic()
    created = nodes[0].create_listener(listen=f"127.0.0.1:{port}", upstream=echo.address)
    assert created["listen"] == f"{HOSTS[0]}:{port}", created
    assert created["nodes"] == [{"node": "n1", "state": "bound", "listen": f"{HOSTS[0]}:{port}"}], created
    for host in HOSTS:
        wait_until(lambda: relays(host, port), timeout=PROPAGATION_S, message=f"{host}:{port} relaying")
    print(f"listener accepted on all three nodes {time.monotonic() - started:.3f} s after the POST")
    # Every node shows every node's bind, and the database holds the listener as POSTed.
    for node in nodes:
        expected = [{"node": f"n{i + 1}", "state": "bound", "listen": f"{HOSTS[i]}:{port}"} for i in range(3)]
        wait_equal(lambda: node.listeners()[0]["nodes"], expected, "three bound nodes in the listener's JSON")
    assert [row[0] for row in pg.query("SELECT id FROM listeners")] == [created["id"][1:]]

    # A session on node 3 ends when node 2 deletes the listener with close_sessions=true.
    client = connect(f"{HOSTS[2]}:{port}")
    assert roundtrip(client, b"before\n") == b"before\n"
    response = nodes[1].delete(f"/api/v1/listeners/{created['id']}", params={"close_sessions": "true"})
    assert response.status_code == 204, response.text
    for host in HOSTS:
        wait_until(lambda: refuses(host, port), timeout=PROPAGATION_S, message=f"{host}:{port} refusing")
    for node in nodes:
        wait_until(lambda: listener_ids(node) == [], timeout=PROPAGATION_S, message="no listener left")
    client.settimeout(PROPAGATION_S)
    assert client.recv(100) == b"", "the session on node 3 was not closed"
    client.close()
    assert db_count(pg, "listeners") == 0 and db_count(pg, "listener_binds") == 0


def test_mediators_are_registered_and_unregistered_everywhere(pg: Postgres, start_gateway) -> None:
    nodes = start_cluster(start_gateway, pg)
    body = {"name": "upper", "address": "127.0.0.1:9999"}
    response = nodes[0].post("/api/v1/mediators", json=body)
    assert response.status_code == 201, response.text
    for node in nodes:
        wait_until(lambda: mediator_names(node) == ["upper"], timeout=PROPAGATION_S, message="mediator everywhere")
    # The name is taken in the whole cluster.
    assert_problem(nodes[1].post("/api/v1/mediators", json=body), 409)
    assert db_count(pg, "mediators") == 1

    response = nodes[2].delete("/api/v1/mediators/upper")
    assert response.status_code == 204, response.text
    for node in nodes:
        wait_until(lambda: mediator_names(node) == [], timeout=PROPAGATION_S, message="mediator gone everywhere")
    assert db_count(pg, "mediators") == 0
    assert_problem(nodes[0].delete("/api/v1/mediators/upper"), 404)


def test_changes_made_on_two_nodes_at_once_are_kept_on_both(pg: Postgres, start_gateway) -> None:
    """Each node's API changes its own gateway while that gateway reconciles with the
    database (every change from the other node starts a reconciliation): a listener or
    mediator this node has bound or registered, and not yet committed, must not be taken
    for one deleted from the database (regression: it was, now and then)."""
    nodes = start_cluster(start_gateway, pg, count=2)
    rounds = 40

    def create(index: int) -> tuple[list[str], list[str]]:
        node, mediators, listeners = nodes[index], [], []
        for round in range(rounds):
            name = f"n{index + 1}-{round}"
            response = node.post("/api/v1/mediators", json={"name": name, "address": "127.0.0.1:9"})
            assert response.status_code == 201, response.text
            assert node.get(f"/api/v1/mediators/{name}").status_code == 200, f"{name} lost on its own node"
            listener = node.create_listener(listen=f"127.0.0.1:{free_port()}", upstream="127.0.0.1:9")
            assert node.get(f"/api/v1/listeners/{listener['id']}").status_code == 200, \
                f"listener {listener['id']} lost on its own node"
            mediators.append(name)
            listeners.append(listener["id"])
        return mediators, listeners

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        made = list(pool.map(create, range(2)))
    mediators = sorted(made[0][0] + made[1][0])
    listeners = sorted(made[0][1] + made[1][1])
    for node in nodes:
        wait_until(lambda: mediator_names(node) == mediators, timeout=PROPAGATION_S, message="every mediator")
        wait_until(lambda: sorted(listener["id"] for listener in node.listeners()) == listeners,
                   timeout=PROPAGATION_S, message="every listener")
    assert db_count(pg, "mediators") == 2 * rounds and db_count(pg, "listeners") == 2 * rounds


@pytest.fixture
def small_pg() -> Iterator[Postgres]:
    """A database that takes 12 connections: one node's LISTEN link and its 8 others,
    the test's own psql sessions, and no more."""
    with running_postgres(max_connections=12) as server:
        yield server


def test_a_mediator_created_while_another_node_deletes_it_is_answered_as_created(
        pg: Postgres, start_gateway) -> None:
    """A POST answers with what it registered, even when a DELETE through the same node or
    another removes it the moment it is committed (regression: 404 "no mediator", after a
    201's work was done)."""
    nodes = start_cluster(start_gateway, pg, count=2)
    rounds, threads = 100, 4

    def create(_: int) -> list[int]:
        return [nodes[0].post("/api/v1/mediators", json={"name": "flip", "address": "127.0.0.1:9"}).status_code
                for _ in range(rounds)]

    def delete(index: int) -> list[int]:
        return [nodes[index % 2].delete("/api/v1/mediators/flip").status_code for _ in range(rounds)]

    with concurrent.futures.ThreadPoolExecutor(2 * threads) as pool:
        creators = [pool.submit(create, index) for index in range(threads)]
        deleters = [pool.submit(delete, index) for index in range(threads)]
        created_codes = [code for future in creators for code in future.result()]
        deleted_codes = [code for future in deleters for code in future.result()]
    assert set(created_codes) <= {201, 409}, collections.Counter(created_codes)
    assert set(deleted_codes) <= {204, 404}, collections.Counter(deleted_codes)
    assert 201 in created_codes and 204 in deleted_codes


def test_a_burst_of_changes_waits_for_the_nodes_connections_rather_than_open_more(
        small_pg: Postgres, start_gateway) -> None:
    """A node holds at most 8 database connections besides its LISTEN one, so a burst of
    admin requests cannot take every connection the server has (others use it too)."""
    node = start_node(start_gateway, small_pg, 0)
    burst = 60
    # Every change's transaction waits on this lock while the burst arrives, so all of them
    # want a connection at once; each is answered within its 2.5 s once the lock is gone.
    locker = small_pg.background("BEGIN; LOCK TABLE config_version IN EXCLUSIVE MODE; SELECT pg_sleep(1); COMMIT;")
    try:
        wait_until(lambda: small_pg.query("SELECT count(*) FROM pg_locks WHERE relation = "
                                          "'config_version'::regclass AND mode = 'ExclusiveLock' AND granted")
                   == [["1"]], timeout=10.0, message="config_version locked")

        def register(index: int) -> int:
            response = requests.post(f"{node.url}/api/v1/mediators", headers=node.headers(), timeout=30,
                                     json={"name": f"burst-{index}", "address": "127.0.0.1:9"})
            return response.status_code

        with concurrent.futures.ThreadPoolExecutor(burst) as pool:
            codes = list(pool.map(register, range(burst)))
    finally:
        locker.wait(timeout=30)
    assert codes == [201] * burst, codes
    assert db_count(small_pg, "mediators") == burst
    assert len(mediator_names(node)) == burst


@pytest.fixture
def tls_pg() -> Iterator[Postgres]:
    """A database that speaks TLS, with a certificate for 127.0.0.1 signed by its `ca_file`."""
    with running_postgres(tls=True) as server:
        yield server


def tcp_clients_on_tls(pg: Postgres) -> list[str]:
    """For each backend of a TCP client (the nodes: psql here uses the Unix socket), whether
    it speaks TLS ('t' or 'f')."""
    return [row[0] for row in pg.query("SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
                                       "WHERE a.client_addr IS NOT NULL")]


def test_tls_to_the_database_is_used_verified_and_refused_when_it_cannot_be(
        tls_pg: Postgres, start_gateway, tmp_path) -> None:
    verified = f"{tls_pg.url}?sslmode=verify-full&sslrootcert={tls_pg.ca_file}"
    node = start_node(start_gateway, tls_pg, 0, url=verified)
    assert node.post("/api/v1/mediators", json={"name": "upper", "address": "127.0.0.1:9"}).status_code == 201
    wait_until(lambda: tcp_clients_on_tls(tls_pg) != [], timeout=PROPAGATION_S, message="the node's connections")
    assert set(tcp_clients_on_tls(tls_pg)) == {"t"}, "every connection of the node speaks TLS"

    # A certificate signed by a CA the node was not told to trust: refused, and said why.
    stranger, _ = make_ca(tmp_path, "stranger-ca")
    refused = start_node(start_gateway, tls_pg, 1, url=f"{tls_pg.url}?sslmode=verify-full&sslrootcert={stranger}",
                         wait=False)
    assert refused.proc.wait(timeout=30) == 2, refused.output()
    assert "cannot use the cluster database" in refused.stderr_text(), refused.output()
    assert "certificate is not signed by a CA this node trusts" in refused.stderr_text(), refused.output()
    # Waiting would not cure it: start-up stops at the first refusal.
    assert "waiting for the cluster database" not in refused.stderr_text(), refused.output()
    refused.url = ""
    # Nor does `require` talk in plain text to a server that has no TLS (see below), and
    # `disable` does not use it where it is offered.
    plain = start_node(start_gateway, tls_pg, 1, url=f"{tls_pg.url}?sslmode=disable")
    assert plain.get("/api/v1/mediators/upper").status_code == 200
    assert "f" in tcp_clients_on_tls(tls_pg)


def test_sslmode_require_refuses_a_server_without_tls(pg: Postgres, start_gateway) -> None:
    gateway = start_node(start_gateway, pg, 0, url=f"{pg.url}?sslmode=require", wait=False)
    assert gateway.proc.wait(timeout=30) == 2, gateway.output()
    assert "cannot use the cluster database" in gateway.stderr_text(), gateway.output()
    assert "the server does not offer TLS" in gateway.stderr_text(), gateway.output()
    assert "waiting for the cluster database" not in gateway.stderr_text(), gateway.output()
    gateway.url = ""


def test_one_listen_address_created_through_three_nodes_at_once_gets_one_listener(
        pg: Postgres, start_gateway) -> None:
    """Each node binds its new listener before it commits; the database keeps one listener
    per listen address, so the others are refused (409) and unbound, and every node ends up
    relaying to the one upstream that won (regression: two got 201, and the nodes split the
    clients between two upstreams)."""
    nodes = start_cluster(start_gateway, pg)
    upstreams = [StreamServer(transform_handler(lambda data, tag=tag: tag + data)) for tag in (b"1:", b"2:", b"3:")]
    try:
        port = free_port()

        def create(index: int) -> requests.Response:
            return requests.post(f"{nodes[index].url}/api/v1/listeners", headers=nodes[index].headers(), timeout=30,
                                 json={"listen": f"127.0.0.1:{port}", "upstream": upstreams[index].address})

        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            answers = list(pool.map(create, range(3)))
        codes = sorted(answer.status_code for answer in answers)
        assert codes == [201, 409, 409], [answer.text for answer in answers]
        winner = next(index for index, answer in enumerate(answers) if answer.status_code == 201)
        # Refused by the database (the address is another listener's), or at once by the
        # node's own bind when the winner's change reached that node first.
        for answer in answers:
            if answer.status_code == 409:
                detail = answer.json()["detail"]
                assert "is taken by another listener of the cluster" in detail or "is already in use" in detail, detail
        assert db_count(pg, "listeners") == 1
        tag = b"%d:" % (winner + 1)
        for index, node in enumerate(nodes):
            def answered_by_winner() -> bool:
                try:
                    with socket.create_connection((HOSTS[index], port), timeout=2) as client:
                        client.sendall(b"who\n")
                        return recv_exactly(client, len(tag) + 4) == tag + b"who\n"
                except OSError:
                    return False
            wait_until(answered_by_winner, timeout=PROPAGATION_S, message=f"{HOSTS[index]}:{port} relaying to the winner")
    finally:
        for upstream in upstreams:
            upstream.close()


def test_a_node_where_the_port_is_taken_reports_a_failed_bind(pg: Postgres, start_gateway,
                                                              echo: StreamServer) -> None:
    nodes = start_cluster(start_gateway, pg)
    port = free_port()
    squatter = socket.socket()
    squatter.bind((HOSTS[2], port))
    squatter.listen(1)
    try:
        created = nodes[0].create_listener(listen=f"127.0.0.1:{port}", upstream=echo.address)

        def binds(node: Gateway) -> list[dict[str, str]]:
            return node.get(f"/api/v1/listeners/{created['id']}").json()["nodes"]

        for node in nodes[:2]:
            wait_until(lambda: [(bind["node"], bind["state"]) for bind in binds(node)]
                       == [("n1", "bound"), ("n2", "bound"), ("n3", "failed")],
                       timeout=PROPAGATION_S, message="n3's bind failure in the listener")
        failed = binds(nodes[1])[2]
        assert failed["listen"] == f"{HOSTS[2]}:{port}" and failed["error"], failed
        assert pg.query("SELECT node, state FROM listener_binds WHERE state = 'failed'") == [["n3", "failed"]]
        # The others relay; node 3 does not hold the listener but lists it, with the failure.
        assert relays(HOSTS[0], port) and relays(HOSTS[1], port)
        assert listener_ids(nodes[2]) == [created["id"]]
        wait_equal(lambda: [b["state"] for b in binds(nodes[2])], ["bound", "bound", "failed"], "binds on n3")
        # Deleting it through the node that does not hold it stops it on the others.
        response = nodes[2].delete(f"/api/v1/listeners/{created['id']}")
        assert response.status_code == 204, response.text
        for node in nodes:
            wait_until(lambda: listener_ids(node) == [], timeout=PROPAGATION_S, message="no listener left")
        assert refuses(HOSTS[0], port) and refuses(HOSTS[1], port)
        # Created through the node where the port is taken: 409, and nothing anywhere.
        problem = assert_problem(nodes[2].post("/api/v1/listeners", json={
            "listen": f"127.0.0.1:{port}", "upstream": echo.address}), 409)
        assert "already in use" in problem["detail"], problem
        assert db_count(pg, "listeners") == 0 and db_count(pg, "listener_binds") == 0
        assert all(listener_ids(node) == [] for node in nodes)
    finally:
        squatter.close()


def test_bad_input_changes_nothing_in_the_database(pg: Postgres, start_gateway) -> None:
    nodes = start_cluster(start_gateway, pg, count=2)
    sequence_before = pg.query("SELECT last_value, is_called FROM listener_ids")
    assert_problem(nodes[0].post("/api/v1/listeners", data=b"{not json", headers={"Content-Type": "application/json"}), 400)
    assert_problem(nodes[0].post("/api/v1/listeners", json={"listen": "127.0.0.1:1"}), 422)
    assert_problem(nodes[0].post("/api/v1/listeners", json={"listen": "nope", "upstream": "127.0.0.1:9"}), 422)
    assert_problem(nodes[1].post("/api/v1/mediators", json={"name": "x", "kind": "exec", "command": ["cat"]}), 422)
    assert_problem(nodes[1].post("/api/v1/mediators", json={"name": "bad name!", "address": "127.0.0.1:9"}), 422)
    assert_problem(nodes[1].delete("/api/v1/listeners/l99"), 404)
    assert pg.query("SELECT last_value, is_called FROM listener_ids") == sequence_before
    assert db_count(pg, "listeners") == 0 and db_count(pg, "mediators") == 0
    assert all(listener_ids(node) == [] and mediator_names(node) == [] for node in nodes)


def test_nodes_lists_the_live_nodes_and_a_killed_one_leaves(pg: Postgres, start_gateway) -> None:
    nodes = start_cluster(start_gateway, pg)
    for node in nodes:
        wait_until(lambda: node_names(node) == ["n1", "n2", "n3"], timeout=PROPAGATION_S, message="three nodes")
    listed = nodes[1].get("/api/v1/nodes").json()["nodes"]
    assert [(entry["name"], entry["self"]) for entry in listed] == [("n1", False), ("n2", True), ("n3", False)]
    assert {entry["admin_url"] for entry in listed} == {node.url for node in nodes}
    assert all(entry["version"] and entry["sessions"] == 0 for entry in listed)

    kill_hard(nodes[1])
    for node in (nodes[0], nodes[2]):
        wait_until(lambda: node_names(node) == ["n1", "n3"], timeout=LEAVE_S, message="n2 leaving the view")
    # Restarted at once under its name, n2 waits for its dead predecessor to leave the view.
    nodes[1] = start_node(start_gateway, pg, 1)
    for node in nodes:
        wait_until(lambda: node_names(node) == ["n1", "n2", "n3"], timeout=LEAVE_S, message="n2 back")
    # A node still heartbeating under a name keeps it: a second n2 does not start.
    duplicate = start_node(start_gateway, pg, 1, wait=False)
    assert duplicate.proc.wait(timeout=30) == 2, duplicate.output()
    assert "a live node already has that name" in duplicate.stderr_text(), duplicate.output()
    # A clean stop leaves at once: the node deletes its own row.
    assert stop_node(nodes[2]) == 0
    assert [row[0] for row in pg.query("SELECT name FROM nodes ORDER BY name")] == ["n1", "n2"]


def test_database_outage_keeps_relaying_refuses_changes_and_catches_up(pg: Postgres, start_gateway,
                                                                        echo: StreamServer) -> None:
    nodes = start_cluster(start_gateway, pg)
    port = free_port()
    created = nodes[0].create_listener(listen=f"127.0.0.1:{port}", upstream=echo.address)
    for host in HOSTS:
        wait_until(lambda: relays(host, port), timeout=PROPAGATION_S, message=f"{host}:{port} relaying")
    client = connect(f"{HOSTS[1]}:{port}")
    assert roundtrip(client, b"before\n") == b"before\n"

    pg.stop()
    # Sessions go on, new clients are accepted, on the configuration the nodes hold.
    assert roundtrip(client, b"during\n") == b"during\n"
    assert all(relays(host, port) for host in HOSTS)
    other_port = free_port()
    for node in nodes:
        problem = assert_problem(node.post("/api/v1/listeners", json={
            "listen": f"127.0.0.1:{other_port}", "upstream": echo.address}), 503)
        assert problem["type"] == UNAVAILABLE, problem
    problem = assert_problem(nodes[1].delete(f"/api/v1/listeners/{created['id']}"), 503)
    assert problem["type"] == UNAVAILABLE, problem
    problem = assert_problem(nodes[2].post("/api/v1/mediators", json={"name": "m", "address": "127.0.0.1:9"}), 503)
    assert problem["type"] == UNAVAILABLE, problem
    for node in nodes:
        assert listener_ids(node) == [created["id"]] and mediator_names(node) == []
    assert all(relays(host, port) and refuses(host, other_port) for host in HOSTS)

    pg.start()
    # A change made once the database is back reaches every node.
    response = wait_until(lambda: (r := nodes[1].post("/api/v1/listeners", json={
        "listen": f"127.0.0.1:{other_port}", "upstream": echo.address})).status_code != 503 and r,
        timeout=PROPAGATION_S, message="the database accepting changes again")
    assert response.status_code == 201, response.text
    for host in HOSTS:
        wait_until(lambda: relays(host, other_port), timeout=PROPAGATION_S, message=f"{host}:{other_port} relaying")
    assert roundtrip(client, b"after\n") == b"after\n"
    client.close()
    for node in nodes:
        wait_until(lambda: node_names(node) == ["n1", "n2", "n3"], timeout=PROPAGATION_S, message="heartbeats back")


def test_a_silent_network_to_the_database_refuses_changes_in_time_and_recovers(
        pg: Postgres, start_gateway, echo: StreamServer) -> None:
    """The database does not go away cleanly but goes silent (connections stay open, no byte
    moves): deadlines, not TCP, decide."""
    proxy = FreezeProxy(f"127.0.0.1:{pg.port}")
    try:
        nodes = start_cluster(start_gateway, pg, count=2,
                              url=f"postgres://postgres@127.0.0.1:{proxy.port}/postgres")
        port, other_port = free_port(), free_port()
        created = nodes[0].create_listener(listen=f"127.0.0.1:{port}", upstream=echo.address)
        for host in HOSTS[:2]:
            wait_until(lambda: relays(host, port), timeout=PROPAGATION_S, message=f"{host}:{port} relaying")

        proxy.freeze()
        started = time.monotonic()
        problem = assert_problem(nodes[1].post("/api/v1/listeners", json={
            "listen": f"127.0.0.1:{other_port}", "upstream": echo.address}), 503)
        print(f"503 after {time.monotonic() - started:.2f} s with the database silent")
        assert problem["type"] == UNAVAILABLE, problem
        problem = assert_problem(nodes[0].delete(f"/api/v1/listeners/{created['id']}"), 503)
        assert problem["type"] == UNAVAILABLE, problem
        assert all(relays(host, port) for host in HOSTS[:2])
        assert all(listener_ids(node) == [created["id"]] for node in nodes)

        proxy.thaw()
        response = wait_until(lambda: (r := nodes[1].post("/api/v1/listeners", json={
            "listen": f"127.0.0.1:{other_port}", "upstream": echo.address})).status_code != 503 and r,
            timeout=PROPAGATION_S, message="changes accepted again")
        assert response.status_code == 201, response.text
        for host in HOSTS[:2]:
            wait_until(lambda: relays(host, other_port), timeout=PROPAGATION_S,
                       message=f"{host}:{other_port} relaying")
        for node in nodes:
            stop_node(node)
    finally:
        proxy.close()


def test_a_restarted_node_takes_the_changes_made_while_it_was_down(pg: Postgres, start_gateway,
                                                                   echo: StreamServer) -> None:
    nodes = start_cluster(start_gateway, pg)
    kept_port, gone_port, new_port = free_port(), free_port(), free_port()
    kept = nodes[0].create_listener(listen=f"127.0.0.1:{kept_port}", upstream=echo.address)
    gone = nodes[0].create_listener(listen=f"127.0.0.1:{gone_port}", upstream=echo.address)
    wait_until(lambda: listener_ids(nodes[2]) == [kept["id"], gone["id"]], timeout=PROPAGATION_S,
               message="both listeners on n3")
    assert stop_node(nodes[2]) == 0

    response = nodes[1].delete(f"/api/v1/listeners/{gone['id']}")
    assert response.status_code == 204, response.text
    new = nodes[1].create_listener(listen=f"127.0.0.1:{new_port}", upstream=echo.address)
    assert nodes[0].post("/api/v1/mediators", json={"name": "late", "address": "127.0.0.1:9"}).status_code == 201

    restarted = start_node(start_gateway, pg, 2)
    # Reconciled before it reports ready.
    assert listener_ids(restarted) == sorted([kept["id"], new["id"]], key=lambda i: int(i[1:]))
    assert mediator_names(restarted) == ["late"]
    assert relays(HOSTS[2], kept_port) and relays(HOSTS[2], new_port) and refuses(HOSTS[2], gone_port)


def test_cluster_flags_are_checked_at_start(start_gateway, tmp_path) -> None:
    cases: list[tuple[list[str], str]] = [
        (["--cluster-db", "postgres://u@127.0.0.1:1/db", "--state-file", str(tmp_path / "s.json")],
         "cannot be used together"),
        (["--node", "n1"], "--node needs --cluster-db"),
        (["--cluster-db", "mysql://u@h/db"], "--cluster-db must be a URL"),
        (["--cluster-db", "postgres://u@127.0.0.1:1/db", "--demo"], "--demo cannot join a cluster"),
    ]
    for args, message in cases:
        gateway = start_gateway(*args, wait=False)
        assert gateway.proc.wait(timeout=20) == 2, gateway.output()
        assert message in gateway.stderr_text(), gateway.output()
        gateway.url = ""


def test_an_unreachable_database_stops_start_up_with_a_clear_message(start_gateway) -> None:
    port = free_port()
    gateway = start_gateway("--cluster-db", f"postgres://postgres@127.0.0.1:{port}/postgres", wait=False)
    assert gateway.proc.wait(timeout=30) == 2, gateway.output()
    assert "cannot use the cluster database" in gateway.stderr_text(), gateway.output()
    gateway.url = ""


def test_a_gateway_on_its_own_lists_itself_as_the_only_node(gateway: Gateway) -> None:
    response = gateway.get("/api/v1/nodes")
    assert response.status_code == 200, response.text
    [node] = response.json()["nodes"]
    assert node["self"] is True and node["admin_url"] == gateway.url
    assert node["name"].endswith(f":{gateway.port}") and node["sessions"] == 0
    # Its listeners carry no `nodes`: that is the cluster's.
    created = gateway.create_listener(listen="127.0.0.1:0", upstream="127.0.0.1:9")
    assert "nodes" not in created and "nodes" not in gateway.listeners()[0]


def client_spliced_into_upper(node: Gateway, address: str) -> socket.socket:
    """A client of `address` whose session (on `node`) has mediator `upper` spliced in."""
    client = connect(address)
    session = session_of(node, client)
    response = node.post(f"/api/v1/sessions/{session['id']}/mediators",
                         json={"mediator": "upper", "direction": "client_to_server"})
    assert response.status_code == 201, response.text
    assert roundtrip(client, b"spliced\n") == b"SPLICED\n"
    return client


def test_a_mediator_in_use_on_any_node_cannot_be_unregistered_until_its_session_lets_go(
        pg: Postgres, start_gateway, echo: StreamServer) -> None:
    upper = StreamServer(transform_handler(bytes.upper))
    try:
        nodes = start_cluster(start_gateway, pg, count=2)
        wait_until(lambda: node_names(nodes[1]) == ["n1", "n2"], timeout=PROPAGATION_S, message="n2 listing n1")
        assert nodes[0].post("/api/v1/mediators", json={"name": "upper", "address": upper.address}).status_code == 201
        port = free_port()
        nodes[0].create_listener(listen=f"127.0.0.1:{port}", upstream=echo.address)
        wait_until(lambda: mediator_names(nodes[1]) == ["upper"], timeout=PROPAGATION_S, message="upper on n2")
        client = client_spliced_into_upper(nodes[0], f"{HOSTS[0]}:{port}")

        # Where a session uses it, unregistering is refused, and nothing changes anywhere.
        assert_problem(nodes[0].delete("/api/v1/mediators/upper"), 409)
        assert db_count(pg, "mediators") == 1 and mediator_names(nodes[1]) == ["upper"]
        # Through the other node too: it asks n1 first.
        problem = assert_problem(nodes[1].delete("/api/v1/mediators/upper"), 409)
        assert "on node 'n1'" in problem["detail"], problem
        assert db_count(pg, "mediators") == 1 and mediator_names(nodes[1]) == ["upper"]
        assert roundtrip(client, b"still\n") == b"STILL\n"
        client.close()
        wait_until(lambda: nodes[0].get("/api/v1/mediators/upper").json()["in_use"] == 0, timeout=PROPAGATION_S,
                   message="n1's session letting go of upper")
        assert nodes[1].delete("/api/v1/mediators/upper").status_code == 204
        assert db_count(pg, "mediators") == 0
        for node in nodes:
            wait_until(lambda: mediator_names(node) == [], timeout=PROPAGATION_S, message="upper gone everywhere")
    finally:
        upper.close()


def test_a_mediator_deleted_while_a_hop_here_holds_it_stays_with_that_hop_only(
        pg: Postgres, start_gateway, echo: StreamServer) -> None:
    """What a splice that raced the mediator's deletion through another node leaves: the
    database has no `upper`, a hop here holds it. The node lists no `upper`, refuses new
    splices of it, a new `upper` registers beside it, and the hop keeps the one it has
    until it is removed (regression: the node kept `upper` registered and spliceable,
    out of step with the database, for as long as the hop lived)."""
    upper = StreamServer(transform_handler(bytes.upper))
    shout = StreamServer(transform_handler(lambda data: data.upper() + b"!"))
    try:
        nodes = start_cluster(start_gateway, pg, count=2)
        assert nodes[0].post("/api/v1/mediators", json={"name": "upper", "address": upper.address}).status_code == 201
        port = free_port()
        nodes[0].create_listener(listen=f"127.0.0.1:{port}", upstream=echo.address)
        wait_until(lambda: mediator_names(nodes[1]) == ["upper"] and relays(HOSTS[1], port), timeout=PROPAGATION_S,
                   message="upper and the listener on n2")
        client = client_spliced_into_upper(nodes[1], f"{HOSTS[1]}:{port}")
        session = session_of(nodes[1], client)
        # The race's outcome, made directly: deleted in the database, as a node that
        # asked n2 just before the splice would have deleted it.
        pg.query("BEGIN; DELETE FROM mediators WHERE name = 'upper'; UPDATE config_version SET version = version + 1; "
                 "SELECT pg_notify('splicegate_config', '{\"change\": \"mediator_removed\", \"name\": \"upper\", "
                 "\"origin\": \"0\"}'); COMMIT;")
        wait_until(lambda: mediator_names(nodes[1]) == [], timeout=PROPAGATION_S, message="upper gone from n2's list")
        other = connect(f"{HOSTS[1]}:{port}")
        refused = nodes[1].post(f"/api/v1/sessions/{session_of(nodes[1], other)['id']}/mediators",
                                json={"mediator": "upper", "direction": "client_to_server"})
        assert_problem(refused, 409)
        assert roundtrip(client, b"held\n") == b"HELD\n"
        # Registered anew (another address): new splices get it, the old hop keeps its own.
        assert nodes[0].post("/api/v1/mediators", json={"name": "upper", "address": shout.address}).status_code == 201
        wait_until(lambda: mediator_names(nodes[1]) == ["upper"], timeout=PROPAGATION_S, message="the new upper on n2")
        assert roundtrip(client, b"old\n") == b"OLD\n"
        hop = nodes[1].get(f"/api/v1/sessions/{session['id']}").json()["mediators"][0]["id"]
        assert nodes[1].delete(f"/api/v1/sessions/{session['id']}/mediators/{hop}").status_code == 200
        assert roundtrip(client, b"plain\n") == b"plain\n"
        assert nodes[1].get("/api/v1/mediators/upper").json()["in_use"] == 0
        other.close()
        client.close()
    finally:
        upper.close()
        shout.close()


def test_the_config_file_seeds_a_new_cluster_database_once(pg: Postgres, start_gateway, echo: StreamServer,
                                                           tmp_path) -> None:
    port = free_port()
    config = tmp_path / "cluster.json"
    config.write_text(json.dumps({
        "cluster": {"database_url": pg.url},
        "listeners": [{"listen": f"127.0.0.1:{port}", "upstream": echo.address}],
        "mediators": [{"name": "seeded", "address": "127.0.0.1:9"}],
    }))
    nodes = [start_gateway("--config", str(config), "--node", f"n{i + 1}", "--bind-host", HOSTS[i], wait=False)
             for i in range(2)]
    nodes = [node.wait_ready() for node in nodes]
    assert db_count(pg, "listeners") == 1 and db_count(pg, "mediators") == 1
    for index, node in enumerate(nodes):
        wait_until(lambda: len(listener_ids(node)) == 1 and mediator_names(node) == ["seeded"],
                   timeout=PROPAGATION_S, message="the seeded listener and mediator")
        assert relays(HOSTS[index], port)
