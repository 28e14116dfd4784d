"""The workloads: every target side by side (bulk, ping, connrate, memory) and
splicegate's own (mediation, split, control-plane latency)."""
import random
import subprocess
import time

from . import env
from .capture import capture_rounds
from .clients import Admin, connrate, iperf, metrics, redis_ping
from .env import BT, HOST, MEMORY_AFTER, TARGETS, WANT_BIG, log
from .processes import (big_session_count, cpu_ticks, free_port, load, machine_busy, nofile_limit, rss_kib, spawn,
                        steal_pct, tree_pss_kib, wait_established, wait_log, wait_port)
from .stats import pct
from .targets import Proxies


MINRELAY_CRASH = ("minrelay died during a measurement, so that round has no minrelay figure; the harness "
                  "restarts it before its next one. (Its two known crashes are already avoided: bench/run "
                  "builds it with bench/tools/minrelay-quarantine.h and runs it with SIGPIPE ignored.)")


class Bench:
    def __init__(self, args):
        self.a = args
        self.res = {"loads": {}, "notes": []}
        self.servers = {}

    def end_workload(self):
        """Closes the running workload's window: how much CPU time the host stole in it."""
        mark = getattr(self, "_steal_mark", None)
        if mark:
            name, before = mark
            self.res.setdefault("steal", {})[name] = steal_pct(before, cpu_ticks())
            log(f"--- {name}: the host took {self.res['steal'][name]}% of this VM's CPU time (steal)")
        self._steal_mark = None

    def rounds(self):
        return range(self.a.rounds)

    def order(self, r, targets):
        # rotate the order each round so drift and warm-up hit every target alike
        k = r % len(targets)
        return targets[k:] + targets[:k]

    def record_load(self, name):
        self.end_workload()
        self._steal_mark = (name, cpu_ticks())
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
        s["holder"] = free_port()
        spawn([BT, "holder", s["holder"]], "holder")
        s["mediator"] = free_port()
        spawn([env.BIN, "mediator", "--listen", f"{HOST}:{s['mediator']}", "--transform", "identity"], "mediator")
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
                            v = self.yardstick(px, t, f"bulk P{streams}", lambda: iperf(bulk[t], streams, a.secs))
                            if v is None:
                                continue
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
            if "capture" in want:
                self.record_load("capture")
                capture_rounds(self, px.admin, Admin(px.admin).call, bulk["splicegate"])
            if "ping" in want:
                self.record_load("ping")
                out = self.res["ping"] = {}
                for clients, n in ((1, a.ping_n1), (50, a.ping_n50)):
                    for r in self.rounds():
                        for t in self.order(r, TARGETS):
                            v = self.yardstick(px, t, f"ping c={clients}", lambda: redis_ping(ping[t], clients, n))
                            if v is None:
                                continue
                            out.setdefault(str(clients), {}).setdefault(t, []).append(v)
                            log(f"ping c={clients} {t:10s} {v['rps']:9.0f} req/s p50 {v['p50_ms']} p99 {v['p99_ms']} ms")
            if "connrate" in want:
                self.record_load("connrate")
                out = self.res["connrate"] = {}
                for r in self.rounds():
                    for t in self.order(r, TARGETS):
                        v = self.yardstick(px, t, "connrate", lambda: connrate(conn[t], a.conn_secs, a.conn_conc))
                        if v is None:
                            continue
                        out.setdefault(t, []).append(v)
                        log(f"connrate {t:10s} {v['cps']:8.0f} conn/s (errors {v['errors']})")
                        time.sleep(1)
        finally:
            px.stop()

    def yardstick(self, px, t, what, measure):
        """measure(), except that a failure of minrelay is noted and skipped: it is a
        yardstick, not product code, and the rest of the run is worth having."""
        if t != "minrelay":
            return measure()
        px.revive_minrelays()
        try:
            return measure()
        except RuntimeError as e:
            if MINRELAY_CRASH not in self.res["notes"]:
                self.res["notes"].append(MINRELAY_CRASH)
            self.res["notes"].append(f"minrelay failed in {what} and was left out of it: {str(e)[:300]}")
            log(f"{what} minrelay FAILED (left out): {e}")
            return None
        finally:
            # a fresh minrelay after each of its measurements: a spinning one would slow the others
            px.revive_minrelays(always=True)

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
        holder = self.servers["holder"]
        out = self.res["memory"] = {}
        after = self.res["memory_after"] = {}
        api = self.res["api"] = {"splice_ms": [], "remove_ms": [], "list_ms": [], "list_n": big}
        # The build before issue 12 (bench/run builds it; splicebench/baseline.py): its splices
        # right before or right after this build's, alternately, on the same mediator.
        base = getattr(self.a, "baseline_bin", None)
        if base:
            api["baseline_splice_ms"] = []
        sizes = [1000, big]
        for r in self.rounds():
            for n in sizes:
                for t in self.order(r, [t for t in TARGETS if t != "direct"]):
                    if t == "socat" and n > 1000:
                        continue
                    beside = base and n == 1000 and t == "splicegate"
                    if beside and r % 2 == 1:
                        self.baseline_api(base, holder, api)
                    v = self.memory_one(t, n, holder, api if t == "splicegate" else None)
                    out.setdefault(str(n), {}).setdefault(t, []).append(v)
                    log(f"memory n={n} {t:10s} {v:7.2f} KiB/session")
                    if beside and r % 2 == 0:
                        self.baseline_api(base, holder, api)
            for name, n, up, down in MEMORY_AFTER:
                for t in self.order(r, [t for t in TARGETS if t not in ("direct", "socat")]):
                    v = self.memory_one(t, n, holder, None, up, down)
                    after.setdefault(name, {}).setdefault(t, []).append(v)
                    log(f"memory after {name} n={n} {t:10s} {v:7.2f} KiB/session")

    def memory_one(self, t, n, holder, api, up=0, down=0):
        """KiB per idle session through a fresh proxy process: n sessions, each of which
        first sends `up` bytes to the holder and reads its `down`-byte answer (none if 0)."""
        px = Proxies(f"mem-{t}")
        port = px.route("idle", holder, [t])[t]
        if t == "splicegate":
            px.sg_mediators = [{"name": "id", "kind": "tcp", "address": f"{HOST}:{self.servers['mediator']}"}]
        px.start()
        proc = px.process(t)
        # socat forks a process per connection and nginx's sessions live in its
        # workers, children of the master that copy-on-write share its pages: for
        # both, the summed PSS of the process tree, so shared pages count once.
        tree = t in ("socat", "nginx")
        measure = (lambda: tree_pss_kib(proc.pid)) if tree else (lambda: rss_kib(proc.pid))
        try:
            # warm up: thread pools, allocator arenas, lazily built tables
            self.open_idle(port, 200, holder, up, down).stdin.close()
            wait_established(holder, 0)
            time.sleep(0.5)
            before = measure()
            client = self.open_idle(port, n, holder, up, down)
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

    def baseline_api(self, binary, holder, api):
        splice_ms = self.api_round(binary, holder)
        api["baseline_splice_ms"] += splice_ms
        log(f"baseline splice p50 {pct(splice_ms, .5):.2f} p99 {pct(splice_ms, .99):.2f} ms ({binary})")

    def api_round(self, binary, holder, sessions=1000):
        """Splice latencies (ms) through a fresh gateway of `binary` holding `sessions` idle
        sessions, measured as for this build (`api_latency`, the same mediator)."""
        current = env.BIN
        env.BIN = binary
        px = Proxies("api")
        port = px.route("idle", holder, ["splicegate"])["splicegate"]
        px.sg_mediators = [{"name": "id", "kind": "tcp", "address": f"{HOST}:{self.servers['mediator']}"}]
        try:
            px.start()
            client = self.open_idle(port, sessions, holder)
            time.sleep(1.0)
            api = {"splice_ms": [], "remove_ms": []}
            self.api_latency(Admin(px.admin), api)
            client.stdin.close()
            client.wait(60)
            return api["splice_ms"]
        finally:
            env.BIN = current
            px.stop()
            wait_established(holder, 0, timeout=60)

    def open_idle(self, port, n, holder, up=0, down=0):
        c = spawn([BT, "idle", port, n, up, down], f"idle-{port}-{n}", stdin=subprocess.PIPE)
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
