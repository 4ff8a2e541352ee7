"""Whole networks with their weights in external memory (issue 24), in RTL simulation.

A small network is compiled for a target whose block RAM cannot hold its weights but which has
external memory (``tests/small_models.py: external_target``, as ``tests/test_external_weights.py``), so the compiler streams
every layer's weights with a WLOAD from the packed image ``sdram.bin``; the build's Verilog (the
accelerator with the WLOAD engine and the burst port ``mem``) runs under ``spikegate verify``, whose
testbench serves the port from ``sdram.bin`` (``rtl_tests/burst_memory.py``):

* deterministic memory (the cycle model's): logits and every LIF layer's spike map bit-exact with the
  golden model, and the measured cycles equal to the ISS's prediction, WLOADs included, on Icarus
  and Verilator, with the testbench's idle pixels and back-pressure on;
* random memory (latency, gaps between beats, stalled commands from the seed): still bit-exact,
  and slower than the deterministic run (so the random timing did reach the core).
"""

from __future__ import annotations

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import numpy as np  # noqa: E402

from spikegate.compiler import cycle_model  # noqa: E402
from spikegate.compiler.build import compile_ir, read_build  # noqa: E402
from spikegate.hw.accelerator import Accelerator, burst_port  # noqa: E402
from spikegate.machine.program import OP_WLOAD  # noqa: E402
from spikegate.quantize.irfile import save_ir  # noqa: E402
from spikegate.quantize.lower import lower  # noqa: E402
from spikegate.quantize.quantizer import quantize_graph  # noqa: E402
from spikegate.verify import verify  # noqa: E402

from small_models import calibrated_model, external_target, images, tiny_cfg  # noqa: E402

LANES = 3
STALLS = {"idle": 0.2, "backpressure": 0.3}


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """A two-step fpga-tiny network forced into external memory at 3 lanes, its build and images."""
    cfg = tiny_cfg(T=2)
    x = images(cfg, 2, 1)
    _, g = quantize_graph(lower(calibrated_model(cfg, 0)), x)
    d = tmp_path_factory.mktemp("ext")
    save_ir(g, str(d / "m.sgir"))
    np.save(d / "x.npy", x)
    out = str(d / "build")
    rep = compile_ir(str(d / "m.sgir"), external_target(g, LANES), LANES, out, predict_samples=0)
    assert rep["weights"]["where"] == "sdram" and rep["verilog"] == "accelerator.v"
    return out, str(d / "x.npy")


def test_core_port_is_the_cycle_models(build):
    """hw/ cannot import the compiler: its burst port must be the one the cycle model plans with."""
    _, _, prog = read_build(build[0])
    assert prog.external and any(i.opcode == OP_WLOAD for i in prog.instrs)
    assert burst_port(prog) == cycle_model.external_port(prog)
    core = Accelerator(prog, weights="sdram")
    core._MustUse__silence = True       # (not elaborated here: the builds' Verilog is)
    assert "mem" in core.signature.members and "weights" not in core.signature.members
    for weights in ("rom", "spram"):
        with pytest.raises(ValueError, match="external memory"):
            Accelerator(prog, weights=weights)


@pytest.mark.parametrize("sim", ["icarus", "verilator"])
def test_deterministic_memory_bit_exact_cycle_exact(build, sim):
    r = verify(*build, sim=sim, seed=5, **STALLS)
    assert r["memory"] == "deterministic" and r["samples"] == 2
    assert r["bit_exact"], r["mismatches"]
    assert r["cycles"] == r["predicted_cycles"], "measured cycles (RTL) != the cycle model's, WLOADs included"
    assert sum(r["idle_cycles"]) > 0 and sum(r["backpressure_cycles"]) > 0


def test_random_memory_bit_exact(build):
    r = verify(*build, sim="verilator", seed=7, memory="random", **STALLS)
    assert r["memory"] == "random" and r["bit_exact"], r["mismatches"]
    assert all(c != p for c, p in zip(r["cycles"], r["predicted_cycles"])), "the random timing never showed"
