#!/usr/bin/env python3
"""The handoff workload alone (issue 15): the pause a session sees while splicegate hands its
live sessions to a successor. bench/run runs it with the rest (`--only handoff` for just
it, into RESULTS.md); this runs it against any binary and prints the table, e.g. to try a
debug build at a small scale:

    bench/handoff.py --bin .build/debug/splicegate --handoff-sessions 200 --handoffs 2
    SPLICEGATE_BIN=... bench/handoff.py              # 1,000 and 10,000 (or what fits), 3 handoffs

Compiles bench/tools/bt.c and probe.c into bench/work/ when they are missing or older than
their source (gcc), and leaves the raw figures in bench/work/handoff.json and the processes'
logs in bench/work/logs/. Exits 1 when a handoff or a check failed. Not part of the test suite.
"""
import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from splicebench import env, handoff
from splicebench.env import BENCH, BT, PROBE, ROOT, WORK, log
from splicebench.handoff_report import handoff_report
from splicebench.processes import raise_nofile
from splicebench.workloads import Bench


def build_tools():
    for out, src in ((BT, BENCH / "tools" / "bt.c"), (PROBE, BENCH / "tools" / "probe.c")):
        if not out.exists() or src.stat().st_mtime > out.stat().st_mtime:
            subprocess.run(["gcc", "-O2", "-Wall", "-o", str(out), str(src)], check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.environ.get("SPLICEGATE_BIN", ROOT / ".build-bench" / "release" / "splicegate"),
                    help="splicegate binary (default $SPLICEGATE_BIN, else .build-bench/release/splicegate)")
    ap.add_argument("--rounds", type=int, default=3, help="handoffs per count unless --handoffs says")
    handoff.add_arguments(ap)
    a = ap.parse_args()
    env.BIN = Path(a.bin).resolve()
    if not env.BIN.exists():
        ap.error(f"no splicegate binary at {env.BIN}")
    WORK.mkdir(parents=True, exist_ok=True)
    build_tools()
    raise_nofile()
    b = Bench(a)
    handoff.handoff_workload(b)
    (WORK / "handoff.json").write_text(json.dumps(b.res, indent=1, default=str))
    print("\n".join(handoff_report(b.res)))
    for note in b.res["notes"]:
        print(f"- {note}")
    failed = [n for n, run in b.res["handoff"]["runs"].items() if "failed" in run]
    if failed:
        log(f"failed at {', '.join(failed)} sessions (see bench/work/logs/handoff-*.log)")
        sys.exit(1)


if __name__ == "__main__":
    main()
