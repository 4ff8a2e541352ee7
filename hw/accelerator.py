"""The spikegate accelerator (SFA): a memory-to-memory machine that runs a compiled ``Program``.

``docs/accelerator.md`` is the specification; ``compiler/iss.py`` the executable reference this
RTL matches bit for bit (logits) and cycle for cycle (``compiler/cycle_model.py``).

Structure (one ``wiring.Component`` per block; this module only instantiates and connects them):

* **Memories** (:class:`~spikegate.hw.accel_memories.AccelMemories`), all sized and typed from the Program: ACT (``act_bits`` signed), SPK (1 bit), ``lanes``
  ACC banks (``acc_bits`` signed; read ports transparent for their write ports, so read-modify-write
  pipelines never lose a back-to-back update), WMEM (``lanes`` weights per word), BIAS, SHIFT,
  THRESH, and the program ROM of encoded instruction words. ATTN's ``K^T V`` scratch lives inside
  its engine. WMEM is block RAM initialised with the weights (``weights="rom"``, the default), or
  (``weights="spram"``, for builds whose weights are runtime-loaded) the iCE40's SB_SPRAM256KA
  blocks (:class:`~spikegate.hw.spram.SPRAMWeightMemory`, same read timing), written through
  the extra ``weights`` port (:func:`~spikegate.hw.accel_interface.weight_port_signature`) before
  the first image, or (``weights="sdram"``, for a program whose weights live in external memory,
  ``Program.external``) a block RAM buffer that the WLOAD engine fills layer by layer. With more
  than one lane (the CONV engine's deep ACC pipeline) the engine takes WMEM's word three cycles
  after its address: the block RAM WMEM is then a
  :class:`~spikegate.hw.banked_rom.BankedROM` (banks of ``wmem_bank_words``, one block RAM deep,
  each registered on its own, groups of banks a cycle later, the group mux a cycle after that), the
  SPRAM one gets two registers. ACT is then a :class:`~spikegate.hw.banked_ram.BankedRAM`, and
  ACT's and ACC's words are registered behind their block RAMs when the reading engine takes them
  (``take``: :func:`~spikegate.hw.sfa_common.read_sig`).
* **Port multiplexers** (:class:`~spikegate.hw.port_mux.PortMux`): each memory port driven by
  the engine of the running opcode (``port_mux.port_clients``), selected by registers the sequencer loads.
* **Sequencer** (:class:`~spikegate.hw.sequencer.Sequencer`): after a reset ``CLEAR`` zeroes the ACC banks (``acc_words`` cycles, before
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
  With ``weights="sdram"`` also :class:`~spikegate.hw.wload.WLoadEngine` (WLOAD): its operands
  decoded from the instruction's fields as ``Instr.wload`` encodes them (beat address
  ``src | src2 << WLOAD_SRC_LO_BITS``, ``n`` in ``dst``, ``wbase``), the burst port ``mem`` on the
  core's signature (:func:`~spikegate.hw.wload.burst_port_signature` of :func:`burst_port`), and
  WMEM's only writer, so it needs no port multiplexer. Every other program's core is exactly as
  without it.
* **Cycle counter** (:class:`~spikegate.hw.sequencer.CycleCounter`): ``cycles`` counts clock cycles from the first accepted pixel to the last
  accepted logit, both included; ``busy`` is high from the cycle after the first pixel until the
  cycle after the last logit.

Debug outputs (for the testbench): ``dbg_instr_done`` pulses for one cycle after each instruction,
with ``dbg_tag`` its tag and ``dbg_spikes`` (after a LIF, or a CONV with ``fire``) its spike count.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine import external_memory as em
from spikegate.machine.config import MachineConfig, deep_acc_pipeline
from spikegate.machine.program import OP_INPUT, OP_OUTPUT, WLOAD_SRC_LO_BITS, Program

from .accel_interface import accelerator_signature, weight_port_signature
from .accel_memories import AccelMemories
from .port_mux import PortMux, engine_ports, port_clients, port_lanes
from .sequencer import ENGINE_OPCODES, TAG_BITS, CycleCounter, Sequencer
from .sfa_attn import AttnEngine
from .conv_readout import fire_decode
from .sfa_conv import ConvEngine
from .sfa_io import InputEngine, OutputEngine, SumEngine
from .sfa_lif import LIFEngine
from .wload import WLoadEngine, burst_port_signature

__all__ = ["Accelerator", "burst_port", "emit_verilog", "WEIGHT_STORAGE"]

WEIGHT_STORAGE = ("rom", "spram", "sdram")


def burst_port(program: Program) -> em.BurstPort:
    """The burst port of a core whose weights live in external memory: ``program.port_bits`` wide,
    the ULX3S's longest burst and address width. The same port as the cycle model's
    (``compiler/cycle_model.py: external_port``, which hw/ cannot import;
    ``rtl_tests/test_external_rtl.py`` holds them equal)."""
    return em.BurstPort(port_bits=program.port_bits, max_burst=em.ULX3S_PORT.max_burst,
                        addr_bits=em.ULX3S_PORT.addr_bits)


class Accelerator(wiring.Component):
    """The SFA core for one compiled ``program`` (its memories initialised from it; with
    ``weights="spram"`` all but WMEM, which is then written through the ``weights`` port; with
    ``weights="sdram"``, required by and only for a program whose weights live in external memory,
    WMEM is the buffer its WLOADs fill from the burst port ``mem``)."""

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
        if (weights == "sdram") != program.external:
            self._MustUse__silence = True
            raise ValueError("weights='sdram' is for a program whose weights live in external memory "
                             "(Program.wmem_external), and such a program needs it")
        if program.external and len(program.wmem_external) > burst_port(program).beats:
            self._MustUse__silence = True
            raise ValueError(f"the external weight image ({len(program.wmem_external)} beats) exceeds the "
                             f"burst port's {burst_port(program).beats} beats")
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
        if weights == "sdram":
            members["mem"] = Out(burst_port_signature(burst_port(program)))
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
        """``"rom"`` (block RAM, initialised by the bitstream), ``"spram"`` (runtime-loaded) or
        ``"sdram"`` (streamed from external memory by WLOAD)."""
        return self._weights

    @property
    def weight_words(self) -> int:
        """WMEM words the program uses (what a host uploads when they are runtime-loaded)."""
        return int(len(self._program.wmem))

    def elaborate(self, platform):
        m = Module()
        prog, cfg = self._program, self._cfg
        m.submodules.mems = mems = AccelMemories(prog, cfg, weights=self._weights)
        m.submodules.ports = ports = PortMux(cfg)
        external = self._weights == "sdram"
        m.submodules.seq = seq = Sequencer(cfg, len(prog.instrs), external=external)
        engines = {"inp": InputEngine(cfg), "conv": ConvEngine(cfg), "lif": LIFEngine(cfg),
                   "attn": AttnEngine(cfg), "sum": SumEngine(cfg), "out": OutputEngine(cfg)}
        assert engines.keys() == ENGINE_OPCODES.keys()
        for name, engine in engines.items():
            m.submodules[name] = engine
            m.d.comb += [engine.instr.eq(seq.instr), engine.drv.eq(seq.drv),
                         engine.start.eq(seq.start[name]), seq.done[name].eq(engine.done)]
            # the engine's memory ports to the multiplexers, theirs to the memories
            for port in engine_ports(cfg, name).members:
                for ours, theirs in zip(port_lanes(engine, port), port_lanes(getattr(ports, name), port)):
                    wiring.connect(m, ours, theirs)
        for port in port_clients(cfg):
            for ours, theirs in zip(port_lanes(ports, port), port_lanes(mems, port)):
                wiring.connect(m, ours, theirs)
        wiring.connect(m, seq.rom, mems.rom_r)
        if external:
            m.d.comb += [ports.sel[name].eq(seq.sel[name]) for name in ENGINE_OPCODES]
            self._wload(m, seq, mems)
        else:
            m.d.comb += ports.sel.eq(seq.sel)
        m.d.comb += [ports.clearing.eq(seq.clearing), ports.clr_addr.eq(seq.clr_addr)]
        if self._weights == "spram":
            wiring.connect(m, wiring.flipped(self.weights), mems.weights)
        wiring.connect(m, wiring.flipped(self.pixels), engines["inp"].pixels)
        wiring.connect(m, engines["out"].logits, wiring.flipped(self.logits))
        m.d.comb += [self.dbg_instr_done.eq(seq.instr_done), self.dbg_tag.eq(seq.tag),
                     self.dbg_spikes.eq(self._spikes(m, seq, engines))]

        m.submodules.cycle_counter = counter = CycleCounter()
        m.d.comb += [
            counter.pixel_accepted.eq(self.pixels.valid & self.pixels.ready),
            counter.last_accepted.eq(self.logits.valid & self.logits.ready & self.logits.payload.last),
            self.busy.eq(counter.busy), self.cycles.eq(counter.cycles),
        ]

        # ACT's and SPK's read and write ports as the memories see them (addr, en), for the test
        # of the premise of their no_rw_check (rtl_tests/test_port_collisions.py); with more than
        # one lane also ACC's ports, whether CONV/HEAD holds them and that engine (its
        # acc_read_probe, set when it is elaborated), for the test that every read meeting a
        # write of its word is a tap whose word is forwarded; set anew by every elaboration
        self.rw_ports = {"act": (mems.act_r, mems.act_w), "spk": (mems.spk_r, mems.spk_w)}
        self.acc_ports = (list(zip(mems.acc_r, mems.acc_w)), seq.sel.conv, engines["conv"]) \
            if deep_acc_pipeline(cfg.lanes) else None
        return m

    def _spikes(self, m, seq, engines):
        """``dbg_spikes``: the LIF engine's spike count, or, when the program fires, the count of
        the engine that fired last (LIF, or a CONV with ``fire``), chosen by a flip-flop set at
        the start of the one and of the other."""
        if not self._cfg.fires:
            return engines["lif"].spikes
        conv_fired = Signal(name="conv_fired")
        with m.If(seq.start.lif):
            m.d.sync += conv_fired.eq(0)
        with m.Elif(seq.start.conv & fire_decode(seq.instr)[0]):
            m.d.sync += conv_fired.eq(1)
        return Mux(conv_fired, engines["conv"].spikes, engines["lif"].spikes)

    def _wload(self, m, seq, mems):
        """The WLOAD engine: started by the sequencer, its operands from the instruction register
        (held from DEC2 until the next FETCH, registered by the engine at its start), WMEM's writer,
        and the core's burst port."""
        prog, cfg = self._program, self._cfg
        instr = seq.instr
        m.submodules.wload = wl = WLoadEngine(word_bits=prog.lanes * prog.weight_bits, wmem_abits=cfg.wmem_abits,
                                              n_bits=len(instr.dst), port=burst_port(prog))
        m.d.comb += [wl.start.eq(seq.start.wload), seq.done.wload.eq(wl.done),
                     wl.src.eq(instr.src | (instr.src2 << WLOAD_SRC_LO_BITS)),
                     wl.n.eq(instr.dst), wl.wbase.eq(instr.wbase)]
        wiring.connect(m, wl.wmem, mems.weights)
        wiring.connect(m, wl.mem, wiring.flipped(self.mem))


def emit_verilog(program: Program, path, name: str = "sfa_top", *, weights: str = "rom") -> None:
    """Write the Verilog of ``Accelerator(program, weights=weights)`` to ``path`` (atomically; the
    same program gives the same bytes). With ``weights="spram"`` the text names the vendor
    primitive ``SB_SPRAM256KA``; simulations add :data:`spikegate.hw.spram.SIM_MODEL`. With
    ``weights="sdram"`` the top has the burst port ``mem__cmd__*`` / ``mem__rdata__*``."""
    from amaranth.back import verilog

    text = verilog.convert(Accelerator(program, weights=weights), name=name, emit_src=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
