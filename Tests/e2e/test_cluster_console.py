"""Issue 14: the console of one node shows the sessions of the whole cluster.

A real headless Chromium (the helpers of test_console.py) opens node n1's console while
one client is connected to each of n1, n2 and n3 directly; every session shows up in n1's
table with the node that owns it. Its own module, so that the cluster tests run without
a browser and this one skips like test_console.py where selenium is missing.
"""

from __future__ import annotations

import contextlib
from typing import Any

from cluster_tools import Cluster, cluster, postgres  # noqa: F401 (fixtures)
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
