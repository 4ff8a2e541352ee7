"""The weight memory (WMEM) over the iCE40 UP5K's single-port RAMs (``SB_SPRAM256KA``, 16K x 16 bits).

Used by :class:`~spikegate.hw.accelerator.Accelerator` when the build's weights are runtime-loaded
(``compiler/passes/budget.py``): the bitstream cannot initialise SPRAM, so the words arrive through
the ``write`` port (from the host link, while the core is idle) and the engines read them through
the ``read`` port, with the same timing as the block-RAM WMEM it replaces: ``addr``/``en`` in one
cycle, ``data`` the next (SPRAM's output is registered inside the block), held while ``en`` is low
(the blocks are not selected then, and keep their output).

The mapping is :func:`spikegate.machine.memory.spram_plan`: words of up to 8 (4) bits
are packed 2 (4) to a 16-bit row, each in a slot written alone through the nibble write masks
(``MASKWREN``) with the word repeated across the row's slots (``DATAIN``); wider words span several
blocks side by side (columns); rows beyond 16K go to further blocks (banks, selected by
``CHIPSELECT``). Reads select the bank and the slot with the address bits of the request, registered
alongside the SPRAM's own read.

A write returns no data: the written block's output is undefined until its next read (the
simulation model, ``hw/sim_models/SB_SPRAM256KA.v``, drives it to X). A read and a write in the same
cycle are not supported (the write wins); the accelerator never does both.

Simulation: the Verilog names ``SB_SPRAM256KA`` (an ``Instance``); Yosys maps it for the iCE40, and
cocotb runs add the behavioural model :data:`SIM_MODEL` to the sources.
"""

from __future__ import annotations

import math
from pathlib import Path

from amaranth.hdl import Array, Cat, ClockSignal, Const, Instance, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.memory import (SPRAM_NIBBLE, SPRAM_WIDTH, SPRAM_WORDS, SPRAMPlan,
                                     spram_plan)

__all__ = ["SPRAMWeightMemory", "SIM_MODEL", "sim_sources"]

SIM_MODEL = Path(__file__).resolve().parent / "sim_models" / "SB_SPRAM256KA.v"
ROW_BITS = (SPRAM_WORDS - 1).bit_length()       # 14


def sim_sources(verilog_text: str) -> list[Path]:
    """Simulation models a design's Verilog needs besides itself (vendor primitives it names)."""
    return [SIM_MODEL] if "SB_SPRAM256KA" in verilog_text else []


class SPRAMWeightMemory(wiring.Component):
    """``words`` words of ``width`` bits in SB_SPRAM256KA blocks.

    Members: ``read`` (``addr``, ``en`` in; ``data`` out one cycle later) and ``write`` (``addr``,
    ``data``, ``en`` in; one word per cycle). The address ports are ``ceil(log2(words))`` bits
    wide (at least 1), like the block-RAM WMEM's.
    """

    def __init__(self, *, words: int, width: int):
        if not isinstance(words, int) or isinstance(words, bool) or words < 1:
            raise ValueError(f"words must be a positive integer, not {words!r}")
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        self._plan = spram_plan(words, width)
        self._abits = max(1, math.ceil(math.log2(words)))
        super().__init__({
            "read": In(wiring.Signature({"addr": Out(self._abits), "en": Out(1),
                                         "data": In(unsigned(width))})),
            "write": In(wiring.Signature({"addr": Out(self._abits), "data": Out(unsigned(width)),
                                          "en": Out(1)})),
        })

    @property
    def plan(self) -> SPRAMPlan:
        return self._plan

    @property
    def addr_bits(self) -> int:
        return self._abits

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        rd, wr = self.read, self.write
        slot_sel_bits = (plan.per_row - 1).bit_length()      # 0, 1 or 2
        bank_bits = (plan.banks - 1).bit_length()

        # the word address of this cycle's access -> row, slot, bank
        addr = Signal(self._abits + 1)       # (one spare bit: a row index never overflows)
        m.d.comb += addr.eq(Mux(wr.en, wr.addr, rd.addr))
        row = addr[slot_sel_bits:]
        row_lo = Signal(ROW_BITS)
        m.d.comb += row_lo.eq(row[:ROW_BITS])
        bank = row[ROW_BITS:ROW_BITS + bank_bits] if bank_bits else Const(0, 1)
        slot = addr[:slot_sel_bits] if slot_sel_bits else Const(0, 1)

        # write data and masks: the word repeated in every slot, one slot's nibbles enabled
        if plan.per_row > 1:
            piece = Signal(plan.slot_bits)       # the word, zero-extended to its slot
            m.d.comb += piece.eq(wr.data)
            datain_row = piece.replicate(plan.per_row)
            nib = plan.slot_bits // SPRAM_NIBBLE
            mask = Cat(*[(slot == s).replicate(nib) for s in range(plan.per_row)])
        else:
            datain_row = wr.data
            mask = Const(0b1111, 4)

        # the blocks
        active = rd.en | wr.en
        bank_rows = []
        for b in range(plan.banks):
            select = active & ((bank == b) if bank_bits else Const(1, 1))
            cols = []
            for c in range(plan.columns):
                datain = Signal(SPRAM_WIDTH, name=f"din_b{b}_c{c}")
                dataout = Signal(SPRAM_WIDTH, name=f"dout_b{b}_c{c}")
                chunk = datain_row[c * SPRAM_WIDTH:(c + 1) * SPRAM_WIDTH]
                m.d.comb += datain.eq(chunk)
                m.submodules[f"spram_b{b}_c{c}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=row_lo, i_DATAIN=datain, i_MASKWREN=mask, i_WREN=wr.en,
                    i_CHIPSELECT=select, i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=Const(0, 1), i_SLEEP=Const(0, 1), i_POWEROFF=Const(1, 1),
                    o_DATAOUT=dataout)
                cols.append(dataout)
            bank_rows.append(Cat(*cols))

        # read data: the bank and slot of the last read, registered with the SPRAM's own read
        bank_q = Signal(max(1, bank_bits))
        slot_q = Signal(max(1, slot_sel_bits))
        with m.If(rd.en & ~wr.en):
            m.d.sync += [bank_q.eq(bank), slot_q.eq(slot)]
        row_out = Array(bank_rows)[bank_q] if plan.banks > 1 else bank_rows[0]
        if plan.per_row > 1:
            m.d.comb += rd.data.eq(row_out.word_select(slot_q, plan.slot_bits)[:plan.width])
        else:
            m.d.comb += rd.data.eq(row_out[:plan.width])
        return m
