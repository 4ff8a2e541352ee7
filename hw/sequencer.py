"""The accelerator's control: the sequencer that runs the program ROM, and the cycle counter.

* :class:`Sequencer`: after a reset ``CLEAR`` zeroes the ACC banks (``acc_words`` cycles, before
  the first pixel is accepted); ``FETCH`` reads the instruction at ``pc`` (ROM word ``2*pc``,
  decoded through :func:`~spikegate.hw.sfa_common.instr_layout`), ``DEC1`` registers it and reads
  its products (word ``2*pc + 1``: ``h*w``, ``ho*wo``, ``cin*h*w``, ``cout*ho*wo``, lane and tap
  groups, computed by the compiler: ``machine/program.py: rom_image``), ``DEC2`` registers those,
  ``DEC3`` starts the engine of the opcode, ``RUN`` waits for its ``done``; then ``pc`` moves on
  (after OUTPUT back to 0: the next image).
* :class:`CycleCounter`: ``cycles`` counts clock cycles from the first accepted pixel to the last
  accepted logit, both included; ``busy`` is high from the cycle after the first pixel until the
  cycle after the last logit.

:data:`ENGINE_OPCODES` names the engines and the opcodes each runs; the sequencer's per-engine
members (``start``, ``done``, the port selects ``sel``) are structs with a field per engine.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig
from spikegate.machine.program import (FIELDS, OP_ATTN, OP_CONV, OP_HEAD, OP_INPUT, OP_LIF, OP_OUTPUT,
                                         OP_SUM, OP_WLOAD)

from .accel_interface import CYCLE_COUNTER_BITS
from .accel_memories import memory_ports
from .sfa_common import derived_layout, instr_layout

__all__ = ["ENGINE_OPCODES", "ENGINE_FLAGS", "EXTERNAL_ENGINE_OPCODES", "EXTERNAL_ENGINE_FLAGS", "TAG_BITS",
           "Sequencer", "CycleCounter"]

TAG_BITS = dict(FIELDS)["tag"]

# each engine (its submodule name in the accelerator) and the opcodes it runs
ENGINE_OPCODES = {
    "inp": (OP_INPUT,),
    "conv": (OP_CONV, OP_HEAD),
    "lif": (OP_LIF,),
    "attn": (OP_ATTN,),
    "sum": (OP_SUM,),
    "out": (OP_OUTPUT,),
}
# a bit per engine (its start, its done, whether the instruction's opcode is one of its opcodes)
ENGINE_FLAGS = data.StructLayout({name: 1 for name in ENGINE_OPCODES})
# a program whose weights live in external memory has one engine more, the WLOAD engine
# (hw/wload.py): its flags are these; every other program's sequencer is exactly as before
EXTERNAL_ENGINE_OPCODES = {**ENGINE_OPCODES, "wload": (OP_WLOAD,)}
EXTERNAL_ENGINE_FLAGS = data.StructLayout({name: 1 for name in EXTERNAL_ENGINE_OPCODES})


def _decode(opcode, ops):
    cond = opcode == ops[0]
    for o in ops[1:]:
        cond = cond | (opcode == o)
    return cond


class Sequencer(wiring.Component):
    """Runs the ``n_instr`` instructions of the program ROM, one engine at a time.

    Members: ``rom`` (Out, the ROM's read port), ``instr`` and ``drv`` (Out, the instruction and its
    products: every engine's), ``start`` (Out, per engine; high in DEC3), ``done`` (In, per engine),
    ``sel`` (Out, per engine: whether the instruction's opcode is one of the engine's, for the port
    multiplexers), ``clearing`` and ``clr_addr`` (Out: after a reset, every ACC word is written 0),
    ``instr_done`` (Out, a pulse after each instruction) and ``tag`` (Out, its tag).

    ``external``: the program streams its weights from external memory, so the per-engine members
    also have the WLOAD engine's flag (:data:`EXTERNAL_ENGINE_FLAGS`)."""

    def __init__(self, cfg: MachineConfig, n_instr: int, *, external: bool = False):
        self._cfg, self._n_instr = cfg, n_instr
        self._engines = EXTERNAL_ENGINE_OPCODES if external else ENGINE_OPCODES
        flags = EXTERNAL_ENGINE_FLAGS if external else ENGINE_FLAGS
        super().__init__({
            "rom": memory_ports(cfg)["rom_r"],
            "instr": Out(instr_layout(cfg)),
            "drv": Out(derived_layout(cfg)),
            "start": Out(flags),
            "done": In(flags),
            # After a reset the instruction register is 0, and so is every flag's opcode decode.
            "sel": Out(flags, init={name: int(0 in ops) for name, ops in self._engines.items()}),
            # after a reset the sequencer first clears the ACC banks (a reset in the middle of an
            # inference would otherwise leave partial sums behind); a flip-flop (the state's decode
            # was in front of the write ports)
            "clearing": Out(1, init=1),
            "clr_addr": Out(range(cfg.acc_words)),
            "instr_done": Out(1),
            "tag": Out(TAG_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, rom_r = self._cfg, self.rom
        # The engines and the port multiplexers see the instruction and its products through
        # registers loaded from the ROM's port (the instruction in DEC1, the products in DEC2), so
        # the ROM's clock-to-output does not start any of their paths. The instruction is valid
        # from DEC2 on, the products from DEC3, where the engine starts.
        n_bits = instr_layout(cfg).size
        pc = Signal(range(cfg.rom_words))
        # The running engine's done, selected by the ``sel`` flip-flops: they equal the decode of
        # ``instr``'s opcode (both are loaded in DEC1 from the same ROM word, and agree after a
        # reset), so the opcode's decode is not on the path from an engine's done into ``pc``
        # (the UP5K's worst path at most nextpnr seeds).
        engine_done = Signal()
        m.d.comb += engine_done.eq((self.sel.as_value() & self.done.as_value()).any())
        m.d.sync += self.instr_done.eq(0)
        # each engine's start is a flip-flop, set in DEC2 from the opcode and high in DEC3: every
        # register an engine loads at its start is enabled by it, so the state and opcode decode
        # stay a cycle away from those enables
        m.d.sync += self.start.eq(0)

        with m.FSM(name="seq"):
            with m.State("CLEAR"):
                m.d.sync += self.clr_addr.eq(self.clr_addr + 1)
                with m.If(self.clr_addr == cfg.acc_words - 1):
                    m.d.sync += self.clearing.eq(0)
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [rom_r.addr.eq(Cat(0, pc)), rom_r.en.eq(1)]
                m.next = "DEC1"
            with m.State("DEC1"):
                # the instruction's word is on the ROM's read port; read its products next
                m.d.comb += [rom_r.addr.eq(Cat(1, pc)), rom_r.en.eq(1)]
                m.d.sync += self.instr.eq(rom_r.data[:n_bits])
                # the port multiplexers' selects: a flip-flop per engine, loaded with the
                # instruction from the ROM's word, so that they are registers, not a decode of the
                # opcode register (that decode in front of the ACC banks' write ports, across the
                # die, was the ECP5's critical path)
                rom_op = instr_layout(cfg)(rom_r.data[:n_bits]).opcode
                m.d.sync += [self.sel[name].eq(_decode(rom_op, ops)) for name, ops in self._engines.items()]
                m.next = "DEC2"
            with m.State("DEC2"):
                m.d.comb += rom_r.en.eq(0)
                m.d.sync += self.drv.eq(rom_r.data[:derived_layout(cfg).size])
                m.d.sync += self.start.eq(self.sel)     # the opcode's engine, decoded in DEC1
                m.next = "DEC3"
            with m.State("DEC3"):
                # the engine of the opcode starts (its start flip-flop is high)
                m.d.comb += rom_r.en.eq(0)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += rom_r.en.eq(0)
                with m.If(engine_done):
                    m.d.sync += [self.instr_done.eq(1), self.tag.eq(self.instr.tag)]
                    with m.If(pc == self._n_instr - 1):
                        m.d.sync += pc.eq(0)
                    with m.Else():
                        m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"
        return m


class CycleCounter(wiring.Component):
    """``cycles``: clock cycles from the first accepted pixel (``pixel_accepted`` while not
    ``busy``) to the last accepted logit (``last_accepted``), both included; ``busy`` from the cycle
    after the first pixel until the cycle after the last logit."""

    def __init__(self):
        super().__init__({
            "pixel_accepted": In(1),
            "last_accepted": In(1),
            "busy": Out(1),
            "cycles": Out(CYCLE_COUNTER_BITS),
        })

    def elaborate(self, platform):
        m = Module()
        with m.If(~self.busy):
            with m.If(self.pixel_accepted):
                m.d.sync += [self.busy.eq(1), self.cycles.eq(1)]
        with m.Else():
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(self.last_accepted):
                m.d.sync += self.busy.eq(0)
        return m
