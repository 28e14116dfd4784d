"""Load generators (iperf3, redis-benchmark, bt) and splicegate's admin API."""
import http.client
import json
import re
import subprocess
import time

from .env import BT, HOST
from .processes import run


def iperf(port, streams, secs):
    last = None
    for _attempt in range(3):
        try:
            out = run(["iperf3", "-c", HOST, "-p", port, "-t", secs, "-O", "1", "-P", streams, "-J"],
                      timeout=secs + 40)
            j = json.loads(out)
            if "error" in j:
                # iperf3 can exit 0 with a test that broke off (a relay that died at
                # the end of it): its zero "sum_received" is not a figure.
                raise RuntimeError(f"iperf3: {j['error']}")
            return j["end"]["sum_received"]["bits_per_second"] / 1e9
        except (RuntimeError, KeyError, json.JSONDecodeError, subprocess.TimeoutExpired) as e:
            last = e
            time.sleep(1)
    raise RuntimeError(f"iperf3 via port {port} failed: {last}")


def redis_ping(port, clients, n):
    out = run(["redis-benchmark", "-h", HOST, "-p", port, "-c", clients, "-n", n,
               "-t", "ping_mbulk", "--csv"], timeout=180)
    rows = [l for l in out.splitlines() if l.startswith('"PING')]
    f = [x.strip('"') for x in rows[-1].split(",")]
    return {"rps": float(f[1]), "p50_ms": float(f[4]), "p99_ms": float(f[6])}


def connrate(port, secs, conc):
    out = run([BT, "connrate", port, secs, conc], timeout=secs + 30)
    m = re.search(r"conns_per_s=([0-9.]+) ok=(\d+) errors=(\d+)", out)
    return {"cps": float(m.group(1)), "ok": int(m.group(2)), "errors": int(m.group(3))}


def metrics(addr):
    """Unlabelled Prometheus counters of a splicegate."""
    c = http.client.HTTPConnection(*addr, timeout=10)
    c.request("GET", "/metrics")
    text = c.getresponse().read().decode()
    c.close()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            k, _, v = line.partition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
    return out


class Admin:
    def __init__(self, addr):
        self.addr = addr
        self.conn = http.client.HTTPConnection(*addr, timeout=30)

    def fetch(self, method, path, body=None):
        headers = {"Content-Type": "application/json"} if body is not None else {}
        data = json.dumps(body) if body is not None else None
        try:
            self.conn.request(method, path, data, headers)
            r = self.conn.getresponse()
        except (http.client.HTTPException, OSError):
            self.conn.close()
            self.conn = http.client.HTTPConnection(*self.addr, timeout=30)
            self.conn.request(method, path, data, headers)
            r = self.conn.getresponse()
        raw = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {raw[:300]!r}")
        return raw

    def call(self, method, path, body=None):
        raw = self.fetch(method, path, body)
        return json.loads(raw) if raw else None

    def list_all(self, scope=None):
        """All sessions, page by page; returns (ids, ms). ms sums the time from
        sending each request to having its whole body, which is the gateway's
        work plus the transfer; decoding the JSON in this Python client (about
        as long again for 2 MB) is not timed. scope="local": one cluster node's own."""
        ids, cursor, ms = [], None, 0.0
        while True:
            path = ("/api/v1/sessions?limit=1000" + (f"&cursor={cursor}" if cursor else "")
                    + (f"&scope={scope}" if scope else ""))
            t0 = time.perf_counter()
            raw = self.fetch("GET", path)
            ms += (time.perf_counter() - t0) * 1000
            page = json.loads(raw)
            ids += [s["id"] for s in page["sessions"]]
            cursor = page.get("next_cursor")
            if not cursor:
                return ids, ms
