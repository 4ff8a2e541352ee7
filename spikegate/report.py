"""The demo report: Markdown and a self-contained HTML page with plots.

Input is a plain dict of measured results (every number in it came from a command of the demo);
output is ``report.md`` and ``report.html`` (plots embedded as PNG data URIs).
"""

from __future__ import annotations

import base64
import html
import io
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def plots(res: dict) -> dict[str, str]:
    out = {}
    st = res.get("stats")
    if st:
        names = list(st["lif_firing_rates"])
        fig, ax = plt.subplots(figsize=(10, 3))
        ax.bar(range(len(names)), [st["lif_firing_rates"][n] for n in names])
        ax.set_xticks(range(len(names)), [n.replace(".attn", ".a").replace(".mlp", ".m") for n in names],
                      rotation=90, fontsize=6)
        ax.set_ylabel("firing rate")
        ax.set_title("per-LIF firing rate (golden model, demo inputs)")
        out["firing_rates"] = _png(fig)
        layers = st["layers"]
        fig, ax = plt.subplots(figsize=(10, 3))
        ax.bar(range(len(layers)), [r["sops"] + r["macs"] for r in layers],
               color=["tab:blue" if r["input_kind"] == "spike" else "tab:red" for r in layers])
        ax.set_xticks(range(len(layers)), [r["op"] for r in layers], rotation=90, fontsize=6)
        ax.set_ylabel("ops per sample")
        ax.set_title("SOPs (blue) and multi-bit MACs (red) per layer")
        out["sops"] = _png(fig)
    cyc = res.get("cycles")
    if cyc and cyc.get("measured"):
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.scatter(cyc["predicted"], cyc["measured"])
        lo, hi = min(cyc["predicted"] + cyc["measured"]), max(cyc["predicted"] + cyc["measured"])
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel("predicted cycles (cycle model)")
        ax.set_ylabel("measured cycles (RTL)")
        out["cycles"] = _png(fig)
    boards = res.get("boards") or {}
    if boards:
        names = list(boards)
        fig, ax = plt.subplots(figsize=(6, 3))
        for i, key in enumerate(("luts", "ffs", "bram", "dsp")):
            ax.bar([j + 0.2 * i for j in range(len(names))],
                   [100.0 * boards[n][key]["used"] / max(boards[n][key]["available"], 1) for n in names],
                   width=0.2, label=key)
        ax.set_xticks([j + 0.3 for j in range(len(names))], names)
        ax.set_ylabel("% of device")
        ax.legend()
        out["resources"] = _png(fig)
    acc = res.get("accuracy")
    if acc:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.bar(list(acc), list(acc.values()))
        ax.set_ylim(min(acc.values()) - 5, 100)
        ax.set_ylabel("top-1 %")
        out["accuracy"] = _png(fig)
    return out


def write(out_dir: str, md_lines: list[str], res: dict) -> None:
    md = "\n".join(md_lines) + "\n"
    imgs = plots(res)
    body = []
    for line in md_lines:
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-: ") for c in cells):
                continue
            body.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    # wrap table rows
    page, in_table = [], False
    for b in body:
        if b.startswith("<tr>") and not in_table:
            page.append("<table>")
            in_table = True
        if not b.startswith("<tr>") and in_table:
            page.append("</table>")
            in_table = False
        page.append(b)
    if in_table:
        page.append("</table>")
    for title, key in (("Accuracy", "accuracy"), ("Firing rates", "firing_rates"), ("SOPs per layer", "sops"),
                       ("Predicted vs measured cycles", "cycles"), ("Resources per board", "resources")):
        if key in imgs:
            page.append(f"<h2>{title}</h2><img alt='{title}' src='data:image/png;base64,{imgs[key]}'/>")
    doc = ("<!doctype html><html><head><meta charset='utf-8'><title>spikegate demo report</title>"
           "<style>body{font-family:sans-serif;max-width:1000px;margin:2em auto}table{border-collapse:collapse}"
           "td{border:1px solid #ccc;padding:2px 8px}</style></head><body>" + "\n".join(page) + "</body></html>\n")
    for name, text in (("report.md", md), ("report.html", doc)):
        p = os.path.join(out_dir, name)
        with open(p + ".tmp", "w") as f:
            f.write(text)
        os.replace(p + ".tmp", p)
