"""Post-training quantization: what the quantizer's rounding costs, and where it comes from.

    .venv/bin/python -m bench.ptq [--bits 4,6,8] [--rounding nearest,adaround] [--repconv merge,split] [--no-digits] [--json FILE]

1. Float-trained embedded digits models (``default-float``, ``fpga-tiny-t2``): float/integer argmax
   agreement on the 450 held-out digits per weight width and rounding, through
   ``quantize_checkpoint(NAME, calib="digits", rounding=R)`` (the path of ``spikegate quantize NAME
   --calib digits --rounding R``), with the largest declared width. ``adaround`` learns the
   rounding on the 1347 training digits (no labels; quantize/adaround.py) and says how long it took.
2. Official-layout fixtures (``../shared/fixtures/official``; ``--fixtures DIR``): the spike
   agreement of the first three LIF layers (execution order) with the exact scaled graph (the
   float model), on 16 uniform random images (seed 1; calibrated on 16 others, seed 0), for the
   quantizer as it is and for ablations that locate the error:

   * ``stream +d``: every residual stream ``2**d`` times finer (the writers' shifts ``+d``, the
     readers' thresholds ``* 2**d``), so no multi-bit writer needs a rounding right shift;
   * ``full-range input``: the input scale ``qmax / max|calib|`` instead of a power of two;
   * ``naive``: per-channel rounding in float (each conv's rows scaled to exactly ``qmax``,
     rounded, scaled back; no power-of-two stream, no shift), with the same quantized input;
   * ``exact input``: the same integer weights, the input not rounded (float executor);
   * ``adaround`` (with ``--rounding ...,adaround``): the weights rounded as learned on the 16
     calibration images (quantize/adaround.py), measured on the 16 others.
3. ``--sweep 8,10,12,14``: the digits models' argmax agreement when only the weight width grows
   (the integer graph before the width pass, so wider weights than ``--max-bits`` allows still
   run): how far 8-bit post-training rounding is from 99 %.

The early layers' spikes do not depend on the declared widths, so the fixture rows run the
quantizer's scale and rounding passes (``rescale``, ``round_graph``) without the width pass.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

from spikegate.quantize import intops
from spikegate.quantize.golden import execute
from spikegate.quantize.quantizer import _qmax, choose_input_scale, rescale, round_graph

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "fixtures", "official")
DIGITS_MODELS = ("default-float", "fpga-tiny-t2")
N_LIF = 3


def max_width(g) -> int:
    return max(max(o.widths.values()) for o in g.ops if o.widths)


def fixture_images(cfg, seed: int, batch: int = 16) -> np.ndarray:
    shape = (batch, cfg.in_channels, cfg.img_size, cfg.img_size)
    return np.random.RandomState(seed).rand(*shape).astype(np.float32)


def scaled_and_rounded(g0, calib: np.ndarray, weight_bits: int = 8, input_bits: int = 8,
                       input_scale: float | None = None):
    """The quantizer's exact scaled graph and its rounded integer graph (no widths declared)."""
    s_in = choose_input_scale(calib, input_bits) if input_scale is None else float(input_scale)
    g1 = rescale(g0, input_scale=s_in, input_bits=input_bits, weight_bits=weight_bits)
    return g1, round_graph(g1, weight_bits)


def finer_streams(g1, d: int):
    """``g1`` with each residual stream that a multi-bit writer reaches by a right shift ``2**d``
    times finer (``d`` capped so every shift stays within the IR's 30): same weights, shifts
    ``+d``, biases and reader thresholds ``* 2**d``. Still exact (scaled float)."""
    g = g1.copy()
    segs: dict = {}
    for o in g.ops:
        if o.kind == "conv" and "segment" in o.attrs:
            segs.setdefault(o.attrs["segment"], []).append(np.asarray(o.params["shift"]))
    dd = {k: min(d, 30 - int(max(s.max() for s in v))) for k, v in segs.items()
          if min(s.min() for s in v) < 0}
    for o in g.ops:
        k = dd.get(o.attrs.get("segment"), 0)
        if o.kind == "conv" and k:
            o.params["shift"] = np.asarray(o.params["shift"]) + k
            o.params["bias"] = np.asarray(o.params["bias"], dtype=np.float64) * 2.0 ** k
        elif o.kind == "lif" and k:
            o.params["threshold"] = np.asarray(o.params["threshold"], dtype=np.float64) * 2.0 ** k
    return g


def naive_per_channel(g0, weight_bits: int):
    """The lowered float graph with each conv row rounded on its own float grid (``qmax`` steps)."""
    g = g0.copy()
    qmax = _qmax(weight_bits)
    for o in g.ops:
        if o.kind == "conv":
            w = np.asarray(o.params["weight"], dtype=np.float64)
            m = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
            s = np.where(m > 0, qmax / np.maximum(m, 1e-300), 1.0)[:, None, None, None]
            o.params["weight"] = np.rint(w * s) / s
    return g


def lif_agreement(g_ref, g_test, x: np.ndarray, T: int, *, test_mode: str = "int",
                  test_input: np.ndarray | None = None, n_lif: int = N_LIF) -> dict[str, float]:
    """Per LIF (the first ``n_lif``): % of spikes equal in ``g_ref`` (float executor, on ``x``)
    and ``g_test`` (``test_mode``, on ``test_input`` or ``x``)."""
    tr: dict = {}
    tt: dict = {}
    execute(g_ref, x, T=T, mode="float", trace=tr)
    execute(g_test, x if test_input is None else test_input, T=T, mode=test_mode, trace=tt,
            check_widths=False)
    names = [o.name for o in g_ref.lif_ops()][:n_lif]
    return {n: 100.0 * float((tr[n][0] == tt[n][0]).mean()) for n in names}


def fixture_rows(ckpt: str, weight_bits: int = 8, adaround: bool = False) -> dict[str, dict[str, float]]:
    """The first LIFs' agreement for the quantizer and each ablation (module docstring)."""
    from spikegate.quantize.checkpoint import load_model
    from spikegate.quantize.lower import lower

    model, _ = load_model(ckpt)
    T = model.cfg.T
    calib, x = fixture_images(model.cfg, 0), fixture_images(model.cfg, 1)
    g0 = lower(model)
    g1, g2 = scaled_and_rounded(g0, calib, weight_bits)
    s_in = float(g1.ops[0].attrs["scale"])
    xq = intops.quantize_input(x, s_in, 8) / s_in   # the integer graph's input, in pixel units
    rows = {"quantizer": lif_agreement(g1, g2, x, T)}
    for d in (1, 3, 6):
        gd = finer_streams(g1, d)
        rows[f"stream +{d}"] = lif_agreement(gd, round_graph(gd, weight_bits), x, T)
    f1, f2 = scaled_and_rounded(g0, calib, weight_bits, input_scale=_qmax(8) / float(np.abs(calib).max()))
    rows["full-range input"] = lif_agreement(f1, f2, x, T)
    g0s = g0.copy()
    g0s.ops[0].attrs["scale"] = 1.0
    gn = naive_per_channel(g0s, weight_bits)
    rows["naive, same input"] = lif_agreement(g0s, gn, x, T, test_mode="float", test_input=xq)
    rows["naive, exact input"] = lif_agreement(g0s, gn, x, T, test_mode="float")
    g2f = g2.copy()
    g2f.meta = dict(g1.meta)
    rows["quantizer weights, exact input"] = lif_agreement(g1, g2f, x, T, test_mode="float")
    if adaround:
        from spikegate.quantize.adaround import adaround as learn

        student, _ = learn(model, calib, weight_bits)
        _, ga = scaled_and_rounded(lower(student), calib, weight_bits)
        rows["adaround"] = lif_agreement(g1, ga, x, T)
    return rows


def digits_rows(bits, roundings=("nearest",), models=DIGITS_MODELS, show=None, repconvs=("merge",)) -> dict:
    """``{"NAME@BITS" (nearest) or "NAME@BITS adaround": agreement, accuracies, width, seconds}``;
    a ``" split"`` suffix for ``repconv="split"`` (RepConvs as three convolutions)."""
    import time

    from spikegate.quantize.pipeline import quantize_checkpoint

    out = {}
    for name in models:
        for b in bits:
            for r, rc in ((r, rc) for r in roundings for rc in repconvs):
                t0 = time.time()
                g, rep = quantize_checkpoint(name, calib="digits", weight_bits=b, rounding=r, repconv=rc)
                s = rep["summary"]
                key = f"{name}@{b}" + ("" if r == "nearest" else f" {r}") + ("" if rc == "merge" else f" {rc}")
                out[key] = {"argmax_agreement": s["argmax_agreement"], "float_top1": s["float_top1"],
                            "int_top1": s["int_top1"], "max_width": max_width(g), "rounding": r,
                            "seconds": time.time() - t0}
                if "rounding" in rep:
                    out[key]["flipped_vs_nearest"] = rep["rounding"]["flipped_vs_nearest"]
                if show:
                    show(key, out[key])
    return out


def show_digits_row(key: str, r: dict) -> None:
    print(f"{key:<27} agreement {r['argmax_agreement']:6.2f} %  float {r['float_top1']:.2f} %  "
          f"integer {r['int_top1']:.2f} %  max width {r['max_width']}  {r['seconds']:.0f} s", flush=True)


def weight_sweep(name: str, bits) -> dict[int, float]:
    """``{weight bits: % argmax agreement}`` of the integer graph with the float model on the
    held-out digits (calibrated on the training split)."""
    import torch

    from spikegate.quantize.checkpoint import load_model
    from spikegate.quantize.data import digits_split_xy
    from spikegate.quantize.lower import lower

    model, _ = load_model(name)
    T = model.cfg.T
    calib, _ = digits_split_xy(split="train", img_size=model.cfg.img_size)
    xe, _ = digits_split_xy(split="test", img_size=model.cfg.img_size)
    with torch.no_grad():
        pf = model(torch.from_numpy(xe), T=T).numpy().argmax(1)
    g0 = lower(model)
    out = {}
    for b in bits:
        _, g2 = scaled_and_rounded(g0, calib, b)
        li = np.concatenate([execute(g2, xe[i:i + 256], T=T, check_widths=False) for i in range(0, len(xe), 256)])
        out[int(b)] = 100.0 * float((intops.argmax(li) == pf).mean())
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bits", default="4,6,8", help="weight widths for the digits models")
    ap.add_argument("--rounding", default="nearest",
                    help="roundings to measure, comma-separated: nearest, adaround (default nearest)")
    ap.add_argument("--models", default=",".join(DIGITS_MODELS), help="digits models (default: both)")
    ap.add_argument("--fixtures", default=FIXTURES)
    ap.add_argument("--no-digits", action="store_true")
    ap.add_argument("--repconv", default="merge", help="merge and/or split (quantize --repconv), e.g. merge,split")
    ap.add_argument("--sweep", default=None, help="weight widths for the digits agreement sweep, e.g. 8,10,12,14")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    roundings = a.rounding.split(",")
    if set(roundings) - {"nearest", "adaround"}:
        ap.error(f"--rounding: nearest and/or adaround, not {a.rounding!r}")
    out: dict = {"digits": {}, "official": {}}
    if not a.no_digits:
        out["digits"] = digits_rows([int(b) for b in a.bits.split(",")], roundings, a.models.split(","),
                                    show=show_digits_row, repconvs=a.repconv.split(","))
    if a.sweep:
        out["sweep"] = {}
        for name in DIGITS_MODELS:
            out["sweep"][name] = r = weight_sweep(name, [int(b) for b in a.sweep.split(",")])
            print(f"{name:<14} weight bits: " + "  ".join(f"{b}: {v:.2f} %" for b, v in r.items()))
    for fx in ("small_t1", "small_t4"):
        path = os.path.join(a.fixtures, f"{fx}.pth")
        if not os.path.exists(path):
            out["official"][fx] = {"status": f"not available: {path} is missing"}
            print(f"{fx}: not available: {path} is missing")
            continue
        out["official"][fx] = rows = fixture_rows(path, adaround="adaround" in roundings)
        for k, r in rows.items():
            print(f"{fx:<9} {k:<31} " + "  ".join(f"{v:6.2f}" for v in r.values()) + "   % (first LIFs)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
