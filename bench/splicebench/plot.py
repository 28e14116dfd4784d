"""throughput.png: bulk, PING and connection rate for every target, and splicegate's
mediation/split."""
from .env import LABELS, RESULTS, TARGETS, log
from .stats import med


def plot(b):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib missing: no plot")
        return
    r = b.res
    panels = [k for k in ("bulk", "ping", "connrate", "mediation") if k in r]
    if not panels:
        return
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2))
    axes = axes if len(panels) > 1 else [axes]
    colors = {"direct": "#999999", "splicegate": "#d9534f", "haproxy": "#337ab7", "nginx": "#8e44ad",
              "minrelay": "#333333", "socat": "#5cb85c", "proto-epoll": "#f0ad4e", "proto-uring": "#c9a227"}
    for ax, k in zip(axes, panels):
        if k in ("bulk", "ping"):
            groups = ["1", "4"] if k == "bulk" else ["1", "50"]
            # a raw.json from before nginx and minrelay joined has no bars for them
            targets = [t for t in TARGETS if t in r[k][groups[0]]]
            w = 0.8 / len(targets)
            for i, t in enumerate(targets):
                ys = []
                for g in groups:
                    xs = r[k][g].get(t, [])  # none where a target was left out
                    y = med(xs) if k == "bulk" else med([x["rps"] / 1000 for x in xs])
                    ys.append(y or 0)
                ax.bar([j + (i - (len(targets) - 1) / 2) * w for j in range(len(groups))], ys, w,
                       label=LABELS[t], color=colors[t])
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([f"{g} stream{'s' if g != '1' else ''}" if k == "bulk" else f"{g} client{'s' if g != '1' else ''}"
                                for g in groups])
            ax.set_title("bulk throughput (iperf3)" if k == "bulk" else "redis PING")
            ax.set_ylabel("Gbit/s" if k == "bulk" else "thousand req/s")
            ax.legend(fontsize=8)
        elif k == "connrate":
            targets = [t for t in TARGETS if t in r[k]]
            ys = [med([x["cps"] for x in r[k][t]]) / 1000 for t in targets]
            ax.bar([LABELS[t] for t in targets], ys, color=[colors[t] for t in targets])
            ax.set_title("new connections")
            ax.set_ylabel("thousand conn/s")
            ax.tick_params(axis="x", labelrotation=45, labelsize=8)
        else:
            labels, ys = [], []
            for m in ("0", "1", "3"):
                labels.append(f"{m} med")
                ys.append(med(r["mediation"][m]))
            if "split" in r:
                for c, lab in (("drop1", "1 drop"), ("drop4", "4 drop"), ("block1", "1 block"), ("block4", "4 block")):
                    labels.append(lab)
                    ys.append(med(r["split"][c]))
            ax.bar(labels, ys, color=["#d9534f"] * 3 + ["#f0ad4e"] * (len(labels) - 3))
            ax.set_title("splicegate: mediators / split recipients")
            ax.set_ylabel("Gbit/s (1 stream)")
            ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    fig.suptitle(f"splicegate vs HAProxy, nginx, minrelay and socat — median of {b.a.rounds} rounds, {r['machine']['date']}, "
                 f"{r['machine']['nproc']} cores, loopback", fontsize=10)
    fig.tight_layout()
    fig.savefig(RESULTS / "throughput.png", dpi=110)
    plt.close(fig)
