"""pytest wrapper: :class:`SpikeEventEncoder` on Icarus and Verilator (cocotb half: ``tb_encoder.py``)."""

from __future__ import annotations

import pytest

from spikegate.hw.event_encoder import SpikeEventEncoder
from spikegate.rtl_tests._runner import run_design

DESIGNS = {
    "c3h4w7": dict(channels=3, height=4, width=7),
    "c2h1w1": dict(channels=2, height=1, width=1),    # a row of one column: every row is 0 or 1
}
CASES = [("icarus", "c3h4w7"), ("icarus", "c2h1w1"), ("verilator", "c3h4w7")]


@pytest.mark.parametrize("sim,design", CASES)
def test_event_encoder(sim, design):
    cfg = DESIGNS[design]
    run_design(SpikeEventEncoder(**cfg), "event_encoder", "tb_encoder", sim, f"hw-encoder-{design}", config=cfg)
