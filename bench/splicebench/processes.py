"""Child processes, ports and /proc readings: starting and stopping what the
benchmark runs, and measuring it."""
import atexit
import os
import re
import signal
import socket
import subprocess
import sys
import time

from .env import HOST, LOGS, WANT_BIG, WORK

_procs = []  # everything spawn() started, stopped in reverse at exit


def spawn(args, name, stdin=None, ignore_sigpipe=False, extra_env=None):
    """Start a child in its own session, output to LOGS/name.log. ignore_sigpipe
    passes on Python's SIG_IGN for SIGPIPE, for a child that does not ignore it
    itself and would die writing to a peer that has gone; extra_env adds to its
    environment."""
    LOGS.mkdir(parents=True, exist_ok=True)
    out = open(LOGS / f"{name}.log", "w")
    p = subprocess.Popen([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT,
                         stdin=stdin, cwd=WORK, start_new_session=True, restore_signals=not ignore_sigpipe,
                         env={**os.environ, **extra_env} if extra_env else None)
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


def cpu_ticks():
    """The machine's cumulative CPU ticks (user nice system idle iowait irq softirq steal)."""
    return [int(x) for x in open("/proc/stat").readline().split()[1:9]]


def steal_pct(before, after):
    """Share of the machine's CPU time between two `cpu_ticks()` that the hypervisor gave
    to other guests: a VM whose host is oversubscribed runs every target slower, and
    idle-time checks cannot see it (it shows only while this guest wants to run)."""
    d = [b - a for a, b in zip(before, after)]
    return round(100 * d[7] / (sum(d) or 1), 1) if len(d) > 7 else 0.0


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


def raise_nofile():
    """Lift the soft RLIMIT_NOFILE to the hard one for every child: HAProxy and
    nginx raise their own, but minrelay and splicegate keep what they inherit,
    and a soft limit of 1,024 (common outside containers) would cap them far
    below the ~10,000 idle sessions of the memory workload."""
    import resource
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def big_session_count():
    # 2 fds per session in the proxy, plus ~30 of its own, plus slack; splicegate's
    # listeners stop accepting a sixteenth below the limit (at most 256 descriptors), which
    # it keeps for its admin API and dialing.
    limit = nofile_limit()
    reserve = max(8, min(256, limit // 16))
    return min(WANT_BIG, (limit - reserve - 100) // 2 // 50 * 50)
