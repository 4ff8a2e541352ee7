"""The machine's structure: every width, memory size and structural choice of one accelerator.

:class:`MachineConfig` is what the hardware generator (``hw/``) builds and what the compiler's
cost model (``compiler/cycle_model.py``) and budget (``compiler/passes/budget.py``) reason about.
It is taken from a :class:`~spikegate.machine.program.Program`: the data widths are the IR's
declared widths (the range analysis), copied, never re-derived; nothing is hard-coded.

Structural choices (the deep ACC pipeline, the block RAM bank depth) are decided here, once, so the
gateware and the cycle model cannot disagree about which machine they describe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .program import FIELDS, OP_ATTN, Program, derived_widths, field_widths

__all__ = ["MachineConfig", "deep_acc_pipeline", "split_lane_sum", "FIELD_BITS", "ADDR_BITS", "WMEM_BANK_WORDS"]

FIELD_BITS = dict(FIELDS)
# The depth of one ECP5 block RAM (DP16KD, 18 Kbit) as 2048 x 9, the configuration Yosys maps a wide
# WMEM to (the default model's 64-bit words: 8 blocks side by side): the WMEM bank depth of the deep
# pipeline (MachineConfig.wmem_bank_words)
WMEM_BANK_WORDS = 2048
ADDR_BITS = FIELD_BITS["src"]          # every base address field of the ISA is this wide


def deep_acc_pipeline(lanes: int) -> bool:
    """Whether the CONV/HEAD lanes run the deep ACC read-modify-write (TW read, T3 register the word
    and the addend, T4 add, T5 write, with forwarding) rather than the short one (T1 read, T2 add and
    write). With more than one lane the ACC banks are many block RAMs spread over the die, and
    reading, adding and writing one in a cycle was the ECP5's critical path (then the multiplier and
    the adder in one cycle); with one lane the bank is local and the deep pipeline's registers
    would not fit the UP5K."""
    return lanes > 1


# The most ACC banks the CONV readout sums (or selects among) in one cycle: its RS2 stage at 8
# lanes (4 pair sums, 104 MHz on the ECP5); more lanes split that sum over one more stage
LANE_SUM_BANKS = 8


def split_lane_sum(lanes: int) -> bool:
    """Whether the CONV readout's lane sum/select takes one more stage (RS3, ``hw/conv_readout.py``;
    ``compiler/cycle_model.py: READOUT_SUM_DEEP_OVH``): with more than ``LANE_SUM_BANKS`` lanes the
    sum of all pairs in one cycle (16 pairs at 32 lanes, a 4-level adder tree or a 16:1 mux) was
    the ECP5's critical path."""
    return lanes > LANE_SUM_BANKS


@dataclass(frozen=True)
class MachineConfig:
    """Widths and memory sizes of an accelerator built for ``program`` (all from the Program)."""

    lanes: int
    act_bits: int
    mul_x_bits: int       # the lanes' multiplier operand (Program.mul_x_bits)
    acc_bits: int
    membrane_bits: int
    state_bits: int
    weight_bits: int
    bias_bits: int
    shift_bits: int
    thresh_bits: int
    pixel_bits: int
    logit_bits: int
    act_words: int
    spk_words: int
    acc_words: int
    wmem_words: int
    bias_words: int
    shift_words: int
    thresh_words: int
    rom_words: int
    kv_bits: int          # attention K^T V counts 0 .. N (unsigned)
    d_max: int            # largest channels-per-head over the ATTN instructions (>= 1): a depth, not a width
    # per instruction field, the bits its largest value in the program needs (at least 1; at most
    # the ISA's width): the ROM word and every register that holds a field are this wide
    field_bits: tuple[tuple[str, int], ...] = tuple(FIELDS)
    # per instruction product (compiler/program.py: DERIVED), the bits its largest value over the program's instructions needs
    derived_bits: tuple[tuple[str, int], ...] = ()
    # With the deep ACC pipeline (compiler/cycle_model.py: deep_acc_pipeline), WMEM is a
    # hw/banked_rom.py BankedROM in banks of this many words (a power of two): one block RAM's depth
    # (WMEM_BANK_WORDS), so that no mux sits between a block RAM and the register its word goes to
    wmem_bank_words: int = 0
    # With the deep ACC pipeline, ACT is a hw/banked_ram.py BankedRAM in banks of this many words
    # (one block RAM's depth, WMEM_BANK_WORDS), each bank's word registered behind its block RAMs
    act_bank_words: int = 0
    # Saturation (Program.sat_bits): 0, or the width every CONV readout and SUM result is clamped
    # to, with those results' widths before the clamp (Program.readout_bits, Program.sum_bits)
    sat_bits: int = 0
    readout_bits: int = 0
    sum_bits: int = 0

    @classmethod
    def from_program(cls, p: Program) -> "MachineConfig":
        attn = [i for i in p.instrs if i.opcode == OP_ATTN]
        d_max = max([i.cout // max(i.heads, 1) for i in attn] + [1])
        return cls(
            lanes=p.lanes, act_bits=p.act_bits, mul_x_bits=p.mul_x_bits, acc_bits=p.acc_bits,
            membrane_bits=p.membrane_bits,
            state_bits=p.state_bits, weight_bits=p.weight_bits, bias_bits=p.bias_bits, shift_bits=p.shift_bits,
            thresh_bits=p.thresh_bits, pixel_bits=p.pixel_bits, logit_bits=p.logit_bits,
            act_words=max(2, p.act_words), spk_words=max(2, p.spk_words), acc_words=max(2, p.acc_words),
            wmem_words=max(2, len(p.wmem)), bias_words=max(2, len(p.bias)), shift_words=max(2, len(p.shift)),
            thresh_words=max(2, len(p.thresh)), rom_words=max(2, len(p.instrs)),
            kv_bits=p.kv_bits, d_max=d_max,
            field_bits=tuple(field_widths(p.instrs).items()),
            derived_bits=tuple(derived_widths(p.instrs, p.lanes).items()),
            wmem_bank_words=WMEM_BANK_WORDS if deep_acc_pipeline(p.lanes) else 0,
            act_bank_words=WMEM_BANK_WORDS if deep_acc_pipeline(p.lanes) else 0,
            sat_bits=p.sat_bits, readout_bits=p.readout_bits, sum_bits=p.sum_bits)

    def fbits(self, name: str) -> int:
        """Bits of instruction field ``name`` in this accelerator (see ``field_bits``)."""
        return dict(self.field_bits)[name]

    def dbits(self, name: str) -> int:
        """Bits of the sequencer product ``name`` (see ``derived_bits``)."""
        return dict(self.derived_bits)[name]

    @property
    def coord_bits(self) -> int:
        """Bits of the coordinate fields (``h``, ``w``, ``ho``, ``wo``), at least 3 (the address
        generators add a padding of up to 7 to a coordinate)."""
        return max(3, *(self.fbits(f) for f in ("h", "w", "ho", "wo")))

    @property
    def fires(self) -> bool:
        """Whether a CONV of the program fires (``machine/program.py``: ``fire``, an
        ``OPTIONAL_FIELDS`` one, left out of ``field_bits`` when no instruction sets it): only then
        is the CONV readout's THRESH read, compare and SPK write built."""
        return "fire" in dict(self.field_bits)

    @staticmethod
    def abits(words: int) -> int:
        return max(1, math.ceil(math.log2(words)))

    @property
    def taken(self) -> bool:
        """Whether ACT and ACC are read with ``take`` (``read_sig``): with the deep pipeline, whose
        ACT is banked (``act_bank_words``) and whose engines take the words."""
        return deep_acc_pipeline(self.lanes)

    @property
    def act_abits(self): return self.abits(self.act_words)
    @property
    def spk_abits(self): return self.abits(self.spk_words)
    @property
    def acc_abits(self): return self.abits(self.acc_words)
    @property
    def wmem_abits(self): return self.abits(self.wmem_words)
    @property
    def bias_abits(self): return self.abits(self.bias_words)
    @property
    def shift_abits(self): return self.abits(self.shift_words)
    @property
    def thresh_abits(self): return self.abits(self.thresh_words)
    @property
    def rom_abits(self): return self.abits(self.rom_words)
