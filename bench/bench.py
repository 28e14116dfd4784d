#!/usr/bin/env python3
"""splicegate benchmarks: direct vs splicegate vs HAProxy vs socat, in one run.

Started by bench/run, which installs the tools, builds the release binary and
the C helper (bench/tools/bt.c). Everything listens on and connects to
127.0.0.1. Writes bench/results/RESULTS.md, raw.json and throughput.png.

    bench/run                      every workload, 3 rounds each
    bench/run --rounds 5           more rounds
    bench/run --only bulk,ping     a subset (bulk ping connrate memory mediation split)
    bench/run --quick              1 round, short runs: a smoke test of the harness
    bench/run --profile            perf profile of splicegate (bulk, PING, connrate, listing, idle
                                   heap) and per-operation cost vs HAProxy, instead
    bench/run --no-build --report-only   re-render RESULTS.md and the plot from raw.json
"""
import argparse
import atexit
import datetime
import http.client
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / "work"
LOGS = WORK / "logs"
RESULTS = BENCH / "results"
BT = WORK / "bt"
HOST = "127.0.0.1"
TARGETS = ["direct", "splicegate", "haproxy", "socat"]
WORKLOADS = ["bulk", "ping", "connrate", "memory", "mediation", "split"]

# The container's RLIMIT_NOFILE hard limit (20000) cannot be raised (no
# CAP_SYS_RESOURCE); a proxy needs two descriptors per session, so "10,000
# sessions" is measured at the largest count that fits (see big_session_count).
WANT_BIG = 10_000

BIN = None  # splicegate binary, set in main()
_procs = []


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


# --------------------------------------------------------------- processes

def spawn(args, name, stdin=None):
    LOGS.mkdir(parents=True, exist_ok=True)
    out = open(LOGS / f"{name}.log", "w")
    p = subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT,
                         stdin=stdin, cwd=WORK, start_new_session=True)
    p.logfile = LOGS / f"{name}.log"
    p.name = name
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM):
    if p is None or p.poll() is not None:
        return
    try:
        os.killpg(p.pid, sig)  # its own session: the process and any children it forked
    except ProcessLookupError:
        return
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(5)


def stop_all():
    for p in reversed(_procs):
        try:
            if p.stdin:
                p.stdin.close()
        except OSError:
            pass
        stop(p)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


def wait_log(p, pattern, timeout=30):
    deadline = time.time() + timeout
    rx = re.compile(pattern)
    while time.time() < deadline:
        text = p.logfile.read_text(errors="replace")
        m = rx.search(text)
        if m:
            return m
        if p.poll() is not None:
            break
        time.sleep(0.05)
    raise RuntimeError(f"{p.name}: no /{pattern}/ in its log:\n{p.logfile.read_text()[-2000:]}")


def wait_port(port, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection((HOST, port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


_used_ports = set()


def free_port():
    while True:
        s = socket.socket()
        s.bind((HOST, 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _used_ports:
            _used_ports.add(port)
            return port


def run(args, timeout=120):
    r = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if r.returncode != 0:
        raise RuntimeError(f"{args[0]} exit {r.returncode}: {r.stderr.strip()[-800:]} {r.stdout.strip()[-400:]}")
    return r.stdout


def load():
    return [round(x, 2) for x in os.getloadavg()]


def _ticks():
    per = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                raw = open(f"/proc/{d}/stat").read()
                comm = raw[raw.index("(") + 1:raw.rindex(")")]
                f = raw.rsplit(")", 1)[1].split()
                per[int(d)] = (comm, int(f[11]) + int(f[12]))
            except (OSError, ValueError, IndexError):
                pass
    cpu = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return per, cpu


def machine_busy(secs=1.0):
    """Share of all cores busy over `secs` while the benchmark itself is idle between
    workloads, and the processes that used it: other people's builds and tests."""
    p0, c0 = _ticks()
    time.sleep(secs)
    p1, c1 = _ticks()
    d = [b - a for a, b in zip(c0, c1)]
    total = sum(d) or 1
    idle = d[3] + (d[4] if len(d) > 4 else 0)
    hz = os.sysconf("SC_CLK_TCK")
    by = {}
    for pid, (comm, t) in p1.items():
        before = p0[pid][1] if pid in p0 else 0  # new in the window: all of it
        by[comm] = by.get(comm, 0) + t - before
    top = sorted(((t, c) for c, t in by.items() if t > 0), reverse=True)[:4]
    return {"busy_pct": round(100 * (total - idle) / total, 1),
            "top": [f"{c} {100 * t / hz / secs:.0f}%" for t, c in top]}


# ------------------------------------------------------------------ proxies

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
    p = spawn([BIN, "--admin", f"{HOST}:0", "--log-level", "warning", "--config", cfg], name)
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


# ------------------------------------------------------------------ helpers

def iperf(port, streams, secs):
    last = None
    for _attempt in range(3):
        try:
            out = run(["iperf3", "-c", HOST, "-p", port, "-t", secs, "-O", "1", "-P", streams, "-J"],
                      timeout=secs + 40)
            j = json.loads(out)
            return j["end"]["sum_received"]["bits_per_second"] / 1e9
        except (RuntimeError, KeyError, json.JSONDecodeError, subprocess.TimeoutExpired) as e:
            last = e
            time.sleep(1)
    raise RuntimeError(f"iperf3 via port {port} failed: {last}")


def redis_ping(port, clients, n):
    out = run(["redis-benchmark", "-h", HOST, "-p", port, "-c", clients, "-n", n,
               "-t", "ping_mbulk", "--csv"], timeout=180)
    rows = [l for l in out.splitlines() if l.startswith('"PING')]
    f = [x.strip('"') for x in rows[-1].split(",")]
    return {"rps": float(f[1]), "p50_ms": float(f[4]), "p99_ms": float(f[6])}


def connrate(port, secs, conc):
    out = run([BT, "connrate", port, secs, conc], timeout=secs + 30)
    m = re.search(r"conns_per_s=([0-9.]+) ok=(\d+) errors=(\d+)", out)
    return {"cps": float(m.group(1)), "ok": int(m.group(2)), "errors": int(m.group(3))}


def established(port):
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True).stdout
    return sum(1 for l in out.splitlines() if l.strip())


def wait_established(port, n, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        c = established(port)
        if c == n:
            return
        time.sleep(0.2)
    raise RuntimeError(f"holder on {port}: {established(port)} sessions, want {n}")


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def tree_pss_kib(root):
    """PSS of root and its descendants (socat forks a child per connection)."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                st = open(f"/proc/{d}/stat").read()
                ppid = int(st.rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in open(f"/proc/{pid}/smaps_rollup"):
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def nofile_limit():
    import resource
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def big_session_count():
    # 2 fds per session in the proxy, plus ~30 of its own, plus slack.
    return min(WANT_BIG, (nofile_limit() - 100) // 2 // 50 * 50)


def med(xs):
    return statistics.median(xs) if xs else None


def pct(xs, q):
    if not xs:
        return None
    s = sorted(xs)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def metrics(addr):
    """Unlabelled Prometheus counters of a splicegate."""
    c = http.client.HTTPConnection(*addr, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            k, _, v = line.partition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


class Admin:
    def __init__(self, addr):
        self.addr = addr
        self.conn = http.client.HTTPConnection(*addr, timeout=30)

    def fetch(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        data = json.dumps(body) if body is not None else None
        try:
            self.conn.request(method, path, data, headers)
            r = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(*self.addr, timeout=30)
            self.conn.request(method, path, data, headers)
            r = self.conn.getresponse()
        raw = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
        return raw

    def call(self, method, path, body=None):
        raw = self.fetch(method, path, body)
        return json.loads(raw) if raw else None

    def list_all(self):
        """All sessions, page by page; returns (ids, ms). ms sums the time from
        sending each request to having its whole body, which is the gateway's
        work plus the transfer; decoding the JSON in this Python client (about
        as long again for 2 MB) is not timed."""
        ids, cursor, ms = [], None, 0.0
        while True:
            path = "/api/v1/sessions?limit=1000" + (f"&cursor={cursor}" if cursor else "")
            t0 = time.perf_counter()
            raw = self.fetch("GET", path)
            ms += (time.perf_counter() - t0) * 1000
            page = json.loads(raw)
            ids += [s["id"] for s in page["sessions"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return ids, ms


# ---------------------------------------------------------------- workloads

class Bench:
    def __init__(self, args):
        self.a = args
        self.res = {"loads": {}, "notes": []}
        self.servers = {}

    def rounds(self):
        return range(self.a.rounds)

    def order(self, r, targets):
        # rotate the order each round so drift and warm-up hit every target alike
        k = r % len(targets)
        return targets[k:] + targets[:k]

    def record_load(self, name):
        self.res["loads"][name] = load()
        busy = machine_busy()
        self.res.setdefault("busy", {})[name] = busy
        log(f"--- {name} (load {self.res['loads'][name]}; machine {busy['busy_pct']}% busy before it: "
            f"{', '.join(busy['top'])})")

    def upstreams(self):
        s = self.servers
        s["iperf"] = free_port()
        spawn(["iperf3", "-s", "-B", HOST, "-p", s["iperf"]], "iperf3-server")
        s["redis"] = free_port()
        spawn(["redis-server", "--bind", HOST, "--port", s["redis"], "--save", "", "--appendonly", "no",
               "--protected-mode", "no", "--maxclients", "1000"], "redis-server")
        s["echo1"] = free_port()
        spawn([BT, "echo1", s["echo1"]], "echo1")
        s["sink"] = free_port()
        spawn([BT, "sink", s["sink"]], "sink")
        s["mediator"] = free_port()
        spawn([BIN, "mediator", "--listen", f"{HOST}:{s['mediator']}", "--transform", "identity"], "mediator")
        for k in s:
            wait_port(s[k])

    # -- the four-way comparisons (one proxy process of each kind for all of them)
    def compare(self):
        a = self.a
        want = set(a.only)
        px = Proxies("main")
        bulk = px.route("bulk", self.servers["iperf"])
        ping = px.route("ping", self.servers["redis"])
        conn = px.route("connrate", self.servers["echo1"])
        hop = {"mediator": "id", "direction": "both"}
        med_routes = {}
        if "mediation" in want:
            for k in (1, 3):
                med_routes[k] = px.route(f"med{k}", self.servers["iperf"], ["splicegate"],
                                         mediators=[hop] * k)["splicegate"]
        split_routes = {}
        if "split" in want:
            for mode in ("drop", "block"):
                for k in (1, 4):
                    sp = {"address": f"{HOST}:{self.servers['sink']}", "direction": "client_to_server",
                          "on_slow": mode}
                    split_routes[(mode, k)] = px.route(f"split_{mode}{k}", self.servers["iperf"],
                                                       ["splicegate"], splits=[sp] * k)["splicegate"]
        px.sg_mediators = [{"name": "id", "kind": "tcp", "address": f"{HOST}:{self.servers['mediator']}"}]
        px.start()
        self.main_sg_pid = px.sg.pid
        try:
            if "bulk" in want:
                self.record_load("bulk")
                out = self.res["bulk"] = {}
                for streams in (1, 4):
                    for r in self.rounds():
                        for t in self.order(r, TARGETS):
                            v = iperf(bulk[t], streams, a.secs)
                            out.setdefault(f"{streams}", {}).setdefault(t, []).append(v)
                            log(f"bulk P{streams} {t:10s} {v:6.2f} Gbit/s")
            if "mediation" in want:
                self.record_load("mediation")
                out = self.res["mediation"] = {}
                ports = {0: bulk["splicegate"], 1: med_routes[1], 3: med_routes[3]}
                for r in self.rounds():
                    for k in self.order(r, [0, 1, 3]):
                        v = iperf(ports[k], 1, a.secs)
                        out.setdefault(str(k), []).append(v)
                        log(f"mediators={k} {v:6.2f} Gbit/s")
            if "split" in want:
                self.record_load("split")
                out = self.res["split"] = {}
                cases = [("none", 0)] + [(m, k) for m in ("drop", "block") for k in (1, 4)]
                for r in self.rounds():
                    for c in self.order(r, cases):
                        port = bulk["splicegate"] if c[1] == 0 else split_routes[c]
                        m0 = metrics(px.admin)
                        v = iperf(port, 1, a.secs)
                        m1 = metrics(px.admin)
                        out.setdefault(f"{c[0]}{c[1]}", []).append(v)
                        d = {k: m1.get(k, 0) - m0.get(k, 0) for k in
                             ("splicegate_splits_added_total", "splicegate_splits_dropped_total",
                              "splicegate_split_dropped_bytes_total")}
                        self.res.setdefault("split_drops", {}).setdefault(f"{c[0]}{c[1]}", []).append(d)
                        log(f"split {c[0]} x{c[1]} {v:6.2f} Gbit/s  recipients added "
                            f"{d['splicegate_splits_added_total']:.0f}, dropped {d['splicegate_splits_dropped_total']:.0f}")
            if "ping" in want:
                self.record_load("ping")
                out = self.res["ping"] = {}
                for clients, n in ((1, a.ping_n1), (50, a.ping_n50)):
                    for r in self.rounds():
                        for t in self.order(r, TARGETS):
                            v = redis_ping(ping[t], clients, n)
                            out.setdefault(str(clients), {}).setdefault(t, []).append(v)
                            log(f"ping c={clients} {t:10s} {v['rps']:9.0f} req/s p50 {v['p50_ms']} p99 {v['p99_ms']} ms")
            if "connrate" in want:
                self.record_load("connrate")
                out = self.res["connrate"] = {}
                for r in self.rounds():
                    for t in self.order(r, TARGETS):
                        v = connrate(conn[t], a.conn_secs, a.conn_conc)
                        out.setdefault(t, []).append(v)
                        log(f"connrate {t:10s} {v['cps']:8.0f} conn/s (errors {v['errors']})")
                        time.sleep(1)
        finally:
            px.stop()

    # -- memory per idle session, plus the splicegate API workloads on the same sessions
    def memory(self):
        a = self.a
        big = big_session_count()
        self.res["memory_big_n"] = big
        if big < WANT_BIG:
            self.res["notes"].append(
                f"10,000 idle sessions were measured as {big:,}: the container's RLIMIT_NOFILE hard "
                f"limit is {nofile_limit():,} and cannot be raised here (no CAP_SYS_RESOURCE), and a "
                f"proxy holds two descriptors per session. Listing time is also reported scaled "
                f"linearly to 10,000.")
        self.record_load("memory")
        holder = self.servers["sink"]
        out = self.res["memory"] = {}
        api = self.res["api"] = {"splice_ms": [], "remove_ms": [], "list_ms": [], "list_n": big}
        sizes = [1000, big]
        for r in self.rounds():
            for n in sizes:
                for t in self.order(r, ["splicegate", "haproxy", "socat"]):
                    if t == "socat" and n > 1000:
                        continue
                    v = self.memory_one(t, n, holder, api if t == "splicegate" else None)
                    out.setdefault(str(n), {}).setdefault(t, []).append(v)
                    log(f"memory n={n} {t:10s} {v:7.2f} KiB/session")

    def memory_one(self, t, n, holder, api):
        px = Proxies(f"mem-{t}")
        port = px.route("idle", holder, [t])[t]
        if t == "splicegate":
            px.sg_mediators = [{"name": "id", "kind": "tcp", "address": f"{HOST}:{self.servers['mediator']}"}]
        px.start()
        proc = {"splicegate": px.sg, "haproxy": px.ha}.get(t) or px.socat_procs[0]
        measure = (lambda: tree_pss_kib(proc.pid)) if t == "socat" else (lambda: rss_kib(proc.pid))
        try:
            # warm up: thread pools, allocator arenas, lazily built tables
            self.open_idle(port, 200, holder).stdin.close()
            wait_established(holder, 0)
            time.sleep(0.5)
            before = measure()
            client = self.open_idle(port, n, holder)
            time.sleep(1.0)
            after = measure()
            per = (after - before) / n
            if api is not None:
                admin = Admin(px.admin)
                if n == 1000:
                    self.api_latency(admin, api)
                else:
                    for _ in range(3):
                        ids, ms = admin.list_all()
                        api["list_ms"].append(ms)
                        if len(ids) != n:
                            raise RuntimeError(f"listing returned {len(ids)} sessions, want {n}")
                    log(f"list {n} sessions: {api['list_ms'][-3:]} ms")
            client.stdin.close()
            client.wait(60)
            return per
        finally:
            px.stop()
            wait_established(holder, 0, timeout=60)

    def open_idle(self, port, n, holder):
        c = spawn([BT, "idle", port, n], f"idle-{port}-{n}", stdin=subprocess.PIPE)
        wait_log(c, r"opened", timeout=120)
        wait_established(holder, n)
        return c

    def api_latency(self, admin, api):
        ids, _ = admin.list_all()
        rng = random.Random(len(api["splice_ms"]))
        for _ in range(self.a.api_samples):
            sid = rng.choice(ids)
            t0 = time.perf_counter()
            hop = admin.call("POST", f"/api/v1/sessions/{sid}/mediators", {"mediator": "id", "direction": "both"})
            t1 = time.perf_counter()
            admin.call("DELETE", f"/api/v1/sessions/{sid}/mediators/{hop['id']}")
            t2 = time.perf_counter()
            api["splice_ms"].append((t1 - t0) * 1000)
            api["remove_ms"].append((t2 - t1) * 1000)
        log(f"splice p50 {pct(api['splice_ms'], .5):.2f} p99 {pct(api['splice_ms'], .99):.2f} ms; "
            f"remove p50 {pct(api['remove_ms'], .5):.2f} p99 {pct(api['remove_ms'], .99):.2f} ms")


# ------------------------------------------------------------------ profile

def profile(args):
    """perf profile of splicegate: bulk (1 stream), PING (50 clients), connection
    rate, and listing ~10,000 sessions. cpu-clock sampling (this VM exposes no hardware
    counters), syscall counts from tracepoints for splicegate and HAProxy on the same loads
    (profile/SUMMARY.md), and reports demangled with swift-demangle."""
    out_dir = RESULTS / "profile"
    out_dir.mkdir(parents=True, exist_ok=True)
    b = Bench(args)
    b.upstreams()
    px = Proxies("prof")
    both = ["splicegate", "haproxy"]
    bulk = px.route("bulk", b.servers["iperf"], both)
    ping = px.route("ping", b.servers["redis"], both)
    conn = px.route("connrate", b.servers["echo1"], both)
    idle = px.route("idle", b.servers["sink"], ["splicegate"])["splicegate"]
    px.start()
    pids = {"splicegate": px.sg.pid, "haproxy": px.ha.pid}
    demangle = shutil.which("swift-demangle") or str(Path(shutil.which("swift")).resolve().parent / "swift-demangle")
    calls = ("read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg", "epoll_wait",
             "epoll_ctl", "accept4", "connect", "close", "shutdown", "setsockopt", "getsockopt", "splice")
    sc = ",".join(f"syscalls:sys_enter_{c}" for c in calls)
    secs = args.prof_secs
    admin = Admin(px.admin)
    n_idle = min(big_session_count(), 9900)

    def lister(stop_at):
        n = 0
        while time.time() < stop_at:
            admin.list_all()
            n += 1
        return n

    # (name, load command for a target's port, unit, how to get the rate from the load's output)
    def iperf_rate(out):
        j = json.loads(out[out.index("{"):])
        return j["end"]["sum_received"]["bytes"] / j["end"]["sum_received"]["seconds"] / 2 ** 20

    def ping_rate(out):
        return redis_rate(out)

    def conn_rate(out):
        return float(re.search(r"conns_per_s=([0-9.]+)", out).group(1))

    scenarios = [
        ("bulk", lambda t, d: ["iperf3", "-c", HOST, "-p", bulk[t], "-t", d, "-P", "1", "-J"], "MiB", iperf_rate),
        ("ping", lambda t, d: ["redis-benchmark", "-h", HOST, "-p", ping[t], "-c", "50", "-n",
                               str(int(d * 40000)), "-t", "ping_mbulk", "--csv"], "request", ping_rate),
        ("connrate", lambda t, d: [BT, "connrate", conn[t], d, args.conn_conc], "connection", conn_rate),
        ("list", None, "listing", None),
    ]
    summary = []
    try:
        only = set(args.prof_only.split(","))
        for name, load_cmd, unit, rate_of in scenarios:
            if name not in only:
                continue
            log(f"--- profile {name} (load {load()})")
            data = out_dir / f"{name}.perf.data"
            client = None
            if name == "list":
                client = b.open_idle(idle, n_idle, b.servers["sink"])

            def start_load(t):
                if load_cmd is None:
                    return None
                lp = subprocess.Popen([str(x) for x in load_cmd(t, secs + 2)], stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, text=True)
                time.sleep(1)
                return lp

            def finish_load(lp):
                if lp is None:
                    return f"listings of {n_idle} sessions: {lister(time.time() + secs + 1)}"
                return lp.communicate(timeout=180)[0]

            # 1. splicegate: cpu-clock samples with frame-pointer call graphs
            lp = start_load("splicegate")
            rec = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", str(data), "-p",
                                    str(pids["splicegate"]), "--", "sleep", str(secs)],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            out1 = finish_load(lp)
            rec.wait(120)
            # 2. syscall counts and CPU time, unsampled, splicegate then HAProxy on the same load
            loads_out = [out1]
            for t in (["splicegate", "haproxy"] if load_cmd else ["splicegate"]):
                lp = start_load(t)
                st = subprocess.Popen(["perf", "stat", "-x", ",", "-e", sc + ",task-clock,context-switches",
                                       "-p", str(pids[t]), "--", "sleep", str(secs)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                out = finish_load(lp)
                stat = st.communicate(timeout=120)[1]
                loads_out.append(out)
                (out_dir / f"{name}.{t}.perf-stat.csv").write_text(stat)
                counts = {}
                for line in stat.splitlines():
                    f = line.split(",")
                    if len(f) > 3:
                        try:
                            counts[f[2].replace("syscalls:sys_enter_", "")] = float(f[0])
                        except ValueError:
                            pass
                if rate_of:
                    ops = rate_of(out) * secs
                else:
                    ops = float(re.search(r": (\d+)", out).group(1)) * secs / (secs + 1)
                summary.append((name, t, unit, ops / secs, counts))
            if client is not None:
                client.stdin.close()
                client.wait(60)
            (out_dir / f"{name}.load.txt").write_text("\n---\n".join(loads_out))
            for suffix, sort in (("symbols", "dso,symbol"), ("dso", "dso")):
                rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--no-children",
                                      "--sort", sort, "--percent-limit", "0.3", "-g", "none"],
                                     capture_output=True, text=True).stdout
                rep = tidy(subprocess.run([demangle, "--simplified"], input=rep, capture_output=True, text=True).stdout)
                (out_dir / f"{name}.{suffix}.txt").write_text(rep)
            rep = subprocess.run(["perf", "report", "-i", str(data), "--stdio", "--children",
                                  "--sort", "symbol", "--percent-limit", "3", "-g", "none"],
                                 capture_output=True, text=True).stdout
            rep = tidy(subprocess.run([demangle, "--simplified"], input=rep, capture_output=True, text=True).stdout)
            (out_dir / f"{name}.children.txt").write_text(rep)
            log(f"profile {name}: {out_dir}/{name}.*")
        if "idle-heap" in only:
            log(f"--- profile idle-heap (load {load()})")
            idle_heap(b, pids["splicegate"], idle, out_dir)
    finally:
        px.stop()
        stop_all()
    L = ["# Per-operation cost, splicegate vs HAProxy (perf stat, same load)\n",
         f"`perf stat -p PID -- sleep {secs}` on the proxy while the load runs (a separate run from the sampled "
         "one). CPU is task-clock (all threads); syscalls are tracepoint counts; both divided by the operations "
         "the load generator reported over the window. Load average at the start: see bench/run's log.\n",
         "| workload | proxy | ops/s | CPU µs/op | syscalls/op | reads/op | writes/op | epoll_wait/op | "
         "epoll_ctl/op | ctx switches/op | other syscalls/op |",
         "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, t, unit, rate, c in summary:
        ops = rate * secs
        rd = sum(c.get(k, 0) for k in ("read", "readv", "recvfrom", "recvmsg"))
        wr = sum(c.get(k, 0) for k in ("write", "writev", "sendto", "sendmsg"))
        tot = sum(c.get(k, 0) for k in calls)
        other = tot - rd - wr - c.get("epoll_wait", 0) - c.get("epoll_ctl", 0)
        L.append(f"| {name} (per {unit}) | {t} | {fmt(rate)} | {fmt(c.get('task-clock', 0) * 1000 / ops)} | "
                 f"{fmt(tot / ops)} | {fmt(rd / ops)} | {fmt(wr / ops)} | {fmt(c.get('epoll_wait', 0) / ops)} | "
                 f"{fmt(c.get('epoll_ctl', 0) / ops)} | {fmt(c.get('context-switches', 0) / ops)} | {fmt(other / ops)} |")
    if summary:
        (out_dir / "SUMMARY.md").write_text("\n".join(L) + "\n")
        log(f"wrote {out_dir / 'SUMMARY.md'}")


# Allocator and String-storage frames: the callers that matter are above them.
HEAP_SKIP = ("malloc", "swift_slowAlloc", "swift_allocObject", "swift_allocBox", "swift_allocEmptyBox",
             "_allocateStringStorage", "specialized static __StringStorage", "static __StringStorage",
             "_StringGuts.", "specialized _StringGuts.", "String.append", "specialized String.append")


def idle_heap(b, pid, port, out_dir, n=1000):
    """Live heap per idle session: libc malloc/free uprobes (with call chains) while n
    sessions are opened and held; an allocation not freed by the end is live. Each is
    charged to its first three callers above the allocator."""
    libc = next((l.split("=>")[1].split()[0] for l in run(["ldd", BIN]).splitlines() if "libc.so.6" in l), None)
    data = out_dir / "idle-heap.perf.data"
    probes = [f"sgmalloc=malloc size=%di:u64", "sgmallocret=malloc%return ptr=$retval:u64", "sgfree=free ptr=%di:u64"]
    subprocess.run(["perf", "probe", "-q", "-d", "probe_libc:sg*"], capture_output=True)
    try:
        for pr in probes:
            run(["perf", "probe", "-q", "-x", libc, "-a", pr])
        warm = b.open_idle(port, 200, b.servers["sink"])
        warm.stdin.close()
        warm.wait(30)
        wait_established(b.servers["sink"], 0)
        rec = subprocess.Popen(["perf", "record", "-q", "-e", "probe_libc:sg*", "-g", "-p", str(pid), "-o", str(data),
                                "--", "sleep", "6"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        client = b.open_idle(port, n, b.servers["sink"])
        rec.wait(60)
        client.stdin.close()
        client.wait(60)
    finally:
        subprocess.run(["perf", "probe", "-q", "-d", "probe_libc:sg*"], capture_output=True)
    demangle = shutil.which("swift-demangle") or str(Path(shutil.which("swift")).resolve().parent / "swift-demangle")
    script = subprocess.Popen(["perf", "script", "-i", str(data), "-F", "tid,event,trace,ip,sym", "--max-stack", "16"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    dem = subprocess.Popen([demangle, "--simplified"], stdin=script.stdout, stdout=subprocess.PIPE, text=True)
    pending, live = {}, {}
    head, frames = None, []

    def flush():
        if not head:
            return
        m = re.match(r"\s*(\d+)\s+probe_libc:(\w+):\s*(.*)", head)
        if not m:
            return
        tid, ev, args_ = m.groups()
        if ev == "sgmalloc":
            pending[tid] = (int(re.search(r"size=(\d+)", args_).group(1)), frames)
        elif ev.startswith("sgmallocret"):
            x = pending.pop(tid, None)
            if x:
                live[int(re.search(r"ptr=(\d+)", args_).group(1))] = x
        elif ev == "sgfree":
            live.pop(int(re.search(r"ptr=(\d+)", args_).group(1)), None)

    for line in dem.stdout:
        if not line.strip():
            flush()
            head, frames = None, []
        elif head is None:
            head = line
        else:
            frames.append(re.sub(r"^\s*[0-9a-f]+\s+", "", line.strip()))
    flush()
    dem.wait()
    data.unlink(missing_ok=True)  # ~200 MB of call chains: the summary below is what counts
    by, cnt = {}, {}
    for size, fr in live.values():
        key = " <- ".join(f[:80] for f in [f for f in fr if not f.startswith(HEAP_SKIP)][:3])
        by[key] = by.get(key, 0) + size
        cnt[key] = cnt.get(key, 0) + 1
    total = sum(by.values())
    L = [f"# Live heap per idle session ({n} sessions opened and held; libc malloc/free uprobes)", "",
         f"total {total / n:,.0f} B in {sum(cnt.values()) / n:.1f} allocations per session", "",
         "B/session  allocs/session  first three callers above the allocator"]
    for k, v in sorted(by.items(), key=lambda kv: -kv[1])[:40]:
        L.append(f"{v / n:9.1f}  {cnt[k] / n:6.2f}  {k}")
    (out_dir / "idle-heap.txt").write_text("\n".join(L) + "\n")
    log(f"idle heap: {total / n:,.0f} B/session -> {out_dir / 'idle-heap.txt'}")


def tidy(report_text):
    """perf pads its columns with hundreds of blanks; drop them and the trailing '- -' columns."""
    return "\n".join(re.sub(r"\s+-\s+-\s*$", "", l).rstrip() for l in report_text.splitlines()) + "\n"


def redis_rate(out):
    rows = [l for l in out.splitlines() if l.startswith('"PING')]
    return float(rows[-1].split(",")[1].strip('"'))


# ------------------------------------------------------------------ report

def versions():
    def first(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except Exception as e:  # noqa: BLE001
            return f"? ({e})"
    sw = first(["swift", "--version"])
    return {
        "splicegate": f"{first([BIN, '--version'])} ({build_info()}, .build-bench/release/splicegate)",
        "swift": sw,
        "haproxy": first(["haproxy", "-v"]),
        "socat": next((l for l in subprocess.run(["socat", "-V"], capture_output=True, text=True).stdout.splitlines()
                       if "socat version" in l), "?").strip(),
        "iperf3": first(["iperf3", "--version"]),
        "redis": first(["redis-server", "--version"]),
        "redis-benchmark": first(["redis-benchmark", "--version"]),
        "python": platform.python_version(),
    }


def build_info():
    f = WORK / "build-info"
    return f"git {f.read_text().strip()}" if f.exists() else f"git {git_rev()} (build time unknown)"


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "Sources", "Package.swift"],
                               capture_output=True, text=True).stdout.strip()
        return rev + ("+uncommitted Sources changes" if dirty else "")
    except OSError:
        return "?"


def machine():
    cpu = "?"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "mem_gib": round(int(mem) / 1024 / 1024, 1),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def fmt(x, nd=2):
    if x is None:
        return "–"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{nd}f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def round_ratios(sg, ha):
    """splicegate/HAProxy in each round (both were measured back to back in it)."""
    return ", ".join(fmt(x / y) for x, y in zip(sg, ha) if y)


def report(b, started, elapsed):
    r = b.res
    a = b.a
    L = []
    m = r["machine"]
    L.append("# splicegate benchmarks\n")
    L.append(f"Produced by `bench/run` on {m['date']} in {elapsed / 60:.1f} min. "
             f"Each figure is the **median of {a.rounds} rounds**; the targets take turns within each round "
             f"(the order rotates every round), so the splicegate/HAProxy ratio compares figures from the "
             f"same run. Everything runs on 127.0.0.1: load generator, proxy and server share the "
             f"{m['nproc']} cores, so absolute numbers are lower than on separate machines; only the "
             f"ratios mean much.\n")
    L.append("## Machine and versions\n")
    L.append(f"- {m['nproc']} × {m['cpu']}, {m['mem_gib']} GiB, Linux {m['kernel']}")
    for k, v in r["versions"].items():
        L.append(f"- {k}: {v}")
    L.append(f"- load average (1/5/15 min) before each workload (it counts the benchmark's own load "
             f"generators and servers too): " +
             "; ".join(f"{k} {v[0]}/{v[1]}/{v[2]}" for k, v in r["loads"].items()))
    busy = r.get("busy", {})
    if busy:
        L.append("- CPU use of the whole machine in the 1 s before each workload, while the benchmark's "
                 "own servers sit idle (a spot check for other people's builds and tests; it can miss "
                 "bursts during a workload): " + "; ".join(f"{k} {v['busy_pct']}%" for k, v in busy.items()))
        worst = max(busy.items(), key=lambda kv: kv[1]["busy_pct"])
        if worst[1]["busy_pct"] >= 10:
            L.append(f"- **Other processes were using this {m['nproc']}-core machine during the run** (other "
                     f"engineers' builds and tests): up to {worst[1]['busy_pct']}% of all cores just before "
                     f"`{worst[0]}` (top: {', '.join(worst[1]['top'])}). Figures from that run are noisier and "
                     f"lower than on a quiet machine; the per-round ratios show how much.")
    L.append("")
    L.append("## Goals (issue 6)\n")
    L.append("| goal | splicegate | HAProxy | ratio | met |")
    L.append("|---|---|---|---|---|")
    goals = []

    def goal(name, sg, ha, rt, ok, unit=""):
        goals.append((name, ok))
        L.append(f"| {name} | {fmt(sg)}{unit} | {fmt(ha)}{unit} | {fmt(rt)}{'×' if rt is not None else ''} | "
                 f"{'yes' if ok else ('**no**' if ok is not None else '–')} |")

    if "bulk" in r:
        for s in ("1", "4"):
            sg, ha = med(r["bulk"][s]["splicegate"]), med(r["bulk"][s]["haproxy"])
            rt = ratio(sg, ha)
            goal(f"bulk throughput {s} stream{'s' if s == '4' else ''} ≥ 1.0× HAProxy", sg, ha, rt,
                 rt is not None and rt >= 1.0, " Gbit/s")
    if "ping" in r:
        p = r["ping"]["50"]
        sg, ha = med([x["rps"] for x in p["splicegate"]]), med([x["rps"] for x in p["haproxy"]])
        rt = ratio(sg, ha)
        goal("PING req/s at 50 clients ≥ 1.0× HAProxy", sg, ha, rt, rt is not None and rt >= 1.0, " req/s")
        sg, ha = med([x["p99_ms"] for x in p["splicegate"]]), med([x["p99_ms"] for x in p["haproxy"]])
        rt = ratio(sg, ha)
        goal("PING p99 at 50 clients ≤ HAProxy's", sg, ha, rt, rt is not None and rt <= 1.0, " ms")
    if "memory" in r:
        for n in sorted(r["memory"], key=int):
            mm = r["memory"][n]
            sg, ha = med(mm.get("splicegate", [])), med(mm.get("haproxy", []))
            rt = ratio(sg, ha)
            goal(f"memory per idle session at {int(n):,} ≤ 2× HAProxy", sg, ha, rt,
                 rt is not None and rt <= 2.0, " KiB")
    if "api" in r and r["api"]["splice_ms"]:
        p99 = pct(r["api"]["splice_ms"], .99)
        goal("splice API p99 ≤ 5 ms with 1,000 live sessions", p99, None, None, p99 <= 5.0, " ms")
    if "api" in r and r["api"]["list_ms"]:
        n = r["api"]["list_n"]
        t = med(r["api"]["list_ms"]) * WANT_BIG / n
        goal(f"listing 10,000 sessions ≤ 50 ms (measured at {n:,}, scaled)", t, None, None, t <= 50.0, " ms")
    L.append("")

    if "bulk" in r:
        L.append("## Bulk throughput (iperf3, Gbit/s)\n")
        L.append(f"`iperf3 -c … -t {a.secs} -O 1 -P N`, receiver side.\n")
        L.append("| streams | direct | splicegate | HAProxy | socat | splicegate/HAProxy | per round |")
        L.append("|---|---|---|---|---|---|---|")
        for s in ("1", "4"):
            row = r["bulk"][s]
            meds = {t: med(row[t]) for t in TARGETS}
            L.append(f"| {s} | " + " | ".join(fmt(meds[t]) for t in TARGETS) +
                     f" | **{fmt(ratio(meds['splicegate'], meds['haproxy']))}×** | "
                     f"{round_ratios(row['splicegate'], row['haproxy'])} |")
        L.append("")
    if "ping" in r:
        L.append("## Redis PING (redis-benchmark `-t ping_mbulk`)\n")
        L.append(f"{a.ping_n1:,} requests with 1 client, {a.ping_n50:,} with 50.\n")
        L.append("| clients | target | req/s | p50 ms | p99 ms |")
        L.append("|---|---|---|---|---|")
        for c in ("1", "50"):
            for t in TARGETS:
                xs = r["ping"][c][t]
                L.append(f"| {c} | {t} | {fmt(med([x['rps'] for x in xs]))} | "
                         f"{fmt(med([x['p50_ms'] for x in xs]), 3)} | {fmt(med([x['p99_ms'] for x in xs]), 3)} |")
            sg, ha = r["ping"][c]["splicegate"], r["ping"][c]["haproxy"]
            L.append(f"| {c} | **splicegate/HAProxy** (per round: "
                     f"{round_ratios([x['rps'] for x in sg], [x['rps'] for x in ha])}) | "
                     f"**{fmt(ratio(med([x['rps'] for x in sg]), med([x['rps'] for x in ha])))}×** | "
                     f"{fmt(ratio(med([x['p50_ms'] for x in sg]), med([x['p50_ms'] for x in ha])))}× | "
                     f"{fmt(ratio(med([x['p99_ms'] for x in sg]), med([x['p99_ms'] for x in ha])))}× |")
        L.append("")
    if "connrate" in r:
        L.append("## Connection rate (new sessions per second)\n")
        L.append(f"`bt connrate` ({a.conn_conc} sessions in flight for {a.conn_secs} s): each session connects, "
                 "sends 1 byte, gets 1 byte and EOF from `bt echo1` upstream (which closes first), then the "
                 "client closes with RST. So every session is a full accept + upstream dial + relay + close "
                 "through the proxy.\n")
        L.append("| direct | splicegate | HAProxy | socat | splicegate/HAProxy | per round | errors (sg/ha/socat) |")
        L.append("|---|---|---|---|---|---|---|")
        meds = {t: med([x["cps"] for x in r["connrate"][t]]) for t in TARGETS}
        errs = "/".join(str(sum(x["errors"] for x in r["connrate"][t])) for t in ("splicegate", "haproxy", "socat"))
        L.append("| " + " | ".join(fmt(meds[t]) for t in TARGETS) +
                 f" | **{fmt(ratio(meds['splicegate'], meds['haproxy']))}×** | "
                 f"{round_ratios([x['cps'] for x in r['connrate']['splicegate']], [x['cps'] for x in r['connrate']['haproxy']])} | {errs} |")
        L.append("")
    if "memory" in r:
        L.append("## Memory per idle session (KiB)\n")
        L.append("N idle client connections (`bt idle`) through the proxy to an upstream that holds them "
                 "(`bt sink`); a fresh proxy process per measurement, warmed with 200 sessions opened and "
                 "closed first; (RSS after − RSS before) / N. socat forks a process per connection, so its "
                 "figure is the growth of the summed **PSS** of the socat process tree, at 1,000 sessions "
                 "only (10,000 forked processes were skipped).\n")
        L.append("| sessions | splicegate | HAProxy | socat | splicegate/HAProxy |")
        L.append("|---|---|---|---|---|")
        for n in sorted(r["memory"], key=int):
            mm = r["memory"][n]
            meds = {t: med(mm.get(t, [])) for t in ("splicegate", "haproxy", "socat")}
            L.append(f"| {int(n):,} | {fmt(meds['splicegate'])} | {fmt(meds['haproxy'])} | {fmt(meds['socat'])} | "
                     f"**{fmt(ratio(meds['splicegate'], meds['haproxy']))}×** |")
        L.append("")
    if "mediation" in r:
        L.append("## splicegate: throughput with identity mediators (iperf3, 1 stream, Gbit/s)\n")
        L.append("A listener `mediators` template splices the hops into every session (the iperf3 control "
                 "connection too); the mediator is `splicegate mediator --transform identity`, one process "
                 "for all hops, on the same 2 cores.\n")
        L.append("| mediators | Gbit/s | vs 0 |")
        L.append("|---|---|---|")
        base = med(r["mediation"]["0"])
        for k in ("0", "1", "3"):
            v = med(r["mediation"][k])
            L.append(f"| {k} | {fmt(v)} | {fmt(ratio(v, base))}× |")
        L.append("")
    if "split" in r:
        L.append("## splicegate: throughput with split recipients (iperf3, 1 stream, Gbit/s)\n")
        L.append("`client_to_server` splits from a listener template to `bt sink` (reads and discards with "
                 "256 KiB reads).\n")
        L.append("Each iperf3 test is two sessions (control + data), so each gets the recipients twice. With "
                 "`drop`, a recipient that falls more than `buffer_bytes` (1 MiB) behind is detached and the "
                 "session goes on at full speed: the last column says how many recipients (over all rounds) "
                 "were dropped, so a `drop` figure near the 0-recipient one means the copies were abandoned, "
                 "not that copying is free.\n")
        L.append("| recipients | on_slow | Gbit/s | vs 0 | recipients dropped |")
        L.append("|---|---|---|---|---|")
        base = med(r["split"]["none0"])
        drops = r.get("split_drops", {})
        L.append(f"| 0 | – | {fmt(base)} | 1.00× | |")
        for mode in ("drop", "block"):
            for k in ("1", "4"):
                v = med(r["split"][f"{mode}{k}"])
                ds = drops.get(f"{mode}{k}", [])
                added = sum(d["splicegate_splits_added_total"] for d in ds)
                dropped = sum(d["splicegate_splits_dropped_total"] for d in ds)
                note = f"{dropped:.0f} of {added:.0f}" if ds else "?"
                L.append(f"| {k} | {mode} | {fmt(v)} | {fmt(ratio(v, base))}× | {note} |")
        L.append("")
    if "api" in r and (r["api"]["splice_ms"] or r["api"]["list_ms"]):
        api = r["api"]
        L.append("## splicegate: control-plane latency\n")
        if api["splice_ms"]:
            L.append(f"With 1,000 live idle sessions: {len(api['splice_ms'])} splices "
                     "(`POST /api/v1/sessions/{id}/mediators`, identity mediator, `both`) and as many removals "
                     "(`DELETE …/mediators/{hop}`) on random sessions, over one keep-alive connection.\n")
            L.append("| operation | p50 ms | p99 ms | max ms |")
            L.append("|---|---|---|---|")
            for k, name in (("splice_ms", "splice"), ("remove_ms", "remove")):
                L.append(f"| {name} | {fmt(pct(api[k], .5))} | {fmt(pct(api[k], .99))} | {fmt(max(api[k]))} |")
            L.append("")
        if api["list_ms"]:
            n = api["list_n"]
            L.append(f"Listing all {n:,} live sessions with `GET /api/v1/sessions?limit=1000` and `next_cursor` "
                     f"({-(-n // 1000)} pages), timed from each request to its last body byte (the Python "
                     f"client's JSON decoding is not counted): median {fmt(med(api['list_ms']))} ms of {len(api['list_ms'])} "
                     f"listings (min {fmt(min(api['list_ms']))}, max {fmt(max(api['list_ms']))}); scaled to "
                     f"10,000: {fmt(med(api['list_ms']) * WANT_BIG / n)} ms.\n")
    if r["notes"]:
        L.append("## Notes\n")
        for n in r["notes"]:
            L.append(f"- {n}")
        L.append("")
    L.append("Raw per-round figures: [raw.json](raw.json). Plot: [throughput.png](throughput.png).\n")
    (RESULTS / "RESULTS.md").write_text("\n".join(L))


def plot(b):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plot")
        return
    r = b.res
    panels = [k for k in ("bulk", "ping", "connrate", "mediation") if k in r]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2))
    axes = axes if len(panels) > 1 else [axes]
    colors = {"direct": "#999999", "splicegate": "#d9534f", "haproxy": "#337ab7", "socat": "#5cb85c"}
    for ax, k in zip(axes, panels):
        if k in ("bulk", "ping"):
            groups = ["1", "4"] if k == "bulk" else ["1", "50"]
            w = 0.2
            for i, t in enumerate(TARGETS):
                ys = []
                for g in groups:
                    xs = r[k][g][t]
                    ys.append(med(xs) if k == "bulk" else med([x["rps"] for x in xs]) / 1000)
                ax.bar([j + (i - 1.5) * w for j in range(len(groups))], ys, w, label=t, color=colors[t])
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([f"{g} stream{'s' if g != '1' else ''}" if k == "bulk" else f"{g} client{'s' if g != '1' else ''}"
                                for g in groups])
            ax.set_title("bulk throughput (iperf3)" if k == "bulk" else "redis PING")
            ax.set_ylabel("Gbit/s" if k == "bulk" else "thousand req/s")
            ax.legend(fontsize=8)
        elif k == "connrate":
            ys = [med([x["cps"] for x in r[k][t]]) / 1000 for t in TARGETS]
            ax.bar(TARGETS, ys, color=[colors[t] for t in TARGETS])
            ax.set_title("new connections")
            ax.set_ylabel("thousand conn/s")
        else:
            labels, ys = [], []
            for m in ("0", "1", "3"):
                labels.append(f"{m} med")
                ys.append(med(r["mediation"][m]))
            if "split" in r:
                for c, lab in (("drop1", "1 drop"), ("drop4", "4 drop"), ("block1", "1 block"), ("block4", "4 block")):
                    labels.append(lab)
                    ys.append(med(r["split"][c]))
            ax.bar(labels, ys, color=["#d9534f"] * 3 + ["#f0ad4e"] * (len(labels) - 3))
            ax.set_title("splicegate: mediators / split recipients")
            ax.set_ylabel("Gbit/s (1 stream)")
            ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.suptitle(f"splicegate vs HAProxy vs socat — median of {b.a.rounds} rounds, {r['machine']['date']}, "
                 f"{r['machine']['nproc']} cores, loopback", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "throughput.png", dpi=110)
    plt.close(fig)


# -------------------------------------------------------------------- main

def main():
    global BIN
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="splicegate release binary")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--only", default=",".join(WORKLOADS))
    ap.add_argument("--secs", type=int, default=4, help="iperf3 -t (plus 1 s omitted)")
    ap.add_argument("--ping-n1", type=int, default=30000)
    ap.add_argument("--ping-n50", type=int, default=150000)
    ap.add_argument("--conn-secs", type=float, default=3)
    ap.add_argument("--conn-conc", type=int, default=32)
    ap.add_argument("--api-samples", type=int, default=150, help="splice+remove pairs per round")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--prof-secs", type=int, default=8)
    ap.add_argument("--prof-only", default="bulk,ping,connrate,list,idle-heap",
                    help="profile scenarios to run (with --profile)")
    ap.add_argument("--report-only", action="store_true", help="re-render RESULTS.md and the plot from raw.json")
    a = ap.parse_args()
    BIN = Path(a.bin).resolve()
    a.only = [w.strip() for w in a.only.split(",") if w.strip()]
    bad = set(a.only) - set(WORKLOADS)
    if bad:
        ap.error(f"unknown workload(s) {sorted(bad)}; pick from {WORKLOADS}")
    if a.quick:
        a.rounds, a.secs, a.ping_n1, a.ping_n50, a.conn_secs, a.api_samples = 1, 2, 5000, 20000, 1, 30
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.profile:
        profile(a)
        return
    if a.report_only:
        raw = json.loads((RESULTS / "raw.json").read_text())
        b = Bench(argparse.Namespace(**raw["args"]))
        b.res = raw
        report(b, None, raw["elapsed_s"])
        plot(b)
        log(f"re-rendered {RESULTS / 'RESULTS.md'}")
        return
    started = time.time()
    b = Bench(a)
    b.res["machine"] = machine()
    b.res["versions"] = versions()
    b.res["args"] = {k: v for k, v in vars(a).items() if k not in ("report_only", "profile")}
    b.upstreams()
    if set(a.only) & {"bulk", "ping", "connrate", "mediation", "split"}:
        b.compare()
    if "memory" in a.only:
        b.memory()
    elapsed = time.time() - started
    b.res["elapsed_s"] = round(elapsed, 1)
    (RESULTS / "raw.json").write_text(json.dumps(b.res, indent=1, default=str))
    report(b, started, elapsed)
    plot(b)
    log(f"done in {elapsed / 60:.1f} min: {RESULTS / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
