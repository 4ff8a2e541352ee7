"""``DIR/report.html`` of a sweep: the Pareto front per board and the Fmax spread over seeds.

One panel per target: images/s against LUTs (from synthesis, else the compiler's estimate), each
point coloured by its integer top-1, the front (no other point is both smaller and faster) joined
by a line. Below it, a table of the Fmax distribution over nextpnr seeds per configuration (model,
board, lanes, weight bits), then every point. The plot is embedded (PNG, base64): one file.
"""

from __future__ import annotations

import html
import statistics
from collections import defaultdict

from spikegate.io import atomic_path


def pareto(points: list[dict]) -> list[dict]:
    """The points no other point beats on both LUTs (fewer) and images/s (more), by LUTs."""
    front, best = [], -1.0
    for p in sorted(points, key=lambda p: (p["luts"], -p["images_per_s"])):
        if p["images_per_s"] > best:
            front.append(p)
            best = p["images_per_s"]
    return front


def _plot(rows: list[dict]) -> str | None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok" and r.get("luts") and r.get("images_per_s")]
    targets = sorted({r["target"] for r in ok})
    if not targets:
        return None
    fig, axes = plt.subplots(1, len(targets), figsize=(5 * len(targets), 4), squeeze=False)
    top1 = [r["top1"] for r in ok if r.get("top1") is not None] or [0.0]
    lo, hi = min(top1), max(top1)
    if hi - lo < 1:   # one accuracy (or nearly): a readable colour scale around it
        lo, hi = max(0.0, lo - 1), min(100.0, hi + 1)
    for ax, t in zip(axes[0], targets):
        pts = [r for r in ok if r["target"] == t]
        sc = ax.scatter([r["luts"] for r in pts], [r["images_per_s"] for r in pts],
                        c=[r.get("top1") or 0.0 for r in pts], cmap="viridis", vmin=lo, vmax=hi, s=36)
        front = pareto(pts)
        ax.plot([r["luts"] for r in front], [r["images_per_s"] for r in front], "r-", lw=1, label="Pareto front")
        for r in front:
            ax.annotate(f"l{r['lanes']} w{r['weight_bits']}", (r["luts"], r["images_per_s"]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
        src = "synthesis" if any(r.get("luts_from") == "synthesis" for r in pts) else "compiler estimate"
        ax.set(title=t, xlabel=f"LUTs ({src})", ylabel="images/s")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.colorbar(sc, ax=axes[0].tolist(), label="integer top-1 (%)")
    from spikegate.report import png_base64

    return png_base64(fig, dpi=100)


def fmax_table(rows: list[dict]) -> list[dict]:
    """Per synthesised configuration: the seeds placed and the min/median/max Fmax over them."""
    groups = defaultdict(list)
    for r in rows:
        if r.get("synth") and r.get("fmax_mhz") is not None:
            groups[(r["model"], r["target"], r["lanes"], r["weight_bits"])].append(r)
    out = []
    for (model, target, lanes, bits), rs in sorted(groups.items(), key=lambda kv: tuple(map(str, kv[0]))):
        f = [r["fmax_mhz"] for r in rs]
        out.append({"model": model, "target": target, "lanes": lanes, "weight_bits": bits, "seeds": len(f),
                    "min": min(f), "median": round(statistics.median(f), 2), "max": max(f),
                    "timing_met": sum(bool(r.get("timing_met")) for r in rs),
                    "luts_median": statistics.median_low(r["luts"] for r in rs if r.get("luts") is not None)
                    if any(r.get("luts") is not None for r in rs) else None})
    return out


def _table(head: list[str], body: list[list]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    tr = "".join("<tr>" + "".join(f"<td>{html.escape('' if v is None else str(v))}</td>" for v in row) + "</tr>"
                 for row in body)
    return f"<table><tr>{th}</tr>{tr}</table>"


def write_report(path: str, rows: list[dict]) -> None:
    png = _plot(rows)
    fm = fmax_table(rows)
    cols = ["model", "target", "lanes", "weight_bits", "seed", "status", "top1", "mean_cycles", "images_per_s",
            "luts", "fmax_mhz", "timing_met", "seconds", "error"]
    counts = defaultdict(int)
    for r in rows:
        counts[r.get("status")] += 1
    parts = [
        "<!doctype html><meta charset=utf-8><title>spikegate sweep</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:13px}"
        "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}</style>",
        "<h1>spikegate sweep</h1>",
        f"<p>{len(rows)} points: " + ", ".join(f"{n} {html.escape(str(s))}" for s, n in sorted(counts.items())) + "</p>",
        "<h2>Pareto front: images/s vs LUTs, per board</h2>",
        f'<img alt="Pareto front" src="data:image/png;base64,{png}">' if png else "<p>no finished point to plot</p>",
        "<h2>Fmax over nextpnr seeds (MHz)</h2>",
        _table(["model", "target", "lanes", "weight bits", "seeds", "min", "median", "max", "timing met", "LUTs (median)"],
               [[f[k] for k in ("model", "target", "lanes", "weight_bits", "seeds", "min", "median", "max",
                                "timing_met", "luts_median")] for f in fm])
        if fm else "<p>no synthesised point (run the sweep with --synth)</p>",
        "<h2>Points</h2>",
        _table(cols, [[r.get(c) for c in cols] for r in rows]),
    ]
    with atomic_path(path, ".html") as tmp:
        with open(tmp, "w") as f:
            f.write("\n".join(parts) + "\n")
