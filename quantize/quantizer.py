"""From the lowered float graph to the integer IR: scales, rounding, widths.

Passes (each a pure function ``Graph -> Graph`` on a copy):

1. :func:`choose_input_scale`: a power of two that maps the calibration data's largest pixel into
   ``input_bits``.
2. :func:`rescale`: per-channel scales so that every threshold is an integer and every weight uses
   the full ``weight_bits`` range; residual-stream channels get one scale (a power of two) that all
   of their writers reach with shifts (left for spike inputs; multi-bit writers may also shift
   right, rounding). Still float: nothing is rounded, so this graph computes
   exactly what the float model computes (tested on the official fixtures).
3. :func:`round_graph`: weights, biases and thresholds to integers (round half to even).
4. :func:`spikegate.quantize.ranges.assign_widths`: every width from the static range analysis.

The scales are chosen from weights, not activations: a LIF is invariant to scaling its input and
threshold together, so the only quantities whose resolution matters are weights, biases and
thresholds, and the widths come from worst-case analysis rather than observed ranges. Calibration
data sets the input scale and measures what the rounding cost.
"""

from __future__ import annotations

import math

import numpy as np

from spikegate.errors import SpikegateError

from .graph import Graph, validate
from .intops import signed_bits
from .ranges import DEFAULT_MAX_BITS, DEFAULT_STREAM_BITS
from .widths import declare_widths

MAX_SCALE_LOG2 = 24  # thresholds/scales are capped at 2**24 (dead channels would ask for infinity)
EXTRA_BITS = 4       # threshold/bias resolution beyond the weights' (see rescale)
THRESHOLD_BITS = 14  # a LIF-feeding conv on integers: its threshold's largest value, in bits


def _qmax(bits: int) -> int:
    return (1 << (bits - 1)) - 1


# Scale choices round real numbers to integers (a threshold) or powers of two (a stream scale, a
# shift). A checkpoint whose weights already lie on the grid (quantisation-aware training,
# ``spikegate.quantize.qat``) puts those numbers exactly on an integer, give or take the float32
# storage of its weights; these tolerate that, so such a checkpoint maps onto its own grid.
_SNAP = 1e-6  # far above float32 noise (~1e-7), far below what could push a weight past qmax


def _floor(x):
    return np.floor(np.asarray(x, dtype=np.float64) * (1.0 + _SNAP))


def _ceil(x):
    x = np.asarray(x, dtype=np.float64)
    return np.ceil(x - _SNAP * np.maximum(np.abs(x), 1.0))


def choose_input_scale(calib: np.ndarray, input_bits: int) -> float:
    m = float(np.abs(calib).max()) if calib.size else 1.0
    if not math.isfinite(m):
        raise SpikegateError("calibration data contains NaN or Inf")
    if m == 0:
        m = 1.0
    return float(2.0 ** math.floor(math.log2(_qmax(input_bits) / m)))


def _rowmax(w: np.ndarray) -> np.ndarray:
    return np.abs(w).reshape(w.shape[0], -1).max(axis=1)


def _on_integer_input(o, in_scale: dict) -> np.ndarray:
    """``o``'s weights per unit of its input's integers: divided by the input's scale per input
    channel (a depthwise conv's input channel is its output channel); unchanged on spikes."""
    w = np.asarray(o.params["weight"], dtype=np.float64)
    if o.attrs["in_kind"] != "int":
        return w
    s = np.asarray(in_scale[o.inputs[0]], dtype=np.float64)
    if s.ndim == 0:
        return w / s
    return w / (s.reshape(-1, 1, 1, 1) if o.attrs["groups"] > 1 else s.reshape(1, -1, 1, 1))


def rescale(g0: Graph, *, input_scale: float, input_bits: int, weight_bits: int,
            extra_bits: int = EXTRA_BITS, int_shifts: dict | None = None) -> Graph:
    """Scale every op so thresholds are integers and weights fill ``weight_bits`` (no rounding).

    ``extra_bits``: thresholds and biases get this many more bits of resolution than the weights:
    a LIF-feeding convolution's accumulator is shifted left by ``extra_bits`` before its bias is
    added, and residual-stream scales are ``2**extra_bits`` finer than the weights need. The
    weights keep ``weight_bits``; only accumulator widths grow. A LIF-feeding convolution on an
    integer input (a split RepConv's last 1x1) shifts the other way: its accumulator counts in units
    far finer than a weight step, so its readout shifts right (rounding) until the largest
    threshold has ``THRESHOLD_BITS`` bits.

    ``int_shifts``: per conv whose integer output another conv reads, per channel, a right shift of
    its readout (:func:`int_output_shifts`, from the range analysis), so that a chain of such convs
    (a split RepConv's 1x1 and depthwise) does not multiply the integers' magnitudes stage by stage.
    """
    int_shifts = int_shifts or {}
    g = g0.copy()
    qmax = _qmax(weight_bits)
    fine = float(1 << extra_bits)
    cap = float(1 << MAX_SCALE_LOG2)
    ops = {o.name: o for o in g.ops}
    qi = g.ops[0]
    qi.attrs["scale"] = float(input_scale)
    qi.attrs["bits"] = int(input_bits)
    scale_notes: dict[str, str] = {}

    # Integer inputs' per-input-channel scale (how many integer units per float unit).
    in_scale: dict[str, np.ndarray | float] = {"input": float(input_scale)}

    # 1. convs feeding a LIF and convs whose integer output another conv reads (the depthwise
    #    conv feeding pwconv2; a split RepConv's 1x1 and depthwise convs). A conv on an integer
    #    input first gets its effective weights on that input's integers.
    for o in g.ops:
        if o.kind != "conv" or o.attrs["role"] == "stream":
            continue
        w, b = _on_integer_input(o, in_scale), o.params["bias"]
        m = _rowmax(w)
        if o.attrs["role"] == "lif":
            (lif,) = g.consumers(o.name)
            vth = float(lif.attrs["v_threshold"])
            if o.attrs["in_kind"] == "spike":
                up = extra_bits
            else:   # shift right so that the threshold has THRESHOLD_BITS, not the input's scale
                top = np.max(np.where(m > 0, vth * qmax / np.maximum(m, 1e-300), 1.0))
                up = -int(np.clip(_ceil(np.log2(top)) - THRESHOLD_BITS, 0, 30))
            f = 2.0 ** up
            # threshold in units of 2**-up of a weight step: exact integer, weights <= qmax
            theta = np.where(m > 0, _floor(vth * f * qmax / np.maximum(m, 1e-300)), cap)
            theta = np.clip(theta, 1, cap)
            alpha = theta / (vth * f)  # weights scale; the accumulator shifts by up
            lif.params["threshold"] = theta
            o.params["shift"] = np.full(w.shape[0], up, dtype=np.int64)
            o.params["bias"] = b * alpha * f
            o.params["weight"] = w * alpha[:, None, None, None]
            align = f"<<{up}" if up >= 0 else f">>{-up}"
            scale_notes[o.name] = f"x{_fmt_range(alpha)} {align} (threshold {_fmt_range(theta)})"
            continue
        # "int": its output is a multi-bit input of the next conv, shifted right by ``r``
        alpha = np.where(m > 0, qmax / np.maximum(m, 1e-300), 1.0)
        r = np.asarray(int_shifts.get(o.name, 0), dtype=np.int64) * np.ones(w.shape[0], dtype=np.int64)
        in_scale[o.name] = alpha / 2.0 ** r
        scale_notes[o.name] = f"x{_fmt_range(alpha)}" + (f" >>{_fmt_range(r)}" if r.any() else "")
        o.params["weight"] = w * alpha[:, None, None, None]
        o.params["bias"] = b * alpha / 2.0 ** r
        if r.any():
            o.params["shift"] = -r

    # 2. residual streams: effective weights on each writer's integer input, then one scale per channel.
    segments: dict[int, list] = {}
    for o in g.ops:
        if o.kind == "conv" and o.attrs["role"] == "stream":
            o.params["weight"] = _on_integer_input(o, in_scale)
            segments.setdefault(o.attrs["segment"], []).append(o)
    stream_scale: dict[int, np.ndarray] = {}
    for seg, writers in segments.items():
        C = writers[0].shape[0]
        need = np.zeros(C)
        # The spike writers set the scale: the one with the smallest weights still gets every
        # weight bit. Multi-bit writers (first conv, pwconv2) reach it with a rounding right shift.
        spike_writers = [o for o in writers if o.attrs["in_kind"] == "spike"] or writers
        for o in spike_writers:
            m = _rowmax(o.params["weight"])
            need = np.maximum(need, np.where(m > 0, qmax / np.maximum(m, 1e-300), 0))
        need = np.where(need > 0, need, 1.0) * fine
        sigma = 2.0 ** np.clip(_ceil(np.log2(need)), 0, MAX_SCALE_LOG2)
        stream_scale[seg] = sigma
        for o in writers:
            m = _rowmax(o.params["weight"]) * sigma
            k = np.where(m > 0, _ceil(np.log2(np.maximum(m, 1e-300) / qmax)), 0).astype(np.int64)
            if o.attrs["in_kind"] == "spike":
                k = np.maximum(k, 0)
            k = np.clip(k, -30, 30)
            o.params["weight"] = o.params["weight"] * (sigma / 2.0 ** k)[:, None, None, None]
            o.params["bias"] = o.params["bias"] * sigma
            o.params["shift"] = k
            scale_notes[o.name] = f"stream x{_fmt_range(sigma)}, shift {int(k.min())}..{int(k.max())}"
    # readers of each stream: threshold v_th * sigma
    for o in g.ops:
        if o.kind == "lif" and "segment" in o.attrs:
            sigma = stream_scale[o.attrs["segment"]]
            o.params["threshold"] = np.asarray(o.params["threshold"], dtype=np.float64) * sigma
    # 3. head: one scale for every class and both heads (argmax needs a common scale).
    h = g.ops[-1]
    m = float(np.abs(h.params["weight"]).max()) or 1.0
    lam = qmax / m
    h.params["weight"] = h.params["weight"] * lam
    h.params["bias"] = h.params["bias"] * lam
    g.meta["logit_scale"] = lam
    g.meta["stream_scales"] = {str(k): [float(v) for v in s] for k, s in stream_scale.items()}
    g.meta["scale_notes"] = scale_notes
    g.meta["weight_bits"] = int(weight_bits)
    for o in g.ops:
        if o.kind == "lif":
            th = np.asarray(o.params["threshold"], dtype=np.float64)
            if not np.all(th == np.round(th)):
                raise AssertionError(f"{o.name}: threshold not integral after rescale")
    validate(g, integer=False)
    return g


INT_OUTPUT_BITS = 16   # a conv's integer output that another conv multiplies: proven within one DSP operand


def int_output_shifts(g0: Graph, T: int | None = None, *, bits: int = INT_OUTPUT_BITS,
                      weight_bits: int, **scale) -> tuple[Graph, dict[str, np.ndarray]]:
    """The scaled graph (:func:`rescale`) whose convs with an integer output that another conv
    reads (role ``int``) shift their readout right, per channel, just enough that the range
    analysis proves the output within ``bits`` signed bits for any input; and those shifts.

    Exact integers would make a chain of such convs (a split RepConv: a 1x1 on spikes, then a
    depthwise conv on its integers) grow by a weight's width and a fan-in per stage, and the
    multiplier of the conv after it takes ``bits``. Proven, not calibrated, so that no clamp is
    needed (the hardware has one saturation width for the whole program, ``ranges.assign_widths``,
    and these integers would need a narrower one). A shift changes the scale of every conv
    downstream, so the shifts are refined until they stand. No shift where none is needed: every
    such conv of a merged model (a depthwise conv on spikes) keeps its exact integers."""
    from .ranges import analyse

    shifts: dict[str, np.ndarray] = {}
    g1 = rescale(g0, weight_bits=weight_bits, **scale)
    names = [o.name for o in g1.ops if o.kind == "conv" and o.attrs["role"] == "int"]
    if not any(o.attrs["in_kind"] == "int" for o in g1.ops if o.name in names):
        return g1, shifts       # depthwise convs on spikes only: their integers stay small
    for _ in range(4):
        proven = analyse(round_graph(g1, weight_bits), T, limit=10 ** 6)
        new = {}
        for n in names:
            need = np.array([signed_bits(lo, hi) for lo, hi in zip(proven[n]["lo"], proven[n]["hi"])])
            r = np.clip(shifts.get(n, 0) + need - bits, 0, 30).astype(np.int64)
            if r.any():
                new[n] = r
        if new.keys() == shifts.keys() and all(np.array_equal(new[n], shifts[n]) for n in new):
            break
        shifts = new
        g1 = rescale(g0, weight_bits=weight_bits, int_shifts=shifts, **scale)
    return g1, shifts


def int_shifts_of(g1: Graph) -> dict[str, np.ndarray]:
    """The ``int_shifts`` a scaled graph was made with (its role-``int`` convs' right shifts)."""
    return {o.name: -np.asarray(o.params["shift"], dtype=np.int64) for o in g1.ops
            if o.kind == "conv" and o.attrs["role"] == "int" and np.any(np.asarray(o.params["shift"]) < 0)}


def _fmt_range(a) -> str:
    a = np.asarray(a, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    return f"{lo:.4g}" if lo == hi else f"{lo:.4g}..{hi:.4g}"


def round_graph(g1: Graph, weight_bits: int) -> Graph:
    """Round weights/biases (half to even) and make every parameter an integer array."""
    g = g1.copy()
    qmax = _qmax(weight_bits)
    clipped = {}
    for o in g.ops:
        for k, v in list(o.params.items()):
            r = np.rint(np.asarray(v, dtype=np.float64))
            if k == "weight":
                n = int((np.abs(r) > qmax).sum())
                if n:
                    clipped[o.name] = n
                r = np.clip(r, -qmax, qmax)
            o.params[k] = r.astype(np.int64)
    g.meta["clipped_weights"] = clipped
    validate(g, integer=True)
    return g


def quantize_graph(g0: Graph, calib: np.ndarray, *, weight_bits: int = 8, input_bits: int = 8,
                   T: int | None = None, max_bits: int = DEFAULT_MAX_BITS,
                   stream_bits: int = DEFAULT_STREAM_BITS) -> tuple[Graph, Graph]:
    """The whole flow on a lowered graph; returns (scaled float graph, integer IR). ``max_bits``:
    no declared width exceeds it (activations saturate where the proof would exceed it);
    ``stream_bits``: activations are kept this narrow where calibration allows."""
    if not 4 <= int(weight_bits) <= 16:
        raise SpikegateError(f"--weight-bits must be in 4..16, not {weight_bits}")
    if not 2 <= int(input_bits) <= 16:
        raise SpikegateError(f"input bits must be in 2..16, not {input_bits}")
    s_in = choose_input_scale(calib, input_bits)
    g1, _ = int_output_shifts(g0, T, input_scale=s_in, input_bits=input_bits, weight_bits=weight_bits)
    g2 = round_graph(g1, weight_bits)
    if T:
        g2.meta["T"] = int(T)
    g2 = declare_widths(g2, calib, max_bits=max_bits, stream_bits=stream_bits)
    return g1, g2
