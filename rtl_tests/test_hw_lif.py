"""pytest wrapper: :class:`LIFUnit` on Icarus and Verilator (cocotb half: ``tb_lif.py``)."""

from __future__ import annotations

import pytest

from spikegate.hw.lif_unit import LIFUnit
from spikegate.rtl_tests._runner import run_design

DESIGNS = {
    # 3 channels x 5 neurons, 8-bit currents; thresholds at both ends of their 7-bit range.
    "c3x5": dict(channels=3, size=5, timesteps=4, x_bits=8, v_bits=8,
                 thresholds=[1, 127, 37], threshold_bits=7),
    # One neuron: every update reads the word written the cycle before (read/write hazard).
    "single": dict(channels=1, size=1, timesteps=6, x_bits=4, v_bits=5,
                   thresholds=[3], threshold_bits=2),
}


CASES = [("icarus", "c3x5"), ("icarus", "single"), ("verilator", "c3x5")]


@pytest.mark.parametrize("sim,design", CASES)
def test_lif_unit(sim, design):
    cfg = DESIGNS[design]
    run_design(LIFUnit(**cfg), "lif_unit", "tb_lif", sim, f"hw-lif-{design}", config=cfg)
