"""Shared pieces of the SFA accelerator (``hw/accelerator.py``) and its engines (``hw/sfa_*.py``).

* :class:`MachineConfig`: every width and memory size of one accelerator, taken from a
  :class:`~spikegate.machine.program.Program`: the data widths are the IR's declared widths
  (the range analysis), copied, never re-derived here; nothing is hard-coded.
* :func:`instr_layout`: the instruction word as an Amaranth ``StructLayout`` mirroring
  ``machine/program.py: FIELDS`` (LSB first, so ``Instr.encode`` and the layout agree bit for bit).
* :func:`derived_layout`: per-instruction products (``h*w``, ``ho*wo``, lane groups ...), computed
  by the compiler (``machine/program.py: derived_values``) and held in the program ROM beside the
  instruction, so that neither the sequencer nor any engine multiplies instruction fields.
* :func:`read_sig` / :func:`write_sig`: an engine's view of a memory port. Engines never own the
  shared memories; the top multiplexes the ports by the running instruction's opcode.
* :class:`Engine`: the base of every engine (CONV/HEAD, ATTN, LIF, INPUT, SUM, OUTPUT): the
  sequencer drives them all alike (``start`` with the instruction on ``instr`` and its products on
  ``drv``, ``done`` back), so that part of their signature is defined once, here.
* Address arithmetic helper: :func:`small_mul` (a narrow-by-wide product as shift-and-add). The
  integer ops themselves (LIF update, accumulate lane, align + bias) are the
  formally proven components of ``hw/datapath.py``, which the engines instantiate.
"""

from __future__ import annotations


from amaranth.hdl import Const, Mux, Value, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import ADDR_BITS, FIELD_BITS, MachineConfig
from spikegate.machine.program import FIELDS

__all__ = ["Engine", "instr_layout", "derived_layout", "wmem_layout", "read_sig", "write_sig", "small_mul",
           "tree_sum", "derived_or_zero"]


def instr_layout(cfg: "MachineConfig | None" = None) -> data.StructLayout:
    """The instruction word: ``FIELDS`` in order, the first field in the least significant bits.

    Without ``cfg``: the ISA's word (``Instr.encode``). With ``cfg``: the word of the accelerator
    built for that program (its ROM's words), every field only as wide as the largest value the
    program puts in it (``MachineConfig.field_bits``): bits no instruction uses are compiled out,
    and with them the logic that would carry them."""
    widths = dict(FIELDS) if cfg is None else dict(cfg.field_bits)
    return data.StructLayout({name: unsigned(widths[name]) for name, _ in FIELDS if name in widths})


def field_or_zero(instr, name: str) -> Value:
    """The field ``name`` of the instruction ``instr`` (an :func:`instr_layout` view), or 0 where
    the program's layout left it out (``machine/program.py: OPTIONAL_FIELDS``: every instruction's
    value was 0)."""
    return getattr(instr, name) if name in instr.shape().members else Const(0, 1)


def derived_layout(cfg: "MachineConfig | None" = None) -> data.StructLayout:
    """Products of instruction fields (``machine/program.py: derived_values``), the program ROM's
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


class Engine(wiring.Component):
    """An engine of the accelerator: one instruction class, run from ``start`` to ``done``.

    The sequencer (``hw/accelerator.py``) presents the instruction on ``instr`` from the cycle
    before ``start`` on and its products on ``drv`` from ``start`` on, both held until the engine
    pulses ``done``. Every engine has these four members first, then its own ``members`` (its
    memory ports and streams); ``cfg`` (the :class:`MachineConfig` it is built for) is kept as
    ``self._cfg``."""

    def __init__(self, cfg: MachineConfig, members: dict):
        if not isinstance(cfg, MachineConfig):
            raise TypeError(f"cfg must be a MachineConfig, not {cfg!r}")
        self._cfg = cfg
        super().__init__({
            "start": In(1),
            "done": Out(1),
            "instr": In(instr_layout(cfg)),
            "drv": In(derived_layout(cfg)),
            **members,
        })


def wmem_layout(cfg: MachineConfig) -> data.ArrayLayout:
    """A WMEM word: ``lanes`` signed weights of ``weight_bits``, lane 0 in the low bits."""
    return data.ArrayLayout(signed(cfg.weight_bits), cfg.lanes)


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
    out (``machine/program.py: OPTIONAL_DERIVED``: every instruction's value was 0)."""
    return getattr(drv, name) if name in drv.shape().members else Const(0, 1)


def tree_sum(values) -> Value:
    """The exact sum of ``values`` as a balanced tree of adders (``ceil(log2 n)`` adders deep,
    where a left fold is ``n - 1`` deep)."""
    values = [Value.cast(v) for v in values]
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


