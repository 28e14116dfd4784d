"""RESULTS.md lines for the handoff workload (issue 15)."""
from .stats import fmt, med


def spread(xs, nd=1):
    """median (max) of a handoff figure over the handoffs of a run."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    return fmt(med(xs), nd) if len(xs) == 1 else f"{fmt(med(xs), nd)} ({fmt(max(xs), nd)})"


def sessions_cell(run, nofile):
    n, wanted = run["sessions"], run.get("wanted", run["sessions"])
    if wanted > n:
        return f"{n:,} ({wanted:,} not possible here: hard fd limit {nofile:,})"
    return f"{n:,}"


def checks_cell(run):
    hs = run["handoffs"]
    if "failed" in run:
        done = f" after {len(hs)} good handoff{'s' if len(hs) != 1 else ''}" if hs else ""
        return f"**failed**{done}: {run['failed'][:600]}".replace("|", "/")
    alive = min(h["idle_alive"] for h in hs) + run["probes"] if hs else 0
    return (f"{run['probe_round_trips']:,} probe round trips exact; all {alive:,} sessions echo after "
            f"every handoff")


def handoff_report(r):
    h = r.get("handoff")
    if not h or not h.get("runs"):
        return []
    gap = "back to back" if not h.get("gap_us") else f"at least {h['gap_us']} µs apart"
    L = ["## splicegate: the pause of a handoff (issue 15)\n",
         f"N live sessions through one listener to `bt echo`: N − {h['probes']} idle ones and {h['probes']} "
         f"probes doing {h['message_bytes']}-byte request/answer round trips {gap} (bench/tools/probe.c, "
         "every answer compared byte for byte). Then, once per round, `splicegate --take-over` with the "
         "running gateway's own arguments takes everything over; the harness watches every 2 ms. "
         "**pause**: the longest round trip that overlapped the handoff, i.e. the longest a session "
         "waited for an answer (median over the handoffs, max in brackets). "
         "**serving**: from starting the successor (process start included) to its "
         "`admin listening on` line; **old exited**: to the old process's exit (0). "
         "The reference round trips are the probes' outside every handoff and outside the checks "
         "after each (every idle session echoes a number of its own).\n",
         "| live sessions | pause ms | serving ms | old exited ms | round trip outside: p50 / p99 / max ms "
         "| successor fds, most (idle gateway's) | checks |",
         "|---|---|---|---|---|---|---|"]
    for key in sorted(h["runs"], key=int):
        run = h["runs"][key]
        hs = run["handoffs"]
        out = run.get("outside")
        ref = (f"{fmt(out['p50_ms'], 3)} / {fmt(out['p99_ms'], 3)} / {fmt(out['max_ms'], 1)}"
               if out and out["count"] else "–")
        fds = f"{max(x['successor_fds'] for x in hs):,} ({run.get('baseline_fds', '–')})" if hs else "–"
        L.append(f"| {sessions_cell(run, h['nofile'])} | {spread([x.get('pause_ms') for x in hs])} | "
                 f"{spread([x['ready_ms'] for x in hs])} | {spread([x['exit_ms'] for x in hs])} | {ref} | {fds} | "
                 f"{checks_cell(run)} |")
    L.append("")
    return L
