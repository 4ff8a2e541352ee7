"""ACT and SPK are marked ``no_rw_check`` (``hw/accel_memories.py``): Yosys then adds no logic to order
a read and a write of the same word in one cycle, so on an FPGA such a read would return either
word. The design never does it; this test watches the ports, cycle by cycle, while whole programs
using every instruction (and a real model) run in Amaranth's simulator, and fails on any cycle
where a read of ACT or SPK meets a write of the same word."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikegate.compiler import iss
from spikegate.hw.accelerator import Accelerator

from .sfa_programs import model_program, random_program


def _programs():
    prog, px = random_program(11, lanes=1, T=3, cin=2, size=6, dw_stride=2, classes=6)
    yield "random-l1-t3", prog, px[0]
    prog, px = random_program(12, lanes=4, T=2, cin=1, size=7, dw_stride=1, classes=10, c2=6)
    yield "random-l4-t2", prog, px[0]
    prog, _, _, pixels = model_program("fpga-tiny", lanes=4, T=1, n_images=1)
    yield "fpga-tiny-l4", prog, np.asarray(pixels)[0]


def _run_watching(prog, pixels, watch):
    """Run ``prog`` on ``pixels`` in Amaranth's simulator, as a host would (pixels in, logits out),
    and return the values of ``watch(accelerator)`` (signals and expressions, known once the
    design is elaborated) in every cycle; the logits must be the ISS's. The run ends with the last
    logit, within a budget of 3x the cycle model's prediction (+ 1000): a hang fails at once."""
    want = iss.run(prog, np.asarray(pixels))
    budget = 3 * want.cycles + 1000
    acc = Accelerator(prog)
    sim = Simulator(acc)            # elaborates the design: acc.rw_ports, acc.acc_ports are set
    sim.add_clock(1e-6)
    watched = watch(acc)
    trace = []
    logits = []

    async def monitor(ctx):
        async for _, _, *v in ctx.tick().sample(*watched):
            trace.append(v)

    async def host(ctx):
        waited = 0

        async def tick(*signals):       # one clock edge, counted against the budget
            nonlocal waited
            waited += 1
            if waited > budget:
                raise AssertionError(f"TIMEOUT: the inference not done within {budget} cycles (3x the "
                                     f"cycle model's {want.cycles} + 1000); {len(logits)} logits out")
            return (await ctx.tick().sample(*signals))[2:]

        for value in np.asarray(pixels).ravel():
            ctx.set(acc.pixels.payload, int(value))
            ctx.set(acc.pixels.valid, 1)
            while not (await tick(acc.pixels.ready))[0]:
                pass
        ctx.set(acc.pixels.valid, 0)
        ctx.set(acc.logits.ready, 1)
        while True:
            valid, payload = await tick(acc.logits.valid, acc.logits.payload)
            if valid:
                logits.append(payload.value)
                if payload.last:
                    break

    sim.add_process(monitor)
    sim.add_testbench(host)
    sim.run()
    assert logits == [int(x) for x in want.logits], "the run itself went wrong"
    return trace


@pytest.mark.slow
@pytest.mark.parametrize("name,prog,pixels", list(_programs()), ids=lambda v: v if isinstance(v, str) else "")
def test_act_and_spk_reads_never_meet_a_write_of_their_word(name, prog, pixels):
    trace = _run_watching(prog, pixels, lambda acc: [
        s for mem in ("act", "spk") for port in acc.rw_ports[mem] for s in (port.en, port.addr)])
    seen = {"act": [0, 0], "spk": [0, 0]}      # reads, writes
    collisions = []
    for cycle, v in enumerate(trace):
        for i, mem in enumerate(("act", "spk")):
            r_en, r_addr, w_en, w_addr = v[4 * i:4 * i + 4]
            seen[mem][0] += r_en
            seen[mem][1] += w_en
            if r_en and w_en and r_addr == w_addr:
                collisions.append((mem, cycle, r_addr))
    assert not collisions, f"{name}: a read met a write of its word: {collisions[:5]}"
    assert all(r > 0 and w > 0 for r, w in seen.values()), seen     # both memories were exercised


def _deep_programs():
    return [(name, prog, px) for name, prog, px in _programs() if prog.lanes > 1]


@pytest.mark.slow
@pytest.mark.parametrize("name,prog,pixels", _deep_programs(), ids=lambda v: v if isinstance(v, str) else "")
def test_acc_reads_meeting_a_write_are_forwarded_taps(name, prog, pixels):
    """With more than one lane ACC is ``no_rw_check`` and its read ports are not transparent
    (``hw/accel_memories.py``): on an FPGA a read that meets a write of its word returns either word.
    That is sound only where the word read is not used: a CONV tap's read (TW, not the readout's)
    whose lane adds to a forwarded result instead (T4's ``t4_sel`` nonzero, two cycles later), or
    a read no engine uses (CONV/HEAD holds the port and no tap is in TW, or the readout reads a lane
    whose word RS does not select). This test fails on any other read that meets a write of its
    word, and checks that the forward case happens."""
    def watch(acc):
        lanes, is_conv, conv = acc.acc_ports
        probe = conv.acc_read_probe
        watched = [is_conv, probe["in_ro"]]
        for (r, w), ro_used, tw_en, t4_sel in zip(lanes, probe["ro_used"], probe["tw_en"], probe["t4_sel"]):
            watched += [r.en, r.addr, w.en, w.addr, ro_used, tw_en, t4_sel]
        return watched

    trace = _run_watching(prog, pixels, watch)
    P = prog.lanes
    bad, forwarded = [], 0
    for c, v in enumerate(trace[:-2]):
        conv_holds, in_ro = v[0], v[1]
        for p in range(P):
            r_en, r_addr, w_en, w_addr, ro_used, tw_en, _ = v[2 + 7 * p: 9 + 7 * p]
            if not (r_en and w_en and r_addr == w_addr):
                continue
            t4_sel = trace[c + 2][2 + 7 * p + 6]
            if conv_holds and in_ro and not ro_used:
                continue                # the readout's read of a lane RS does not select
            if conv_holds and not in_ro and (not tw_en or t4_sel != 0):
                forwarded += bool(tw_en)
            else:
                bad.append((c, p, r_addr))
    assert not bad, f"{name}: an ACC read whose word is used met a write of it (cycle, lane, word): {bad[:5]}"
    assert forwarded > 0, f"{name}: no tap read met a write: the forward this test guards was not exercised"
