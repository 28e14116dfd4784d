"""The cluster's store when the database misbehaves in ways other than going away: a COMMIT
whose answer never comes, a change whose notification is lost. Real gateways, a real
PostgreSQL (pg_tools), helpers from test_cluster_config.

A COMMIT that never returns is what a lost synchronous standby does: with
`synchronous_standby_names` naming a standby that does not exist, every write transaction
waits at COMMIT, already committed locally, until the setting is lifted.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import time

from conftest import Gateway, StreamServer, assert_problem, free_port, roundtrip, transform_handler, wait_until
from pg_tools import Postgres
from test_cluster_config import (HOSTS, LEAVE_S, PROPAGATION_S, UNAVAILABLE, client_spliced_into_upper,  # noqa: F401
                                 echo, mediator_names, node_names, pg, relays, start_cluster, start_node)

MAY_HAVE = "may or may not have been applied"


def ghost_standby(pg: Postgres, on: bool) -> None:
    """Makes every COMMIT wait for a standby that does not exist (on), or lets them all go."""
    pg.query("ALTER SYSTEM SET synchronous_standby_names = 'ghost'" if on
             else "ALTER SYSTEM RESET synchronous_standby_names")
    pg.query("SELECT pg_reload_conf()")
    wait_until(lambda: pg.query("SHOW synchronous_standby_names") == ([["ghost"]] if on else []),
               timeout=10.0, message="the server reloading synchronous_standby_names")
    if on:
        # The nodes' heartbeats are writes: once one waits, the backends run with the setting.
        wait_until(lambda: waiting_commits(pg, "%") > 0, timeout=10.0, message="a write waiting for the standby")


def waiting_commits(pg: Postgres, query: str) -> int:
    """Backends waiting for the standby whose last statement is like `query`."""
    return int(pg.query("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep' "
                        f"AND query LIKE '{query}'")[0][0])


def lock_waiters(pg: Postgres, query: str) -> int:
    """Backends waiting on a lock whose last statement is like `query`."""
    return int(pg.query("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        f"AND query LIKE '{query}'")[0][0])


def test_a_change_whose_commit_is_not_confirmed_says_so_and_every_node_converges(
        pg: Postgres, start_gateway, echo: StreamServer) -> None:
    nodes = start_cluster(start_gateway, pg, count=2)
    port = free_port()
    # A first listener takes an id: nextval writes (and so waits for the standby) only
    # once every 32 ids, and the id of the next one must come without waiting.
    nodes[0].create_listener(listen=f"127.0.0.1:{free_port()}", upstream=echo.address)
    ghost_standby(pg, True)
    try:
        started = time.monotonic()
        problem = assert_problem(nodes[0].post("/api/v1/listeners", json={
            "listen": f"127.0.0.1:{port}", "upstream": echo.address}), 503)
        print(f"503 after {time.monotonic() - started:.2f} s with the COMMIT unanswered")
        assert problem["type"] == UNAVAILABLE and MAY_HAVE in problem["detail"], problem
        # The next change waits behind the first (changes are ordered across nodes), before
        # its COMMIT: that one is certain not to have happened.
        started = time.monotonic()
        problem = assert_problem(nodes[1].post("/api/v1/mediators", json={
            "name": "upper", "address": "127.0.0.1:9"}), 503)
        print(f"second change: 503 after {time.monotonic() - started:.2f} s")
        assert problem["type"] == UNAVAILABLE and "nothing was changed" in problem["detail"], problem
        # What a deadline abandoned does not stay in the database while the standby is still
        # missing: the second change's backend, left waiting on the first change's lock,
        # ends once the server sees its client gone (as does each heartbeat queued behind an
        # unconfirmed one: else one more would pile up every round, until the server had no
        # connection left to give).
        wait_until(lambda: lock_waiters(pg, "UPDATE config_version%") == 0, timeout=PROPAGATION_S,
                   message="the abandoned change's backend ended")
    finally:
        ghost_standby(pg, False)
    released = time.monotonic()
    # The first commit went through once the standby was no longer required: every node,
    # the one that answered 503 included, takes what the database holds.
    wait_until(lambda: pg.query("SELECT count(*) FROM listeners") == [["2"]], timeout=PROPAGATION_S,
               message="the listener committed")
    for index, node in enumerate(nodes):
        wait_until(lambda: relays(HOSTS[index], port), timeout=PROPAGATION_S, message=f"{HOSTS[index]}:{port}")
    print(f"every node relaying {time.monotonic() - released:.2f} s after the COMMIT was released")
    wait_until(lambda: pg.query("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'") == [["0"]],
               timeout=PROPAGATION_S, message="no write waiting")
    assert pg.query("SELECT count(*) FROM mediators") == [["0"]]
    assert all(mediator_names(node) == [] for node in nodes)


def test_a_mediator_stays_usable_while_its_delete_waits_on_the_database(pg: Postgres, start_gateway) -> None:
    nodes = start_cluster(start_gateway, pg, count=2)
    assert nodes[0].post("/api/v1/mediators", json={"name": "upper", "address": "127.0.0.1:9"}).status_code == 201
    wait_until(lambda: mediator_names(nodes[1]) == ["upper"], timeout=PROPAGATION_S, message="upper on n2")
    ghost_standby(pg, True)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        try:
            deleting = pool.submit(nodes[0].delete, "/api/v1/mediators/upper")
            wait_until(lambda: waiting_commits(pg, "COMMIT%") > 0, timeout=10.0,
                       message="the delete's COMMIT waiting")
            # Not unregistered here before the database said yes.
            assert nodes[0].get("/api/v1/mediators/upper").status_code == 200
            problem = assert_problem(deleting.result(timeout=30), 503)
            assert problem["type"] == UNAVAILABLE and MAY_HAVE in problem["detail"], problem
        finally:
            ghost_standby(pg, False)
    for node in nodes:
        wait_until(lambda: mediator_names(node) == [], timeout=PROPAGATION_S, message="upper gone everywhere")


def test_a_change_whose_notification_is_lost_still_reaches_every_node(pg: Postgres, start_gateway) -> None:
    """As when the LISTEN link dies silently (an idle timeout in a NAT or a load balancer,
    a pooler): the change is in the database, its NOTIFY never arrives."""
    nodes = start_cluster(start_gateway, pg, count=2)
    pg.query("BEGIN; INSERT INTO mediators (name, spec) VALUES ('quiet', "
             "'{\"name\": \"quiet\", \"address\": \"127.0.0.1:9\"}'); "
             "UPDATE config_version SET version = version + 1; COMMIT")
    for node in nodes:
        wait_until(lambda: mediator_names(node) == ["quiet"], timeout=PROPAGATION_S, message="quiet registered")


def test_a_start_refused_for_a_taken_name_leaves_the_live_node_untouched(pg: Postgres, start_gateway,
                                                                        echo: StreamServer) -> None:
    (first,) = start_cluster(start_gateway, pg, count=1)
    port = free_port()
    first.create_listener(listen=f"127.0.0.1:{port}", upstream=echo.address)
    assert pg.query("SELECT node, state FROM listener_binds") == [["n1", "bound"]]
    duplicate = start_gateway("--cluster-db", pg.url, "--node", "n1", "--bind-host", HOSTS[1], wait=False)
    assert duplicate.proc.wait(timeout=60) == 2, duplicate.output()
    assert "a live node already has that name" in duplicate.stderr_text(), duplicate.output()
    duplicate.url = ""
    # The refused start did not take the live node's bind states with it.
    assert pg.query("SELECT node, state FROM listener_binds") == [["n1", "bound"]]
    assert relays(HOSTS[0], port)


def test_an_advertised_address_the_other_nodes_cannot_reach_stops_start_up(start_gateway) -> None:
    database = ["--cluster-db", "postgres://u@127.0.0.1:1/db"]
    cases: list[tuple[list[str], str, str]] = [
        ([*database, "--advertise", "https://10.0.0.5:8080"], "127.0.0.1:0", "--advertise must be http://HOST:PORT"),
        ([*database, "--advertise", "http://10.0.0.5:8080/admin"], "127.0.0.1:0", "--advertise must be http://HOST:PORT"),
        ([*database, "--advertise", "http://10.0.0.5"], "127.0.0.1:0", "--advertise must be http://HOST:PORT"),
        (database, "0.0.0.0:0", "wildcard address the other nodes cannot reach"),
        (database, "[::]:0", "wildcard address the other nodes cannot reach"),
    ]
    for args, admin, message in cases:
        gateway = start_gateway(*args, admin=admin, wait=False)
        assert gateway.proc.wait(timeout=20) == 2, gateway.output()
        assert message in gateway.stderr_text(), gateway.output()
        gateway.url = ""


def test_a_mediator_spliced_on_another_node_cannot_be_unregistered(pg: Postgres, start_gateway,
                                                                   echo: StreamServer) -> None:
    upper = StreamServer(transform_handler(bytes.upper))
    try:
        nodes = start_cluster(start_gateway, pg)
        # n1 asks the nodes of its view: n3 must be in it.
        wait_until(lambda: node_names(nodes[0]) == ["n1", "n2", "n3"], timeout=PROPAGATION_S,
                   message="n1 listing all three")
        assert nodes[0].post("/api/v1/mediators", json={"name": "upper", "address": upper.address}).status_code == 201
        port = free_port()
        nodes[0].create_listener(listen=f"127.0.0.1:{port}", upstream=echo.address)
        wait_until(lambda: relays(HOSTS[2], port), timeout=PROPAGATION_S, message="n3 relaying")
        # Checked below on every node: n2's copy is applied as n3's is, but nothing waited for it.
        wait_until(lambda: mediator_names(nodes[1]) == ["upper"], timeout=PROPAGATION_S, message="upper on n2")
        client = client_spliced_into_upper(nodes[2], f"{HOSTS[2]}:{port}")

        problem = assert_problem(nodes[0].delete("/api/v1/mediators/upper"), 409)
        assert "on node 'n3'" in problem["detail"], problem
        # A client that claims to be a peer does not skip the question (regression: it did).
        forged = nodes[0].delete("/api/v1/mediators/upper", headers={"X-Splicegate-Forwarded": "n2"})
        assert "on node 'n3'" in assert_problem(forged, 409)["detail"]
        assert pg.query("SELECT name FROM mediators") == [["upper"]]
        assert [mediator_names(node) for node in nodes] == [["upper"]] * 3
        assert roundtrip(client, b"still\n") == b"STILL\n"
        client.close()
    finally:
        upper.close()


def test_a_mediator_a_listener_template_splices_cannot_be_unregistered(pg: Postgres, start_gateway,
                                                                       echo: StreamServer) -> None:
    nodes = start_cluster(start_gateway, pg, count=2)
    assert nodes[0].post("/api/v1/mediators", json={"name": "upper", "address": "127.0.0.1:9"}).status_code == 201
    created = nodes[0].create_listener(listen=f"127.0.0.1:{free_port()}", upstream=echo.address,
                                       mediators=[{"mediator": "upper", "direction": "client_to_server"}])
    wait_until(lambda: created["id"] in [listener["id"] for listener in nodes[1].listeners()],
               timeout=PROPAGATION_S, message="the listener on n2")
    problem = assert_problem(nodes[1].delete("/api/v1/mediators/upper"), 409)
    assert f"listener {created['id']}" in problem["detail"], problem
    assert pg.query("SELECT name FROM mediators") == [["upper"]]


def heartbeats_refused(node: Gateway, reason: str) -> int:
    return sum(1 for line in node.stderr_text().splitlines() if "cluster heartbeat refused" in line and reason in line)


def test_a_stopped_node_back_after_its_name_was_taken_stays_out_of_the_view(pg: Postgres, start_gateway) -> None:
    (old,) = start_cluster(start_gateway, pg, count=1)
    os.kill(old.proc.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: pg.query("SELECT count(*) FROM nodes WHERE heartbeat_at > now() - interval '5 s'")
                   == [["0"]], timeout=LEAVE_S, message="the stopped n1 leaving the view")
        new = start_gateway("--cluster-db", pg.url, "--node", "n1", "--bind-host", HOSTS[1])
        new_number = pg.query("SELECT number FROM nodes WHERE name = 'n1'")
    finally:
        os.kill(old.proc.pid, signal.SIGCONT)
    # The old process is refused at every round, and the row stays the new one's.
    wait_until(lambda: heartbeats_refused(old, "another live process") >= 2, timeout=PROPAGATION_S,
               message="the old n1 refused twice")
    assert pg.query("SELECT number FROM nodes WHERE name = 'n1'") == new_number
    assert node_names(new) == ["n1"]


def test_a_node_whose_row_vanished_takes_it_back_and_its_number_is_never_given_again(
        pg: Postgres, start_gateway) -> None:
    (first,) = start_cluster(start_gateway, pg, count=1)
    row = pg.query("SELECT name, number FROM nodes")
    # As when the tables are created anew under a live node: its row gone, the numbers restarted.
    pg.query("DELETE FROM nodes; ALTER SEQUENCE node_numbers RESTART WITH 1")
    wait_until(lambda: pg.query("SELECT name, number FROM nodes") == row, timeout=PROPAGATION_S,
               message="n1 writing its row again")
    start_node(start_gateway, pg, 1)
    rows = pg.query("SELECT name, number FROM nodes ORDER BY name")
    assert [name for name, _ in rows] == ["n1", "n2"] and rows[0] == row[0] and rows[1][1] != row[0][1], rows


def test_a_node_whose_number_another_node_holds_stays_out_of_the_view(pg: Postgres, start_gateway) -> None:
    (first,) = start_cluster(start_gateway, pg, count=1)
    (number,) = pg.query("SELECT number FROM nodes")[0]
    pg.query("BEGIN; DELETE FROM nodes; INSERT INTO nodes (name, number, admin_url, version, started_at, "
             f"heartbeat_at) VALUES ('other', {number}, 'http://127.0.0.1:9', 'x', now(), now()); COMMIT")
    wait_until(lambda: heartbeats_refused(first, "belongs to another node") >= 2, timeout=PROPAGATION_S,
               message="n1 refused at every round")
    assert pg.query("SELECT name FROM nodes") == [["other"]]


def test_a_node_number_too_large_for_session_ids_stops_start_up(pg: Postgres, start_gateway) -> None:
    start_cluster(start_gateway, pg, count=1)
    pg.query("ALTER SEQUENCE node_numbers RESTART WITH 18446744")
    node = start_node(start_gateway, pg, 1, wait=False)
    assert node.proc.wait(timeout=30) == 2, node.output()
    assert "too large for session ids" in node.stderr_text(), node.output()
    node.url = ""


def test_a_failed_bind_is_tried_again_once_the_port_is_free(pg: Postgres, start_gateway,
                                                            echo: StreamServer) -> None:
    nodes = start_cluster(start_gateway, pg, count=2)
    port = free_port()
    squatter = socket.socket()
    try:
        squatter.bind((HOSTS[1], port))
        squatter.listen(1)
        nodes[0].create_listener(listen=f"127.0.0.1:{port}", upstream=echo.address)
        wait_until(lambda: pg.query("SELECT node, state FROM listener_binds ORDER BY node")
                   == [["n1", "bound"], ["n2", "failed"]], timeout=PROPAGATION_S, message="n2's bind failing")
    finally:
        squatter.close()
    # Tries back off to 30 s at most: the deadline allows for the longest.
    wait_until(lambda: relays(HOSTS[1], port), timeout=PROPAGATION_S + 30, message="n2 binding once the port is free")
    wait_until(lambda: pg.query("SELECT node, state FROM listener_binds ORDER BY node")
               == [["n1", "bound"], ["n2", "bound"]], timeout=PROPAGATION_S, message="n2's bind recorded")


def test_a_mediator_delete_that_cannot_ask_a_live_node_changes_nothing(pg: Postgres, start_gateway) -> None:
    # n2 heartbeats, but the address it advertises answers nothing.
    first = start_node(start_gateway, pg, 0)
    second = start_node(start_gateway, pg, 1, "--advertise", f"http://127.0.0.1:{free_port()}")
    wait_until(lambda: node_names(first) == ["n1", "n2"], timeout=PROPAGATION_S, message="n1 listing n2")
    assert first.post("/api/v1/mediators", json={"name": "upper", "address": "127.0.0.1:9"}).status_code == 201
    wait_until(lambda: mediator_names(second) == ["upper"], timeout=PROPAGATION_S, message="upper on n2")
    problem = assert_problem(first.delete("/api/v1/mediators/upper"), 503)
    assert problem["type"] == UNAVAILABLE and "node 'n2' cannot say" in problem["detail"], problem
    assert pg.query("SELECT name FROM mediators") == [["upper"]]
    assert mediator_names(first) == ["upper"] and mediator_names(second) == ["upper"]
