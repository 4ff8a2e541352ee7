"""Static range analysis: proves each accumulator, membrane and output fits its width, for any input.

Bounds are per channel and worst case over every input the IR admits (any pixels within the input
width, any spike pattern), so the widths it derives hold for all inputs, not just calibration data.
The analysis is the one definition of every bit width in the RTL.
"""

from __future__ import annotations

import numpy as np

from spikegate.errors import SpikegateError

from .graph import Graph, Op
from .intops import EXACT_FLOAT64, signed_bits

MAX_WIDTH = 48  # anything wider is refused: nothing here needs it, and float64 exactness needs < 53


class RangeError(SpikegateError):
    """A declared width is smaller than the range analysis can prove, or a width is unreasonable."""


def _conv_bounds(o: Op, lo: np.ndarray, hi: np.ndarray):
    """Per-output-channel bounds of ``sum w * x`` when input channel j lies in ``[lo[j], hi[j]]``.

    Zero padding means any tap may see 0, so each term's range includes 0. Evaluated in int64
    when every product provably fits (|w| < 2**16, |x| < 2**31), otherwise with Python integers.
    """
    g = o.attrs["groups"]
    w = np.asarray(o.params["weight"])
    cout, cpg = w.shape[:2]
    opg = cout // g
    small = np.abs(w).max(initial=0) < (1 << 16) and max(max(abs(int(v)) for v in lo),
                                                       max(abs(int(v)) for v in hi)) < (1 << 31)
    dt = np.int64 if small else object
    wv = w.astype(dt).reshape(cout, cpg, -1)
    # input-channel bounds seen by each output channel: [cout, cpg, 1]
    grp = np.arange(cout) // opg
    idx = grp[:, None] * cpg + np.arange(cpg)[None, :]
    l = np.asarray(lo, dtype=object)[idx].astype(dt)[..., None]
    h = np.asarray(hi, dtype=object)[idx].astype(dt)[..., None]
    a, b = wv * l, wv * h
    zero = np.zeros_like(a)
    alo = np.minimum(np.minimum(a, b), zero).reshape(cout, -1).sum(1)
    ahi = np.maximum(np.maximum(a, b), zero).reshape(cout, -1).sum(1)
    mag = (np.abs(wv) * np.maximum(np.abs(l), np.abs(h))).reshape(cout, -1).sum(1)
    return alo.astype(object), ahi.astype(object), mag.astype(object)


def _shift(v: int, s: int) -> int:
    """:func:`intops.shift_round` on one Python int (monotonic, so it maps bounds to bounds)."""
    v = int(v)
    return v << s if s >= 0 else (v + (1 << (-s - 1))) >> -s


def analyse(g: Graph, T: int | None = None) -> dict[str, dict]:
    """Return ``{op name: {"widths": {...}, "lo": [...], "hi": [...], ...}}`` for an integer graph."""
    T = int(T or g.meta.get("T", 1))
    rng: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    result: dict[str, dict] = {}
    for o in g.ops:
        widths: dict[str, int] = {}
        extra = {}
        C = o.shape[0]
        if o.kind == "quant_input":
            b = int(o.attrs["bits"])
            lo = np.full(C, -(1 << (b - 1)), dtype=object)
            hi = np.full(C, (1 << (b - 1)) - 1, dtype=object)
            widths["out"] = b
        elif o.kind == "conv":
            ilo, ihi = rng[o.inputs[0]]
            alo, ahi, mag = _conv_bounds(o, ilo, ihi)
            sh = [int(s) for s in o.params["shift"]]
            bias = [int(b) for b in o.params["bias"]]
            lo = np.array([_shift(alo[c], sh[c]) + bias[c] for c in range(C)], dtype=object)
            hi = np.array([_shift(ahi[c], sh[c]) + bias[c] for c in range(C)], dtype=object)
            widths["acc"] = signed_bits(min(alo), max(ahi))
            widths["out"] = signed_bits(min(lo), max(hi))
            extra["magnitude_bound"] = int(max(mag)) if len(mag) else 0
        elif o.kind == "lif":
            xlo, xhi = rng[o.inputs[0]]
            th = [int(t) for t in o.params["threshold"]]
            vlo = [min(0, int(x)) for x in xlo]
            vhi = [max(0, min(th[c] - 1, int(xhi[c]))) for c in range(C)]
            hlo = min(vlo[c] + int(xlo[c]) for c in range(C))
            hhi = max(vhi[c] + int(xhi[c]) for c in range(C))
            widths["membrane"] = max(signed_bits(hlo, hhi), signed_bits(0, 2 * max(th)))
            widths["state"] = signed_bits(min(vlo), max(vhi))
            lo, hi = np.zeros(C, dtype=object), np.ones(C, dtype=object)
        elif o.kind == "add":
            (alo, ahi), (blo, bhi) = rng[o.inputs[0]], rng[o.inputs[1]]
            lo, hi = alo + blo, ahi + bhi
            widths["out"] = signed_bits(min(lo), max(hi))
        elif o.kind == "attention":
            N = o.shape[1] * o.shape[2]
            d = C // o.attrs["heads"]
            widths["kv"] = signed_bits(0, N)
            lo, hi = np.zeros(C, dtype=object), np.full(C, d * N, dtype=object)
            widths["out"] = signed_bits(0, d * N)
        elif o.kind == "spatial_sum":
            src = next(p for p in g.ops if p.name == o.inputs[0])
            N = int(np.prod(src.shape[1:]))
            ilo, ihi = rng[o.inputs[0]]
            lo, hi = ilo * N, ihi * N
            widths["out"] = signed_bits(min(lo), max(hi))
        elif o.kind == "head":
            w = np.asarray(o.params["weight"], dtype=object)
            b = np.asarray(o.params["bias"], dtype=object)
            nh, K, Cin = w.shape
            lo = np.zeros(K, dtype=object)
            hi = np.zeros(K, dtype=object)
            for h in range(nh):
                for k in range(K):
                    lo[k] += T * (sum(min(0, int(v)) for v in w[h, k]) + int(b[h, k]))
                    hi[k] += T * (sum(max(0, int(v)) for v in w[h, k]) + int(b[h, k]))
            widths["out"] = signed_bits(min(lo), max(hi))
            # Any partial sum while accumulating (some steps, some classes' biases not yet added)
            # and the merged-heads weights stay within the sums of the negative / positive parts.
            neg = sum(T * (int(np.minimum(w[h], 0).sum(axis=1).min()) + min(0, int(b[h].min()))) for h in range(nh))
            pos = sum(T * (int(np.maximum(w[h], 0).sum(axis=1).max()) + max(0, int(b[h].max()))) for h in range(nh))
            widths["acc"] = max(widths["out"], signed_bits(neg, pos))
            extra["T"] = T
        else:
            raise AssertionError(o.kind)
        for k, v in widths.items():
            if v > MAX_WIDTH:
                raise RangeError(f"op {o.name}: its {k} needs {v} bits, more than the {MAX_WIDTH} spikegate "
                                 "supports; use fewer weight bits or a smaller model")
        rng[o.name] = (lo, hi)
        result[o.name] = {"widths": widths, "lo": [int(v) for v in lo], "hi": [int(v) for v in hi], **extra}
        if extra.get("magnitude_bound", 0) >= EXACT_FLOAT64:
            raise RangeError(f"op {o.name}: accumulator magnitude bound exceeds 2**53")
    return result


def assign_widths(g: Graph, T: int | None = None) -> Graph:
    """Pass: declare every op's widths from the analysis (returns a new graph)."""
    g = g.copy()
    res = analyse(g, T)
    for o in g.ops:
        o.widths = dict(res[o.name]["widths"])
        if "magnitude_bound" in res[o.name]:
            o.attrs["magnitude_bound"] = res[o.name]["magnitude_bound"]
    return g


def check_widths(g: Graph, where: str = "") -> None:
    """Refuse a graph whose declared widths are smaller than the analysis proves necessary."""
    res = analyse(g)
    for o in g.ops:
        need = res[o.name]["widths"]
        for k, v in need.items():
            have = o.widths.get(k)
            if have is None:
                raise RangeError(f"{where}op {o.name}: no declared {k} width (the analysis needs {v} bits)")
            if have < v:
                raise RangeError(f"{where}op {o.name}: declares {k} width {have} bits but the range analysis "
                                 f"needs {v}; a value could wrap around")
            if have > MAX_WIDTH:
                raise RangeError(f"{where}op {o.name}: declared {k} width {have} exceeds {MAX_WIDTH} bits")
