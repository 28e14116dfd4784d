"""perf profile of splicegate and per-operation cost against HAProxy (--profile)."""
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

from . import env
from .clients import Admin
from .env import BT, HOST, RESULTS, log
from .processes import big_session_count, load, run, stop_all, wait_established
from .stats import fmt
from .targets import Proxies
from .workloads import Bench


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
    libc = next((l.split("=>")[1].split()[0] for l in run(["ldd", env.BIN]).splitlines() if "libc.so.6" in l), None)
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
