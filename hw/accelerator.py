"""The spikegate accelerator (SFA): a memory-to-memory machine that runs a compiled ``Program``.

``docs/accelerator.md`` is the specification; ``compiler/iss.py`` the executable reference this
RTL matches bit for bit (logits) and cycle for cycle (``compiler/cycle_model.py``).

Structure (one ``wiring.Component`` per block):

* **Memories**, all sized and typed from the Program: ACT (``act_bits`` signed), SPK (1 bit), ``lanes``
  ACC banks (``acc_bits`` signed; read ports transparent for their write ports, so read-modify-write
  pipelines never lose a back-to-back update), WMEM (``lanes`` weights per word), BIAS, SHIFT,
  THRESH, and the program ROM of encoded instruction words. ATTN's ``K^T V`` scratch lives inside
  its engine. WMEM is block RAM initialised with the weights (``weights="rom"``, the default), or
  (``weights="spram"``, for builds whose weights are runtime-loaded) the iCE40's SB_SPRAM256KA
  blocks (:class:`~spikegate.hw.spram.SPRAMWeightMemory`, same read timing), written through
  the extra ``weights`` port (:func:`~spikegate.hw.accel_interface.weight_port_signature`) before
  the first image. With more than one lane (the CONV engine's deep ACC pipeline) the engine takes
  WMEM's word three cycles after its address: the block RAM WMEM is then a
  :class:`~spikegate.hw.banked_rom.BankedROM` (banks of ``wmem_bank_words``, one block RAM deep,
  each registered on its own, groups of banks a cycle later, the group mux a cycle after that), the
  SPRAM one gets two registers. ACT is then a :class:`~spikegate.hw.banked_ram.BankedRAM`, and
  ACT's and ACC's words are registered behind their block RAMs when the reading engine takes them
  (``take``: :func:`~spikegate.hw.sfa_common.read_sig`).
* **Sequencer** (here): after a reset ``CLEAR`` zeroes the ACC banks (``acc_words`` cycles, before
  the first pixel is accepted); ``FETCH`` reads the instruction at ``pc`` (ROM word ``2*pc``,
  decoded through :func:`~spikegate.hw.sfa_common.instr_layout`), ``DEC1`` registers it and reads
  its products (word ``2*pc + 1``: ``h*w``, ``ho*wo``, ``cin*h*w``, ``cout*ho*wo``, lane and tap
  groups, computed by the compiler: ``machine/program.py: rom_image``), ``DEC2`` registers those,
  ``DEC3`` starts the engine of the opcode, ``RUN`` waits for its
  ``done``; then ``pc`` moves on (after OUTPUT back to 0: the next image).
* **Engines** (``hw/sfa_*.py``): :class:`~spikegate.hw.sfa_io.InputEngine`,
  :class:`~spikegate.hw.sfa_conv.ConvEngine` (CONV and HEAD),
  :class:`~spikegate.hw.sfa_lif.LIFEngine`, :class:`~spikegate.hw.sfa_attn.AttnEngine`,
  :class:`~spikegate.hw.sfa_io.SumEngine`, :class:`~spikegate.hw.sfa_io.OutputEngine`. Each
  drives its own view of the memory ports; the ports are multiplexed by the running opcode.
* **Cycle counter**: ``cycles`` counts clock cycles from the first accepted pixel to the last
  accepted logit, both included; ``busy`` is high from the cycle after the first pixel until the
  cycle after the last logit.

Debug outputs (for the testbench): ``dbg_instr_done`` pulses for one cycle after each instruction,
with ``dbg_tag`` its tag and ``dbg_spikes`` (after a LIF) its spike count.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline
from spikegate.machine.program import (FIELDS, OP_ATTN, OP_CONV, OP_HEAD, OP_INPUT, OP_LIF, OP_OUTPUT,
                                         OP_SUM, Program, rom_image)

from .accel_interface import accelerator_signature, weight_port_signature
from .banked_ram import BankedRAM
from .banked_rom import READ_LATENCY as BANKED_READ_LATENCY
from .banked_rom import BankedROM
from .sfa_attn import AttnEngine
from .sfa_common import derived_layout, instr_layout
from .sfa_conv import ConvEngine
from .sfa_io import InputEngine, OutputEngine, SumEngine
from .sfa_lif import LIFEngine
from .spram import SPRAMWeightMemory

__all__ = ["Accelerator", "emit_verilog", "WEIGHT_STORAGE"]

TAG_BITS = dict(FIELDS)["tag"]
WEIGHT_STORAGE = ("rom", "spram")


def _fit(name: str, values: np.ndarray, bits: int, signed_: bool = True) -> list[int]:
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed_ else (0, (1 << bits) - 1)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"program {name} must fit {bits}-bit integers, not [{v.min()}, {v.max()}]")
    return [int(x) for x in v]


class Accelerator(wiring.Component):
    """The SFA core for one compiled ``program`` (its memories initialised from it; with
    ``weights="spram"`` all but WMEM, which is then written through the ``weights`` port)."""

    def __init__(self, program: Program, *, weights: str = "rom", wmem_bank_words: int | None = None,
                 act_bank_words: int | None = None):
        if not isinstance(program, Program):
            self._MustUse__silence = True       # never elaborated: no "unused" warning
            raise TypeError(f"program must be a compiler.program.Program, not {program!r}")
        if weights not in WEIGHT_STORAGE:
            self._MustUse__silence = True
            raise ValueError(f"weights must be one of {', '.join(map(repr, WEIGHT_STORAGE))}, not {weights!r}")
        if not program.instrs or program.instrs[0].opcode != OP_INPUT or program.instrs[-1].opcode != OP_OUTPUT:
            self._MustUse__silence = True
            raise ValueError("program must start with INPUT and end with OUTPUT")
        wm = np.asarray(program.wmem)
        if wm.ndim != 2 or wm.shape[1] != program.lanes:
            self._MustUse__silence = True
            raise ValueError(f"program.wmem must have shape [words, lanes={program.lanes}], not {wm.shape!r}")
        self._program = program
        self._cfg = MachineConfig.from_program(program)
        # other bank depths than one block RAM's (WMEM's hw/banked_rom.py, ACT's hw/banked_ram.py):
        # for tests, so that a small program's memories span several banks
        for name, words in (("wmem_bank_words", wmem_bank_words), ("act_bank_words", act_bank_words)):
            if words is None:
                continue
            if not getattr(self._cfg, name):
                self._MustUse__silence = True
                raise ValueError(f"{name} applies only to the deep ACC pipeline (lanes > 1)")
            self._cfg = dataclasses.replace(self._cfg, **{name: words})
        self._weights = weights
        members = dict(accelerator_signature(pixel_bits=program.pixel_bits,
                                             logit_bits=program.logit_bits).members)
        if weights == "spram":
            members["weights"] = In(weight_port_signature(addr_bits=self._cfg.wmem_abits,
                                                          word_bits=program.lanes * program.weight_bits))
        members.update({
            "dbg_instr_done": Out(1),
            "dbg_tag": Out(TAG_BITS),
            "dbg_spikes": Out(32),
        })
        super().__init__(members)

    @property
    def program(self) -> Program:
        return self._program

    @property
    def config(self) -> MachineConfig:
        return self._cfg

    @property
    def weight_storage(self) -> str:
        """``"rom"`` (block RAM, initialised by the bitstream) or ``"spram"`` (runtime-loaded)."""
        return self._weights

    @property
    def weight_words(self) -> int:
        """WMEM words the program uses (what a host uploads when they are runtime-loaded)."""
        return int(len(self._program.wmem))

    def elaborate(self, platform):
        m = Module()
        prog, cfg = self._program, self._cfg
        P = cfg.lanes

        # ---------------------------------------------------------------- memories
        def mem(name, shape, depth, init=(), attrs=None):
            mm = Memory(shape=shape, depth=depth, init=list(init), attrs=attrs)
            m.submodules[name] = mm
            return mm

        # ACT likewise: INPUT, ATTN and SUM write it, CONV/HEAD, LIF and SUM read it, one engine at a
        # time; CONV reads its input in the scan and the old words (OUT_ACCUM) in the readout at
        # ``oa``, which grows by one a cycle, while the word read four cycles before is written (R3,
        # and the write's register below; five with more than one lane: RS); SUM
        # reads its input and writes its output, a different tensor. So no read meets a write to
        # its word, and the emulated order (the address compare behind the engines' address mux)
        # was the ECP5's critical path once the lanes' multiplier fitted one DSP block
        # With the deep pipeline ACT is a BankedRAM (hw/banked_ram.py): banks of one block RAM's
        # depth, each bank's word registered right behind its block RAMs when the reading engine
        # takes it (its register's enable, ``take``), the bank mux behind those registers
        if cfg.taken:
            m.submodules.act = act = BankedRAM(shape=signed(cfg.act_bits), depth=cfg.act_words,
                                               bank_words=cfg.act_bank_words)
        else:
            act = mem("act", signed(cfg.act_bits), cfg.act_words, attrs={"no_rw_check": 1})
        # SPK is written only by the LIF engine and read only by CONV/HEAD and ATTN, and the port
        # multiplexers below enable each port only while its engines' opcode runs: a read and a
        # write never meet in one cycle. Yosys cannot see that and emulates the read-before-write
        # order of a collision in logic (the write delayed a cycle, an address compare and a bypass
        # mux on the read data), which sat on the critical path of both FPGA families; no_rw_check
        # tells it there is no collision to order (see registered_read_port).
        spk = mem("spk", unsigned(1), cfg.spk_words, attrs={"no_rw_check": 1})
        # ACC: with one lane each read port is transparent for its write port (the short
        # pipeline's back-to-back read-modify-write of a word relies on it). With more than one
        # lane it is not, and the banks are no_rw_check: the transparency's address compare of the
        # muxed write and read addresses into its bypass register, across the die, was the ECP5's
        # critical path. There a read that meets a write of its word is a CONV tap's whose word
        # the lane takes from its forward instead (hw/sfa_conv.py: T4's third forward), so the
        # word it reads does not matter; every other read meets no write of its word
        # (rtl_tests/test_port_collisions.py)
        deep = deep_acc_pipeline(P)
        acc_attrs = {"no_rw_check": 1} if deep else None
        accs = [mem(f"acc{p}", signed(cfg.acc_bits), cfg.acc_words, attrs=acc_attrs) for p in range(P)]
        wb = cfg.weight_bits
        wmask = (1 << wb) - 1
        words = _fit("weights", prog.wmem, wb)
        packed = []
        for r in range(len(prog.wmem)):
            word = 0
            for p in range(P):
                word |= (words[r * P + p] & wmask) << (p * wb)
            packed.append(word)
        # With the deep ACC pipeline the CONV engine takes WMEM's word three cycles after its address
        # (hw/sfa_conv.py, T3): the block RAM WMEM is then a BankedROM (each bank's word registered
        # behind its block RAMs, groups of banks a cycle later, the group mux in the third), the
        # SPRAM one gets two registers
        if self._weights == "spram":
            m.submodules.wmem = wmem = SPRAMWeightMemory(words=cfg.wmem_words, width=P * wb)
            wiring.connect(m, wiring.flipped(self.weights), wmem.write)
        elif deep:
            m.submodules.wmem = wmem = BankedROM(width=P * wb, depth=cfg.wmem_words,
                                                 bank_words=cfg.wmem_bank_words, init=packed)
        else:
            wmem = mem("wmem", unsigned(P * wb), cfg.wmem_words, packed)
        bias = mem("bias", signed(cfg.bias_bits), cfg.bias_words, _fit("biases", prog.bias, cfg.bias_bits))
        shift = mem("shift", signed(cfg.shift_bits), cfg.shift_words, _fit("shifts", prog.shift, cfg.shift_bits))
        thresh = mem("thresh", signed(cfg.thresh_bits), cfg.thresh_words,
                     _fit("thresholds", prog.thresh, cfg.thresh_bits))
        # the ROM holds the program in this accelerator's own instruction layout: every field only as
        # wide as the program's largest value of it (MachineConfig.field_bits)
        # two words per instruction: its fields, then its products (machine/program.py: rom_image)
        rom_width = max(instr_layout(cfg).size, derived_layout(cfg).size)
        rom = mem("rom", unsigned(rom_width), 2 * cfg.rom_words, rom_image(prog.instrs, P))

        if cfg.taken:
            act_w, act_r = act.write, act.read
        else:
            act_w = act.write_port()
            act_r = registered_read_port(m, act, "act_r")
        spk_w = spk.write_port()
        spk_r = registered_read_port(m, spk, "spk_r")
        acc_w = [a.write_port() for a in accs]
        if deep:
            acc_r = [registered_read_port(m, a, f"acc{p}_r") for p, a in enumerate(accs)]
        else:
            acc_r = [a.read_port(transparent_for=(w,)) for a, w in zip(accs, acc_w)]
        if cfg.taken:
            # each ACC bank's word registered right behind its block RAMs when the reading engine
            # takes it (the register the engine would have loaded: see read_sig), so that the
            # block RAMs' clock-to-output and the route to the engine are in different cycles
            taken = []
            for p, r in enumerate(acc_r):
                t = SimpleNamespace(addr=r.addr, en=r.en, take=Signal(name=f"acc{p}_take"),
                                    data=Signal.like(r.data, name=f"acc{p}_data", reset_less=True))
                with m.If(t.take):
                    m.d.sync += t.data.eq(r.data)
                taken.append(t)
            acc_r = taken
        if self._weights == "spram" and deep:
            # the SPRAM's word through as many registers as the BankedROM's (READ_LATENCY)
            wmem_r = SimpleNamespace(addr=wmem.read.addr, en=wmem.read.en, data=wmem.read.data)
            for stage in range(2, BANKED_READ_LATENCY + 1):
                q = Signal.like(wmem.read.data, name=f"wmem_r_data{stage}")
                m.d.sync += q.eq(wmem_r.data)
                wmem_r.data = q
        else:
            wmem_r = wmem.read if self._weights == "spram" or deep else wmem.read_port()
        bias_r = bias.read_port()
        shift_r = shift.read_port()
        thresh_r = thresh.read_port()
        rom_r = rom.read_port()
        # ACT's and SPK's read and write ports as the memories see them (addr, en), for the test
        # of the premise of their no_rw_check (rtl_tests/test_port_collisions.py); set anew by
        # every elaboration
        self.rw_ports = {"act": (act_r, act_w), "spk": (spk_r, spk_w)}

        # ---------------------------------------------------------------- engines
        m.submodules.inp = inp = InputEngine(cfg)
        m.submodules.conv = conv = ConvEngine(cfg)
        m.submodules.lif = lif = LIFEngine(cfg)
        m.submodules.attn = attn = AttnEngine(cfg)
        m.submodules.sum = summ = SumEngine(cfg)
        m.submodules.out = out = OutputEngine(cfg)
        engines = {OP_INPUT: inp, OP_CONV: conv, OP_HEAD: conv, OP_LIF: lif, OP_ATTN: attn, OP_SUM: summ,
                   OP_OUTPUT: out}

        # The sequencer, the engines and the port multiplexers see the instruction and its products
        # through registers loaded from the ROM's port (the instruction in DEC1, the products in
        # DEC2), so the ROM's clock-to-output does not start any of their paths. The instruction
        # is valid from DEC2 on, the products from DEC3, where the engine starts.
        instr = Signal(instr_layout(cfg).size)
        held = instr_layout(cfg)(instr)
        op = held.opcode
        drv = Signal(derived_layout(cfg))
        for e in (inp, conv, lif, attn, summ, out):
            m.d.comb += [e.instr.eq(instr), e.drv.eq(drv)]

        wiring.connect(m, wiring.flipped(self.pixels), inp.pixels)
        wiring.connect(m, out.logits, wiring.flipped(self.logits))

        # ---------------------------------------------------------------- port multiplexers
        # Whether the instruction's opcode is one of ``ops``: a flip-flop per set of opcodes, loaded
        # with the instruction (DEC1) from the ROM's word, so that the port multiplexers' selects
        # are registers, not a decode of the opcode register (that decode in front of the ACC
        # banks' write ports, across the die, was the ECP5's critical path). After a reset the
        # instruction register is 0 and so is every flag's opcode decode.
        sel_flags = {}

        def sel(*ops):
            if ops not in sel_flags:
                names = "_".join(str(o) for o in ops)
                sel_flags[ops] = Signal(name=f"op_is_{names}", init=int(0 in ops))
            return sel_flags[ops]

        def decode(opcode, ops):
            cond = opcode == ops[0]
            for o in ops[1:]:
                cond = cond | (opcode == o)
            return cond

        def share_read(port, clients):
            # the port's inputs: address and enable, and with ``take`` (read_sig) its register's enable
            inputs = ("addr", "en") + (("take",) if hasattr(port, "take") else ())
            if len(clients) == 1:
                # a port's only reader: no mux in front of the block RAM (a read has no side
                # effect, and only that engine takes the word)
                m.d.comb += [getattr(port, n).eq(getattr(clients[0][1], n)) for n in inputs]
                m.d.comb += clients[0][1].data.eq(port.data)
                return
            m.d.comb += port.en.eq(0)
            for _, c in clients:
                m.d.comb += c.data.eq(port.data)
            for i, (cond, c) in enumerate(clients):
                with (m.If if i == 0 else m.Elif)(cond):
                    m.d.comb += [getattr(port, n).eq(getattr(c, n)) for n in inputs]

        def share_write(port, clients, registered=None):
            """``port`` written by the client whose condition holds; with ``registered`` (a name)
            the selected write goes to the port a cycle later, from registers (an engine's last
            write then lands after its ``done``, still cycles before the next instruction's first
            read)"""
            if registered:
                q = SimpleNamespace(addr=Signal.like(port.addr, name=f"{registered}_addr_q"),
                                    data=Signal.like(port.data, name=f"{registered}_data_q"),
                                    en=Signal(name=f"{registered}_en_q"))
                m.d.comb += [port.addr.eq(q.addr), port.data.eq(q.data), port.en.eq(q.en)]
                sel_w = SimpleNamespace(addr=Signal.like(port.addr), data=Signal.like(port.data), en=Signal())
                m.d.sync += [q.addr.eq(sel_w.addr), q.data.eq(sel_w.data), q.en.eq(sel_w.en)]
                port = sel_w
            m.d.comb += port.en.eq(0)
            for i, (cond, c) in enumerate(clients):
                with (m.If if i == 0 else m.Elif)(cond):
                    m.d.comb += [port.addr.eq(c.addr), port.data.eq(c.data), port.en.eq(c.en)]

        is_conv = sel(OP_CONV, OP_HEAD)
        # with more than one lane, ACC's ports, whether CONV/HEAD holds them and that engine (its
        # acc_read_probe, set when it is elaborated), for the test that
        # every read meeting a write of its word is a tap whose word is forwarded
        # (rtl_tests/test_port_collisions.py); set anew by every elaboration
        self.acc_ports = ([(acc_r[p], acc_w[p]) for p in range(P)], is_conv, conv) if deep else None
        share_read(act_r, [(is_conv, conv.act_r), (sel(OP_LIF), lif.act_r), (sel(OP_SUM), summ.act_r)])
        # ACT's write registered: four writers, and ACT's block RAMs (the largest memory after
        # WMEM) spread wide, so that their mux and its route in one cycle were the ECP5's critical path
        share_write(act_w, [(sel(OP_INPUT), inp.act_w), (is_conv, conv.act_w), (sel(OP_ATTN), attn.act_w),
                            (sel(OP_SUM), summ.act_w)], registered="act_w")
        share_read(spk_r, [(is_conv, conv.spk_r), (sel(OP_ATTN), attn.spk_r)])
        # with the deep pipeline SPK's write registered too: the LIF's spike (the ACT bank mux,
        # the membrane's adder and the threshold compare) and the route to SPK's block RAM in one
        # cycle were the ECP5's critical path once ACT's words were registered behind its block RAMs
        share_write(spk_w, [(sel(OP_LIF), lif.spk_w)], registered="spk_w" if cfg.taken else None)
        # after a reset the sequencer first clears the ACC banks (a reset in the middle of an
        # inference would otherwise leave partial sums behind)
        clearing = Signal(init=1)      # a flip-flop (the state's decode was in front of the write ports)
        clr_addr = Signal(range(cfg.acc_words))
        for p in range(P):
            share_read(acc_r[p], [(is_conv, conv.acc_r[p]), (sel(OP_OUTPUT), out.acc_r[p])])
            share_write(acc_w[p], [(is_conv, conv.acc_w[p]), (sel(OP_OUTPUT), out.acc_w[p])])
            with m.If(clearing):
                m.d.comb += [acc_w[p].addr.eq(clr_addr), acc_w[p].data.eq(0), acc_w[p].en.eq(1)]
        share_read(wmem_r, [(is_conv, conv.wmem_r)])
        share_read(bias_r, [(is_conv, conv.bias_r)])
        share_read(shift_r, [(is_conv, conv.shift_r)])
        share_read(thresh_r, [(sel(OP_LIF), lif.thresh_r)])

        # ---------------------------------------------------------------- sequencer
        pc = Signal(range(cfg.rom_words))
        n_instr = len(prog.instrs)
        done = Signal()
        with m.Switch(op):
            for code, e in engines.items():
                with m.Case(code):
                    m.d.comb += done.eq(e.done)
        m.d.sync += self.dbg_instr_done.eq(0)
        m.d.comb += self.dbg_spikes.eq(lif.spikes)
        # each engine's start is a flip-flop, set in DEC2 from the opcode and high in DEC3: every
        # register an engine loads at its start is enabled by it, so the state and opcode decode
        # stay a cycle away from those enables
        starts = {}
        for e in engines.values():
            if id(e) not in starts:
                starts[id(e)] = Signal(name=f"{e.__class__.__name__.lower()}_start")
                m.d.sync += starts[id(e)].eq(0)
                m.d.comb += e.start.eq(starts[id(e)])

        with m.FSM(name="seq"):
            with m.State("CLEAR"):
                m.d.sync += clr_addr.eq(clr_addr + 1)
                with m.If(clr_addr == cfg.acc_words - 1):
                    m.d.sync += clearing.eq(0)
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [rom_r.addr.eq(Cat(0, pc)), rom_r.en.eq(1)]
                m.next = "DEC1"
            with m.State("DEC1"):
                # the instruction's word is on the ROM's read port; read its products next
                m.d.comb += [rom_r.addr.eq(Cat(1, pc)), rom_r.en.eq(1)]
                m.d.sync += instr.eq(rom_r.data[:len(instr)])
                rom_op = instr_layout(cfg)(rom_r.data[:len(instr)]).opcode
                m.d.sync += [flag.eq(decode(rom_op, ops)) for ops, flag in sel_flags.items()]
                m.next = "DEC2"
            with m.State("DEC2"):
                m.d.comb += rom_r.en.eq(0)
                m.d.sync += drv.eq(rom_r.data[:derived_layout(cfg).size])
                with m.Switch(op):
                    for code, e in engines.items():
                        with m.Case(code):
                            m.d.sync += starts[id(e)].eq(1)
                m.next = "DEC3"
            with m.State("DEC3"):
                # the engine of the opcode starts (its start flip-flop is high)
                m.d.comb += rom_r.en.eq(0)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += rom_r.en.eq(0)
                with m.If(done):
                    m.d.sync += [self.dbg_instr_done.eq(1), self.dbg_tag.eq(held.tag)]
                    with m.If(pc == n_instr - 1):
                        m.d.sync += pc.eq(0)
                    with m.Else():
                        m.d.sync += pc.eq(pc + 1)
                    m.next = "FETCH"

        # ---------------------------------------------------------------- cycle counter
        pix_fire = self.pixels.valid & self.pixels.ready
        last_fire = self.logits.valid & self.logits.ready & self.logits.payload.last
        with m.If(~self.busy):
            with m.If(pix_fire):
                m.d.sync += [self.busy.eq(1), self.cycles.eq(1)]
        with m.Else():
            m.d.sync += self.cycles.eq(self.cycles + 1)
            with m.If(last_fire):
                m.d.sync += self.busy.eq(0)
        return m


def registered_read_port(m: Module, memory: Memory, name: str) -> SimpleNamespace:
    """A synchronous read port of ``memory`` (``addr``, ``en``, ``data``: address and enable in one
    cycle, the word in the next, held while ``en`` is low), made of an asynchronous port and a
    register. It behaves exactly as ``memory.read_port()``; Yosys' ``memory_dff`` merges the
    register back into the block RAM's read port, and only a port merged that way takes the
    memory's ``no_rw_check`` attribute into account (one emitted synchronous keeps its defined
    read-before-write order)."""
    port = memory.read_port(domain="comb")
    addr = Signal.like(port.addr, name=f"{name}_addr")
    en = Signal(name=f"{name}_en")
    # no reset, as a block RAM's output register has none (a reset would have to be emulated in
    # logic behind the block RAM)
    data = Signal.like(port.data, name=f"{name}_data", reset_less=True)
    m.d.comb += port.addr.eq(addr)
    with m.If(en):
        m.d.sync += data.eq(port.data)
    return SimpleNamespace(addr=addr, en=en, data=data)


def emit_verilog(program: Program, path, name: str = "sfa_top", *, weights: str = "rom") -> None:
    """Write the Verilog of ``Accelerator(program, weights=weights)`` to ``path`` (atomically; the
    same program gives the same bytes). With ``weights="spram"`` the text names the vendor
    primitive ``SB_SPRAM256KA``; simulations add :data:`spikegate.hw.spram.SIM_MODEL`."""
    from amaranth.back import verilog

    text = verilog.convert(Accelerator(program, weights=weights), name=name, emit_src=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
