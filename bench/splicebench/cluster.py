"""The cluster workload (issue 14): three splicegate nodes on one PostgreSQL, each holding
the largest count of idle sessions that fits, and the time to list all of them through
one node (every page merges the three nodes' pages), beside one node's own listing.

Node i listens on 127.0.0.(i+1) (`--bind-host`); each node has its own listener and its
own holder upstream (one holder could not hold 3 x 9,800 descriptors), and its own `bt
idle` client (BT_HOST) so every node's sessions are its own."""
import os
import pwd
import shutil
import subprocess
import time

from . import env
from .clients import Admin
from .env import BT, HOST, WORK, log
from .processes import big_session_count, free_port, spawn, stop, wait_established, wait_log, wait_port

NODES = 3


class Postgres:
    """A throwaway PostgreSQL in WORK/pg (initdb, pg_ctl as the postgres user when root)."""

    def __init__(self):
        bins = sorted(os.listdir("/usr/lib/postgresql"), key=int)
        self.bin = f"/usr/lib/postgresql/{bins[-1]}/bin"
        self.dir = WORK / "pg"
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.port = free_port()
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self._run("initdb", "-D", self.dir / "data", "-U", "postgres", "--auth=trust", "--no-sync",
                  "--no-instructions")
        self._run("pg_ctl", "-D", self.dir / "data", "-l", self.dir / "server.log", "-w", "start", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses={HOST} -c fsync=off")
        self.url = f"postgres://postgres@{HOST}:{self.port}/postgres"

    def _run(self, program, *args):
        command = [f"{self.bin}/{program}", *map(str, args)]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.dir, timeout=120)

    def stop(self):
        try:
            self._run("pg_ctl", "-D", self.dir / "data", "-m", "immediate", "stop")
        except subprocess.SubprocessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def cluster_listing(bench):
    """Adds res["cluster"]: the listing time of NODES x n sessions through node 1."""
    a = bench.a
    n = big_session_count()
    out = bench.res["cluster"] = {"nodes": NODES, "per_node": n, "list_ms": [], "local_ms": []}
    bench.record_load("cluster")
    pg = Postgres()
    nodes, holders, clients = [], [], []
    try:
        for i in range(NODES):
            host = f"127.0.0.{i + 2}"
            node = spawn([env.BIN, "--cluster-db", pg.url, "--node", f"n{i + 1}", "--admin", f"{host}:0",
                          "--bind-host", host, "--log-level", "warning"], f"cluster-n{i + 1}")
            m = wait_log(node, r"admin listening on http://([0-9.]+):(\d+)", timeout=60)
            node.admin = (m.group(1), int(m.group(2)))
            nodes.append(node)
            holder = free_port()
            holders.append(holder)
            spawn([BT, "holder", holder], f"cluster-holder{i + 1}")
            wait_port(holder)
        admin = Admin(nodes[0].admin)
        ports = []
        for i in range(NODES):
            port = free_port()
            admin.call("POST", "/api/v1/listeners", {"name": f"bench{i + 1}", "listen": f"{HOST}:{port}",
                                                     "upstream": f"{HOST}:{holders[i]}"})
            ports.append(port)
        for i in range(NODES):
            # Every node binds every listener; node i's clients use listener i on its host.
            deadline = time.time() + 10
            while not bound(nodes[i].admin, f"bench{i + 1}"):
                if time.time() > deadline:
                    raise RuntimeError(f"node n{i + 1} did not bind listener bench{i + 1}")
                time.sleep(0.05)
            clients.append(spawn([BT, "idle", ports[i], n], f"cluster-idle{i + 1}", stdin=subprocess.PIPE,
                                 extra_env={"BT_HOST": f"127.0.0.{i + 2}"}))
        for c, holder in zip(clients, holders):
            wait_log(c, r"opened", timeout=180)
            wait_established(holder, n, timeout=180)
        wait_for_members(nodes)
        for r in bench.rounds():
            ids, ms = admin.list_all()
            if len(ids) != NODES * n or len(set(ids)) != NODES * n:
                raise RuntimeError(f"cluster listing returned {len(ids)} ids ({len(set(ids))} distinct), "
                                   f"want {NODES * n}")
            out["list_ms"].append(ms)
            _, local_ms = Admin(nodes[0].admin).list_all(scope="local")
            out["local_ms"].append(local_ms)
            log(f"cluster: list {NODES}x{n:,} sessions through n1 {ms:.1f} ms; n1's own {n:,}: {local_ms:.1f} ms")
    finally:
        for c in clients:
            try:
                c.stdin.close()
            except OSError:
                pass
            stop(c)
        for node in nodes:
            stop(node)
        pg.stop()


def wait_for_members(nodes, timeout=30):
    """Until every node's view holds every node (membership refreshes once a second)."""
    deadline = time.time() + timeout
    while True:
        views = [len(Admin(node.admin).call("GET", "/api/v1/nodes")["nodes"]) for node in nodes]
        if all(v == len(nodes) for v in views):
            return
        if time.time() > deadline:
            raise RuntimeError(f"cluster views never held all {len(nodes)} nodes: {views}")
        time.sleep(0.1)


def bound(admin_addr, name):
    listeners = Admin(admin_addr).call("GET", "/api/v1/listeners")["listeners"]
    return any(item.get("name") == name for item in listeners)
