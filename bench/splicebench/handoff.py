"""The handoff workload (issue 15): the pause a session sees while a running splicegate hands
every live session to a successor (`--take-over`), with 1,000 and 10,000 live sessions.

One run per session count: `bt echo` upstream, a splicegate with one listener and
`--handoff-socket`, N live sessions through it: N - K idle ones (idle_sessions.py, in as
many processes as the descriptors need) and K probes (bench/tools/probe.c) doing small
round trips back to back all along. Then, `handoffs` times in a row, a successor is
started with `--take-over` and the same arguments, and the harness watches (every 2 ms)
for the successor serving ("admin listening on") and the old process exiting (0). After
each: the successor's listener must count N active sessions, and every idle session must
echo a number of its own (the window of that check is left out of the reference figures).
At the end the probes' samples give, for each handoff, the longest round trip that
overlapped it (the pause a session saw), and p50/p99 of the round trips outside every
handoff; every probe's bytes must have come back exact and every probe must have gone on
after the last handoff.

A handoff that is refused or fails (the successor exits, the old one does not exit 0,
nothing within the deadline) ends that count's run with the gateways' own words; so does
a session found dead. The run of the other count still happens.
"""
import re
import shutil
import tempfile
import time

from . import env
from .clients import Admin
from .env import BT, HOST, WANT_BIG, WORK, log
from .handoff_clients import IdleSessions, Probes, probe_stats
from .processes import big_session_count, fd_count, free_port, nofile_limit, spawn, stop, wait_log, wait_port

WANT = [1000, WANT_BIG]
HANDOFF_DEADLINE_S = 120.0  # the gateway's own deadline is 30 s from hello to ack, then 5 s for admin
WATCH_EVERY_S = 0.002


class HandoffFailed(RuntimeError):
    """A handoff or a check after it went wrong; the message says which and why."""


def session_counts(wanted=WANT):
    """[(wanted, measured)]: what fits under the descriptor limit (see big_session_count)."""
    fits = big_session_count()
    return [(w, min(w, fits)) for w in wanted], fits


def limit_note(fits):
    return (f"{WANT_BIG:,} live sessions are not possible here: hard fd limit {nofile_limit():,} per process "
            f"(the container cannot raise it: no CAP_SYS_RESOURCE), and a gateway holds two descriptors per "
            f"session plus its own; the largest count that fits, {fits:,}, is measured instead.")


def add_arguments(ap):
    """The workload's flags, for bench.py and bench/handoff.py alike."""
    ap.add_argument("--handoff-sessions", default=",".join(str(n) for n in WANT),
                    help="live session counts (each capped to what the descriptor limit allows)")
    ap.add_argument("--handoffs", type=int, default=None, help="handoffs in a row per count (default: --rounds)")
    ap.add_argument("--probes", type=int, default=20, help="probe sessions among them")
    ap.add_argument("--probe-bytes", type=int, default=64, help="probe message size")
    ap.add_argument("--probe-gap-us", type=int, default=0, help="least time between a probe's sends (0: back to back)")


def handoff_workload(bench):
    """Fills bench.res["handoff"] (one run per session count) for RESULTS.md."""
    a = bench.a
    counts, fits = session_counts([int(x) for x in a.handoff_sessions.split(",")])
    if any(n < w for w, n in counts):
        bench.res["notes"].append(limit_note(fits))
    bench.record_load("handoff")
    out = bench.res["handoff"] = {"probes": a.probes, "message_bytes": a.probe_bytes, "gap_us": a.probe_gap_us,
                                  "nofile": nofile_limit(), "runs": {}}
    for wanted, n in counts:
        run = measure(n, a.handoffs or a.rounds, a.probes, a.probe_bytes, a.probe_gap_us)
        run["wanted"] = wanted
        out["runs"][str(n)] = run


def measure(n, handoffs, k, size, gap_us, settle_s=1.0):
    """One run: n live sessions (k of them probes), `handoffs` handoffs in a row. Never raises
    for a failed handoff or check: the run carries "failed" with the reason, and what was
    measured up to it."""
    run = {"sessions": n, "probes": k, "handoffs": []}
    bed = Bed(n, k)
    windows, busy = [], []
    try:
        bed.start(size, gap_us)
        run["baseline_fds"] = bed.baseline_fds
        time.sleep(settle_s)  # reference round trips before the first handoff
        for r in range(handoffs):
            bed.gateway, h, window = hand_off(bed.gateway, bed.successor_command(), f"handoff-{n}-{r + 1}")
            windows.append(window)
            run["handoffs"].append(h)
            wait_active(bed.admin, n)
            time.sleep(settle_s)  # the probes go on, on the successor
            t0 = time.monotonic()
            alive, total, problem = bed.idle.check()
            busy.append((t0, time.monotonic()))
            h["idle_alive"] = alive
            log(f"handoff n={n:,} #{r + 1}: successor serving after {h['ready_ms']:.1f} ms, old exited after "
                f"{h['exit_ms']:.1f} ms; {alive:,} of {total:,} idle sessions echo")
            if alive != total:
                raise HandoffFailed(f"after handoff {r + 1}, {total - alive:,} of {total:,} idle sessions are dead "
                                    f"(first: {problem})")
    except RuntimeError as e:  # HandoffFailed, or a process that did not start or answer
        run["failed"] = str(e)
        if isinstance(e, HandoffFailed) and bed.idle:
            run["failed"] += serving_on(bed.idle)
    finally:
        try:
            if bed.probes:
                collect(run, bed.probes, k, windows, busy)
        except RuntimeError as e:
            run.setdefault("failed", str(e))
        bed.close()
    if "failed" in run:
        log(f"handoff n={n:,} FAILED: {run['failed']}")
    else:
        pauses = ", ".join(f"{h['pause_ms']:.1f}" for h in run["handoffs"])
        log(f"handoff n={n:,}: pauses {pauses} ms; probe RTT outside p50 {run['outside']['p50_ms']:.3f} "
            f"p99 {run['outside']['p99_ms']:.3f} ms; {run['probe_round_trips']:,} round trips, all exact")
    return run


def collect(run, probes, k, windows, busy):
    """Stops the probes and adds what they saw to the run (a failed probe makes it fail)."""
    path, errors = probes.finish()
    stats = probe_stats(path, k, windows, busy)
    path.unlink()
    for h, w in zip(run["handoffs"], stats["handoffs"]):
        h.update(w)
    run["outside"] = stats["outside"]
    run["probe_round_trips"] = stats["round_trips"]
    run["probe_errors"] = [f"probe {p}: {what}" for p, _, what in errors]
    if errors:
        run.setdefault("failed", f"{len(errors)} of {k} probes failed; first: {run['probe_errors'][0]}")
    quiet = [i for i, c in enumerate(stats["after_last_handoff"]) if c == 0]
    if quiet and windows:
        run.setdefault("failed", f"probes {quiet} made no round trip after the last handoff")


class Bed:
    """The echo upstream, the gateway (the current one: each successor replaces it) and the
    sessions through it."""

    def __init__(self, n, k):
        self.n, self.k = n, k
        self.sockdir = tempfile.mkdtemp(prefix="sg-handoff-")  # short: Unix socket paths end at 108 bytes
        # the successor gets the same arguments (--take-over does not take --config: the
        # listener is created over the API, and handed over)
        self.args = ["--admin", f"{HOST}:0", "--log-level", "notice", "--handoff-socket", f"{self.sockdir}/h.sock"]
        self.echo = self.gateway = self.probes = self.idle = None

    def start(self, size, gap_us):
        n, k = self.n, self.k
        port, upstream = free_port(), free_port()
        self.echo = spawn([BT, "echo", upstream], f"handoff-echo-{n}")
        wait_port(upstream)
        self.gateway = spawn([env.BIN, *self.args], f"handoff-{n}-0")
        m = wait_log(self.gateway, r"admin listening on http://([0-9.]+):(\d+)")
        self.admin = (m.group(1), int(m.group(2)))
        Admin(self.admin).call("POST", "/api/v1/listeners", {"name": "handoff", "listen": f"{HOST}:{port}",
                                                             "upstream": f"{HOST}:{upstream}"})
        self.baseline_fds = fd_count(self.gateway.pid)
        log(f"handoff n={n:,}: opening {n - k:,} idle sessions and {k} probes")
        # at most half the descriptors a process may have, and 5,000: the checks then use both cores
        self.idle = IdleSessions(port, n - k, per_process=max(100, min(5000, (nofile_limit() - 200) // 2)))
        self.probes = Probes(port, k, size, WORK / f"handoff-{n}.samples", gap_us)
        wait_active(self.admin, n)

    def successor_command(self):
        return [env.BIN, "--take-over", f"{self.sockdir}/h.sock", *self.args]

    def close(self):
        if self.probes:
            self.probes.close()
        if self.idle:
            self.idle.close()
        stop(self.gateway)
        stop(self.echo)
        shutil.rmtree(self.sockdir, ignore_errors=True)


def hand_off(old, command, name):
    """Starts the successor; returns it, the figures, and the window (start, end) in
    time.monotonic() seconds: from the start to the later of serving and the old exit."""
    started = time.monotonic()
    new = spawn(command, name)
    ready = exited = None
    while ready is None or exited is None:
        now = time.monotonic()
        if exited is None and old.poll() is not None:
            exited = now
        if ready is None and "admin listening on" in new.logfile.read_text(errors="replace"):
            ready = now
        if ready is None and new.poll() is not None:
            raise HandoffFailed(f"the successor exited {new.returncode} without serving: "
                                f"{said(new)}; the running gateway: {said(old)}")
        if now - started > HANDOFF_DEADLINE_S:
            stop(new)
            raise HandoffFailed(f"no handoff within {HANDOFF_DEADLINE_S:.0f} s (successor serving: "
                                f"{ready is not None}, old exited: {exited is not None}); the successor: "
                                f"{said(new)}; the old gateway: {said(old)}")
        time.sleep(WATCH_EVERY_S)
    if old.returncode != 0:
        raise HandoffFailed(f"the old gateway exited {old.returncode}, not 0: {said(old)}")
    figures = {"ready_ms": (ready - started) * 1000, "exit_ms": (exited - started) * 1000,
               "successor_fds": fd_count(new.pid)}
    return new, figures, (started, max(ready, exited))


def serving_on(idle):
    """After a failed handoff: whether the gateway still serves every idle session (the probes
    say so for theirs)."""
    try:
        alive, total, problem = idle.check()
    except RuntimeError as e:
        return f" (and the idle sessions could not be checked: {e})"
    dead = f"; first dead: {problem}" if problem else ""
    return f" (after it, {alive:,} of {total:,} idle sessions echo{dead})"


def said(p, words=("handoff", "cannot", "refused", "error", "critical")):
    """The last lines of p's log that tell about the handoff (or its whole tail), without
    their timestamps."""
    lines = [re.sub(r"^\d{4}-\d\d-\d\dT\S+ ", "", line)
             for line in p.logfile.read_text(errors="replace").splitlines()]
    hits = [line for line in lines if any(w in line for w in words)]
    # "; " and not " | ": the reason ends up in a Markdown table
    return "; ".join((hits or lines)[-3:]).replace("|", "/") or "(nothing logged)"


def wait_active(admin, n, timeout=60):
    """Until the listener counts n active sessions (the gateway accepts them a little after
    the clients' connects return)."""
    deadline = time.monotonic() + timeout
    while True:
        listeners = Admin(admin).call("GET", "/api/v1/listeners")["listeners"]
        active = sum(item["sessions"]["active"] for item in listeners)
        if active == n:
            return
        if time.monotonic() > deadline:
            raise HandoffFailed(f"the gateway counts {active:,} active sessions, want {n:,}")
        time.sleep(0.1)
