"""Issue 13's goal: a capture reader that never reads must not slow its session.

One listener capture (`GET /api/v1/listeners/{id}/capture`, edges, 64 KiB buffer) is
opened over a raw socket with a 4 KiB receive buffer that is never read, so the capture
stream stalls at once and every packet after the first few is dropped. iperf3 through the
same listener with and without that stalled reader: the goal is >= 0.9x.
"""
import socket

from .clients import iperf
from .env import log


class StalledCapture:
    """A capture of listener `listener` whose reader never reads."""

    def __init__(self, admin, listener):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect(tuple(admin))
        self.sock.sendall(f"GET /api/v1/listeners/{listener}/capture?buffer_bytes=65536 HTTP/1.1\r\n"
                          f"Host: {admin[0]}\r\n\r\n".encode())

    def close(self):
        self.sock.close()


def listener_of(admin_call, port):
    """The id of the listener bound on `port`."""
    for listener in admin_call("GET", "/api/v1/listeners")["listeners"]:
        if listener["listen"].rsplit(":", 1)[1] == str(port):
            return listener["id"]
    raise RuntimeError(f"no splicegate listener on port {port}")


def capture_rounds(bench, admin, admin_call, port):
    """Fills bench.res["capture"]: {"none": [...], "stalled": [...]} in Gbit/s."""
    out = bench.res["capture"] = {}
    listener = listener_of(admin_call, port)
    for r in bench.rounds():
        for case in bench.order(r, ["none", "stalled"]):
            stalled = StalledCapture(admin, listener) if case == "stalled" else None
            try:
                v = iperf(port, 1, bench.a.secs)
            finally:
                if stalled:
                    stalled.close()
            out.setdefault(case, []).append(v)
            log(f"capture {case:8s} {v:6.2f} Gbit/s")


def capture_report(r, med, fmt, ratio):
    """RESULTS.md lines for the capture workload."""
    if "capture" not in r:
        return []
    base, stalled = med(r["capture"]["none"]), med(r["capture"]["stalled"])
    return [
        "## splicegate: throughput with a stalled capture reader (iperf3, 1 stream, Gbit/s)\n",
        "A listener capture whose reader never reads (4 KiB receive buffer, `buffer_bytes=65536`): its "
        "packets are dropped and counted (`isb_ifdrop`), and the session must not slow down (goal ≥ 0.9×).\n",
        "| capture | Gbit/s | vs none |",
        "|---|---|---|",
        f"| none | {fmt(base)} | 1.00× |",
        f"| stalled reader | {fmt(stalled)} | {fmt(ratio(stalled, base))}× |",
        "",
    ]

