# amaranth: UnusedElaboratable=no
"""``SPRAMWeightMemory`` (``hw/spram.py``): the weight memory over SB_SPRAM256KA blocks, simulated with
the behavioural model ``hw/sim_models/SB_SPRAM256KA.v`` on Icarus and Verilator.

Shapes: 8-bit words packed two to a row across two banks (the fpga-tiny-t2 build: 40,006 words),
4-bit words four to a row, 12-bit words one to a row across two banks, 20-bit words in two
columns. A reference dict holds what was written; the checks: a read returns the word written last
at that address one cycle after the request, and holds while ``en`` is low; writes to one slot of
a row leave its other slots alone (neighbours are written back to back); the first and last words,
the words around each bank boundary, and random ones are covered. The mapping itself is checked
against ``machine.memory.spram_plan`` in pytest.
"""

from __future__ import annotations

import random
import zlib

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from spikegate.rtl_tests.cocotb_util import (SIMULATORS, run_cocotb, sim_build_dir, tb_config, tb_seed,
                                              write_verilog)

SHAPES = {"w8-40006": (40006, 8), "w4-700": (700, 4), "w12-20000": (20000, 12), "w20-300": (300, 20)}


# ---------------------------------------------------------------------------------------- cocotb


@cocotb.test()
async def write_then_read(dut):
    """Inputs change on falling edges, outputs are checked on falling edges."""
    cfg = tb_config()
    words, width, rows_per_bank = cfg["words"], cfg["width"], cfg["words_per_bank"]
    seed = tb_seed() ^ zlib.crc32(b"write_then_read") & 0xFFFF
    dut._log.info(f"seed {seed}")
    rng = random.Random(seed)
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 0
    dut.read__en.value = 0
    dut.write__en.value = 0

    addrs = set(range(min(words, 300))) | set(range(max(0, words - 300), words))
    for b in range(1, -(-words // rows_per_bank)):
        edge = b * rows_per_bank
        addrs |= set(range(max(0, edge - 40), min(words, edge + 40)))
    addrs |= {rng.randrange(words) for _ in range(300)}
    order = sorted(addrs)
    ref: dict[int, int] = {}

    async def write(a, v):
        await FallingEdge(dut.clk)
        dut.write__addr.value = a
        dut.write__data.value = v
        dut.write__en.value = 1
        ref[a] = v
        await FallingEdge(dut.clk)
        dut.write__en.value = 0

    for a in order:                       # neighbours (slots of one row) back to back
        await write(a, rng.getrandbits(width))
    for a in rng.sample(order, 50):       # overwrite some
        await write(a, rng.getrandbits(width))

    for a in rng.sample(order, len(order)):
        await FallingEdge(dut.clk)
        dut.read__addr.value = a
        dut.read__en.value = 1
        await FallingEdge(dut.clk)        # (the rising edge in between took the request)
        dut.read__en.value = 0
        dut.read__addr.value = rng.randrange(words)   # ignored while en is low
        got = int(dut.read__data.value)
        assert got == ref[a], f"word {a}: read {got:#x}, wrote {ref[a]:#x}"
        for _ in range(rng.choice([0, 0, 1, 3])):     # held while en is low
            await FallingEdge(dut.clk)
            assert int(dut.read__data.value) == ref[a], f"word {a}: not held while en is low"
    dut._log.info(f"{len(order)} words read back of {len(ref)} written ({words} words of {width} bits)")


# ---------------------------------------------------------------------------------------- pytest


def test_plan_packs_by_nibbles():
    from spikegate.machine.memory import spram_plan

    p = spram_plan(40006, 8)          # fpga-tiny-t2 at 8-bit weights, 1 lane
    assert (p.per_row, p.slot_bits, p.columns, p.banks, p.blocks) == (2, 8, 1, 2, 2)
    assert spram_plan(700, 4).per_row == 4 and spram_plan(700, 3).slot_bits == 4
    assert spram_plan(20000, 12).describe() == {"blocks": 2, "banks": 2, "columns": 1,
                                                "words_per_row": 1, "slot_bits": 16}
    p = spram_plan(300, 20)
    assert (p.columns, p.banks, p.blocks) == (2, 1, 2)
    assert spram_plan(65536, 16).blocks == 4 and spram_plan(65537, 16).blocks == 5
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match=r"^words must be a positive integer, not "):
            spram_plan(bad, 8)


def test_parameters_are_checked():
    from spikegate.hw.spram import SPRAMWeightMemory

    with pytest.raises(ValueError, match=r"^words must be a positive integer, not 0$"):
        SPRAMWeightMemory(words=0, width=8)
    with pytest.raises(ValueError, match=r"^width must be a positive integer, not True$"):
        SPRAMWeightMemory(words=4, width=True)
    m = SPRAMWeightMemory(words=40006, width=8)
    assert m.addr_bits == 16 and m.plan.blocks == 2


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_spram_weight_memory(shape, sim):
    from spikegate.hw.spram import SIM_MODEL, SPRAMWeightMemory

    words, width = SHAPES[shape]
    dut = SPRAMWeightMemory(words=words, width=width)
    build = sim_build_dir(f"spram-{shape}", sim)
    top = write_verilog(dut, "spram_top", build / "spram_top.v")
    assert open(top).read().count("SB_SPRAM256KA") == dut.plan.blocks
    run_cocotb([top, SIM_MODEL], "spram_top", "spikegate.rtl_tests.test_spram", sim, build,
               config={"words": words, "width": width, "words_per_bank": 16384 * dut.plan.per_row})
