"""pytest wrappers: the network's tail on Icarus and Verilator: :class:`SpatialSum`
(``tb_spatial_sum.py``), :class:`HeadAccumulator` (``tb_head.py``), :class:`Argmax`
(``tb_argmax.py``)."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from spikegate.hw.head import Argmax, SpatialSum
from spikegate.quantize.intops import signed_bits
from spikegate.rtl_tests._runner import run_design
from spikegate.rtl_tests.cocotb_util import SIMULATORS
from spikegate.rtl_tests.tb_head import design_from_config as head_from_config

SPATIAL = dict(channels=3, tokens=6, in_bits=8, out_bits=11, map_hw=[2, 3])
ARGMAX = dict(classes=10, logit_bits=9)


def head_config(lanes):
    rng = np.random.default_rng(zlib.crc32(b"head"))
    C, K, T, n_heads, wb = 12, 10, 3, 2, 6
    w = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), size=(n_heads, K, C))
    w[0, 0, :4] = [-(1 << (wb - 1)), (1 << (wb - 1)) - 1, -(1 << (wb - 1)), (1 << (wb - 1)) - 1]
    b = rng.integers(-50, 50, size=(n_heads, K))
    bound = T * (int(np.abs(w).sum(axis=(0, 2)).max()) + int(np.abs(b).sum(axis=0).max()))
    return dict(channels=C, classes=K, timesteps=T, weights=w.tolist(), biases=b.tolist(),
                weight_bits=wb, logit_bits=signed_bits(-bound, bound), lanes=lanes)


@pytest.mark.parametrize("sim", SIMULATORS)
def test_spatial_sum(sim):
    params = {k: v for k, v in SPATIAL.items() if k != "map_hw"}
    run_design(SpatialSum(**params), "spatial_sum", "tb_spatial_sum", sim, "hw-spatial-sum",
               config=SPATIAL)


@pytest.mark.parametrize("sim,lanes", [("icarus", 1), ("icarus", 4), ("verilator", 4)])
def test_head_accumulator(sim, lanes):
    cfg = head_config(lanes)
    run_design(head_from_config(cfg), "head_acc", "tb_head", sim, f"hw-head-l{lanes}", config=cfg)


@pytest.mark.parametrize("sim", SIMULATORS)
def test_argmax(sim):
    run_design(Argmax(**ARGMAX), "argmax", "tb_argmax", sim, "hw-argmax", config=ARGMAX)
