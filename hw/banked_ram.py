"""A read-write memory split into banks, each bank's word registered right behind its block RAMs
when the reader *takes* it (the deep pipeline's ACT).

Why: the ECP5's block RAM (DP16KD) has a slow clock-to-output (5.8 ns on the LFE5U-85F at speed
6), and Yosys' mapping has no output register option, so a word read from a memory deeper than one
block RAM reaches its reader through the route across the die to a mux of LUTs behind the block
RAMs, then to the reader's register. For the default model's ACT (6,144 words x 23 bits, three
banks of DP16KD) that chain, into the CONV scanner's value register, was the ECP5's critical
path (11.9 ns). Here each bank maps to block RAMs side by side with no mux, each bank has its own
register right behind it, and the bank mux sits behind those registers.

The reader keeps its timing: where it registered the read port's word (``reg.eq(port.data)``
under its own enable), it drives ``take`` with that enable instead, and uses ``data`` where it used
its register. The bank registers take the block RAMs' words when ``take`` is high, and ``data``
(the mux of the bank registers by the bank of the read taken) is, in the cycle after ``take``,
what a plain synchronous read port's ``data`` was in the ``take`` cycle. So no reader's cycle count
changes; the reader's register became the bank registers.

Timing (``read``: ``addr``, ``en``, ``take`` in, ``data`` out): ``addr``/``en`` in cycle ``c``; the
block RAMs read in ``c``, their word is on their outputs from ``c + 1`` on (held while ``en`` is
low); ``take`` in a cycle ``c' >= c + 1`` (before the next read's word arrives) registers it, and
``data`` shows it from ``c' + 1`` until the next ``take``.

Writes (``write``: ``addr``, ``data``, ``en``) go to the bank the address selects. As for the whole
memory (``no_rw_check``, see ``hw/accel_memories.py: registered_read_port``), a read never meets a
write of its word, so no read-before-write order is emulated.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from .banked_rom import BankSplit
from spikegate.machine.config import MachineConfig

from .sfa_common import read_sig, write_sig

__all__ = ["BankedRAM"]


class BankedRAM(BankSplit, wiring.Component):
    """``depth`` words of ``shape``, in banks of ``bank_words`` words (a power of two: the low
    address bits address a bank, the high ones select it; the last bank holds the rest, padded as
    :meth:`~spikegate.hw.banked_rom.BankSplit.memory_depth` says).

    Members ``read`` (a :func:`~spikegate.hw.sfa_common.read_sig` with ``take``, flipped) and
    ``write`` (``addr``, ``data``, ``en`` in: the word is written at the clock edge ending the cycle
    ``en`` is high)."""

    def __init__(self, *, shape, depth: int, bank_words: int):
        try:
            self.check_split(depth, bank_words)
        except ValueError:
            self._MustUse__silence = True       # never elaborated: no "unused" warning
            raise
        self._shape, self._depth, self._bank_words = shape, depth, bank_words
        abits = MachineConfig.abits(depth)
        super().__init__({
            "read": In(read_sig(abits, shape, take=True)),
            "write": In(write_sig(abits, shape)),
        })

    def elaborate(self, platform):
        m = Module()
        B, low = self.banks, self.low_bits
        rd, wr = self.read, self.write
        regs = []
        for b in range(B):
            mem = Memory(shape=self._shape, depth=self.memory_depth(b), init=[], attrs={"no_rw_check": 1})
            m.submodules[f"bank{b}"] = mem
            w = mem.write_port()
            in_bank = (wr.addr[low:] == b) if B > 1 else 1
            m.d.comb += [w.addr.eq(wr.addr[:low]), w.data.eq(wr.data), w.en.eq(wr.en & in_bank)]
            # the block RAM's synchronous read as an asynchronous port and a register, which Yosys
            # merges into the block RAM (and then honours no_rw_check; hw/accel_memories.py:
            # registered_read_port)
            port = mem.read_port(domain="comb")
            word = Signal.like(port.data, name=f"bank{b}_word", reset_less=True)
            m.d.comb += port.addr.eq(rd.addr[:low])
            with m.If(rd.en):
                m.d.sync += word.eq(port.data)
            # the bank's register, right behind its block RAMs (no reset: nothing to emulate in
            # logic, and the word is don't-care until a read is taken)
            reg = Signal.like(port.data, name=f"bank{b}_data", reset_less=True)
            with m.If(rd.take):
                m.d.sync += reg.eq(word)
            regs.append(reg)
        if B == 1:
            m.d.comb += rd.data.eq(regs[0])
            return m
        # the bank select follows the block RAMs' read (taken with ``en``, held without, like their
        # outputs), then the bank registers (with ``take``)
        sel1 = Signal(range(B), name="sel1")
        sel2 = Signal(range(B), name="sel2")
        with m.If(rd.en):
            m.d.sync += sel1.eq(rd.addr[low:])
        with m.If(rd.take):
            m.d.sync += sel2.eq(sel1)
        with m.Switch(sel2):
            for b in range(B):
                with m.Case(b):
                    m.d.comb += rd.data.eq(regs[b])
        return m
