"""``BankedRAM`` (``hw/banked_ram.py``), the deep pipeline's ACT, in the Amaranth simulator.

Its contract: ``data`` in the cycle after ``take`` is what a plain ``Memory`` read port (same
writes, addresses and enables) gives in the ``take`` cycle, and it holds until the next ``take``.
Checked cycle by cycle against such a port, with random writes (never to the word read in the
same cycle: the memory's ``no_rw_check`` premise), random read enables and random takes, over
shapes with one bank, several banks with a short last bank, and banks of two words.
"""

from __future__ import annotations

import random

import pytest
from amaranth.hdl import Module, signed
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from spikegate.hw.banked_ram import BankedRAM

SHAPES = {  # name: (bits, depth, bank_words)
    "one-bank": (16, 100, 128),
    "exact-fit": (12, 64, 16),
    "short-last-bank": (23, 301, 64),
    "two-word-banks": (8, 11, 2),
}


@pytest.mark.parametrize("name", list(SHAPES))
def test_banked_ram_data_is_the_read_port_word_of_the_take_cycle(name):
    bits, depth, bank_words = SHAPES[name]
    rng = random.Random(name)
    m = Module()
    m.submodules.dut = dut = BankedRAM(shape=signed(bits), depth=depth, bank_words=bank_words)
    m.submodules.ref = ref = Memory(shape=signed(bits), depth=depth, init=[])
    ref_w = ref.write_port()
    ref_r = ref.read_port(transparent_for=())
    m.d.comb += [ref_r.addr.eq(dut.read.addr), ref_r.en.eq(dut.read.en), ref_w.addr.eq(dut.write.addr),
                 ref_w.data.eq(dut.write.data), ref_w.en.eq(dut.write.en)]
    assert dut.banks == -(-depth // bank_words)

    edges = sorted({a for b in range(1, dut.banks) for a in (b * bank_words - 1, b * bank_words)})
    lo = -(1 << (bits - 1))
    checked = []

    async def bench(ctx):
        # fill every word first, so that the reads see written values
        for a in range(depth):
            ctx.set(dut.write.addr, a)
            ctx.set(dut.write.data, rng.randrange(lo, -lo))
            ctx.set(dut.write.en, 1)
            await ctx.tick()
        expect = None
        for i in range(600):
            ra = rng.choice(edges) if edges and rng.random() < 0.2 else rng.randrange(depth)
            wa = rng.randrange(depth)
            write = rng.random() < 0.4 and wa != ra
            take = rng.random() < 0.6
            ctx.set(dut.read.addr, ra)
            ctx.set(dut.read.en, int(rng.random() < 0.7))
            ctx.set(dut.read.take, int(take))
            ctx.set(dut.write.addr, wa)
            ctx.set(dut.write.data, rng.randrange(lo, -lo))
            ctx.set(dut.write.en, int(write))
            word = ctx.get(ref_r.data) if take else None
            await ctx.tick()
            if take:
                expect = word
            if expect is not None and i > 2:
                assert ctx.get(dut.read.data) == expect, f"cycle {i}"
                checked.append(expect)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert len(set(checked)) > 20      # many different words were read and compared


@pytest.mark.parametrize("kw, message", [
    (dict(shape=signed(8), depth=10, bank_words=6), "power of two"),
    (dict(shape=signed(8), depth=10, bank_words=1), "bank_words"),
    (dict(shape=signed(8), depth=0, bank_words=4), "depth"),
])
def test_banked_ram_rejects_bad_parameters(kw, message):
    with pytest.raises(ValueError, match=message):
        BankedRAM(**kw)


@pytest.mark.parametrize("name", ["wmem_bank_words", "act_bank_words"])
def test_bank_depth_overrides_need_the_deep_pipeline(name):
    """The accelerator's bank-depth overrides (for tests) are refused with one lane, where WMEM and
    ACT are not banked, naming the parameter (rtl_tests/test_accelerator.py runs them with lanes)."""
    from spikegate.hw.accelerator import Accelerator
    from spikegate.rtl_tests.sfa_programs import random_program
    prog, _ = random_program(11, lanes=1, T=1, cin=1, size=6, dw_stride=1, classes=4)
    with pytest.raises(ValueError, match=f"{name} applies only to the deep ACC pipeline"):
        Accelerator(prog, **{name: 16})
