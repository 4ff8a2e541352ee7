"""The golden model: executes an op graph exactly (integers) or in float64 (the lowered float graph).

In ``int`` mode this is the single source of truth for every later stage: the RTL is correct exactly
when it matches this, bit for bit. Every op comes from :mod:`spikegate.quantize.intops`. Each
result is checked against the width the IR declares for it; a value that leaves its width raises
:class:`WidthError` naming the op (it cannot happen for a graph whose widths came from the range
analysis, which is the point of checking).
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from spikegate.errors import SpikegateError

from . import intops
from .graph import Graph, Op


class WidthError(SpikegateError):
    """A value left the bit width its op declares."""


def _check(op: Op, key: str, values: np.ndarray) -> None:
    bits = op.widths.get(key)
    if bits is not None and not intops.fits(values, bits):
        raise WidthError(
            f"op {op.name}: {key} value range [{int(values.min())}, {int(values.max())}] leaves its declared "
            f"{bits}-bit width")


def _float_lif(x_seq: np.ndarray, threshold: np.ndarray):
    """The float model's LIF (spikingjelly's expression) in float64, per channel on axis 2."""
    shape = [1] * (x_seq.ndim - 1)
    shape[1] = -1
    th = threshold.reshape(shape)
    v = np.zeros(x_seq.shape[1:])
    spikes = np.empty(x_seq.shape, dtype=np.uint8)
    mem = np.empty(x_seq.shape)
    for t in range(x_seq.shape[0]):
        h = v + (x_seq[t] - v) / 2.0
        s = h >= th
        v = np.where(s, 0.0, h)
        spikes[t] = s
        mem[t] = v
    return spikes, mem


def _int_lif(op: Op, x_seq: np.ndarray, check: bool):
    shape = [1] * (x_seq.ndim - 1)
    shape[1] = -1
    th = np.asarray(op.params["threshold"], dtype=np.int64).reshape(shape)
    v = np.zeros(x_seq.shape[1:], dtype=np.int64)
    spikes = np.empty(x_seq.shape, dtype=np.uint8)
    mem = np.empty(x_seq.shape, dtype=np.int64)
    for t in range(x_seq.shape[0]):
        s, v, h2 = intops.lif_step(v, x_seq[t], th)
        if check:
            _check(op, "membrane", h2)
            _check(op, "state", v)
        spikes[t] = s
        mem[t] = v
    return spikes, mem


def _float_conv(op: Op, x: np.ndarray) -> np.ndarray:
    a, p = op.attrs, op.params
    lead = x.shape[:2]
    y = F.conv2d(torch.from_numpy(x.reshape((-1,) + x.shape[2:]).astype(np.float64)),
                 torch.from_numpy(np.asarray(p["weight"], dtype=np.float64)), stride=a["stride"],
                 padding=a["padding"], groups=a["groups"]).numpy()
    y = y * (2.0 ** np.asarray(p["shift"], dtype=np.float64)).reshape(1, -1, 1, 1)
    y = y + np.asarray(p["bias"], dtype=np.float64).reshape(1, -1, 1, 1)
    return y.reshape(lead + y.shape[1:])


def prepare_input(g: Graph, images: np.ndarray, T: int, mode: str) -> np.ndarray:
    """``[B,C,H,W]`` (repeated T times: direct encoding) or ``[B,T,C,H,W]`` -> ``[T,B,C,H,W]``."""
    qi = g.ops[0]
    x = np.asarray(images)
    if x.ndim == 4:
        x = np.broadcast_to(x[None], (T,) + x.shape)
    elif x.ndim == 5:
        x = x.transpose(1, 0, 2, 3, 4)
    if mode == "int":
        return intops.quantize_input(x, qi.attrs["scale"], qi.attrs["bits"])
    return np.asarray(x, dtype=np.float64) * float(qi.attrs["scale"])


def _saturate(op: Op, y: np.ndarray, check: bool, saturations: dict | None) -> np.ndarray:
    """The op's declared saturation (``intops.saturate`` at its ``out`` width), counted."""
    if check:
        _check(op, "wide", y)
    bits = op.widths["out"]
    if saturations is not None:
        n = intops.saturated_count(y, bits)
        prev = saturations.get(op.name, {"count": 0, "values": 0})
        saturations[op.name] = {"count": prev["count"] + n, "values": prev["values"] + int(y.size),
                                "bits": int(bits)}
    return intops.saturate(y, bits)


def _observe(observed: dict, name: str, y: np.ndarray) -> None:
    lo, hi = int(y.min()), int(y.max())
    if name in observed:
        lo, hi = min(lo, observed[name][0]), max(hi, observed[name][1])
    observed[name] = (lo, hi)


def execute(g: Graph, images: np.ndarray, *, mode: str = "int", T: int | None = None,
            trace: dict | None = None, check_widths: bool = True, keep: set[str] | None = None,
            saturations: dict | None = None, observed: dict | None = None):
    """Run ``g`` on a batch; returns logits (``int64 [B, K]`` or dequantised float64 ``[B, K]``).

    ``trace``, if a dict, receives ``{lif name: (spikes uint8, membranes)}`` in ``[T, B, C, ...]``
    layout, plus the tensors named in ``keep``. ``saturations``, if a dict, receives (adding to
    what it holds) ``{op: {"count", "values", "bits"}}`` for every saturating op: how many of its
    values the clamp changed, out of how many. ``observed``, if a dict, receives (widening what it
    holds) ``{op: (lo, hi)}``, every multi-bit output's range before any saturation (calibration).
    """
    if mode not in ("int", "float"):
        raise ValueError(f"mode must be 'int' or 'float', not {mode!r}")
    T = int(T or g.meta.get("T", 1))
    integer = mode == "int"
    last_use = {}
    for i, o in enumerate(g.ops):
        for n in o.inputs:
            last_use[n] = i
    env: dict[str, np.ndarray] = {}
    out = None
    for i, o in enumerate(g.ops):
        ins = [env[n] for n in o.inputs]
        k = o.kind
        if k == "quant_input":
            y = prepare_input(g, images, T, mode)
            if integer and check_widths:
                _check(o, "out", y)
        elif k == "conv":
            if integer:
                bound = o.attrs.get("magnitude_bound")
                y = intops.conv(ins[0], o.params["weight"], o.params["bias"], stride=o.attrs["stride"],
                                padding=o.attrs["padding"], groups=o.attrs["groups"], shift=o.params["shift"],
                                magnitude_bound=bound)
            else:
                y = _float_conv(o, ins[0])
        elif k == "lif":
            if integer:
                y, mem = _int_lif(o, ins[0], check_widths)
            else:
                y, mem = _float_lif(ins[0], np.asarray(o.params["threshold"], dtype=np.float64))
            if trace is not None:
                trace[o.name] = (y, mem)
        elif k == "add":
            y = intops.add(*ins) if integer else ins[0] + ins[1]
        elif k == "attention":
            y = intops.attention(*ins, heads=o.attrs["heads"])
            if not integer:
                y = y.astype(np.float64)
        elif k == "spatial_sum":
            y = intops.spatial_sum(ins[0]) if integer else ins[0].reshape(ins[0].shape[:3] + (-1,)).sum(3)
        elif k == "head":
            if integer:
                y = intops.head(ins[0], o.params["weight"], o.params["bias"])
            else:
                s = ins[0].astype(np.float64)
                w, b = np.asarray(o.params["weight"], np.float64), np.asarray(o.params["bias"], np.float64)
                y = sum((s @ w[h].T + b[h]).sum(0) for h in range(w.shape[0]))
            out = y
        else:  # validate() makes this unreachable
            raise AssertionError(k)
        if integer and observed is not None and k not in ("lif", "head") and y.size:
            _observe(observed, o.name, y)
        if integer and o.attrs.get("saturate"):
            y = _saturate(o, y, check_widths, saturations)
        if integer and check_widths and k not in ("quant_input", "lif"):
            _check(o, "out", y)
        env[o.name] = y
        if keep and o.name in keep and trace is not None:
            trace[o.name] = y
        for n in o.inputs:
            if last_use.get(n) == i:
                env.pop(n, None)
    if integer:
        return out
    nh = g.ops[-1].params["weight"].shape[0]
    return out / (T * nh * float(g.meta.get("logit_scale", 1.0)))


def public_shape(op: Op, arr: np.ndarray) -> np.ndarray:
    """Reshape ``[T, B, C, H, W]`` to the shape the public code's LIF outputs."""
    kind = op.attrs.get("public_shape", "CHW")
    if kind == "CN":
        return arr.reshape(arr.shape[:3] + (-1,))
    return arr


def write_trace(g: Graph, trace: dict, out_dir: str) -> list[str]:
    """``DIR/<module path>.npy`` (spikes, uint8) and ``DIR/<module path>.v.npy`` (membranes, int64)."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    for o in g.lif_ops():
        if o.name not in trace:
            continue
        spikes, mem = trace[o.name]
        for suffix, arr in (("", spikes.astype(np.uint8)), (".v", mem)):
            path = os.path.join(out_dir, f"{o.name}{suffix}.npy")
            tmp = path + ".tmp"
            with open(tmp, "wb") as f:
                np.save(f, public_shape(o, arr))
            os.replace(tmp, path)
            written.append(path)
    return written


def evaluate_ir(path: str, data: str = "digits") -> dict:
    """Top-1 of the golden model on a data set's held-out split (``spikegate.quantize.data``)."""
    from .irfile import load_ir
    from .data import DATASETS, check_model_fits

    g = load_ir(path)
    if data not in DATASETS:
        raise SpikegateError(f"--data {data!r} is not known; use one of {', '.join(DATASETS)}")
    ds, qi = DATASETS[data], g.ops[0].attrs
    try:
        check_model_fits(ds, qi["channels"], None, qi["size"], f"{path}: the model")
    except ValueError as e:
        raise SpikegateError(f"{e}; --data {data} does not fit it") from None
    x, y = ds.split_xy("test", qi["size"])
    logits = np.concatenate([execute(g, x[i:i + 256]) for i in range(0, len(x), 256)])
    pred = intops.argmax(logits)
    correct = int((pred == y).sum())
    return {"top1": 100.0 * correct / len(y), "samples": int(len(y)), "correct": correct,
            "model": path, "kind": "golden"}
