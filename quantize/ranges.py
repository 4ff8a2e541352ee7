"""Static range analysis: proves each accumulator, membrane and output fits its width, for any input.

Bounds are per channel and worst case over every input the IR admits (any pixels within the input
width, any spike pattern), so the widths it derives hold for all inputs, not just calibration data.
The analysis is the one definition of every bit width in the RTL.
"""

from __future__ import annotations

import numpy as np

from spikegate.errors import SpikegateError

from .graph import Graph, Op, saturable
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


# The value before a clamp (``wide``) and an add's convolution operand exist only inside the
# readout that aligns, adds and clamps them (they are never stored); int64 holds them exactly.
WIDE_LIMIT = 62
DEFAULT_MAX_BITS = 32     # --max-bits: no declared width of a quantized model exceeds it
DEFAULT_STREAM_BITS = 24  # activation words are kept this narrow where calibration allows
SAT_MARGIN_BITS = 2       # a saturation width has 4x the calibration data's largest magnitude
MIN_SAT_BITS = 8          # a narrower saturation width would clip nearly everything


def _bounds(g: Graph, o: Op, rng: dict, T: int):
    """The op's ``(lo, hi, widths, extra)`` before any saturation, from its inputs' bounds."""
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
        src = g.op(o.inputs[0])
        N = int(np.prod(src.shape[1:]))
        ilo, ihi = rng[o.inputs[0]]
        lo, hi = ilo * N, ihi * N
        widths["out"] = signed_bits(min(lo), max(hi))
    elif o.kind == "head":
        lo, hi, widths = _head_bounds(o, T)
        extra["T"] = T
    else:
        raise AssertionError(o.kind)
    return lo, hi, widths, extra


def _head_bounds(o: Op, T: int):
    w = np.asarray(o.params["weight"], dtype=object)
    b = np.asarray(o.params["bias"], dtype=object)
    nh, K, Cin = w.shape
    lo = np.zeros(K, dtype=object)
    hi = np.zeros(K, dtype=object)
    for h in range(nh):
        for k in range(K):
            lo[k] += T * (sum(min(0, int(v)) for v in w[h, k]) + int(b[h, k]))
            hi[k] += T * (sum(max(0, int(v)) for v in w[h, k]) + int(b[h, k]))
    widths = {"out": signed_bits(min(lo), max(hi))}
    # Any partial sum while accumulating (some steps, some classes' biases not yet added)
    # and the merged-heads weights stay within the sums of the negative / positive parts.
    neg = sum(T * (int(np.minimum(w[h], 0).sum(axis=1).min()) + min(0, int(b[h].min()))) for h in range(nh))
    pos = sum(T * (int(np.maximum(w[h], 0).sum(axis=1).max()) + max(0, int(b[h].max()))) for h in range(nh))
    widths["acc"] = max(widths["out"], signed_bits(neg, pos))
    return lo, hi, widths


def add_operands(g: Graph) -> set[str]:
    """The convolutions that are an ``add``'s branch (its second input): the hardware adds their
    output to the stream in their readout (``compiler/passes/schedule.py``), so it is never stored
    on its own. (A convolution that is an add's stream, its first input, is stored like any other:
    a downsampling convolution starts the stream the next block adds into.)"""
    return {o.inputs[1] for o in g.ops if o.kind == "add" and g.op(o.inputs[1]).kind == "conv"}


def widest_word(g: Graph) -> int:
    """The widest declared width that ``--max-bits`` limits: every width but the internal ones
    (``wide``, and the ``out`` of an add's convolution operand)."""
    operands = add_operands(g)
    return max(v for o in g.ops for k, v in o.widths.items()
               if k != "wide" and not (k == "out" and o.name in operands))


def _saturated_bounds(C: int, bits: int):
    lim = 1 << (bits - 1)
    return np.full(C, -lim, dtype=object), np.full(C, lim - 1, dtype=object)


def analyse(g: Graph, T: int | None = None, *, sat_bits: int | None = None,
            limit: int = MAX_WIDTH) -> dict[str, dict]:
    """Return ``{op name: {"widths": {...}, "lo": [...], "hi": [...], "saturate": bool, ...}}``.

    Without ``sat_bits`` the graph's own saturations are analysed: an op with
    ``attrs["saturate"]`` is clamped to its declared ``out`` width, and its ``wide`` width is the
    proven width of the value before the clamp. With ``sat_bits`` the analysis decides: every
    saturable op whose proven output width exceeds ``sat_bits`` saturates at ``sat_bits``.
    Bounds of each op come from its inputs' bounds *after* their saturation, so widths stop
    growing with depth at a saturating op. Any width above ``limit`` is refused.
    """
    T = int(T or g.meta.get("T", 1))
    rng: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    result: dict[str, dict] = {}
    operands = add_operands(g)
    for o in g.ops:
        lo, hi, widths, extra = _bounds(g, o, rng, T)
        if sat_bits is not None:
            sat = saturable(g, o) and widths["out"] > sat_bits
            bits = sat_bits
        else:
            sat = bool(o.attrs.get("saturate", False))
            bits = o.widths.get("out")
            if sat and bits is None:
                raise RangeError(f"op {o.name}: saturates but declares no out width")
        if sat:
            widths["wide"] = widths["out"]
            widths["out"] = int(bits)
            lo, hi = _saturated_bounds(len(lo), int(bits))
        for k, v in widths.items():
            cap = WIDE_LIMIT if k == "wide" or (k == "out" and o.name in operands) else limit
            if v > cap:
                raise RangeError(f"op {o.name}: its {k} needs {v} bits, more than the {cap} allowed; "
                                 "use fewer weight bits, a smaller model or a larger --max-bits")
        rng[o.name] = (lo, hi)
        result[o.name] = {"widths": widths, "lo": [int(v) for v in lo], "hi": [int(v) for v in hi],
                          "saturate": sat, **extra}
        if extra.get("magnitude_bound", 0) >= EXACT_FLOAT64:
            raise RangeError(f"op {o.name}: accumulator magnitude bound exceeds 2**53")
    return result


def _declare(g: Graph, res: dict) -> Graph:
    g = g.copy()
    for o in g.ops:
        r = res[o.name]
        o.widths = dict(r["widths"])
        o.attrs.pop("saturate", None)
        if r["saturate"]:
            o.attrs["saturate"] = True
        if "magnitude_bound" in r:
            o.attrs["magnitude_bound"] = r["magnitude_bound"]
    return g


def choose_sat_bits(g: Graph, proven: dict, observed: dict | None, *, stream_bits: int,
                    max_bits: int) -> int:
    """The saturation width: wide enough for the calibration data's largest magnitude at every op
    that must saturate, with :data:`SAT_MARGIN_BITS` to spare, and at least ``stream_bits``; at
    most ``max_bits`` (without calibration data: ``stream_bits``)."""
    need = stream_bits
    for o in g.ops:
        if saturable(g, o) and proven[o.name]["widths"]["out"] > stream_bits and observed and o.name in observed:
            lo, hi = observed[o.name]
            need = max(need, signed_bits(lo, hi) + SAT_MARGIN_BITS)
    return min(need, max_bits)


def assign_widths(g: Graph, T: int | None = None, *, max_bits: int = DEFAULT_MAX_BITS,
                  stream_bits: int = DEFAULT_STREAM_BITS, observe=None,
                  sat_bits: int | None = None) -> Graph:
    """Pass: declare every op's widths (returns a new graph), saturating where needed.

    Where the range analysis proves every width within ``max_bits`` and every saturable output
    within ``stream_bits``, nothing saturates and the widths are the proven ones. Otherwise the
    outputs proven wider than one saturation width ``S`` (:func:`choose_sat_bits`, from the
    calibration ranges ``{op: (lo, hi)}`` that ``observe(proven)`` returns, called only then, with
    the unsaturated analysis; None: no calibration) saturate at ``S``; ``S`` is lowered until
    every width, accumulators and membranes included, is within ``max_bits``. ``sat_bits`` forces
    ``S`` (the fuzzer uses it to make saturating graphs).

    One ``S`` for the whole graph, not one per tensor: the hardware keeps every activation in one
    word of the widest declared width anyway, and one constant clamp is cheaper than a clamp whose
    bound each instruction selects.
    """
    if not 2 <= int(max_bits) <= MAX_WIDTH:
        raise RangeError(f"--max-bits must be in 2..{MAX_WIDTH}, not {max_bits}")
    stream_bits = min(int(stream_bits), int(max_bits))
    g = g.copy()
    for o in g.ops:
        o.attrs.pop("saturate", None)
    if sat_bits is not None:
        return _declare(g, analyse(g, T, sat_bits=int(sat_bits), limit=max_bits))
    proven = analyse(g, T, limit=10 ** 6)
    operands = add_operands(g)
    fits = all(v <= max_bits for n, r in proven.items() for k, v in r["widths"].items()
               if not (k == "out" and n in operands)) and \
        all(proven[o.name]["widths"]["out"] <= stream_bits for o in g.ops if saturable(g, o))
    if fits:
        return _declare(g, proven)
    observed = observe(proven) if observe is not None else None
    S = choose_sat_bits(g, proven, observed, stream_bits=stream_bits, max_bits=max_bits)
    first = None
    for bits in range(S, MIN_SAT_BITS - 1, -1):
        try:
            return _declare(g, analyse(g, T, sat_bits=bits, limit=max_bits))
        except RangeError as e:
            first = first or e
    raise RangeError(f"{first} (saturating the activations at any width down to {MIN_SAT_BITS} bits "
                     "does not help)") from None


def check_widths(g: Graph, where: str = "") -> None:
    """Refuse a graph whose declared widths are smaller than the analysis proves necessary."""
    res = analyse(g)
    operands = add_operands(g)
    for o in g.ops:
        need = res[o.name]["widths"]
        for k, v in need.items():
            have = o.widths.get(k)
            if have is None:
                raise RangeError(f"{where}op {o.name}: no declared {k} width (the analysis needs {v} bits)")
            if have < v:
                raise RangeError(f"{where}op {o.name}: declares {k} width {have} bits but the range analysis "
                                 f"needs {v}; a value could wrap around")
            cap = WIDE_LIMIT if k == "wide" or (k == "out" and o.name in operands) else MAX_WIDTH
            if have > cap:
                raise RangeError(f"{where}op {o.name}: declared {k} width {have} exceeds {cap} bits")
