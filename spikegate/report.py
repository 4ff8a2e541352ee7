"""The demo report: ``report.md`` and a self-contained ``report.html`` with a plot beside each table.

Input is a plain dict of measured results (every number in it came from a command of the demo),
plus, optionally, a few arrays the demo left on disk: the example images with their labels and
golden logits, and the golden model's spike trace. Output is ``report.md`` (the tables and text)
and ``report.html``: the same text rendered by the ``markdown`` library, each section a two-column
row (tables left, plots right; PNG data URIs, no network), the long tables folded in ``<details>``.

``screenshot`` renders the page in Debian's headless Chromium, so the demo and the tests look at
what a person sees, not only at the HTML source.
"""

from __future__ import annotations

import base64
import html
import io
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field

import numpy as np

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# one colour per board everywhere in the report (colour-blind safe, Okabe-Ito); float vs integer
BOARD_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00")
FLOAT_COLOUR, INT_COLOUR = "#4C72B0", "#DD8452"
RESOURCES = (("luts", "LUT / LC"), ("ffs", "FF"), ("bram", "block RAM"), ("spram", "SPRAM"), ("dsp", "DSP"))
RASTER_LAYERS = 5          # how many LIF layers the spike raster shows, spread over the depth
RASTER_MAX_NEURONS = 1024  # columns per raster panel (more would be thinner than a screen pixel)

plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "axes.titlesize": 10, "axes.titleweight": "bold"})


@dataclass
class Section:
    """One row of the page: Markdown text (tables) on the left, figures on the right.

    ``details`` is ``(summary, markdown)``: written out in report.md, folded in report.html.
    """

    title: str
    md: str
    figs: list = field(default_factory=list)  # [(alt text, base64 PNG)]
    details: tuple | None = None


def png_base64(fig, dpi: int = 110) -> str:
    """A matplotlib figure as base64 PNG, for a data URI (the reports are one self-contained file);
    closes the figure."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def board_colour(res: dict, board: str) -> str:
    names = list(dict.fromkeys(list(res.get("verify") or {}) + list(res.get("boards") or {})))
    return BOARD_COLOURS[names.index(board) % len(BOARD_COLOURS)] if board in names else "#777777"


# ---------------------------------------------------------------- accuracy
def confusion(labels, preds, classes: int = 10) -> np.ndarray:
    m = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(m, (np.asarray(labels), np.asarray(preds)), 1)
    return m


def accuracy_section(res: dict) -> Section:
    ev, s = res["eval"], res["quant"]["summary"]
    rows = [["float (PyTorch)", f"{ev['float']['correct']}/{ev['float']['samples']}", f"{ev['float']['top1']:.2f}%"],
            [f"integer golden model ({s['weight_bits']}-bit weights)",
             f"{ev['integer']['correct']}/{ev['integer']['samples']}", f"{ev['integer']['top1']:.2f}%"]]
    md = _table(["model", "correct", "top-1"], rows) + (
        f"\n\nArgmax agreement float vs integer: **{s['argmax_agreement']:.2f}%** "
        f"(calibration: {s['calibration']}).")
    sec = Section("Accuracy on the held-out digits", md)
    cls = res.get("classification")
    if cls:
        cm_f, cm_i = confusion(cls["labels"], cls["float"]), confusion(cls["labels"], cls["integer"])
        agree = int(np.sum(np.asarray(cls["float"]) == np.asarray(cls["integer"])))
        sec.md += (f" Per sample: {agree}/{len(cls['labels'])} images get the same class from both models.\n\n"
                   + _per_class_table(cm_f, cm_i))
        sec.figs += [("per-class accuracy, float vs integer", _per_class_plot(cm_f, cm_i)),
                     ("confusion matrix of the integer golden model", _confusion_plot(cm_i))]
    return sec


def _per_class_table(cm_f: np.ndarray, cm_i: np.ndarray) -> str:
    rows = []
    for c in range(len(cm_f)):
        n = int(cm_f[c].sum())
        rows.append([c, n, f"{cm_f[c, c]}/{n}", f"{cm_i[c, c]}/{n}",
                     ", ".join(f"{k} (x{cm_i[c, k]})" for k in np.argsort(-cm_i[c]) if k != c and cm_i[c, k]) or "-"])
    return _table(["class", "images", "float correct", "integer correct", "integer mistaken for"], rows)


def _per_class_plot(cm_f: np.ndarray, cm_i: np.ndarray) -> str:
    n = cm_f.sum(1).clip(min=1)
    acc_f, acc_i = 100.0 * np.diag(cm_f) / n, 100.0 * np.diag(cm_i) / n
    classes = np.arange(len(n))
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.bar(classes - 0.2, acc_f, 0.4, color=FLOAT_COLOUR,
           label=f"float {np.trace(cm_f)}/{cm_f.sum()} ({100 * np.trace(cm_f) / cm_f.sum():.1f}%)")
    ax.bar(classes + 0.2, acc_i, 0.4, color=INT_COLOUR,
           label=f"integer {np.trace(cm_i)}/{cm_i.sum()} ({100 * np.trace(cm_i) / cm_i.sum():.1f}%)")
    lo = float(min(acc_f.min(), acc_i.min()))
    ax.set_ylim(max(0.0, np.floor(lo / 5) * 5 - 5), 100.5)   # zoomed: the differences are a few %
    ax.set_xticks(classes)
    ax.set_xlabel("true class")
    ax.set_ylabel("top-1 % (zoomed)")
    ax.set_title("Per-class accuracy on the held-out split")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8, frameon=False)
    return png_base64(fig)


def _confusion_plot(cm: np.ndarray) -> str:
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.imshow(np.log1p(cm.astype(float)), cmap="Blues")   # log: the few mistakes stay visible
    for (t, p), v in np.ndenumerate(cm):
        if v:
            ax.text(p, t, str(v), ha="center", va="center", fontsize=7,
                    color="white" if t == p else ("#B00020" if v else "black"),
                    fontweight="normal" if t == p else "bold")
    ax.set_xticks(range(len(cm)))
    ax.set_yticks(range(len(cm)))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (integer golden model)")
    ax.spines[:].set_visible(False)
    return png_base64(fig)


# ---------------------------------------------------------------- examples and spikes
def examples_section(images, labels, logits, note: str) -> Section:
    pred = np.asarray(logits).argmax(1)
    labels = np.asarray(labels)
    ok = int((pred == labels).sum())
    md = (f"The first {len(labels)} held-out digits the demo runs through the golden model and the RTL "
          f"(the 8x8 scikit-learn digits, upscaled). **{ok}/{len(labels)}** are classified correctly. {note}")
    cols = min(10, len(labels))
    rows = -(-len(labels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(0.8 * cols, 1.0 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(labels):
            continue
        ax.imshow(np.asarray(images[i]).reshape(images[i].shape[-2:]), cmap="gray_r", vmin=0, vmax=1)
        right = pred[i] == labels[i]
        ax.set_title(f"{pred[i]}" + ("" if right else f" (true {labels[i]})"), fontsize=9,
                     color="#1B7F3B" if right else "#B00020", fontweight="bold")
    fig.suptitle("predicted class above each image (red: wrong)", fontsize=9, y=1.0)
    return Section("Example inputs", md, [("example inputs with their predicted classes", png_base64(fig))])


def spike_section(trace: dict[str, np.ndarray], order: list[str], labels=None) -> Section:
    """Raster of a few LIF layers (spread over the depth): one row per image and time step, one column
    per neuron; black is a spike. ``trace`` maps a LIF's name to its spikes ``[T, B, ...]``."""
    names = [n for n in order if n in trace]
    pick = [names[i] for i in sorted({round(k * (len(names) - 1) / (RASTER_LAYERS - 1))
                                      for k in range(RASTER_LAYERS)})] if len(names) > RASTER_LAYERS else names
    T, B = trace[pick[0]].shape[:2]
    sort = np.argsort(np.asarray(labels), kind="stable") if labels is not None else np.arange(B)
    fig, axes = plt.subplots(len(pick), 1, figsize=(7.5, 1.3 * len(pick) + 0.4), squeeze=False,
                             gridspec_kw={"hspace": 0.75})
    rows = []
    for ax, name in zip(axes[:, 0], pick):
        s = trace[name]
        flat = s.reshape(T, B, -1)[:, sort]                           # [T, B, neurons]
        n = flat.shape[-1]
        img = flat.transpose(1, 0, 2).reshape(B * T, n)[:, :RASTER_MAX_NEURONS]
        ax.imshow(img, cmap="Greys", aspect="auto", interpolation="nearest", vmin=0, vmax=1)
        rate = float(s.mean())
        shown = f"first {img.shape[1]} of {n}" if n > img.shape[1] else f"{n}"
        ax.set_title(f"{name}  ({shown} neurons, rate {rate:.2f})", fontsize=8, loc="left")
        ax.set_yticks([])
        ax.tick_params(axis="x", labelsize=7)
        rows.append([f"`{name}`", "x".join(str(d) for d in s.shape[2:]), n, f"{rate:.3f}"])
    axes[-1, 0].set_xlabel("neuron (channel-major)")
    fig.supylabel(f"{B} images" + (f" x T={T} steps" if T > 1 else "") + (", by true class 0 to 9" if labels is not None
                                                                          else ""), fontsize=8, x=0.06)
    md = (f"Spikes of the golden model (`spikegate golden --trace`) in {len(pick)} of its {len(names)} LIF "
          f"layers, from the first to the last: one row per image{' and time step' if T > 1 else ''} "
          f"(T={T}), one column per neuron; black is a spike.\n\n"
          + _table(["layer", "shape (C x H x W)", "neurons", "firing rate"], rows))
    return Section("Spikes", md, [("spike raster of a few LIF layers", png_base64(fig))])


# ---------------------------------------------------------------- operations
def operations_section(res: dict) -> Section:
    st = res["stats"]
    md = _table(["quantity (per sample)", "value"], [
        ["synaptic operations (SOPs)", f"{st['total_sops']:,.0f}"],
        ["first-layer MACs (multi-bit input)", f"{st['first_layer_macs']:,.0f}"],
        ["other multi-bit MACs", f"{st['multibit_macs_other']:,.0f}"],
        ["energy, paper's model", f"{st['energy_uj_paper']:.4f} uJ"],
    ]) + f"\n\nEnergy model: {st['energy_model']}."
    names = list(st["lif_firing_rates"])
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    ax.bar(range(len(names)), [st["lif_firing_rates"][n] for n in names], color="#555555")
    ax.set_xticks(range(len(names)), [n.replace(".attn", ".a").replace(".mlp", ".m") for n in names],
                  rotation=90, fontsize=6)
    ax.set_ylabel("firing rate")
    ax.set_title("Firing rate per LIF layer (golden model, demo inputs)")
    rates = png_base64(fig)
    layers = st["layers"]
    fig, ax = plt.subplots(figsize=(7.5, 2.6))
    spike = [r["input_kind"] == "spike" for r in layers]
    ax.bar(range(len(layers)), [r["sops"] + r["macs"] for r in layers],
           color=["#0072B2" if s else "#D55E00" for s in spike])
    ax.set_xticks(range(len(layers)), [r["op"] for r in layers], rotation=90, fontsize=6)
    ax.set_ylabel("ops per sample")
    ax.set_title("Operations per layer")
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color="#0072B2"), plt.Rectangle((0, 0), 1, 1, color="#D55E00")],
              labels=["SOPs (spike input: adds)", "MACs (multi-bit input)"], fontsize=8)
    return Section("Operations and energy (per sample, paper's model)", md,
                   [("firing rate per LIF layer", rates), ("operations per layer", png_base64(fig))])


# ---------------------------------------------------------------- RTL cycles
def verify_section(res: dict, labels=None) -> Section:
    v, boards, models = res["verify"], res.get("boards") or {}, res.get("board_models") or {}
    cols = []
    for b, r in v.items():
        c = np.asarray(r["cycles"])
        same = int(np.sum(c == np.asarray(r["predicted_cycles"])))
        mhz = (boards.get(b) or {}).get("clock_mhz")
        cols.append([f"`{models[b]}`" if b in models else "-", r["lanes"], r["samples"],
                     "yes" if r["bit_exact"] else "**NO**", f"{c.min():,}", f"{int(np.median(c)):,}", f"{c.max():,}",
                     f"{same}/{len(c)}", f"{1e-3 * np.median(c) / mhz:.2f} ms at {mhz:g} MHz" if mhz else "-"])
    what = ["model", "lanes", "samples", "logits bit exact", "cycles, min", "cycles, median", "cycles, max",
            "cycles as predicted", "median latency"]
    md = (f"Each board's build runs the held-out digits in the RTL simulator ({next(iter(v.values()))['sim']}); "
          "its logits are compared with the golden model's and its cycle count with the compiler's "
          "cycle model.\n\n" + _table(["", *v], [[w, *(c[i] for c in cols)] for i, w in enumerate(what)]))
    n = max(len(r["cycles"]) for r in v.values())
    head = ["sample"] + (["true class"] if labels is not None and len(labels) == n else [])
    for b in v:
        head += [f"{b} measured", f"{b} predicted"]
    full = []
    for i in range(n):
        row = [i] + ([int(labels[i])] if len(head) > 1 and head[1] == "true class" else [])
        for r in v.values():
            row += [f"{r['cycles'][i]:,}", f"{r['predicted_cycles'][i]:,}"] if i < len(r["cycles"]) else ["", ""]
        full.append(row)
    return Section("RTL verification", md, [("cycles per sample and board", _cycles_plot(res))],
                   (f"cycles of all {n} samples", _table(head, full)))


def _cycles_plot(res: dict) -> str:
    v = res["verify"]
    fig, ax = plt.subplots(figsize=(7.5, 3.0))
    k, w = len(v), 0.8 / max(len(v), 1)
    for j, (b, r) in enumerate(v.items()):
        x = np.arange(len(r["cycles"])) + (j - (k - 1) / 2) * w
        ax.bar(x, np.asarray(r["cycles"]) / 1e3, w, color=board_colour(res, b), label=f"{b} (RTL, measured)")
        ax.scatter(x, np.asarray(r["predicted_cycles"]) / 1e3, marker="_", s=60, color="black", zorder=3,
                   label="cycle model (predicted)" if j == 0 else None)
    n = max(len(r["cycles"]) for r in v.values())
    ax.set_xticks(range(n), [str(i) for i in range(n)], fontsize=7 if n > 25 else 8)
    ax.set_xlabel("sample")
    ax.set_ylabel("cycles per image (thousands)")
    ax.set_title("Cycles per image, per board")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=k + 1, fontsize=8, frameon=False)
    return png_base64(fig)


# ---------------------------------------------------------------- boards
def boards_section(res: dict) -> Section:
    bd = res["boards"]
    def cell(r, key):
        u = r.get(key) or {}
        if not u.get("available"):
            return "none on the device"
        return f"{u['used']:,} / {u['available']:,}" + (f" `{u['cell']}`" if u.get("cell") else "")

    rows = [["device", *(f"{r['family']} {r['device']}" for r in bd.values())]]
    rows += [[name, *(cell(r, key) for r in bd.values())] for key, name in RESOURCES]
    rows += [["Fmax / requested", *(f"{r['fmax_mhz']:.1f} / {r['requested_mhz']:g} MHz" for r in bd.values())],
             ["timing met", *("yes" if r["timing_met"] else "**NO**" for r in bd.values())],
             ["weights", *(r.get("weights", "bitstream") for r in bd.values())]]
    md = ("Synthesis (Yosys, nextpnr) of each board's build: cells used of those the device has, "
          "and the clock nextpnr reached against the one the build asks for.\n\n" + _table(["", *bd], rows))
    return Section("Boards", md, [("resources used of available, and Fmax vs requested", _boards_plot(res))])


def _boards_plot(res: dict) -> str:
    bd = res["boards"]
    fig, (ax, axf) = plt.subplots(1, 2, figsize=(7.5, 0.3 * len(RESOURCES) * len(bd) + 1.0),
                                  gridspec_kw={"width_ratios": [3, 1.2]})
    h = 0.8 / len(bd)
    for j, (b, r) in enumerate(bd.items()):
        for i, (key, _) in enumerate(RESOURCES):
            u = r.get(key) or {}
            y = i + (j - (len(bd) - 1) / 2) * h
            if not u.get("available"):
                ax.text(1, y, f"{b}: none on this device", va="center", fontsize=7, color="#888888")
                continue
            pct = 100.0 * u["used"] / u["available"]
            ax.barh(y, 100, h * 0.9, color="#EEEEEE")
            ax.barh(y, pct, h * 0.9, color=board_colour(res, b), label=b if i == 0 else None)
            ax.text(min(pct, 100) + 1, y, f"{u['used']:,}/{u['available']:,}", va="center", fontsize=7)
    ax.set_yticks(range(len(RESOURCES)), [name for _, name in RESOURCES])
    ax.invert_yaxis()
    ax.set_xlim(0, 125)
    ax.set_xticks([0, 25, 50, 75, 100])
    ax.set_xlabel("% of the device used")
    ax.set_title("Resources used / available")
    ax.legend(loc="lower right", fontsize=8)
    names = list(bd)
    fmax = [bd[b]["fmax_mhz"] for b in names]
    req = [bd[b]["requested_mhz"] for b in names]
    axf.bar(range(len(names)), fmax, 0.6, color=[board_colour(res, b) for b in names])
    axf.scatter(range(len(names)), req, marker="_", s=700, color="black", zorder=3, label="requested")
    for i, (f, q) in enumerate(zip(fmax, req)):
        axf.text(i, f, f"{f:.1f}", ha="center", va="bottom", fontsize=7)
    axf.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    axf.set_ylabel("MHz")
    axf.set_ylim(0, max(fmax + req) * 1.2)
    axf.set_title("Fmax vs requested")
    axf.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return png_base64(fig)


# ---------------------------------------------------------------- notes, timings, page
def memory_section(res: dict) -> Section:
    """Where each build's memories live: the weights in block RAM, SPRAM or SDRAM (``report.json``'s
    ``weights.where``), the on-chip memories' bits, and for SDRAM weights how they reach the core."""
    mem = res["memories"]
    names = sorted({k for m in mem.values() for k in m["on_chip_bits"]})
    rows = [["weights live in", *(f"**{m['weights']}** ({m['storage']}, {m['loading']})" for m in mem.values())],
            ["lanes", *(m["lanes"] for m in mem.values())]]
    rows += [[f"{n}, bits on chip", *(f"{m['on_chip_bits'].get(n, 0):,}" for m in mem.values())] for n in names]
    rows += [["SDRAM image, bits (packed)", *(f"{m['external_bits']:,}" if "external_bits" in m else "-"
                                             for m in mem.values())],
             ["WLOADs per image / on-chip buffer words",
              *(f"{m['wloads']:,} / {m['buffer_words']:,}" if "wloads" in m else "-" for m in mem.values())],
             ["predicted images/s", *(f"{m['predicted_images_per_s']:,} at {m['clock_mhz']:g} MHz"
                                      if m.get("predicted_images_per_s") else "-" for m in mem.values())]]
    md = ("Where each build keeps its memories (from the compiler's `report.json`): block RAM, the iCE40's "
          "SPRAM (loaded at run time) or the ULX3S's SDRAM (streamed by WLOAD instructions into an on-chip "
          "buffer).\n\n" + _table(["", *mem], rows))
    return Section("Memories", md)


def timings_section(timings: dict) -> Section:
    md = _table(["step", "seconds"], [[k, t] for k, t in timings.items()])
    names = list(timings)
    fig, ax = plt.subplots(figsize=(7.5, 0.22 * len(names) + 0.8))
    ax.barh(range(len(names)), [timings[n] for n in names],
            color=["#999999" if "background" in n else "#0072B2" for n in names])
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (grey: in the background, beside the other steps)")
    ax.set_title("Step timings")
    return Section("Step timings (seconds)", md, [("step timings", png_base64(fig))])


def build_sections(res: dict, *, images=None, labels=None, logits=None, trace=None) -> list[Section]:
    """The report's rows, in page order; a section whose data the demo did not produce is left out."""
    out = []
    if res.get("eval") and res.get("quant"):
        out.append(accuracy_section(res))
    if images is not None and labels is not None and logits is not None:
        out.append(examples_section(images, labels, logits,
                                    "The RTL gave the same logits (bit exact)." if res.get("verify") else ""))
    if trace:
        out.append(spike_section(trace, list((res.get("stats") or {}).get("lif_firing_rates") or trace), labels))
    if res.get("stats"):
        out.append(operations_section(res))
    if res.get("verify"):
        out.append(verify_section(res, labels))
    if res.get("boards"):
        out.append(boards_section(res))
    if res.get("memories"):
        out.append(memory_section(res))
    if res.get("notes"):
        out.append(Section("Notes", "\n".join(f"- {n}" for n in res["notes"])))
    if res.get("timings"):
        out.append(timings_section(res["timings"]))
    return out


def headline(res: dict) -> list[tuple[str, str]]:
    """The few numbers at the top of the page: (value, what it is)."""
    cards = []
    ev = res.get("eval") or {}
    if ev.get("integer"):
        cards.append((f"{ev['integer']['top1']:.1f}%", f"integer top-1 ({ev['integer']['correct']}/"
                                                        f"{ev['integer']['samples']} held-out digits)"))
    v = res.get("verify") or {}
    if v:
        ok = sum(bool(r["bit_exact"]) for r in v.values())
        cards.append((f"{ok}/{len(v)}", f"boards bit exact in RTL ({sum(r['samples'] for r in v.values())} runs)"))
        exact = all(r["cycles"] == r["predicted_cycles"] for r in v.values())
        cards.append(("exact" if exact else "differs", "cycle model vs RTL cycles"))
    for b, r in (res.get("boards") or {}).items():
        cards.append((f"{r['fmax_mhz']:.0f} MHz", f"{b} Fmax (asked {r['requested_mhz']:g})"))
    return cards


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#1d2330;
 background:#f4f6f9;margin:0}
main{max-width:1240px;margin:0 auto;padding:24px 28px 48px}
h1{font-size:26px;margin:0 0 4px}
.lead{color:#4a5468;margin:0 0 18px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:18px}
.card{background:#fff;border-radius:10px;padding:12px 18px;box-shadow:0 1px 3px rgba(0,0,0,.08);min-width:150px}
.card b{display:block;font-size:24px;color:#0b5cab}
.card span{font-size:12px;color:#4a5468}
section{background:#fff;border-radius:12px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:16px 20px;margin:16px 0}
section h2{font-size:18px;margin:0 0 10px;border-bottom:2px solid #e3e8ef;padding-bottom:6px}
.row{display:grid;grid-template-columns:minmax(0,5fr) minmax(0,7fr);gap:20px;align-items:start}
.row.text-only{grid-template-columns:1fr}
.figs img{max-width:100%;height:auto;display:block;margin:0 auto 10px}
.text{overflow-x:auto}
table{border-collapse:collapse;font-size:12.5px;margin:4px 0 10px;width:100%}
th{background:#eef2f7;text-align:left}
th,td{border:1px solid #dde3ea;padding:3px 7px;vertical-align:top}
tr:nth-child(even) td{background:#fafbfc}
code{background:#eef2f7;border-radius:4px;padding:0 4px;font-size:90%;overflow-wrap:anywhere}
details{margin-top:6px}summary{cursor:pointer;color:#0b5cab;font-weight:600}
.text p,.text li{font-size:13.5px;line-height:1.45}
"""


def to_markdown(title: str, lead: str, sections: list[Section]) -> str:
    parts = [f"# {title}", "", lead, ""]
    for s in sections:
        parts += [f"## {s.title}", "", s.md, ""]
        if s.details:
            parts += [f"{s.details[0][0].upper()}{s.details[0][1:]}:", "", s.details[1], ""]
    return "\n".join(parts)


def to_html(title: str, lead: str, sections: list[Section], cards: list[tuple[str, str]]) -> str:
    import markdown

    def md(text):
        return markdown.markdown(text, extensions=["tables"], output_format="html")

    body = [f"<h1>{html.escape(title)}</h1>", f"<div class='lead'>{md(lead)}</div>"]
    if cards:
        body.append("<div class='cards'>" + "".join(
            f"<div class='card'><b>{html.escape(v)}</b><span>{html.escape(k)}</span></div>" for v, k in cards)
                    + "</div>")
    for s in sections:
        text = md(s.md)
        if s.details:
            text += f"<details><summary>{html.escape(s.details[0])}</summary>{md(s.details[1])}</details>"
        figs = "".join(f"<img alt='{html.escape(alt, quote=True)}' src='data:image/png;base64,{b64}'/>"
                       for alt, b64 in s.figs)
        cls = "row" if figs else "row text-only"
        body.append(f"<section><h2>{html.escape(s.title)}</h2><div class='{cls}'><div class='text'>{text}</div>"
                    + (f"<div class='figs'>{figs}</div>" if figs else "") + "</div></section>")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width,initial-scale=1'><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body><main>" + "\n".join(body) + "</main></body></html>\n")


def load_trace(trace_dir: str) -> dict[str, np.ndarray]:
    """The spikes (not the membranes) of a ``spikegate golden --trace`` folder, by LIF name."""
    return {f[:-4]: np.load(os.path.join(trace_dir, f)) for f in sorted(os.listdir(trace_dir))
            if f.endswith(".npy") and not f.endswith(".v.npy")}


def write(out_dir: str, res: dict, *, title: str = "spikegate demo report", lead: str = "",
          images=None, labels=None, logits=None, trace_dir: str | None = None) -> list[Section]:
    """Write ``report.md`` and ``report.html`` into ``out_dir`` (each replaced whole, never half-written)."""
    trace = load_trace(trace_dir) if trace_dir and os.path.isdir(trace_dir) else None
    sections = build_sections(res, images=images, labels=labels, logits=logits, trace=trace)
    for name, text in (("report.md", to_markdown(title, lead, sections)),
                       ("report.html", to_html(title, lead, sections, headline(res)))):
        p = os.path.join(out_dir, name)
        with open(p + ".tmp", "w") as f:
            f.write(text)
        os.replace(p + ".tmp", p)
    return sections


# ---------------------------------------------------------------- headless browser
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


def chromium() -> str | None:
    """Debian's ``chromium`` (installed by .ci/setup-env), or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(html_path: str, png_path: str, width: int = 1280, height: int = 2400,
               crop: bool = False, timeout: float = 120) -> None:
    """Render ``html_path`` in headless Chromium into ``png_path`` (``width`` x ``height``).

    ``crop`` cuts the empty page background below the last section, so a tall window gives a
    screenshot of the whole page. Raises RuntimeError when Chromium is missing or fails.
    """
    exe = chromium()
    if exe is None:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium; .ci/setup-env does it)")
    with tempfile.TemporaryDirectory(prefix="spikegate-chromium-") as profile:
        tmp = png_path + ".tmp.png"
        proc = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={tmp}",
                               f"--window-size={width},{height}", "file://" + os.path.abspath(html_path)],
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0 or not os.path.exists(tmp):
            raise RuntimeError(f"chromium failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
    if crop:
        _crop_bottom(tmp)
    os.replace(tmp, png_path)


def _crop_bottom(path: str) -> None:
    from PIL import Image

    with Image.open(path) as im:
        a = np.asarray(im.convert("RGB"))
    bg = a[-1, a.shape[1] // 2]
    used = np.nonzero(np.any(np.abs(a.astype(int) - bg).sum(-1) > 12, axis=1))[0]
    if len(used):
        Image.fromarray(a[: min(len(a), used[-1] + 40)]).save(path)


def distinct_colours(png_path: str) -> int:
    """How many distinct RGB colours the PNG has: a blank or failed render has a handful."""
    from PIL import Image

    with Image.open(png_path) as im:
        a = np.asarray(im.convert("RGB")).reshape(-1, 3)
    return int(len(np.unique(a[:, 0].astype(np.int64) << 16 | a[:, 1].astype(np.int64) << 8 | a[:, 2])))
