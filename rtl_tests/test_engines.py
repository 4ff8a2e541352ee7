"""pytest wrapper: each accelerator engine alone against the ISS's step (cocotb half: ``tb_engines.py``).

For one lane (the short pipelines) and four (the deep ones, with WMEM in banks of 16 words and ACT
in banks of 64, so that the engines' reads and writes cross banks), a random program
(``sfa_programs.random_program``: every instruction kind, odd shapes, stride-2 depthwise, padding
larger than the kernel) runs in the ISS one step at a time (``iss.execute``) on both of its images;
for every instruction of the engine's opcodes the state before and after it, its cycles and its
stream data go to the testbench in a pickle. The design is the engine in an
:class:`~spikegate.rtl_tests.engine_harness.EngineHarness`, one simulator build per engine, lane
count and simulator (``build/sim/engine-<engine>-l<lanes>-<sim>``), reused between runs.
"""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pytest

from spikegate.compiler import iss
from spikegate.machine.program import OP_INPUT, OP_LIF, OP_OUTPUT
from spikegate.rtl_tests.cocotb_util import SIMULATORS, run_cocotb, sim_build_dir
from spikegate.rtl_tests.engine_harness import ENGINES, EngineHarness
from spikegate.rtl_tests.sfa_programs import random_program

# lanes -> the random program (seed and shape) and the harness' bank depths
PROGRAMS = {
    1: (dict(seed=21, lanes=1, T=3, cin=2, size=6, dw_stride=2, classes=6), {}),
    4: (dict(seed=22, lanes=4, T=2, cin=1, size=7, dw_stride=1, classes=6, c2=6, ca=6, heads=2),
        dict(wmem_bank_words=16, act_bank_words=64)),
}


def _state(s: iss.MachineState) -> dict:
    return {"act": s.act.copy(), "spk": s.spk.copy(), "acc": s.acc.copy()}


@functools.lru_cache(maxsize=None)
def iss_steps(lanes: int):
    """The program for ``lanes`` and every step of it on each of its images: ``pc``, ``image``,
    the states ``before`` and ``after``, ``cycles``, and the step's pixels, logits or spike count."""
    spec, _ = PROGRAMS[lanes]
    spec = dict(spec)
    prog, pixels = random_program(spec.pop("seed"), **spec)
    steps = []
    for i, px in enumerate(pixels):
        state = iss.MachineState.zeros(prog)
        for pc, ins in enumerate(prog.instrs):
            before = _state(state)
            cycles = iss.execute(prog, ins, state, px)
            step = {"pc": pc, "image": i, "opcode": ins.opcode, "before": before, "after": _state(state),
                    "cycles": cycles}
            if ins.opcode == OP_INPUT:
                step["pixels"] = np.asarray(px, dtype=np.int64).reshape(-1)
            if ins.opcode == OP_OUTPUT:
                step["logits"] = state.logits.copy()
            if ins.opcode == OP_LIF:
                step["spikes"] = state.spike_counts[ins.name]
            steps.append(step)
    return prog, steps


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("lanes", sorted(PROGRAMS))
@pytest.mark.parametrize("engine", list(ENGINES))
def test_engine(engine, lanes, sim):
    prog, steps = iss_steps(lanes)
    harness = EngineHarness(prog, engine, **PROGRAMS[lanes][1])
    mine = [s for s in steps if s["opcode"] in harness.opcodes]
    assert mine, f"the program has no instruction for the {engine} engine"
    build = sim_build_dir(f"engine-{engine}-l{lanes}", sim)
    build.mkdir(parents=True, exist_ok=True)
    path = build / "case.pkl"
    with open(path, "wb") as f:
        pickle.dump({"program": prog, "steps": mine}, f)
    streams = [n for n in ("pixels", "logits") if n in harness.signature.members]
    run_cocotb(harness, "engine_top", "spikegate.rtl_tests.tb_engines", sim, build,
               config={"case": str(path), "engine": engine, "rams": harness.rams, "written": harness.written,
                       "streams": streams})
