#!/usr/bin/env python3
"""splicegate benchmarks: direct vs splicegate vs HAProxy, nginx, minrelay and socat, in one run.

Started by bench/run, which installs the tools, builds the release binary, the
C helper (bench/tools/bt.c) and minrelay (../shared/yardsticks/minrelay.c).
Everything listens on and connects to 127.0.0.1. Writes
bench/results/RESULTS.md, raw.json and throughput.png.
This file only parses the arguments; the harness is the splicebench package
beside it: env (paths, constants), processes (children, ports, /proc),
targets (the proxies under test), clients (load generators, admin API),
workloads, handoff (issue 15's pause), profile, stats, report (RESULTS.md) and plot.

    bench/run                      every workload, 3 rounds each
    bench/run --rounds 5           more rounds
    bench/run --only bulk,ping     a subset (bulk ping connrate memory mediation split capture cluster handoff)
    bench/run --quick              1 round, short runs: a smoke test of the harness
    bench/run --profile            perf profile of splicegate (bulk, PING, connrate, listing, idle
                                   heap) and per-operation cost vs HAProxy, instead
    bench/run --no-build --report-only   re-render RESULTS.md and the plot from raw.json
"""
import argparse
import json
import time
from pathlib import Path

from splicebench import baseline, env, handoff
from splicebench.cluster import cluster_listing
from splicebench.env import RESULTS, WORK, WORKLOADS, log
from splicebench.plot import plot
from splicebench.processes import raise_nofile
from splicebench.profile import profile
from splicebench.report import machine, report, versions
from splicebench.workloads import Bench


def main():
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
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the splice latency of main before issue 12 (built into bench/work once)")
    handoff.add_arguments(ap)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--prototypes", action="store_true",
                    help="also measure issue 12's relay prototypes (bench/prototypes; bench/run builds them)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--prof-secs", type=int, default=8)
    ap.add_argument("--prof-only", default="bulk,ping,connrate,list,idle-heap",
                    help="profile scenarios to run (with --profile)")
    ap.add_argument("--report-only", action="store_true", help="re-render RESULTS.md and the plot from raw.json")
    a = ap.parse_args()
    env.BIN = Path(a.bin).resolve()
    a.only = [w.strip() for w in a.only.split(",") if w.strip()]
    bad = set(a.only) - set(WORKLOADS)
    if bad:
        ap.error(f"unknown workload(s) {sorted(bad)}; pick from {WORKLOADS}")
    if a.quick:
        a.rounds, a.secs, a.ping_n1, a.ping_n50, a.conn_secs, a.api_samples = 1, 2, 5000, 20000, 1, 30
    if a.prototypes:
        env.enable_prototypes()
    raise_nofile()
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    if a.profile:
        profile(a)
        return
    if a.report_only:
        raw = json.loads((RESULTS / "raw.json").read_text())
        if any(t in raw.get("targets", []) for t in env.PROTOTYPES):
            env.enable_prototypes()
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
    b.res["targets"] = list(env.TARGETS)
    if "memory" in a.only and not a.no_baseline:
        a.baseline_bin = str(baseline.baseline_binary())
    b.upstreams()
    if set(a.only) & {"bulk", "ping", "connrate", "mediation", "split", "capture"}:
        b.compare()
    if "memory" in a.only:
        b.memory()
    if "cluster" in a.only:
        cluster_listing(b)
    if "handoff" in a.only:
        handoff.handoff_workload(b)
    b.end_workload()
    elapsed = time.time() - started
    b.res["elapsed_s"] = round(elapsed, 1)
    (RESULTS / "raw.json").write_text(json.dumps(b.res, indent=1, default=str))
    report(b, started, elapsed)
    plot(b)
    log(f"done in {elapsed / 60:.1f} min: {RESULTS / 'RESULTS.md'}")


if __name__ == "__main__":
    main()
