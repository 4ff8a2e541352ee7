"""report.html (issue 26): every section a table beside its plots, rendered in a real headless browser.

The model side is real and small: a tiny random Meta-SpikeFormer, quantized, run by the golden
model on a few held-out digits with a spike trace. The RTL and synthesis records (cycles,
resources) are fixtures in the shape `spikegate verify --json` and `spikegate synth --json` print,
so the report is built in a few seconds instead of a demo's minutes (test_demo.py checks the real
demo's report). The page is then rendered by Debian's chromium and its screenshot checked.
"""

from __future__ import annotations

import html
import re

import numpy as np
import pytest

from spikegate import report
from spikegate.quantize import intops
from spikegate.quantize.data import digits_split_xy
from spikegate.quantize.golden import execute, write_trace
from spikegate.quantize.lower import lower
from spikegate.quantize.quantizer import quantize_graph
from spikegate.quantize.stats import layer_stats
from small_models import calibrated_model, tiny_cfg

N = 12  # example images


def _board(name, family, device, luts, ffs, bram, spram, dsp, fmax, mhz, weights):
    rec = {"board": name, "family": family, "device": device, "fmax_mhz": fmax, "requested_mhz": mhz,
           "clock_mhz": mhz, "timing_met": fmax >= mhz, "weights": weights}
    for key, (used, avail, cell) in dict(luts=luts, ffs=ffs, bram=bram, spram=spram, dsp=dsp).items():
        rec[key] = {"used": used, "available": avail, **({"cell": cell} if cell else {})}
    return rec


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    cfg = tiny_cfg()
    model = calibrated_model(cfg)
    x, y = digits_split_xy("test", img_size=cfg.img_size)
    x, y = x[:60], y[:60]
    _, g = quantize_graph(lower(model), x[:16], weight_bits=8)
    logits = execute(g, x)
    trace: dict = {}
    execute(g, x[:N], trace=trace)
    write_trace(g, trace, str(out / "trace"))
    pred_i = intops.argmax(logits)
    pred_f = pred_i.copy()
    pred_f[:3] = (pred_f[:3] + 1) % 10           # a float model that disagrees on three images
    ev = {k: {"top1": 100.0 * int((p == y).sum()) / len(y), "correct": int((p == y).sum()), "samples": len(y)}
          for k, p in (("float", pred_f), ("integer", pred_i))}
    rng = np.random.default_rng(0)
    cyc = {b: (rng.integers(base, base + 9000, N)).tolist() for b, base in (("ulx3s-85f", 116000), ("icebreaker", 71000))}
    res = {
        "eval": ev, "accuracy": {k: v["top1"] for k, v in ev.items()},
        "quant": {"summary": {"weight_bits": 8, "argmax_agreement": 100.0 * float(np.mean(pred_f == pred_i)),
                              "calibration": "16 held-out digits (test fixture)"}},
        "classification": {"labels": y.tolist(), "float": pred_f.tolist(), "integer": pred_i.tolist()},
        "stats": layer_stats(g, x[:N], mode="int"),
        "verify": {b: {"samples": N, "bit_exact": True, "sim": "verilator", "cycles": c, "predicted_cycles": c,
                       "lanes": 8 if b == "ulx3s-85f" else 1} for b, c in cyc.items()},
        "board_models": {"ulx3s-85f": "default", "icebreaker": "fpga-tiny-t2"},
        "boards": {"ulx3s-85f": _board("ulx3s-85f", "ecp5", "LFE5U-85F", (9752, 83640, "TRELLIS_COMB"),
                                       (5148, 83640, "TRELLIS_FF"), (123, 208, "DP16KD"), (0, 0, None),
                                       (8, 156, "MULT18X18D"), 102.68, 60.0, "bitstream"),
                   "icebreaker": _board("icebreaker", "ice40", "iCE40UP5K", (5103, 5280, "ICESTORM_LC"),
                                        (2041, 5280, "SB_DFF*"), (30, 30, "ICESTORM_RAM"),
                                        (2, 4, "ICESTORM_SPRAM"), (1, 8, "ICESTORM_DSP"), 27.66, 21.0,
                                        "runtime-loaded")},
        "notes": ["icebreaker: the weights live in SPRAM; `spikegate run --port DEV --build b --inputs X.npy` "
                  "uploads `weights.bin` when the board asks for it."],
        "timings": {"quantize": 6.7, "verify ulx3s-85f (verilator)": 102.4, "synth icebreaker (background)": 239.5},
    }
    report.write(str(out), res, lead="Test model `fpga-tiny` (random weights).", images=x[:N], labels=y[:N],
                 logits=logits[:N], trace_dir=str(out / "trace"))
    return out, res


def test_every_section_has_its_plots_beside_its_text(built):
    out, _ = built
    page = (out / "report.html").read_text()
    sections = re.findall(r"<section><h2>(.*?)</h2><div class='(row[^']*)'>(.*?)</section>", page, re.S)
    titles = [html.unescape(t) for t, _, _ in sections]
    for want in ("Accuracy on the held-out digits", "Example inputs", "Spikes", "RTL verification", "Boards",
                 "Notes", "Operations and energy (per sample, paper's model)"):
        assert want in titles, titles
    for title, cls, body in sections:
        if html.unescape(title) != "Notes":
            assert cls == "row" and "<div class='figs'><img" in body and "data:image/png;base64," in body, title
    # self-contained: nothing fetched from anywhere
    assert not re.search(r"""(src|href)=['"]?(https?:)?//""", page)


def test_tables_are_complete_and_notes_are_rendered(built):
    out, res = built
    page = (out / "report.html").read_text()
    md = (out / "report.md").read_text()
    # every sample's cycles, in the folded table and in report.md
    details = page.split("<details>", 1)[1].split("</details>", 1)[0]
    for b, v in res["verify"].items():
        for c in v["cycles"]:
            assert f"{c:,}" in details and f"{c:,}" in md, (b, c)
    # used/available for every resource, Fmax against the requested clock
    assert "5,103 / 5,280" in page and "2 / 4" in page and "27.7 / 21 MHz" in page
    # Markdown rendered by the markdown library, not shown raw
    assert "<code>weights.bin</code>" in page and "`weights.bin`" not in page
    assert "<table>" in page and "|---|" not in page
    # the confusion matrix counts agree with the accuracy table
    cm = report.confusion(res["classification"]["labels"], res["classification"]["integer"])
    assert np.trace(cm) == res["eval"]["integer"]["correct"]
    assert f"{res['eval']['integer']['correct']}/{res['eval']['integer']['samples']}" in page


def test_report_renders_in_headless_chromium(built, tmp_path):
    """What a person sees: chromium draws the page, the screenshot holds the plots (many colours)."""
    out, _ = built
    if report.chromium() is None:
        pytest.skip("Debian's chromium is not installed (.ci/setup-env installs it when run as root)")
    png = tmp_path / "report.png"
    report.screenshot(str(out / "report.html"), str(png), width=1280, height=2400)
    from PIL import Image

    with Image.open(png) as im:
        assert im.size == (1280, 2400)
    assert report.distinct_colours(str(png)) > 1000
    # a blank page gives a handful of colours: the check can fail
    blank = tmp_path / "blank.html"
    blank.write_text("<!doctype html><html><body></body></html>")
    report.screenshot(str(blank), str(tmp_path / "blank.png"), width=400, height=300)
    assert report.distinct_colours(str(tmp_path / "blank.png")) < 10
