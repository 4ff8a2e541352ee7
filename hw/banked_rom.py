"""A read-only memory split into banks, read in three registered stages (the deep pipeline's WMEM).

Why: Yosys builds a memory deeper than one block RAM out of several block RAMs stacked in depth
and selects between their outputs with a multiplexer of LUTs *behind* the block RAMs' outputs
(its ECP5 block RAM mapping, ``brams_16kd.txt``, has no output register option, so the block RAM's
slow clock-to-output, 5.6 ns on the LFE5U-85F at speed 6, the route across the die to the mux
and the mux itself all land in the cycle of the register the word goes to). For the default
model's WMEM (19,601 words x 64 bits, 72 DP16KD) that chain was the ECP5's critical path
(15.05 ns). Here the memory is split in Amaranth into banks no deeper than one block RAM, so each
bank maps to block RAMs side by side with no mux; each bank's word is registered on its own
(a register right behind each block RAM); groups of ``GROUP_BANKS`` banks are selected into a
register per group one cycle later, and the group one cycle after that, with a registered bank
select. (With one bank register per bank and one mux over all ten banks' registers, spread over
the die, the route from a block RAM to its bank register or from there to the mux was the
ECP5's critical path: 11.65 ns.)

Timing (``read``: ``addr``, ``en`` in, ``data`` out): ``addr``/``en`` in cycle ``c``; the block RAMs
read in ``c`` (their word is on their outputs in ``c + 1``, and held there while ``en`` is low,
like any synchronous read port); the bank registers take it at the end of ``c + 1``, the group
registers at the end of ``c + 2``; ``data``, the selected group register, is valid in ``c + 3``, a
mux behind registers (the reader registers it). So ``data`` in cycle ``c + 2`` is exactly what
``Memory.read_port().data`` is in cycle ``c``: two cycles later, same hold behaviour. The CONV
engine's deep pipeline (``hw/sfa_conv.py``) registers the word in T3 either way, so the memory's
extra cycles replace pipeline registers that had no logic in front of them and no cycle count
changes.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig

from .sfa_common import read_sig

__all__ = ["BankedROM", "BankSplit", "GROUP_BANKS", "READ_LATENCY"]

GROUP_BANKS = 4         # banks per group register (a power of two: a 4:1 mux is one ECP5 slice)
READ_LATENCY = 3        # cycles from a read's address to its word on ``data``


class BankSplit:
    """``_depth`` words in banks of ``_bank_words`` (a power of two), as :class:`BankedROM` and
    :class:`~spikegate.hw.banked_ram.BankedRAM` split them: the low address bits address a bank,
    the high ones select it, the last bank holds the rest."""

    @staticmethod
    def check_split(depth, bank_words):
        """``ValueError`` unless ``depth`` (>= 1) words can be split in banks of ``bank_words``."""
        for name, v, lo in (("depth", depth, 1), ("bank_words", bank_words, 2)):
            if not isinstance(v, int) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
        if bank_words & (bank_words - 1):
            raise ValueError(f"bank_words must be a power of two, not {bank_words}")

    @property
    def banks(self) -> int:
        """How many banks the memory is split into."""
        return -(-self._depth // self._bank_words)

    def bank_depth(self, b: int) -> int:
        """The words bank ``b`` holds (every bank but the last holds ``bank_words``)."""
        return min(self._bank_words, self._depth - b * self._bank_words)

    @property
    def low_bits(self) -> int:
        """The address bits within a bank."""
        return (self._bank_words - 1).bit_length()

    def memory_depth(self, b: int) -> int:
        """The depth of bank ``b``'s memory: with more than one bank every bank as deep as the
        others, the last one padded (Yosys built the default model's short last WMEM bank, 1,169
        words, of 512-word block RAMs stacked three deep, with a mux in front of its bank
        register); at least 2 words (an address port of 0 bits is not expressible in Verilog)."""
        return max(2, self.bank_depth(b) if self.banks == 1 else self._bank_words)


class BankedROM(BankSplit, wiring.Component):
    """``depth`` words of ``width`` bits, initialised from ``init`` (unsigned integers; missing
    words are 0), in banks of ``bank_words`` words (a power of two: the low address bits address
    a bank, the high ones select it; the last bank holds the rest).

    Member ``read`` (a :func:`~spikegate.hw.sfa_common.read_sig` flipped: ``addr`` and ``en`` in,
    ``data`` out): ``data`` is the word at the address given ``READ_LATENCY`` (three) cycles
    earlier (see the module docstring), held while ``en`` is low."""

    def __init__(self, *, width: int, depth: int, bank_words: int, init=()):
        try:
            self._check(width, depth, bank_words, init)
        except ValueError:
            self._MustUse__silence = True       # never elaborated: no "unused" warning
            raise
        self._width, self._depth, self._bank_words = width, depth, bank_words
        self._init = [int(v) for v in init]
        super().__init__({"read": In(read_sig(MachineConfig.abits(depth), unsigned(width)))})

    @classmethod
    def _check(cls, width, depth, bank_words, init):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"width must be an integer >= 1, not {width!r}")
        cls.check_split(depth, bank_words)
        init = [int(v) for v in init]
        if len(init) > depth:
            raise ValueError(f"{len(init)} initial words do not fit a depth of {depth}")
        if any(not 0 <= v < (1 << width) for v in init):
            raise ValueError(f"initial words must be unsigned {width}-bit integers")

    def elaborate(self, platform):
        m = Module()
        B, bw, low = self.banks, self._bank_words, self.low_bits
        addr = self.read.addr
        regs = []
        for b in range(B):
            mem = Memory(shape=unsigned(self._width), depth=self.memory_depth(b),
                         init=self._init[b * bw:b * bw + self.bank_depth(b)])
            m.submodules[f"bank{b}"] = mem
            port = mem.read_port()
            m.d.comb += [port.addr.eq(addr[:low]), port.en.eq(self.read.en)]
            # stage 2: the bank's word, registered right behind its block RAMs (no reset: nothing
            # to emulate in logic, and the word is don't-care until a read)
            reg = Signal(unsigned(self._width), name=f"bank{b}_data", reset_less=True)
            m.d.sync += reg.eq(port.data)
            regs.append(reg)
        # stage 3: groups of GROUP_BANKS banks, each group's word (the mux of its bank registers)
        # in a register, so that no mux spans all banks' registers spread over the die
        GB = GROUP_BANKS
        groups = [regs[i:i + GB] for i in range(0, B, GB)]
        # the bank select follows the block RAMs' read (taken with ``en``, held without, like their
        # outputs), then the bank registers, then the group registers (every cycle)
        sel1 = Signal(range(max(B, 2)), name="sel1")
        sel2 = Signal.like(sel1, name="sel2")
        sel3 = Signal.like(sel1, name="sel3")
        with m.If(self.read.en):
            m.d.sync += sel1.eq(addr[low:] if B > 1 else 0)
        m.d.sync += [sel2.eq(sel1), sel3.eq(sel2)]
        gbits = (GB - 1).bit_length()
        gregs = []
        for g, members in enumerate(groups):
            greg = Signal(unsigned(self._width), name=f"group{g}_data", reset_less=True)
            if len(members) == 1:
                m.d.sync += greg.eq(members[0])
            else:
                with m.Switch(sel2[:gbits]):
                    for j, reg in enumerate(members):
                        with m.Case(j):
                            m.d.sync += greg.eq(reg)
            gregs.append(greg)
        if len(gregs) == 1:
            m.d.comb += self.read.data.eq(gregs[0])
            return m
        with m.Switch(sel3[gbits:]):
            for g, greg in enumerate(gregs):
                with m.Case(g):
                    m.d.comb += self.read.data.eq(greg)
        return m
