"""The proxies under test: one process per kind, one listener per route."""
import json
import os

from . import env
from .env import BENCH, HOST, LOGS, MINRELAY, PROTO_BIN, PROTOTYPES, TARGETS, WORK
from .processes import free_port, run, spawn, stop, wait_log, wait_port


class Proxies:
    """One process per proxy kind, one listener/frontend per route."""

    def __init__(self, tag):
        self.tag = tag
        self.routes = {}  # route -> {target: port}
        self.sg_listeners = []
        self.sg_mediators = []
        self.ha_sections = []
        self.nginx_servers = []
        self.minrelays = []
        self.socats = []
        self.protos = []  # (kind, port, upstream)
        self.proto_procs = {}
        self.sg = self.ha = self.nginx = None
        self.minrelay_procs = []
        self.socat_procs = []
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
        if "nginx" in targets:
            p = free_port()
            self.nginx_servers.append(f"    server {{ listen {HOST}:{p}; proxy_pass {HOST}:{upstream}; }}  # {name}\n")
            ports["nginx"] = p
        if "minrelay" in targets:
            p = free_port()
            self.minrelays.append((name, p, upstream))
            ports["minrelay"] = p
        for kind in PROTOTYPES:
            if kind in targets:
                p = free_port()
                self.protos.append((kind, p, upstream))
                ports[kind] = p
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
        if self.nginx_servers:
            self.nginx = start_nginx(self.nginx_servers, f"nginx-{self.tag}")
        self.minrelay_procs = [start_minrelay(p, up, f"minrelay-{self.tag}-{n}") for n, p, up in self.minrelays]
        self.socat_procs = [start_socat(p, up, f"socat-{self.tag}-{n}") for n, p, up in self.socats]
        for kind, p, up in self.protos:
            self.proto_procs.setdefault(kind, []).append(
                spawn([PROTO_BIN / kind, p, up, os.cpu_count()], f"{kind}-{self.tag}-{p}"))
        for ports in self.routes.values():
            for t, port in ports.items():
                if t != "direct":
                    wait_port(port)

    def stop(self):
        protos = [p for ps in self.proto_procs.values() for p in ps]
        for p in [self.sg, self.ha, self.nginx] + self.minrelay_procs + self.socat_procs + protos:
            stop(p)

    def revive_minrelays(self, always=False):
        """Restart any minrelay that has died (see MINRELAY_CRASH in workloads), or every one
        with `always`: after some iperf3 endings minrelay spins on a socket it no longer
        reads (100 % of a core), which slowed every target measured after it."""
        for i, (n, port, up) in enumerate(self.minrelays):
            if always:
                stop(self.minrelay_procs[i])
            if self.minrelay_procs[i].poll() is not None:
                self.minrelay_procs[i] = start_minrelay(port, up, f"minrelay-{self.tag}-{n}")
                wait_port(port)

    def process(self, target):
        """The process to measure for a target with a single route (the memory workload)."""
        if target in PROTOTYPES:
            return (self.proto_procs.get(target) or [None])[0]
        return {"splicegate": self.sg, "haproxy": self.ha, "nginx": self.nginx,
                "minrelay": (self.minrelay_procs or [None])[0], "socat": (self.socat_procs or [None])[0]}[target]


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


def start_nginx(servers, name):
    # -p and -e keep nginx off its compiled-in prefix and /var/log/nginx before it
    # has read the config; the config puts the pid file and error log in bench/work.
    cfg = WORK / f"{name}.conf"
    cfg.write_text((BENCH / "nginx.conf").read_text() +
                   f"\npid {WORK / (name + '.pid')};\nerror_log {LOGS / (name + '.error.log')} error;\n"
                   "\nstream {\n" + "".join(servers) + "}\n")
    flags = ["-p", f"{WORK}/", "-e", LOGS / f"{name}.error.log", "-c", cfg]
    LOGS.mkdir(parents=True, exist_ok=True)
    run(["nginx", "-t", "-q"] + flags)
    return spawn(["nginx"] + flags, name)


def start_minrelay(port, upstream, name):
    # One thread per core, like HAProxy's and nginx's defaults. minrelay does not
    # ignore SIGPIPE, and dies of it when a server closes first (iperf3 does).
    return spawn([MINRELAY, port, upstream, os.cpu_count()], name, ignore_sigpipe=True)


def start_socat(port, upstream, name):
    # backlog=1024: socat's default listen backlog is 5, which turns the
    # connection-rate and idle-session workloads into a test of SYN retransmits.
    return spawn(["socat", f"TCP-LISTEN:{port},bind={HOST},fork,reuseaddr,backlog=1024",
                  f"TCP:{HOST}:{upstream}"], name)
