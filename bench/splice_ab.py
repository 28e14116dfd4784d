#!/usr/bin/env python3
"""Splice latency of two splicegate builds in one run. bench/run's memory workload measures
this build's splices beside the build before issue 12 (splicebench/baseline.py) for the goal
"splice p99 no worse than before"; this runs only that, against any two builds, with more
rounds: a figure from an earlier run compares two moments of the machine as much as two
builds. Both builds alternate round by round as in bench/run: 1,000 idle sessions through a
fresh gateway, then `--api-samples` splices of the identity mediator (`both`) and their
removals on random sessions through http.client (`Bench.api_round`), on one mediator.

    bench/splice_ab.py --rounds 10                    # .build-bench's build vs main before issue 12
    bench/splice_ab.py --bin A --baseline B

--bin defaults to $SPLICEGATE_BIN, else .build-bench/release/splicegate (bench/run builds it);
--baseline to main before issue 12, built into bench/work on first use. Needs bench/work/bt
(bench/run builds it). Prints each round and the pooled percentiles, and leaves the samples in
bench/work/splice-ab.json. Not part of the test suite.
"""
import argparse
import json
import os
from pathlib import Path

from splicebench import baseline
from splicebench.env import BT, HOST, ROOT, WORK, log
from splicebench.processes import free_port, raise_nofile, spawn, wait_port
from splicebench.stats import pct
from splicebench.workloads import Bench

SESSIONS = 1000


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("SPLICEGATE_BIN", ROOT / ".build-bench" / "release" / "splicegate"),
                    help="the build under test (default $SPLICEGATE_BIN, else .build-bench/release/splicegate)")
    ap.add_argument("--baseline", help="the build to compare with (default: main before issue 12)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--api-samples", type=int, default=150, help="splice+remove pairs per build and round")
    a = ap.parse_args()
    builds = {"bin": Path(a.bin).resolve(),
              "baseline": Path(a.baseline or baseline.baseline_binary()).resolve()}
    for label, path in builds.items():
        if not path.exists():
            ap.error(f"no {label} binary at {path}")
    if not BT.exists():
        ap.error(f"{BT} is missing: bench/run (or bench/handoff.py) builds it")
    WORK.mkdir(parents=True, exist_ok=True)
    raise_nofile()
    b = Bench(a)
    holder = b.servers["holder"] = free_port()
    mediator = b.servers["mediator"] = free_port()
    spawn([BT, "holder", holder], "ab-holder")
    # One mediator for both builds: the one under test's.
    spawn([builds["bin"], "mediator", "--listen", f"{HOST}:{mediator}", "--transform", "identity"], "ab-mediator")
    wait_port(holder)
    wait_port(mediator)
    samples = {label: [] for label in builds}
    for r in range(a.rounds):
        order = list(builds) if r % 2 == 0 else list(reversed(builds))
        for label in order:
            splice_ms = b.api_round(builds[label], holder, SESSIONS)
            samples[label] += splice_ms
            log(f"round {r + 1} {label:8s} splice p50 {pct(splice_ms, .5):.2f} p99 {pct(splice_ms, .99):.2f} ms")
    for label, path in builds.items():
        xs = samples[label]
        log(f"{label:8s} {len(xs)} splices: p50 {pct(xs, .5):.2f} p90 {pct(xs, .9):.2f} "
            f"p99 {pct(xs, .99):.2f} max {max(xs):.2f} ms ({path})")
    (WORK / "splice-ab.json").write_text(json.dumps(
        {"builds": {k: str(v) for k, v in builds.items()}, "splice_ms": samples}, indent=1))


if __name__ == "__main__":
    main()
