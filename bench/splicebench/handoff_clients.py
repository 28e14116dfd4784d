"""The handoff workload's clients: probes timing round trips (bench/tools/probe.c) and idle
sessions that prove they are alive (idle_sessions.py), and what the probes' samples say."""
import array
import re
import struct
import subprocess
import sys
import time

from .env import BENCH, PROBE
from .processes import spawn, stop, wait_log
from .stats import pct

SAMPLE = struct.Struct("<IIdd")  # probe, 0, sent, answered (see probe.c)


class Probes:
    """k connections doing SIZE-byte round trips back to back (or gap_us apart) until finish()."""

    def __init__(self, port, k, size, samples_path, gap_us=0):
        self.k = k
        self.path = samples_path
        self.proc = spawn([PROBE, port, k, size, samples_path, gap_us], f"probe-{port}", stdin=subprocess.PIPE)
        wait_log(self.proc, r"running \d+", timeout=60)

    def finish(self, timeout=60):
        """Stops them; returns (samples file, errors: [(probe, time, what)])."""
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"probe did not finish within {timeout} s") from None
        text = self.proc.logfile.read_text(errors="replace")
        if self.proc.returncode != 0 or not re.search(r"^done \d+ \d+$", text, re.M):
            raise RuntimeError(f"probe exited {self.proc.returncode}: {text[-1000:]}")
        errors = [(int(m.group(1)), float(m.group(2)), m.group(3))
                  for m in re.finditer(r"^error (\d+) ([0-9.]+) (.*)$", text, re.M)]
        return self.path, errors

    def close(self):
        stop(self.proc)


class IdleSessions:
    """`count` live sessions, held by processes of at most `per_process` each."""

    def __init__(self, port, count, per_process):
        self.procs = []
        self.checks = 0
        first = 0
        while first < count:
            share = min(per_process, count - first)
            self.procs.append(spawn([sys.executable, "-m", "splicebench.idle_sessions", port, share, first],
                                    f"idle-sessions-{port}-{first}", stdin=subprocess.PIPE,
                                    extra_env={"PYTHONPATH": str(BENCH)}))
            first += share
        for p in self.procs:
            wait_log(p, r"opened \d+", timeout=300)

    def check(self, timeout=120):
        """Every session echoes a number of its own; returns (alive, total, first problem or None)."""
        self.checks += 1
        for p in self.procs:
            p.stdin.write(b"check\n")
            p.stdin.flush()
        alive = total = 0
        problem = None
        deadline = time.monotonic() + timeout
        for p in self.procs:
            while True:
                lines = re.findall(r"^alive (\d+) (\d+) (.*)$", p.logfile.read_text(errors="replace"), re.M)
                if len(lines) >= self.checks:
                    break
                if p.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{p.name}: no answer to check {self.checks} "
                                       f"(exit {p.poll()}): {p.logfile.read_text()[-1000:]}")
                time.sleep(0.05)
            ok, n, why = lines[self.checks - 1]
            alive += int(ok)
            total += int(n)
            if why != "-" and problem is None:
                problem = why
        return alive, total, problem

    def close(self):
        for p in self.procs:
            try:
                p.stdin.close()
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                stop(p)


def overlaps(sent, answered, window):
    return sent < window[1] and answered > window[0]


def probe_stats(path, k, handoffs, busy):
    """What the probes saw, from their samples: for each handoff window (t0, t1), the longest
    round trip that overlapped it (the pause) and the longest silence between one probe's
    answers that did; outside every window (handoffs and `busy` ones, when the harness itself
    loaded the gateway), the round trip's p50/p99/max; and how many round trips each probe
    finished after the last handoff window."""
    during = [{"pause_ms": 0.0, "silence_ms": 0.0, "round_trips": 0, "probe": None} for _ in handoffs]
    outside = array.array("d")
    last_answer = {}
    after = [0] * k
    end = handoffs[-1][1] if handoffs else float("-inf")
    with open(path, "rb") as f:
        data = f.read()
    for probe, _, sent, answered in SAMPLE.iter_unpack(data):
        rtt = (answered - sent) * 1000
        silent_from = last_answer.get(probe, sent)
        last_answer[probe] = answered
        hit = False
        for w, window in zip(during, handoffs):
            if overlaps(sent, answered, window):
                hit = True
                w["round_trips"] += 1
                if rtt > w["pause_ms"]:
                    w["pause_ms"], w["probe"] = rtt, probe
            if overlaps(silent_from, answered, window):
                w["silence_ms"] = max(w["silence_ms"], (answered - silent_from) * 1000)
        if not hit and not any(overlaps(sent, answered, b) for b in busy):
            outside.append(rtt)
        if sent > end:
            after[probe] += 1
    ranked = sorted(outside)
    return {
        "round_trips": len(data) // SAMPLE.size,
        "handoffs": during,
        "outside": {"count": len(ranked), "p50_ms": pct(ranked, .5), "p99_ms": pct(ranked, .99),
                    "max_ms": ranked[-1] if ranked else None},
        "after_last_handoff": after,
    }
