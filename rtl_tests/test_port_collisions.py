"""ACT and SPK are marked ``no_rw_check`` (``hw/accelerator.py``): Yosys then adds no logic to order
a read and a write of the same word in one cycle, so on an FPGA such a read would return either
word. The design never does it; this test watches the ports, cycle by cycle, while whole programs
using every instruction (and a real model) run in Amaranth's simulator, and fails on any cycle
where a read of ACT or SPK meets a write of the same word."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

from spikeforge.compiler import iss
from spikeforge.hw.accelerator import Accelerator

from .sfa_programs import model_program, random_program


def _programs():
    prog, px = random_program(11, lanes=1, T=3, cin=2, size=6, dw_stride=2, classes=6)
    yield "random-l1-t3", prog, px[0]
    prog, px = random_program(12, lanes=4, T=2, cin=1, size=7, dw_stride=1, classes=10, c2=6)
    yield "random-l4-t2", prog, px[0]
    prog, _, _, pixels = model_program("fpga-tiny", lanes=4, T=1, n_images=1)
    yield "fpga-tiny-l4", prog, np.asarray(pixels)[0]


@pytest.mark.slow
@pytest.mark.parametrize("name,prog,pixels", list(_programs()), ids=lambda v: v if isinstance(v, str) else "")
def test_act_and_spk_reads_never_meet_a_write_of_their_word(name, prog, pixels):
    acc = Accelerator(prog)
    sim = Simulator(acc)            # elaborates the design: acc.rw_ports are the simulated ports
    sim.add_clock(1e-6)
    ports = acc.rw_ports
    watched = [s for mem in ("act", "spk") for port in ports[mem] for s in (port.en, port.addr)]
    seen = {"act": [0, 0], "spk": [0, 0]}      # reads, writes
    collisions = []
    logits = []

    async def monitor(ctx):
        cycle = 0
        async for _, _, *v in ctx.tick().sample(*watched):
            for i, mem in enumerate(("act", "spk")):
                r_en, r_addr, w_en, w_addr = v[4 * i:4 * i + 4]
                seen[mem][0] += r_en
                seen[mem][1] += w_en
                if r_en and w_en and r_addr == w_addr:
                    collisions.append((mem, cycle, r_addr))
            cycle += 1

    async def host(ctx):
        for value in np.asarray(pixels).ravel():
            ctx.set(acc.pixels.payload, int(value))
            ctx.set(acc.pixels.valid, 1)
            await ctx.tick().until(acc.pixels.ready)
        ctx.set(acc.pixels.valid, 0)
        ctx.set(acc.logits.ready, 1)
        while True:
            _, _, valid, payload = await ctx.tick().sample(acc.logits.valid, acc.logits.payload)
            if valid:
                logits.append(payload.value)
                if payload.last:
                    break

    sim.add_process(monitor)
    sim.add_testbench(host)
    sim.run_until(1e-6 * 200_000)
    want = iss.run(prog, np.asarray(pixels)).logits
    assert logits == [int(x) for x in want], "the run itself went wrong"
    assert not collisions, f"{name}: a read met a write of its word: {collisions[:5]}"
    assert all(r > 0 and w > 0 for r, w in seen.values()), seen     # both memories were exercised
