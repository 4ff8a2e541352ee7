"""pytest wrapper: the CONV engine's fire mode (issue 25) alone against the ISS (cocotb half:
``tb_conv_fire.py``).

A CONV with ``fire`` also writes ``SPK[src3 + e] = y_e >= 2 * THRESH[pbase + c]`` beside each ACT
word ``y_e`` it writes (``machine/program.py``; FIRE_ONLY: and writes no ACT word). A hand-made
program (T = 1) fires from a stem CONV (INT input, LANES_CO), a depthwise one (spike input,
LANES_TAP, FIRE_ONLY, its ``dst`` pointing at the live input image, which must stay as it is)
reading those spikes, and a 1x1 OUT_ACCUM one (the word compared is the sum with the old word),
then runs a CONV without fire (which must write no SPK word); each firing CONV's thresholds are set from its outputs so that some
but not all of its elements fire. One lane (the short pipeline) and eight (the deep one, RS/RS2,
with two lane groups, ACT and WMEM in small banks, and saturation: the word compared is the clamped
one), and nine (more than eight: the readout's lane sum split over RS2 and RS3, the threshold
piped beside it). The program runs in the ISS step by step (``iss.execute``); every CONV step's states, cycles
and spike count go to the testbench, which runs the engine in an
:class:`~spikegate.rtl_tests.engine_harness.EngineHarness` on Icarus (small programs: Icarus
builds in a second, Verilator's build would cost more than the run).
"""

from __future__ import annotations

import functools
import pickle

import numpy as np
import pytest

from spikegate.compiler import iss
from spikegate.hw.port_mux import engine_ports
from spikegate.machine.config import MachineConfig
from spikegate.machine.program import FIRE_ONLY, IN_INT, IN_SPIKE, LANES_TAP, OP_CONV, OP_INPUT, Instr
from spikegate.rtl_tests.cocotb_util import run_cocotb, sim_build_dir
from spikegate.rtl_tests.engine_harness import EngineHarness
from spikegate.rtl_tests.sfa_programs import _Builder, random_pixels

# lanes -> (seed, output channels of the dense CONVs, the program's extra fields, harness bank depths)
CASES = {
    1: (31, 5, {}, {}),
    8: (32, 10, dict(sat_bits=9, readout_bits=24, sum_bits=24), dict(wmem_bank_words=16, act_bank_words=64)),
    # more than 8 lanes: the readout's split lane sum (RS3, machine/config.py: split_lane_sum), the
    # threshold piped one stage further; 9 lanes (the cheapest: a group of four pairs and one of a
    # lone word), 12 channels in two lane groups, the depthwise CONV's nine taps over both
    9: (33, 12, dict(sat_bits=9, readout_bits=24, sum_bits=24), dict(wmem_bank_words=16, act_bank_words=64)),
}
SIZE, CIN = 6, 2


def _fire(b: _Builder, ins: Instr, px: np.ndarray, extra: dict) -> int:
    """Make ``ins`` (the last CONV added) fire into a new SPK region, its thresholds (at its
    ``pbase``) the channels' 60th percentile of its outputs on ``px``, halved: about 40% fire."""
    n = ins.cout * ins.ho * ins.wo
    ins.fire, ins.fires, ins.src3 = 1, f"lif{ins.tag}", b.alloc("SPK", n)
    b.thresh += [0] * (len(b.bias) - len(b.thresh))
    state = iss.MachineState.zeros(prog := b.program(num_pixels=px.size, **extra))
    for i in prog.instrs:
        iss.execute(prog, i, state, px)
    y = state.act[ins.dst: ins.dst + n].reshape(ins.cout, -1)
    b.thresh[ins.pbase: ins.pbase + ins.cout] = [max(0, int(np.quantile(row, 0.6)) // 2) for row in y]
    return ins.src3


def fire_program(lanes: int):
    """The program of the module docstring and its image."""
    seed, cout, extra, _ = CASES[lanes]
    b = _Builder(np.random.RandomState(seed), lanes, 1)
    px = random_pixels(1, (CIN, SIZE, SIZE), 8, seed + 1)[0]
    x0 = b.alloc("ACT", px.size)
    b.add(Instr(OP_INPUT, dst=x0, T=1, cin=CIN, h=SIZE, w=SIZE))
    s0, sh0 = b.conv(x0, (CIN, SIZE, SIZE), in_kind=IN_INT, cout=cout, k=3, stride=1, pad=1,
                     shift_range=(-4, -1))
    p0 = _fire(b, b.instrs[-1], px, extra)
    a1, sh1 = b.conv(p0, sh0, in_kind=IN_SPIKE, cout=cout, k=3, stride=1, pad=1, lane_mode=LANES_TAP)
    p1 = _fire(b, b.instrs[-1], px, extra)
    b.instrs[-1].fire, b.instrs[-1].dst = FIRE_ONLY, x0     # (its words: only its spikes are read)
    b.conv(p1, sh1, in_kind=IN_SPIKE, cout=cout, k=1, stride=1, pad=0, dst=s0, shift_range=(-1, 0))
    p2 = _fire(b, b.instrs[-1], px, extra)
    b.conv(p2, sh0, in_kind=IN_SPIKE, cout=cout, k=3, stride=2, pad=1)
    return b.program(num_pixels=px.size, **extra), px


def _state(s: iss.MachineState) -> dict:
    return {"act": s.act.copy(), "spk": s.spk.copy(), "acc": s.acc.copy()}


@functools.lru_cache(maxsize=None)
def conv_steps(lanes: int):
    """The program for ``lanes`` and its CONV steps (``tb_engines.py``'s step records, with the
    spikes each fired: ``MachineState.fired``, 0 without fire)."""
    prog, px = fire_program(lanes)
    state, steps = iss.MachineState.zeros(prog), []
    for pc, ins in enumerate(prog.instrs):
        before = _state(state)
        state.fired = 0
        cycles = iss.execute(prog, ins, state, px)
        if ins.opcode == OP_CONV:
            steps.append({"pc": pc, "image": 0, "opcode": ins.opcode, "before": before, "after": _state(state),
                          "cycles": cycles, "spikes": state.fired})
    return prog, steps


@pytest.mark.parametrize("lanes", sorted(CASES))
def test_fire_program_fires_some(lanes):
    """The premises of the cocotb run: each firing CONV fires some but not all of its elements,
    writes only its SPK region, and the program elaborates CONV's SPK and THRESH ports."""
    prog, steps = conv_steps(lanes)
    fired = [(s, prog.instrs[s["pc"]]) for s in steps if prog.instrs[s["pc"]].fire]
    assert len(fired) == 3 and sum(ins.fire == FIRE_ONLY for _, ins in fired) == 1
    for s, ins in fired:
        if ins.fire == FIRE_ONLY:
            assert np.array_equal(s["before"]["act"], s["after"]["act"])
        n = ins.cout * ins.ho * ins.wo
        assert 0 < s["spikes"] < n, f"{ins.name}: {s['spikes']} of {n} fire"
        changed = np.flatnonzero(s["before"]["spk"] != s["after"]["spk"])
        assert set(changed.tolist()) <= set(range(ins.src3, ins.src3 + n))
    plain = [s for s in steps if not prog.instrs[s["pc"]].fire]
    assert plain and all(np.array_equal(s["before"]["spk"], s["after"]["spk"]) for s in plain)
    cfg = MachineConfig.from_program(prog)
    assert cfg.fires and {"spk_w", "thresh_r"} <= set(engine_ports(cfg, "conv").members)
    if lanes > 1:
        assert any(s["after"]["act"].max() == (1 << (prog.sat_bits - 1)) - 1 for s, _ in fired), "no clamp"


@pytest.mark.parametrize("lanes", sorted(CASES))
def test_conv_fire(lanes):
    prog, steps = conv_steps(lanes)
    harness = EngineHarness(prog, "conv", **CASES[lanes][3])
    build = sim_build_dir(f"engine-conv-fire-l{lanes}", "icarus")
    build.mkdir(parents=True, exist_ok=True)
    path = build / "case.pkl"
    with open(path, "wb") as f:
        pickle.dump({"program": prog, "steps": steps}, f)
    run_cocotb(harness, "engine_top", "spikegate.rtl_tests.tb_conv_fire", "icarus", build,
               config={"case": str(path), "engine": "conv", "rams": harness.rams, "written": harness.written,
                       "streams": []})
