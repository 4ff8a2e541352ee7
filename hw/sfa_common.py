"""Shared pieces of the SFA accelerator (``hw/accelerator.py``) and its engines (``hw/sfa_*.py``).

* :class:`MachineConfig`: every width and memory size of one accelerator, taken from a
  :class:`~spikegate.compiler.program.Program`: the data widths are the IR's declared widths
  (the range analysis), copied, never re-derived here; nothing is hard-coded.
* :func:`instr_layout`: the instruction word as an Amaranth ``StructLayout`` mirroring
  ``compiler/program.py: FIELDS`` (LSB first, so ``Instr.encode`` and the layout agree bit for bit).
* :func:`derived_layout`: per-instruction products (``h*w``, ``ho*wo``, lane groups ...), computed
  by the compiler (``compiler/program.py: derived_values``) and held in the program ROM beside the
  instruction, so that neither the sequencer nor any engine multiplies instruction fields.
* :func:`read_sig` / :func:`write_sig`: an engine's view of a memory port. Engines never own the
  shared memories; the top multiplexes the ports by the running instruction's opcode.
* Address arithmetic helper: :func:`small_mul` (a narrow-by-wide product as shift-and-add). The
  integer ops themselves (LIF update, accumulate lane, align + bias) are the
  formally proven components of ``hw/datapath.py``, which the engines instantiate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Const, Mux, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikegate.compiler.cycle_model import deep_acc_pipeline
from spikegate.compiler.program import FIELDS, OP_ATTN, Program, derived_widths, field_widths

__all__ = ["MachineConfig", "instr_layout", "derived_layout", "read_sig", "write_sig", "small_mul",
           "tree_sum", "derived_or_zero", "ADDR_BITS", "FIELD_BITS", "WMEM_BANK_WORDS"]

FIELD_BITS = dict(FIELDS)
# The depth of one ECP5 block RAM (DP16KD, 18 Kbit) as 2048 x 9, the configuration Yosys maps a wide
# WMEM to (the default model's 64-bit words: 8 blocks side by side): the WMEM bank depth of the deep
# pipeline (MachineConfig.wmem_bank_words)
WMEM_BANK_WORDS = 2048
ADDR_BITS = FIELD_BITS["src"]          # every base address field of the ISA is this wide


def instr_layout(cfg: "MachineConfig | None" = None) -> data.StructLayout:
    """The instruction word: ``FIELDS`` in order, the first field in the least significant bits.

    Without ``cfg``: the ISA's word (``Instr.encode``). With ``cfg``: the word of the accelerator
    built for that program (its ROM's words), every field only as wide as the largest value the
    program puts in it (``MachineConfig.field_bits``): bits no instruction uses are compiled out,
    and with them the logic that would carry them."""
    widths = dict(FIELDS) if cfg is None else dict(cfg.field_bits)
    return data.StructLayout({name: unsigned(widths[name]) for name, _ in FIELDS})


def derived_layout(cfg: "MachineConfig | None" = None) -> data.StructLayout:
    """Products of instruction fields (``compiler/program.py: derived_values``), the program ROM's
    odd words, which the sequencer registers before an engine starts. Without
    ``cfg`` at the widths the ISA's fields allow; with ``cfg`` as wide as the largest value over the
    program's instructions (``MachineConfig.derived_bits``)."""
    if cfg is not None:
        return data.StructLayout({name: unsigned(w) for name, w in cfg.derived_bits})
    return data.StructLayout({
        "hw": unsigned(ADDR_BITS),      # h * w
        "howo": unsigned(ADDR_BITS),    # ho * wo
        "n_in": unsigned(ADDR_BITS),    # cin * h * w
        "n_out": unsigned(ADDR_BITS),   # cout * ho * wo
        "kk": unsigned(2 * FIELD_BITS["k"]),          # k * k
        "G": unsigned(FIELD_BITS["cout"] + 1),        # ceil(cout / lanes)
        "kG": unsigned(ADDR_BITS),      # k * G
        "kkG": unsigned(ADDR_BITS),     # k * k * G
        "Gt": unsigned(2 * FIELD_BITS["k"] + 1),      # ceil(k * k / lanes)
        "d": unsigned(FIELD_BITS["cout"]),            # ATTN: cout / heads
        "dN": unsigned(ADDR_BITS),      # ATTN: d * ho * wo
        "lo0": unsigned(FIELD_BITS["pad"]),      # CONV, more than one lane: lo(0) <= pad
        "pad_s": unsigned(FIELD_BITS["pad"]),    # CONV, more than one lane: pad >> s
    })


def read_sig(addr_bits: int, shape, *, take: bool = False) -> wiring.Signature:
    """A synchronous read port seen from the engine: it drives ``addr``/``en``, gets ``data`` one
    cycle later (``data`` holds while ``en`` is low).

    With ``take`` (the deep pipeline's ACT and ACC, whose words are registered right behind their
    block RAMs: ``hw/banked_ram.py``): the engine also drives ``take``, the enable of the register
    it would have loaded with ``data``, and ``data`` is, from the cycle after ``take`` on, what it
    was without ``take`` in the ``take`` cycle (the engine uses ``data`` where it used its
    register)."""
    members = {"addr": Out(addr_bits), "en": Out(1), "data": In(shape)}
    if take:
        members["take"] = Out(1)
    return wiring.Signature(members)


def write_sig(addr_bits: int, shape) -> wiring.Signature:
    return wiring.Signature({"addr": Out(addr_bits), "data": Out(shape), "en": Out(1)})


def small_mul(narrow: Value, wide: Value) -> Value:
    """``narrow * wide`` for a narrow unsigned ``narrow`` (a few bits) as a sum of shifted,
    conditionally selected copies of ``wide`` (adders only, never a multiplier cell)."""
    narrow = Value.cast(narrow)
    wide = Value.cast(wide)
    total = Const(0, unsigned(1))
    for i in range(len(narrow)):
        total = total + Mux(narrow[i], wide << i, 0)
    return total


def derived_or_zero(drv, name: str) -> Value:
    """The product ``name`` of the derived word ``drv``, or 0 where the program's layout left it
    out (``compiler/program.py: OPTIONAL_DERIVED``: every instruction's value was 0)."""
    return getattr(drv, name) if name in drv.shape().members else Const(0, 1)


def tree_sum(values) -> Value:
    """The exact sum of ``values`` as a balanced tree of adders (``ceil(log2 n)`` adders deep,
    where a left fold is ``n - 1`` deep)."""
    values = [Value.cast(v) for v in values]
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


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
            act_bank_words=WMEM_BANK_WORDS if deep_acc_pipeline(p.lanes) else 0)

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

    def wmem_layout(self) -> data.ArrayLayout:
        return data.ArrayLayout(signed(self.weight_bits), self.lanes)
