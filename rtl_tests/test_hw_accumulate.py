"""pytest wrapper: :class:`AccumulateEngine` on Icarus and Verilator (cocotb half:
``tb_accumulate.py``), over the conv geometries of the network and 1/2/4 lanes.

Weights are random with the extremes of their width planted (``2**(b-1)-1``, ``-2**(b-1)``),
drawn from a fixed seed per design so that a design's Verilog (and Verilator model) is reused.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from spikegate.quantize.intops import signed_bits
from spikegate.rtl_tests._runner import run_design
from spikegate.rtl_tests.tb_accumulate import design_from_config

GEOMETRIES = {
    # name: geometry, lanes, weight bits
    "k3s1p1-dense-l1": (dict(cin=3, cout=4, height=5, width=6, kernel=3, stride=1, padding=1), 1, 6),
    "k3s2p1-dense-l2": (dict(cin=3, cout=5, height=7, width=6, kernel=3, stride=2, padding=1), 2, 5),
    "k7s1p3-dw-l1": (dict(cin=3, cout=3, height=6, width=7, kernel=7, stride=1, padding=3,
                          depthwise=True), 1, 4),
    "k1s1-dense-l4": (dict(cin=4, cout=6, height=3, width=4, kernel=1), 4, 8),
    "k1s2-dense-l2": (dict(cin=2, cout=4, height=5, width=5, kernel=1, stride=2), 2, 3),
    # every output channel in one chunk: consecutive events update the same words back to back
    "linear-l4": (dict(cin=12, cout=4, height=1, width=1, kernel=1), 4, 8),
}
CASES = [("icarus", name) for name in GEOMETRIES] + \
        [("verilator", "k3s2p1-dense-l2"), ("verilator", "k7s1p3-dw-l1")]


def make_config(name):
    geom, lanes, wbits = GEOMETRIES[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    k = geom["kernel"]
    shape = (geom["cout"], 1 if geom.get("depthwise") else geom["cin"], k, k)
    lo, hi = -(1 << (wbits - 1)), (1 << (wbits - 1)) - 1
    w = rng.integers(lo, hi + 1, size=shape)
    flat = w.reshape(-1)
    flat[rng.choice(flat.size, size=min(4, flat.size), replace=False)] = [lo, hi, lo, hi][:min(4, flat.size)]
    shift = rng.integers(0, 3, size=geom["cout"])
    bias = rng.integers(-100, 100, size=geom["cout"])
    fan = int(np.abs(w).reshape(shape[0], -1).sum(1).max())
    acc_bits = signed_bits(-fan, fan)
    out_bits = signed_bits(-(fan << 2) - 100, (fan << 2) + 100)
    return dict(geom, weights=w.tolist(), weight_bits=wbits, acc_bits=acc_bits, out_bits=out_bits,
                shift=shift.tolist(), bias=bias.tolist(), lanes=lanes)


@pytest.mark.parametrize("sim,name", CASES)
def test_accumulate_engine(sim, name):
    cfg = make_config(name)
    run_design(design_from_config(cfg), "accumulate", "tb_accumulate", sim, f"hw-accumulate-{name}", config=cfg)
