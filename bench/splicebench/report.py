"""RESULTS.md: machine, versions, goals and one table per workload."""
import datetime
import os
import platform
import subprocess

from . import baseline, env
from .capture import capture_report
from .env import LABELS, MEMORY_AFTER, PEERS, RESULTS, ROOT, TARGETS, WANT_BIG, WORK
from .handoff_report import handoff_report
from .stats import fmt, med, pct, ratio


def versions():
    def first(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except Exception as e:  # noqa: BLE001
            return f"? ({e})"
    sw = first(["swift", "--version"])
    return {
        "splicegate": f"{first([env.BIN, '--version'])} ({build_info()}, .build-bench/release/splicegate)",
        "swift": sw,
        "haproxy": first(["haproxy", "-v"]),
        "nginx": f"{first(['nginx', '-v'])}, stream module {package_version('libnginx-mod-stream')}",
        "minrelay": minrelay_info(),
        "socat": next((l for l in subprocess.run(["socat", "-V"], capture_output=True, text=True).stdout.splitlines()
                       if "socat version" in l), "?").strip(),
        "iperf3": first(["iperf3", "--version"]),
        "redis": first(["redis-server", "--version"]),
        "redis-benchmark": first(["redis-benchmark", "--version"]),
        "python": platform.python_version(),
    }


def package_version(name):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", name], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def minrelay_info():
    f = WORK / "minrelay-info"
    return f.read_text().strip() if f.exists() else "? (bench/work/minrelay-info missing)"


def targets_section():
    return ["## What is compared\n",
            "- **direct**: the load generator talks to the server itself, no proxy.",
            "- **splicegate**: the release build, one process, one listener per workload.",
            "- **HAProxy**: `mode tcp`, default buffers, one thread per core, no logging "
            "([bench/haproxy.cfg](../haproxy.cfg)). The goals of issue 12 are set against it.",
            "- **nginx**: the `stream` module as a plain L4 proxy (`proxy_pass`), default buffers, "
            "`worker_processes auto`, no logging ([bench/nginx.conf](../nginx.conf)).",
            "- **minrelay**: the smallest epoll relay we could write (`shared/yardsticks/minrelay.c`, one "
            "thread and listener per core, one 16 KiB buffer per thread, no half-close): what a user-space "
            "relay can reach on this machine. splicegate/minrelay is the distance from that limit, "
            "not a goal: minrelay does nothing else a gateway must.",
            "- **socat**: `TCP-LISTEN:…,fork`, a process per connection."] + (
            ["- **proto-epoll**, **proto-uring** (with `--prototypes`): issue 12's two smallest Swift relays "
             "([bench/prototypes](../prototypes)), one loop and SO_REUSEPORT listener per core like minrelay, "
             "with half-close and back-pressure: epoll edge-triggered with a 64 KiB scratch buffer per loop, "
             "and io_uring with a ring of provided buffers (recv picks one when bytes arrive)."]
            if any(t in env.PROTOTYPES for t in TARGETS) else []) + [""]


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


def round_ratios(sg, peer):
    """splicegate/peer in each round (both were measured back to back in it)."""
    return ", ".join(fmt(x / y) for x, y in zip(sg, peer) if y)


def shown(rows, among=TARGETS):
    """The targets a workload has figures for, in TARGETS order: a raw.json from
    before nginx and minrelay joined renders without their columns."""
    return [t for t in among if t in rows]


def per_ratio(meds, peers):
    """The splicegate/peer cells of a row, bold as in the rest of the tables."""
    cells = []
    for t in peers:
        rt = ratio(meds.get("splicegate"), meds.get(t))
        cells.append(f"**{fmt(rt)}×**" if rt is not None else "–")
    return " | ".join(cells)


def bulk_section(bulk, a):
    targets = shown(bulk["1"])
    peers = shown(bulk["1"], PEERS)
    L = ["## Bulk throughput (iperf3, Gbit/s)\n",
         f"`iperf3 -c … -t {a.secs} -O 1 -P N`, receiver side.\n",
         "| streams | " + " | ".join(LABELS[t] for t in targets) + " | " +
         " | ".join(f"splicegate/{LABELS[t]}" for t in peers) + " | per round (splicegate/HAProxy) |",
         "|---" * (len(targets) + len(peers) + 2) + "|"]
    for s in ("1", "4"):
        row = bulk[s]
        meds = {t: med(row.get(t, [])) for t in targets}
        L.append(f"| {s} | " + " | ".join(fmt(meds[t]) for t in targets) + f" | {per_ratio(meds, peers)} | "
                 f"{round_ratios(row['splicegate'], row['haproxy'])} |")
    L.append("")
    return L


def ping_section(ping, a):
    L = ["## Redis PING (redis-benchmark `-t ping_mbulk`)\n",
         f"{a.ping_n1:,} requests with 1 client, {a.ping_n50:,} with 50.\n",
         "| clients | target | req/s | p50 ms | p99 ms |",
         "|---|---|---|---|---|"]
    for c in ("1", "50"):
        for t in shown(ping[c]):
            xs = ping[c][t]
            L.append(f"| {c} | {LABELS[t]} | {fmt(med([x['rps'] for x in xs]))} | "
                     f"{fmt(med([x['p50_ms'] for x in xs]), 3)} | {fmt(med([x['p99_ms'] for x in xs]), 3)} |")
        sg = ping[c]["splicegate"]
        for t in shown(ping[c], PEERS):
            peer = ping[c][t]

            def rt(k):
                return fmt(ratio(med([x[k] for x in sg]), med([x[k] for x in peer])))
            L.append(f"| {c} | **splicegate/{LABELS[t]}** (per round: "
                     f"{round_ratios([x['rps'] for x in sg], [x['rps'] for x in peer])}) | "
                     f"**{rt('rps')}×** | {rt('p50_ms')}× | {rt('p99_ms')}× |")
    L.append("")
    return L


def connrate_section(conn, a):
    targets = shown(conn)
    peers = shown(conn, PEERS)
    proxies = [t for t in targets if t != "direct"]
    cps = {t: [x["cps"] for x in conn[t]] for t in targets}
    meds = {t: med(cps[t]) for t in targets}
    errs = "/".join(str(sum(x["errors"] for x in conn[t])) for t in proxies)
    return ["## Connection rate (new sessions per second)\n",
            f"`bt connrate` ({a.conn_conc} sessions in flight for {a.conn_secs} s): each session connects, "
            "sends 1 byte, gets 1 byte and EOF from `bt echo1` upstream (which closes first), then the "
            "client closes with RST. So every session is a full accept + upstream dial + relay + close "
            "through the proxy.\n",
            "| " + " | ".join(LABELS[t] for t in targets) + " | " +
            " | ".join(f"splicegate/{LABELS[t]}" for t in peers) +
            f" | per round (splicegate/HAProxy) | errors ({'/'.join(LABELS[t] for t in proxies)}) |",
            "|---" * (len(targets) + len(peers) + 2) + "|",
            "| " + " | ".join(fmt(meds[t]) for t in targets) + f" | {per_ratio(meds, peers)} | "
            f"{round_ratios(cps['splicegate'], cps['haproxy'])} | {errs} |",
            ""]


def memory_section(memory):
    sizes = sorted(memory, key=int)
    targets = [t for t in TARGETS if t != "direct" and any(t in memory[n] for n in sizes)]
    peers = [t for t in PEERS if t in targets]
    L = ["## Memory per idle session (KiB)\n",
         "N idle client connections (`bt idle`) through the proxy to an upstream that holds them "
         "(`bt holder`); a fresh proxy process per measurement, warmed with 200 sessions opened and "
         "closed first; (RSS after − RSS before) / N. socat forks a process per connection, so its "
         "figure is the growth of the summed **PSS** of the socat process tree, at 1,000 sessions "
         "only (10,000 forked processes were skipped)."
         + (" nginx holds its sessions in worker processes forked from its master, so its figure is "
            "likewise the growth of the summed PSS of master and workers." if "nginx" in targets else "")
         + "\n",
         "| sessions | " + " | ".join(LABELS[t] for t in targets) + " | " +
         " | ".join(f"splicegate/{LABELS[t]}" for t in peers) + " |",
         "|---" * (len(targets) + len(peers) + 1) + "|"]
    for n in sizes:
        meds = {t: med(memory[n].get(t, [])) for t in targets}
        L.append(f"| {int(n):,} | " + " | ".join(fmt(meds[t]) for t in targets) + f" | {per_ratio(meds, peers)} |")
    L.append("")
    return L


def figures(r):
    """Each comparable figure as {target: median}, with whether higher is better."""
    f = {}
    if "bulk" in r:
        for s in ("1", "4"):
            f[f"iperf3 {s} stream{'s' if s == '4' else ''}, Gbit/s"] = (
                {t: med(v) for t, v in r["bulk"][s].items()}, True)
    if "ping" in r:
        for c in ("1", "50"):
            p = r["ping"][c]
            f[f"PING req/s, {c} client{'s' if c == '50' else ''}"] = ({t: med([x["rps"] for x in v]) for t, v in p.items()}, True)
            f[f"PING p99 ms, {c} client{'s' if c == '50' else ''}"] = ({t: med([x["p99_ms"] for x in v]) for t, v in p.items()}, False)
    if "connrate" in r:
        f["new sessions/s"] = ({t: med([x["cps"] for x in v]) for t, v in r["connrate"].items()}, True)
    if "memory" in r:
        for n in sorted(r["memory"], key=int):
            f[f"KiB per idle session, never used ({int(n):,})"] = ({t: med(v) for t, v in r["memory"][n].items()}, False)
    for name, n, up, down in MEMORY_AFTER:
        if name in r.get("memory_after", {}):
            f[f"KiB per idle session after {after_label(name, up, down)}"] = (
                {t: med(v) for t, v in r["memory_after"][name].items()}, False)
    return f


def after_label(name, up, down):
    return "one PING/PONG" if name == "ping" else f"a {up // 1024} KiB / {down // 1024} KiB burst"


def goals_section(r):
    """Issue 12's goals, each against HAProxy unless it says otherwise."""
    L = ["## Goals (issue 12)\n", "| goal | splicegate | HAProxy | ratio | met |", "|---|---|---|---|---|"]

    def goal(name, sg, ha, rt, ok, unit=""):
        L.append(f"| {name} | {fmt(sg)}{unit} | {fmt(ha)}{unit} | {fmt(rt)}{'×' if rt is not None else ''} | "
                 f"{'yes' if ok else ('**no**' if ok is not None else '–')} |")

    def vs_haproxy(name, key, want, higher, unit=""):
        meds = figures(r).get(key, ({}, True))[0]
        sg, ha = meds.get("splicegate"), meds.get("haproxy")
        rt = ratio(sg, ha)
        goal(name, sg, ha, rt, None if rt is None else (rt >= want if higher else rt <= want), unit)

    for key in [k for k in figures(r) if k.startswith("KiB per idle session")]:
        vs_haproxy(f"memory per idle session ≤ 1.0× HAProxy: {key.split(', ', 1)[-1].replace('KiB per idle session ', '')}",
                   key, 1.0, False, " KiB")
    vs_haproxy("PING req/s at 50 clients ≥ 1.1× HAProxy", "PING req/s, 50 clients", 1.1, True, " req/s")
    vs_haproxy("PING req/s at 1 client ≥ 1.0× HAProxy", "PING req/s, 1 client", 1.0, True, " req/s")
    vs_haproxy("PING p99 at 50 clients ≤ HAProxy's", "PING p99 ms, 50 clients", 1.0, False, " ms")
    vs_haproxy("PING p99 at 1 client ≤ HAProxy's", "PING p99 ms, 1 client", 1.0, False, " ms")
    vs_haproxy("new sessions/s ≥ 1.0× HAProxy", "new sessions/s", 1.0, True)
    vs_haproxy("iperf3 1 stream ≥ 1.3× HAProxy", "iperf3 1 stream, Gbit/s", 1.3, True, " Gbit/s")
    vs_haproxy("iperf3 4 streams ≥ 1.3× HAProxy", "iperf3 4 streams, Gbit/s", 1.3, True, " Gbit/s")
    if "mediation" in r:
        hop, none = med(r["mediation"]["1"]), med(r["mediation"]["0"])
        rt = ratio(hop, none)
        goal("one identity hop ≥ 0.5× of no hop (iperf3, 1 stream; HAProxy column: no hop)", hop, none, rt,
             rt is not None and rt >= 0.5, " Gbit/s")
    if "api" in r and r["api"]["splice_ms"]:
        p99 = pct(r["api"]["splice_ms"], .99)
        goal("splice p99 with 1,000 live sessions ≤ 1.05 ms (before issue 12, in its own run)", p99, None, None,
             p99 <= 1.05, " ms")
        if r["api"].get("baseline_splice_ms"):
            base = pct(r["api"]["baseline_splice_ms"], .99)
            goal("splice p99 with 1,000 live sessions ≤ the build before issue 12's, in this run "
                 "(HAProxy column: that build)", p99, base, ratio(p99, base), p99 <= base, " ms")
    if "api" in r and r["api"]["list_ms"]:
        n = r["api"]["list_n"]
        t = med(r["api"]["list_ms"]) * WANT_BIG / n
        goal(f"listing 10,000 sessions ≤ 38 ms (before issue 12; measured at {n:,}, scaled)", t, None, None,
             t <= 38.0, " ms")
    L.append("")
    return L


def prototypes_section(r):
    """Issue 12's A/B: each prototype and splicegate against HAProxy, nginx and minrelay."""
    cols = ["splicegate"] + [t for t in env.PROTOTYPES if t in r.get("targets", [])]
    L = ["## Relay prototypes against the peers (issue 12)\n",
         "Each cell is the target's figure / the peer's, from the same rounds; for memory and p99, "
         "lower is better, so a ratio below 1 wins there.\n",
         "| figure | " + " | ".join(f"{LABELS[c]}/{LABELS[p]}" for c in cols for p in PEERS) + " |",
         "|---" * (1 + len(cols) * len(PEERS)) + "|"]
    for key, (meds, higher) in figures(r).items():
        cells = []
        for c in cols:
            for p in PEERS:
                rt = ratio(meds.get(c), meds.get(p))
                won = rt is not None and (rt >= 1.0 if higher else rt <= 1.0)
                cells.append("–" if rt is None else (f"**{fmt(rt)}**" if won else fmt(rt)))
        L.append(f"| {key} | " + " | ".join(cells) + " |")
    L.append("")
    return L


def memory_after_section(after):
    L = ["## Memory per idle session after traffic (KiB)\n",
         "As above, to `bt holder`, but each session first sends a request and reads the holder's "
         "answer, then sits idle: a small PING-sized exchange (14 bytes up, 7 down, 2,000 sessions) and a "
         "burst (256 KiB up, 64 KiB down, 500 sessions). A proxy that keeps its buffers for the "
         "session's life pays for them here. socat is left out.\n"]
    targets = [t for t in TARGETS if t != "direct" and any(t in after[k] for k in after)]
    peers = [t for t in PEERS if t in targets]
    L += ["| after | " + " | ".join(LABELS[t] for t in targets) + " | " +
          " | ".join(f"splicegate/{LABELS[t]}" for t in peers) + " |",
          "|---" * (len(targets) + len(peers) + 1) + "|"]
    for name, n, up, down in MEMORY_AFTER:
        if name not in after:
            continue
        meds = {t: med(after[name].get(t, [])) for t in targets}
        L.append(f"| {after_label(name, up, down)} ({n:,}) | " + " | ".join(fmt(meds[t]) for t in targets) +
                 f" | {per_ratio(meds, peers)} |")
    L.append("")
    return L


def report(b, started, elapsed):
    r = b.res
    a = b.a
    L = []
    m = r["machine"]
    L.append("# splicegate benchmarks\n")
    L.append(f"Produced by `bench/run` on {m['date']} in {elapsed / 60:.1f} min. "
             f"Each figure is the **median of {a.rounds} rounds**; the targets take turns within each round "
             f"(the order rotates every round), so the splicegate/HAProxy, splicegate/nginx and "
             f"splicegate/minrelay ratios compare figures from the same run. Everything runs on 127.0.0.1: load generator, proxy and server share the "
             f"{m['nproc']} cores, so absolute numbers are lower than on separate machines; only the "
             f"ratios mean much.\n")
    L += targets_section()
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
    steal = r.get("steal", {})
    if steal:
        L.append("- CPU time the hypervisor gave to other guests during each workload (steal, from "
                 "/proc/stat; every target runs slower while it is high): "
                 + "; ".join(f"{k} {v}%" for k, v in steal.items()))
        worst = max(steal.items(), key=lambda kv: kv[1])
        if worst[1] >= 10:
            L.append(f"- **The host was oversubscribed during the run**: it took up to {worst[1]}% of this "
                     f"VM's CPU time (`{worst[0]}`). Absolute figures are low and noisy; ratios from one "
                     f"round still compare targets that ran seconds apart.")
    L.append("")
    L += goals_section(r)
    if any(t in env.PROTOTYPES for t in r.get("targets", [])):
        L += prototypes_section(r)

    if "bulk" in r:
        L += bulk_section(r["bulk"], a)
    if "ping" in r:
        L += ping_section(r["ping"], a)
    if "connrate" in r:
        L += connrate_section(r["connrate"], a)
    if "memory" in r:
        L += memory_section(r["memory"])
    if r.get("memory_after"):
        L += memory_after_section(r["memory_after"])
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
    L += capture_report(r, med, fmt, ratio)
    if "api" in r and (r["api"]["splice_ms"] or r["api"]["list_ms"]):
        api = r["api"]
        L.append("## splicegate: control-plane latency\n")
        if api["splice_ms"]:
            L.append(f"With 1,000 live idle sessions: {len(api['splice_ms'])} splices "
                     "(`POST /api/v1/sessions/{id}/mediators`, identity mediator, `both`) and as many removals "
                     "(`DELETE …/mediators/{hop}`) on random sessions through Python's http.client (the "
                     "gateway answers every request with `Connection: close`, so each is a new connection).\n")
            rows = [("splice_ms", "splice"), ("remove_ms", "remove")]
            if api.get("baseline_splice_ms"):
                rows.append(("baseline_splice_ms", "splice, main before issue 12"))
                L.append(f"The last row is the build before issue 12 ({baseline.COMMIT[:7]}, "
                         "bench/splicebench/baseline.py), measured the same way on the same mediator in the "
                         "same rounds, right before or after this build.\n")
            L.append("| operation | p50 ms | p99 ms | max ms |")
            L.append("|---|---|---|---|")
            for k, name in rows:
                L.append(f"| {name} | {fmt(pct(api[k], .5))} | {fmt(pct(api[k], .99))} | {fmt(max(api[k]))} |")
            L.append("")
        if api["list_ms"]:
            n = api["list_n"]
            L.append(f"Listing all {n:,} live sessions with `GET /api/v1/sessions?limit=1000` and `next_cursor` "
                     f"({-(-n // 1000)} pages), timed from each request to its last body byte (the Python "
                     f"client's JSON decoding is not counted): median {fmt(med(api['list_ms']))} ms of {len(api['list_ms'])} "
                     f"listings (min {fmt(min(api['list_ms']))}, max {fmt(max(api['list_ms']))}); scaled to "
                     f"10,000: {fmt(med(api['list_ms']) * WANT_BIG / n)} ms.\n")
    if r.get("cluster", {}).get("list_ms"):
        c = r["cluster"]
        total = c["nodes"] * c["per_node"]
        L.append("## splicegate: cluster listing\n")
        L.append(f"{c['nodes']} nodes on one PostgreSQL, {c['per_node']:,} idle sessions each. Listing all {total:,} "
                 f"through node 1 (`GET /api/v1/sessions?limit=1000`, {-(-total // 1000)} pages, each filled from "
                 f"the nodes in id order): median {fmt(med(c['list_ms']))} ms of {len(c['list_ms'])} "
                 f"(min {fmt(min(c['list_ms']))}, max {fmt(max(c['list_ms']))}). Node 1's own {c['per_node']:,} "
                 f"(`scope=local`): median {fmt(med(c['local_ms']))} ms.\n")
    L += handoff_report(r)
    if r["notes"]:
        L.append("## Notes\n")
        for n in r["notes"]:
            L.append(f"- {n}")
        L.append("")
    L.append("Raw per-round figures: [raw.json](raw.json). Plot: [throughput.png](throughput.png).\n")
    (RESULTS / "RESULTS.md").write_text("\n".join(L))
