"""Where the benchmark keeps its files, what it runs, and its log line."""
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / "work"
LOGS = WORK / "logs"
RESULTS = BENCH / "results"
BT = WORK / "bt"
PROBE = WORK / "probe"  # bench/tools/probe.c: timed round trips (the handoff workload)
MINRELAY = WORK / "minrelay"  # built by bench/run from ../shared/yardsticks/minrelay.c
# issue 12's relay prototypes (bench/prototypes), built by bench/run --prototypes
PROTO_BIN = ROOT / ".build-bench-proto" / "release"
PROTOTYPES = ["proto-epoll", "proto-uring"]
HOST = "127.0.0.1"
TARGETS = ["direct", "splicegate", "haproxy", "nginx", "minrelay", "socat"]
# What the proxy kinds are called in RESULTS.md and the plot.
LABELS = {"direct": "direct", "splicegate": "splicegate", "haproxy": "HAProxy", "nginx": "nginx",
          "minrelay": "minrelay", "socat": "socat", "proto-epoll": "proto-epoll", "proto-uring": "proto-uring"}
# splicegate is compared with each of these, in this order: HAProxy (issue 6's
# goals), nginx (the other production L4 proxy) and minrelay (the smallest epoll
# relay we could write: the distance from what this machine can do).
PEERS = ["haproxy", "nginx", "minrelay"]
WORKLOADS = ["bulk", "ping", "connrate", "memory", "mediation", "split", "capture", "cluster", "handoff"]
# Idle sessions after some traffic (issue 12): a small request/answer, and a burst.
# (name, sessions, request bytes, answer bytes); "never used" is measured at 1,000 and
# at the largest count that fits (see big_session_count).
MEMORY_AFTER = [("ping", 2000, 14, 7), ("burst", 500, 256 * 1024, 64 * 1024)]


def enable_prototypes():
    """Adds the prototypes as targets, in place, so every module's TARGETS sees them."""
    for t in PROTOTYPES:
        if t not in TARGETS:
            TARGETS.insert(TARGETS.index("socat"), t)

# The container's RLIMIT_NOFILE hard limit (20000) cannot be raised (no
# CAP_SYS_RESOURCE); a proxy needs two descriptors per session, so "10,000
# sessions" is measured at the largest count that fits (see big_session_count).
WANT_BIG = 10_000

BIN = None  # splicegate binary, set by bench.py's main() (read it as env.BIN)


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)
