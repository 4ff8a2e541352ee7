"""pytest wrapper: :class:`AttentionUnit` on Icarus and Verilator (cocotb half: ``tb_attention.py``)."""

from __future__ import annotations

import pytest

from spikegate.hw.attention import AttentionUnit
from spikegate.rtl_tests._runner import run_design
from spikegate.rtl_tests.tb_attention import split_config

DESIGNS = {
    "h2n6d4t2": dict(heads=2, tokens=6, head_dim=4, timesteps=2, map_hw=[3, 2]),
    "h1n9d3t3": dict(heads=1, tokens=9, head_dim=3, timesteps=3, map_hw=[3, 3]),
}
CASES = [("icarus", "h2n6d4t2"), ("icarus", "h1n9d3t3"), ("verilator", "h2n6d4t2")]


@pytest.mark.parametrize("sim,name", CASES)
def test_attention_unit(sim, name):
    cfg = DESIGNS[name]
    params, _ = split_config(cfg)
    run_design(AttentionUnit(**params), "attention", "tb_attention", sim, f"hw-attention-{name}",
               config=cfg)
