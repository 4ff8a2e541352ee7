"""pytest wrapper: :class:`MultibitLinearUnit` on Icarus and Verilator (cocotb half:
``tb_multibit.py``): the first layer's 7x7 stride-2 pad-3 conv and a 1x1 (pwconv2-like) layer."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from spikegate.quantize.intops import signed_bits
from spikegate.rtl_tests._runner import run_design
from spikegate.rtl_tests.tb_multibit import design_from_config

DESIGNS = {
    # name: geometry, lanes, weight bits, input bits
    "k7s2p3-l2": (dict(cin=3, cout=3, height=7, width=6, kernel=7, stride=2, padding=3), 2, 6, 8),
    "k1-l1": (dict(cin=5, cout=3, height=3, width=3, kernel=1), 1, 8, 10),
}
CASES = [("icarus", "k7s2p3-l2"), ("icarus", "k1-l1"), ("verilator", "k7s2p3-l2")]


def make_config(name):
    geom, lanes, wbits, xbits = DESIGNS[name]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    k = geom["kernel"]
    shape = (geom["cout"], geom["cin"], k, k)
    lo, hi = -(1 << (wbits - 1)), (1 << (wbits - 1)) - 1
    w = rng.integers(lo, hi + 1, size=shape)
    w.reshape(-1)[:4] = [lo, hi, lo, hi]
    shift = rng.integers(0, 3, size=geom["cout"])
    bias = rng.integers(-1000, 1000, size=geom["cout"])
    bound = int(np.abs(w).reshape(shape[0], -1).sum(1).max()) * (1 << (xbits - 1))
    return dict(geom, in_bits=xbits, weights=w.tolist(), weight_bits=wbits,
                acc_bits=signed_bits(-bound, bound),
                out_bits=signed_bits(-(bound << 2) - 1000, (bound << 2) + 1000),
                shift=shift.tolist(), bias=bias.tolist(), lanes=lanes)


@pytest.mark.parametrize("sim,name", CASES)
def test_multibit_linear_unit(sim, name):
    cfg = make_config(name)
    run_design(design_from_config(cfg), "multibit", "tb_multibit", sim, f"hw-multibit-{name}", config=cfg)
