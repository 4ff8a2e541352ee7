"""Checkpoint -> integer IR, with the per-layer report the user reads before trusting it."""

from __future__ import annotations

import numpy as np
import torch

from spikegate.errors import SpikegateError
from spikegate.io import check_images, load_array

from . import intops
from .checkpoint import load_model
from .golden import execute
from .graph import Graph
from .lower import REPCONV_MODES, lower
from .quantizer import choose_input_scale, int_shifts_of, quantize_graph, rescale
from .ranges import DEFAULT_MAX_BITS, DEFAULT_STREAM_BITS, widest_word

# How the quantiser rounds the weights: ``nearest`` (each weight on its own, half to even) or
# ``adaround`` (each covered weight up or down, as learned on the calibration images; quantize/adaround.py).
ROUNDINGS = ("nearest", "adaround")


def calibration_data(spec: str | None, cfg, trained_on: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray | None, str]:
    """``--calib X.npy`` or ``--calib NAME`` (a data set: digits, mnist) -> (images, labels or None,
    description); a data set calibrates on its training split and measures on its held-out split.
    Without ``--calib``: the data set the checkpoint records it was trained on (``trained_on``),
    else the digits for a 1-channel, 10-class model."""
    from .data import DATASETS, check_model_fits

    if spec is None:
        if trained_on in DATASETS:
            spec = trained_on
        elif cfg.in_channels == 1 and cfg.num_classes == 10:
            spec = "digits"
        else:
            raise SpikegateError(
                f"this model takes {cfg.in_channels}-channel {cfg.img_size}x{cfg.img_size} inputs: give "
                "calibration images with --calib X.npy ([B, C, H, W] float32)")
    if spec in DATASETS:
        ds = DATASETS[spec]
        try:
            check_model_fits(ds, cfg.in_channels, None, cfg.img_size, "the model")
        except ValueError as e:
            raise SpikegateError(f"--calib {spec}: {e}") from None
        x, _ = ds.split_xy("train", cfg.img_size)
        xe, ye = ds.split_xy("test", cfg.img_size)
        return x, (xe, ye), f"{spec} (train split; accuracy on the held-out split)"
    x = check_images(load_array(spec, "--calib"), cfg.in_channels, spec, "--calib", size=cfg.img_size)
    return x, None, spec


def _float_logits(model, x: np.ndarray, T: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            out.append(model(torch.from_numpy(x[i:i + 256]), T=T).numpy())
    return np.concatenate(out)


def _golden_logits(g: Graph, x: np.ndarray, T: int, mode="int") -> np.ndarray:
    return np.concatenate([execute(g, x[i:i + 256], T=T, mode=mode) for i in range(0, len(x), 256)])


def layer_report(g_float: Graph, g_int: Graph, x: np.ndarray, T: int) -> list[dict]:
    """Per layer: weight bits used, accumulator bits, scale, and the error rounding introduced.

    Errors: for weighted ops, the relative RMS rounding error of the weights; for every LIF, the
    fraction of spikes that differ between the exact (scaled float) and the integer model on the
    calibration sample (cumulative: it includes what earlier layers changed).
    """
    tf: dict = {}
    ti: dict = {}
    n = min(len(x), 64)
    execute(g_float, x[:n], T=T, mode="float", trace=tf)
    execute(g_int, x[:n], T=T, trace=ti)
    notes = g_int.meta.get("scale_notes", {})
    rows = []
    fops = {o.name: o for o in g_float.ops}
    for o in g_int.ops:
        row = {"op": o.name, "kind": o.kind, "widths": dict(o.widths)}
        if "weight" in o.params:
            w = o.params["weight"]
            wf = np.asarray(fops[o.name].params["weight"], dtype=np.float64)
            row["weight_bits"] = intops.signed_bits(int(w.min()), int(w.max()))
            denom = float(np.sqrt((wf ** 2).mean())) or 1.0
            row["weight_error"] = float(np.sqrt(((w - wf) ** 2).mean()) / denom)
            row["scale"] = notes.get(o.name, f"x{g_int.meta.get('logit_scale', 1):.4g}" if o.kind == "head" else "")
        if o.kind == "lif":
            row["threshold"] = [int(o.params["threshold"].min()), int(o.params["threshold"].max())]
            row["spike_mismatch"] = float((tf[o.name][0] != ti[o.name][0]).mean())
            row["firing_rate"] = float(ti[o.name][0].mean())
        rows.append(row)
    return rows


def quantize_checkpoint(ckpt: str, *, calib: str | None = None, weight_bits: int = 8, input_bits: int = 8,
                        heads: int | None = None, T: int | None = None, preset: str | None = None,
                        progress=None, evaluate: bool = True,
                        max_bits: int = DEFAULT_MAX_BITS,
                        stream_bits: int = DEFAULT_STREAM_BITS, rounding: str = "nearest",
                        rounding_seed: int = 0, repconv: str = "merge") -> tuple[Graph, dict]:
    """The integer IR of a checkpoint, and a report (per-layer errors and accuracy). With
    ``evaluate=False``: the same IR without ``meta["accuracy"]`` and only the model config in the
    report, several times faster. ``rounding="adaround"`` learns each weight's rounding on the
    calibration images first (report key ``rounding``); the per-layer errors and the accuracy are
    still measured against the checkpoint's own float model. ``repconv="split"`` keeps each
    RepConv as its three convolutions (``lower.split_repconv_bn``: about 4.5x fewer weights for
    it) instead of one dense 3x3."""
    if not isinstance(weight_bits, int) or not 4 <= weight_bits <= 16:
        raise SpikegateError(f"--weight-bits must be in 4..16, not {weight_bits}")
    if repconv not in REPCONV_MODES:
        raise SpikegateError(f"--repconv must be one of {', '.join(REPCONV_MODES)}, not {repconv!r}")
    if rounding not in ROUNDINGS:
        raise SpikegateError(f"--rounding must be one of {', '.join(ROUNDINGS)}, not {rounding!r}")
    model, ck = load_model(ckpt, preset_name=preset, heads=heads, T=T)
    cfg = model.cfg
    T = cfg.T
    step = progress or (lambda name: None)  # progress(name): the step that starts now
    x_cal, evalset, calib_desc = calibration_data(calib, cfg, ck.args.get("data"))
    qmodel, learned = model, None
    if rounding == "adaround":
        from .adaround import adaround

        step("learning the rounding (AdaRound)")
        qmodel, learned = adaround(model, x_cal, weight_bits, input_bits=input_bits, seed=rounding_seed)
    step("lowering and calibrating")
    g_float, g_int = quantize_graph(lower(qmodel, repconv), x_cal, weight_bits=weight_bits, input_bits=input_bits,
                                    T=T, max_bits=max_bits, stream_bits=stream_bits)
    g_int.meta["source"] = {"checkpoint": ck.path, "calibration": calib_desc}
    if learned:  # only then: a nearest-rounded IR stays byte-identical to before the option existed
        g_int.meta["source"]["rounding"] = rounding
    widths = width_report(g_int)
    extra = {"rounding": learned} if learned else {}
    if not evaluate:
        return g_int, {"config": cfg.to_json(), "widths": widths, **extra}
    if learned:  # errors against the checkpoint's float weights, not the learned ones
        g_float = rescale(lower(model, repconv), input_scale=choose_input_scale(x_cal, input_bits),
                          input_bits=input_bits, weight_bits=weight_bits,
                          int_shifts=int_shifts_of(g_float))
    step("per-layer errors")
    layers = layer_report(g_float, g_int, x_cal, T)
    step("accuracy, float and integer")
    # Accuracy: on the held-out split when we have labels, else agreement on the calibration set.
    xe, ye = evalset if evalset is not None else (x_cal, None)
    lf = _float_logits(model, xe, T)
    li = _golden_logits(g_int, xe, T)
    pf, pi = lf.argmax(1), intops.argmax(li)
    summary = {"samples": int(len(xe)), "argmax_agreement": float((pf == pi).mean() * 100.0),
               "weight_bits": weight_bits, "T": T, "calibration": calib_desc}
    if learned:
        summary["rounding"] = rounding
    if ye is not None:
        summary["float_top1"] = float((pf == ye).mean() * 100.0)
        summary["int_top1"] = float((pi == ye).mean() * 100.0)
    g_int.meta["accuracy"] = summary
    return g_int, {"layers": layers, "summary": summary, "config": cfg.to_json(), "widths": widths, **extra}


def width_report(g: Graph) -> dict:
    """The widths a user checks: the widest declared width, the limit, and every saturating op
    with how often the calibration data hit its clamp (``meta["saturation"]``)."""
    sat = g.meta.get("saturation", {})
    ops = [{"op": o.name, "bits": int(o.widths["out"]), "wide": int(o.widths["wide"]),
            "hits": int(sat.get(o.name, {}).get("count", 0)), "values": int(sat.get(o.name, {}).get("values", 0))}
           for o in g.ops if o.attrs.get("saturate")]
    return {"max_declared": widest_word(g),
            "max_bits": int(g.meta.get("max_bits", DEFAULT_MAX_BITS)), "saturating_ops": ops,
            "saturated_values": sum(r["hits"] for r in ops)}
