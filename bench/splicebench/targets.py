"""The proxies under test: one process per kind, one listener per route."""
import json

from . import env
from .env import BENCH, HOST, TARGETS, WORK
from .processes import free_port, run, spawn, stop, wait_log, wait_port


class Proxies:
    """One process per proxy kind, one listener/frontend per route."""

    def __init__(self, tag):
        self.tag = tag
        self.routes = {}  # route -> {target: port}
        self.sg_listeners = []
        self.sg_mediators = []
        self.ha_sections = []
        self.socats = []
        self.sg = self.ha = None
        self.admin = None

    def route(self, name, upstream, targets=TARGETS, mediators=None, splits=None):
        ports = {}
        if "direct" in targets:
            ports["direct"] = upstream
        if "splicegate" in targets:
            p = free_port()
            spec = {"name": name, "listen": f"{HOST}:{p}", "upstream": f"{HOST}:{upstream}"}
            if mediators:
                spec["mediators"] = mediators
            if splits:
                spec["splits"] = splits
            self.sg_listeners.append(spec)
            ports["splicegate"] = p
        if "haproxy" in targets:
            p = free_port()
            self.ha_sections.append(f"\nlisten {name}\n    bind {HOST}:{p}\n    server s1 {HOST}:{upstream}\n")
            ports["haproxy"] = p
        if "socat" in targets:
            p = free_port()
            self.socats.append((name, p, upstream))
            ports["socat"] = p
        self.routes[name] = ports
        return ports

    def start(self):
        if self.sg_listeners:
            self.sg, self.admin = start_splicegate(self.sg_listeners, self.sg_mediators, f"sg-{self.tag}")
        if self.ha_sections:
            self.ha = start_haproxy(self.ha_sections, f"haproxy-{self.tag}")
        self.socat_procs = [start_socat(p, up, f"socat-{self.tag}-{n}") for n, p, up in self.socats]
        for ports in self.routes.values():
            for t, port in ports.items():
                if t != "direct":
                    wait_port(port)

    def stop(self):
        for p in [self.sg, self.ha] + self.socat_procs:
            stop(p)


def start_splicegate(listeners, mediators, name):
    cfg = WORK / f"{name}.json"
    cfg.write_text(json.dumps({"listeners": listeners, "mediators": mediators}, indent=1))
    p = spawn([env.BIN, "--admin", f"{HOST}:0", "--log-level", "warning", "--config", cfg], name)
    m = wait_log(p, r"admin listening on http://([0-9.]+):(\d+)")
    return p, (m.group(1), int(m.group(2)))


def start_haproxy(sections, name):
    cfg = WORK / f"{name}.cfg"
    cfg.write_text((BENCH / "haproxy.cfg").read_text() + "".join(sections))
    run(["haproxy", "-c", "-q", "-f", cfg])
    return spawn(["haproxy", "-db", "-f", cfg], name)


def start_socat(port, upstream, name):
    # backlog=1024: socat's default listen backlog is 5, which turns the
    # connection-rate and idle-session workloads into a test of SYN retransmits.
    return spawn(["socat", f"TCP-LISTEN:{port},bind={HOST},fork,reuseaddr,backlog=1024",
                  f"TCP:{HOST}:{upstream}"], name)
