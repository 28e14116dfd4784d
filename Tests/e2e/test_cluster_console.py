"""Issue 14: the console of one node shows the sessions of the whole cluster.

A real headless Chromium (the helpers of test_console.py) opens node n1's console while
one client is connected to each of n1, n2 and n3 directly; every session shows up in n1's
table with the node that owns it. Its own module, so that the cluster tests run without
a browser and this one skips like test_console.py where selenium is missing.
"""

from __future__ import annotations

import contextlib
import socket
from typing import Any

from cluster_tools import Cluster, cluster, postgres  # noqa: F401 (fixtures)
from conftest import free_port
from test_console import browser, connect, local, open_console, page, round_trip, wait_for  # noqa: F401

from selenium.webdriver.common.by import By  # noqa: E402  (test_console skips the module without selenium)


def node_shown(driver: Any, client: str) -> str | None:
    """The Node cell of the row whose client is `client`, if the row is there and visible."""
    return driver.execute_script(
        """const tr = [...document.querySelectorAll('#sessions-body tr')]
             .find(tr => [...tr.cells].some(td => td.textContent === arguments[0]));
           const cell = tr && tr.querySelector('td.col-node');
           return cell && cell.offsetParent !== null ? cell.textContent : null;""", client)


def test_console_of_n1_shows_the_sessions_of_all_three_nodes(cluster: Cluster, page: Any) -> None:
    cluster.front_listener()
    with contextlib.ExitStack() as stack:
        owned = {}
        for node in cluster.nodes.values():
            client = connect(node.address(cluster.listener_port), stack)
            assert round_trip(client, b"console %s\n" % node.name.encode()) == b"console %s\n" % node.name.encode()
            owned[local(client)] = node.name
        open_console(page, cluster.n1)
        for client, name in owned.items():
            wait_for(page, lambda d: node_shown(d, client) == name, 5.0,
                     f"the session of {client} shown as owned by {name} in n1's console")
        header = page.find_element(By.CSS_SELECTOR, "#sessions-table th.col-node")
        assert header.is_displayed() and header.get_attribute("textContent") == "Node"


def test_console_of_n1_shows_the_nodes_and_where_a_listener_failed_to_bind(cluster: Cluster, page: Any) -> None:
    # n2's host has the port taken, so the listener binds on n1 and n3 only.
    port = free_port()
    with socket.socket() as taken:
        taken.bind((cluster.n2.bind_host, port))
        taken.listen()
        listener = cluster.create_listener(cluster.n1, port, name="half")
        try:
            open_console(page, cluster.n1)
            wait_for(page, lambda d: d.execute_script(
                "return [...document.querySelectorAll('#node-list [data-node]')].map(li => li.dataset.node)")
                     == ["n1", "n2", "n3"], 10.0, "n1's console listing the three nodes")
            assert page.find_element(By.ID, "nodes-panel").is_displayed()
            binds = f"[data-binds='{listener['id']}']"
            wait_for(page, lambda d: "failed on n2" in (d.execute_script(
                f"return document.querySelector(\"{binds}\")?.textContent") or ""), 10.0,
                f"listener {listener['id']} shown as failed on n2")
            shown = page.find_element(By.CSS_SELECTOR, binds).get_attribute("textContent")
            assert shown.startswith("bound on n1, n3"), shown
        finally:
            assert cluster.n1.delete(f"/api/v1/listeners/{listener['id']}").status_code == 204
