"""One engine of the SFA accelerator alone, with the memories it uses, for its own testbench.

:class:`EngineHarness` instantiates one engine (``hw/sfa_*.py``) and, for each memory port in the
engine's signature, the memory ``hw/accelerator.py`` connects there, wired as the accelerator wires
it for the program's lane count: ACT a :class:`~spikegate.hw.banked_ram.BankedRAM` read with
``take`` (more than one lane) or a memory behind a registered read port; SPK; the ``lanes`` ACC
banks (transparent read ports with one lane, registered and taken with more); WMEM a
:class:`~spikegate.hw.banked_rom.BankedROM` (more than one lane) or block RAM, initialised with
the packed weights; BIAS, SHIFT and THRESH initialised with the program's tables. ACT's write
reaches the memory a cycle late, from registers, as in the accelerator; SPK's too with more than
one lane. (The accelerator builds its synchronous read ports of an asynchronous port and a
register, for Yosys' sake, which behave exactly as the plain ``read_port()`` used here.) The engine is the running engine: its ports go straight to the memories (the
accelerator's port multiplexers select it for the whole instruction).

Ports (besides the engine's streams and LIF's ``spikes``, passed through):

* ``instr``, ``drv``, ``start``: registered once, then to the engine. A testbench drives them as the
  sequencer does: the instruction a cycle before its products and ``start`` (DEC1, then DEC2), so
  the engine sees the instruction from the cycle before ``start`` on and the products from
  ``start`` on. ``done`` is the engine's.
* ``<mem>_load`` (ACT, SPK, ACC banks: every writable memory the engine reads or writes): a write
  port ahead of the engine's, for the testbench to put the state before an instruction into the
  memory (while the engine is idle).
* ``<mem>_wmon`` (every memory the engine writes): the write port as the memory sees it (after the
  accelerator's write registers), without the loads: a testbench records every write there.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikegate.hw.banked_ram import BankedRAM
from spikegate.hw.banked_rom import BankedROM
from spikegate.hw.sfa_attn import AttnEngine
from spikegate.hw.sfa_common import derived_layout, instr_layout, write_sig
from spikegate.hw.sfa_conv import ConvEngine
from spikegate.hw.sfa_io import InputEngine, OutputEngine, SumEngine
from spikegate.hw.sfa_lif import LIFEngine
from spikegate.machine.config import MachineConfig, deep_acc_pipeline
from spikegate.machine.program import OP_ATTN, OP_CONV, OP_HEAD, OP_INPUT, OP_LIF, OP_OUTPUT, OP_SUM, Program

__all__ = ["EngineHarness", "ENGINES", "RAMS", "packed_wmem"]

# engine name -> (class, the opcodes it runs)
ENGINES = {
    "input": (InputEngine, (OP_INPUT,)),
    "conv": (ConvEngine, (OP_CONV, OP_HEAD)),
    "lif": (LIFEngine, (OP_LIF,)),
    "attn": (AttnEngine, (OP_ATTN,)),
    "sum": (SumEngine, (OP_SUM,)),
    "output": (OutputEngine, (OP_OUTPUT,)),
}
RAMS = ("act", "spk", "acc")        # the writable memories (the ISS's MachineState)


def ram_shape(cfg: MachineConfig, mem: str):
    """The word of a writable memory: ACT and ACC signed, SPK one bit."""
    return {"act": signed(cfg.act_bits), "spk": unsigned(1), "acc": signed(cfg.acc_bits)}[mem]


def ram_abits(cfg: MachineConfig, mem: str) -> int:
    return {"act": cfg.act_abits, "spk": cfg.spk_abits, "acc": cfg.acc_abits}[mem]


def ram_depth(cfg: MachineConfig, mem: str) -> int:
    return {"act": cfg.act_words, "spk": cfg.spk_words, "acc": cfg.acc_words}[mem]


def packed_wmem(prog: Program) -> list[int]:
    """WMEM's words as the accelerator initialises them: lane ``p``'s weight in bits
    ``[p * weight_bits, (p + 1) * weight_bits)``, two's complement."""
    wb, P = prog.weight_bits, prog.lanes
    w = np.asarray(prog.wmem, dtype=np.int64).reshape(-1, P) & ((1 << wb) - 1)
    return [sum(int(v) << (p * wb) for p, v in enumerate(row)) for row in w]


class EngineHarness(wiring.Component):
    """The engine ``engine`` (a key of :data:`ENGINES`) of the accelerator for ``program``, with its
    memories. ``wmem_bank_words``/``act_bank_words``: other bank depths (more than one lane only),
    as :class:`~spikegate.hw.accelerator.Accelerator` takes them, so that small memories span
    several banks."""

    def __init__(self, program: Program, engine: str, *, wmem_bank_words: int | None = None,
                 act_bank_words: int | None = None):
        cfg = MachineConfig.from_program(program)
        banks = {k: v for k, v in (("wmem_bank_words", wmem_bank_words), ("act_bank_words", act_bank_words))
                 if v is not None}
        if banks and not cfg.taken:
            self._MustUse__silence = True
            raise ValueError("bank depths apply only to the deep ACC pipeline (lanes > 1)")
        self._cfg = cfg = dataclasses.replace(cfg, **banks)
        self._program = program
        self.engine_name = engine
        cls, self.opcodes = ENGINES[engine]
        self.engine = cls(cfg)
        ports = self.engine.signature.members
        P = cfg.lanes
        members = {"instr": In(instr_layout(cfg)), "drv": In(derived_layout(cfg)), "start": In(1), "done": Out(1)}
        self.rams = [mem for mem in RAMS if f"{mem}_r" in ports or f"{mem}_w" in ports]
        self.written = [mem for mem in RAMS if f"{mem}_w" in ports]
        for mem in self.rams:
            sig = write_sig(ram_abits(cfg, mem), ram_shape(cfg, mem))
            members[f"{mem}_load"] = In(sig).array(P) if mem == "acc" else In(sig)
            if mem in self.written:
                members[f"{mem}_wmon"] = Out(sig).array(P) if mem == "acc" else Out(sig)
        for name in ("pixels", "logits", "spikes"):
            if name in ports:
                members[name] = ports[name]
        super().__init__(members)

    @property
    def config(self) -> MachineConfig:
        return self._cfg

    def elaborate(self, platform):
        m = Module()
        cfg, e = self._cfg, self.engine
        m.submodules.engine = e
        m.d.sync += [e.instr.eq(self.instr), e.drv.eq(self.drv), e.start.eq(self.start)]
        m.d.comb += self.done.eq(e.done)
        ports = e.signature.members
        for mem in self.rams:
            self._ram(m, mem, ports)
        self._roms(m, ports)
        if "pixels" in ports:
            wiring.connect(m, wiring.flipped(self.pixels), e.pixels)
        if "logits" in ports:
            wiring.connect(m, e.logits, wiring.flipped(self.logits))
        if "spikes" in ports:
            m.d.comb += self.spikes.eq(e.spikes)
        return m

    def _ram(self, m, mem, ports):
        """One writable memory (ACC: its ``lanes`` banks), its read port to the engine's, its write
        port from the load port or the engine's (registered as the accelerator registers it)."""
        cfg, e = self._cfg, self.engine
        deep = deep_acc_pipeline(cfg.lanes)
        if mem == "acc":
            for p in range(cfg.lanes):
                memory = Memory(shape=ram_shape(cfg, mem), depth=cfg.acc_words, init=[],
                                attrs={"no_rw_check": 1} if deep else None)
                m.submodules[f"acc{p}"] = memory
                w = memory.write_port()
                if "acc_r" in ports:
                    if deep:
                        r = self._taken(m, memory.read_port(), f"acc{p}")
                    else:
                        r = memory.read_port(transparent_for=(w,))
                    self._read(m, r, e.acc_r[p])
                self._write(m, w, self.acc_load[p], e.acc_w[p] if "acc_w" in ports else None,
                            self.acc_wmon[p] if "acc_w" in ports else None, registered=False, name=f"acc{p}")
            return
        if mem == "act" and cfg.taken:
            m.submodules.act = act = BankedRAM(shape=signed(cfg.act_bits), depth=cfg.act_words,
                                               bank_words=cfg.act_bank_words)
            w, r = act.write, act.read
        else:
            memory = Memory(shape=ram_shape(cfg, mem), depth=ram_depth(cfg, mem), init=[],
                            attrs={"no_rw_check": 1})
            m.submodules[mem] = memory
            w = memory.write_port()
            r = memory.read_port()
        if f"{mem}_r" in ports:
            self._read(m, r, getattr(e, f"{mem}_r"))
        written = f"{mem}_w" in ports
        self._write(m, w, getattr(self, f"{mem}_load"), getattr(e, f"{mem}_w") if written else None,
                    getattr(self, f"{mem}_wmon") if written else None,
                    registered=mem == "act" or (mem == "spk" and cfg.taken), name=mem)

    @staticmethod
    def _taken(m, r, name):
        """The deep pipeline's ACC read: the bank's word registered when the engine takes it
        (``hw/accelerator.py``, ``read_sig``'s ``take``)."""
        t = SimpleNamespace(addr=r.addr, en=r.en, take=Signal(name=f"{name}_take"),
                            data=Signal.like(r.data, name=f"{name}_data", reset_less=True))
        with m.If(t.take):
            m.d.sync += t.data.eq(r.data)
        return t

    @staticmethod
    def _read(m, port, client):
        """The engine's read port ``client`` is the memory's ``port`` (its only reader)."""
        inputs = ("addr", "en") + (("take",) if hasattr(port, "take") else ())
        m.d.comb += [getattr(port, n).eq(getattr(client, n)) for n in inputs]
        m.d.comb += client.data.eq(port.data)

    @staticmethod
    def _write(m, port, load, client, monitor, *, registered, name):
        """``port`` written by ``load`` while its ``en`` is high, else by the engine's ``client``
        (a cycle later from registers if ``registered``, as ``hw/accelerator.py: share_write``);
        ``monitor`` shows the engine's writes as the port gets them."""
        src = client
        if client is not None and registered:
            src = SimpleNamespace(addr=Signal.like(port.addr, name=f"{name}_w_addr_q"),
                                  data=Signal.like(port.data, name=f"{name}_w_data_q"),
                                  en=Signal(name=f"{name}_w_en_q"))
            m.d.sync += [src.addr.eq(client.addr), src.data.eq(client.data), src.en.eq(client.en)]
        if src is not None:
            m.d.comb += [monitor.addr.eq(src.addr), monitor.data.eq(src.data), monitor.en.eq(src.en)]
        with m.If(load.en):
            m.d.comb += [port.addr.eq(load.addr), port.data.eq(load.data), port.en.eq(1)]
        if src is not None:
            with m.Else():
                m.d.comb += [port.addr.eq(src.addr), port.data.eq(src.data), port.en.eq(src.en)]

    def _roms(self, m, ports):
        """WMEM, BIAS, SHIFT and THRESH, initialised from the program, for the engine's read ports."""
        cfg, prog, e = self._cfg, self._program, self.engine
        if "wmem_r" in ports:
            width = cfg.lanes * cfg.weight_bits
            if deep_acc_pipeline(cfg.lanes):
                m.submodules.wmem = wmem = BankedROM(width=width, depth=cfg.wmem_words,
                                                     bank_words=cfg.wmem_bank_words, init=packed_wmem(prog))
                r = wmem.read
            else:
                m.submodules.wmem = wmem = Memory(shape=unsigned(width), depth=cfg.wmem_words,
                                                  init=packed_wmem(prog))
                r = wmem.read_port()
            self._read(m, r, e.wmem_r)
        for name, bits, words, values in (("bias", cfg.bias_bits, cfg.bias_words, prog.bias),
                                          ("shift", cfg.shift_bits, cfg.shift_words, prog.shift),
                                          ("thresh", cfg.thresh_bits, cfg.thresh_words, prog.thresh)):
            if f"{name}_r" in ports:
                m.submodules[name] = memory = Memory(shape=signed(bits), depth=words,
                                                     init=[int(v) for v in values])
                self._read(m, memory.read_port(), getattr(e, f"{name}_r"))
