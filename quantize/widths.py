"""Pass: declare every width of an integer graph, from the range analysis and the calibration data.

:func:`spikegate.quantize.ranges.assign_widths` proves widths for every input. When a deep model's
proof exceeds the width limits (``--max-bits``, and the activation words' preferred
``DEFAULT_STREAM_BITS``), the activations that must saturate need a width chosen from data: this
pass runs the golden model on the calibration images without saturation, records each tensor's
range, lets :func:`~spikegate.quantize.ranges.assign_widths` choose the saturation width from it,
then runs the saturating graph on the same images and records how often each clamp was hit
(``meta["saturation"]``), which ``quantize`` reports.
"""

from __future__ import annotations

import numpy as np

from .golden import execute
from .graph import Graph
from .ranges import DEFAULT_MAX_BITS, DEFAULT_STREAM_BITS, MAX_WIDTH, assign_widths

CALIB_SAMPLES = 16  # calibration images run through the golden model (a deep model is slow)


def _observe(g: Graph, calib: np.ndarray, T: int | None) -> dict:
    observed: dict = {}
    for i in range(0, len(calib), 4):
        execute(g, calib[i:i + 4], T=T, check_widths=False, observed=observed)
    return observed


def saturation_stats(g: Graph, calib: np.ndarray, T: int | None = None) -> dict:
    """``{op: {"count", "values", "bits"}}`` of every saturating op of ``g`` on ``calib``."""
    sat: dict = {}
    if any(o.attrs.get("saturate") for o in g.ops):
        for i in range(0, len(calib), 4):
            execute(g, calib[i:i + 4], T=T, saturations=sat)
    return sat


def declare_widths(g: Graph, calib: np.ndarray | None, *, max_bits: int = DEFAULT_MAX_BITS,
                   stream_bits: int = DEFAULT_STREAM_BITS, T: int | None = None) -> Graph:
    """The graph with every width declared (see the module docstring); ``meta["max_bits"]``,
    and ``meta["saturation"]`` when an op saturates."""
    def observe(proven: dict) -> dict | None:
        # (called only when something must saturate) the unsaturated run needs exact int64: every
        # value below 2**62 (proven widths <= 48 keep the float-path convolutions exact; wider
        # ones take the int64 path)
        widest = max(v for r in proven.values() for v in r["widths"].values())
        if calib is None or not len(calib) or widest > 62:
            return None
        return _observe(g, calib[:CALIB_SAMPLES], T)

    out = assign_widths(g, T, max_bits=max_bits, stream_bits=stream_bits, observe=observe)
    out.meta["max_bits"] = int(max_bits)
    out.meta.pop("saturation", None)
    if calib is not None and len(calib) and any(o.attrs.get("saturate") for o in out.ops):
        out.meta["saturation"] = saturation_stats(out, calib[:CALIB_SAMPLES], T)
    return out


__all__ = ["declare_widths", "saturation_stats", "CALIB_SAMPLES", "MAX_WIDTH"]
