"""Event inputs end to end: a 5-D event tensor ``[B, T, C, H, W]`` (one frame per time step, as an
event camera's polarity counts arrive) through the golden model, the ISS and the RTL, bit for bit.

The model is a small random Meta-SpikeFormer (``fpga-tiny`` with 2 polarity channels, T = 2,
``sfa_programs.model_program``) compiled for event input (``lower_to_program(..., events=True)``):
its INPUT takes the T frames back to back and the first convolution reads frame t at step t,
where a direct-encoding program reads its one image at every step. The events differ from step to
step, so a program that ignored all frames but one would give other logits (checked).

* golden vs ISS: logits and every LIF's spike count per sample; INPUT's cycles are T*C*H*W.
* RTL (Verilator, ``tb_accelerator.py``): logits equal to the ISS's and the golden model's, each
  LIF's spike count equal, and the measured ``cycles`` equal to the cycle model's prediction
  exactly on back-to-back images (at least it with idle pixels and back-pressure).
"""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pytest

from spikegate.compiler import iss
from spikegate.compiler.build import lower_to_program
from spikegate.hw.accelerator import Accelerator
from spikegate.quantize import golden, intops
from spikegate.rtl_tests.cocotb_util import run_cocotb, sim_build_dir
from spikegate.rtl_tests.sfa_programs import model_program

pytestmark = pytest.mark.xdist_group("events")   # one worker: the model is built once

LANES, T, CHANNELS, SAMPLES = 4, 2, 2, 3
DENSITY = 0.3          # share of (step, polarity, pixel) with an event


@functools.lru_cache(maxsize=None)
def events_case():
    """(program, integer graph, events [B, T, C, H, W], pixels of the same shape, golden logits,
    golden trace)."""
    _, g, _, _ = model_program("fpga-tiny", lanes=LANES, T=T, in_channels=CHANNELS, n_images=1)
    prog = lower_to_program(g, LANES, events=True)
    size = int(g.ops[0].shape[-1])
    rng = np.random.default_rng(20261207)
    events = (rng.random((SAMPLES, T, CHANNELS, size, size)) < DENSITY).astype(np.float32)
    trace: dict = {}
    gold = golden.execute(g, events, trace=trace)
    pixels = intops.quantize_input(events, prog.input_scale, prog.pixel_bits)
    return prog, g, events, np.asarray(pixels, dtype=np.int64), np.asarray(gold, dtype=np.int64), trace


def test_events_golden_equals_iss():
    prog, g, events, pixels, gold, trace = events_case()
    C, H, W = g.ops[0].shape
    assert prog.num_pixels == T * C * H * W and pixels.shape == (SAMPLES, T, C, H, W)
    # the steps differ, and the model sees them: direct encoding of one frame gives other logits
    assert all(not np.array_equal(events[b, 0], events[b, 1]) for b in range(SAMPLES))
    for t in range(T):
        assert not np.array_equal(golden.execute(g, events[:, t]), gold), f"logits ignore all frames but {t}"
    for b in range(SAMPLES):
        r = iss.run(prog, pixels[b])
        assert np.array_equal(r.logits, gold[b]), f"sample {b}: ISS {r.logits.tolist()} != golden {gold[b].tolist()}"
        for name, (spikes, _) in trace.items():
            assert r.spike_counts[name] == int(spikes[:, b].sum()), f"sample {b}: {name} spike count"
        assert r.cycles_per_instr[0] == T * C * H * W, "INPUT does not take every frame"


def test_events_rtl_equals_golden_and_cycle_model():
    prog, _, _, pixels, gold, _ = events_case()
    build = sim_build_dir("accel-events-tiny-l4-t2", "verilator")
    build.mkdir(parents=True, exist_ok=True)
    path = build / "case.pkl"
    cache = {px.reshape(-1).tobytes(): iss.run(prog, px) for px in pixels}
    with open(path, "wb") as f:
        pickle.dump({"program": prog, "pixels": pixels, "golden": gold, "iss": cache}, f)
    run_cocotb(Accelerator(prog), "sfa_top", "spikegate.rtl_tests.tb_accelerator", "verilator", build,
               config={"case": str(path), "images": SAMPLES, "stall_images": 1})
