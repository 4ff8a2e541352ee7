"""pytest wrapper: :class:`ResidualAdder` on Icarus and Verilator (cocotb half: ``tb_residual.py``)."""

from __future__ import annotations

import pytest

from spikegate.hw.residual import ResidualAdder
from spikegate.rtl_tests._runner import run_design

DESIGNS = {
    "a12b12s0": dict(a_bits=12, b_bits=12, out_bits=13, shift=0),     # intops.add
    "a10b6s3": dict(a_bits=10, b_bits=6, out_bits=11, shift=3),
}
CASES = [("icarus", "a12b12s0"), ("icarus", "a10b6s3"), ("verilator", "a10b6s3")]


@pytest.mark.parametrize("sim,name", CASES)
def test_residual_adder(sim, name):
    cfg = DESIGNS[name]
    run_design(ResidualAdder(**cfg), "residual", "tb_residual", sim, f"hw-residual-{name}",
               config=cfg)
