"""The accelerator's memories, sized and typed from the Program, behind one component.

:class:`AccelMemories` owns ACT (``act_bits`` signed), SPK (1 bit), the ``lanes`` ACC banks
(``acc_bits`` signed), WMEM (``lanes`` weights per word), BIAS, SHIFT, THRESH and the program ROM
of encoded instruction words, and exposes one synchronous port per use (:func:`memory_ports`: the
engines' :func:`~spikegate.hw.sfa_common.read_sig` / :func:`~spikegate.hw.sfa_common.write_sig`
views, flipped). Whatever a memory is built of (a ``lib.memory.Memory``, a
:class:`~spikegate.hw.banked_ram.BankedRAM`, a :class:`~spikegate.hw.banked_rom.BankedROM`, the
iCE40's SPRAM) and whatever registers sit behind it, its port has the timing the engines were
written for; the port multiplexers (:mod:`spikegate.hw.port_mux`) and the sequencer
(:mod:`spikegate.hw.sequencer`) see nothing else.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline
from spikegate.machine.program import Program, rom_image

from .accel_interface import weight_port_signature
from .banked_ram import BankedRAM
from .banked_rom import READ_LATENCY as BANKED_READ_LATENCY
from .banked_rom import BankedROM
from .sfa_common import derived_layout, instr_layout, read_sig, wmem_layout, write_sig
from .spram import SPRAMWeightMemory

__all__ = ["AccelMemories", "memory_ports", "registered_read_port", "rom_word_bits"]


def rom_word_bits(cfg: MachineConfig) -> int:
    """Bits of a program ROM word: two words per instruction, its fields (``instr_layout``) and
    its products (``derived_layout``; ``machine/program.py: rom_image``)."""
    return max(instr_layout(cfg).size, derived_layout(cfg).size)


def memory_ports(cfg: MachineConfig) -> dict:
    """Every memory port as its user (an engine, through the port multiplexers; the sequencer for
    ``rom_r``) sees it: a member per port, ``Out`` for the user's side, ACC's one per lane."""
    P = cfg.lanes
    return {
        "act_r": Out(read_sig(cfg.act_abits, signed(cfg.act_bits), take=cfg.taken)),
        "act_w": Out(write_sig(cfg.act_abits, signed(cfg.act_bits))),
        "spk_r": Out(read_sig(cfg.spk_abits, unsigned(1))),
        "spk_w": Out(write_sig(cfg.spk_abits, unsigned(1))),
        "acc_r": Out(read_sig(cfg.acc_abits, signed(cfg.acc_bits), take=cfg.taken)).array(P),
        "acc_w": Out(write_sig(cfg.acc_abits, signed(cfg.acc_bits))).array(P),
        "wmem_r": Out(read_sig(cfg.wmem_abits, wmem_layout(cfg))),
        "bias_r": Out(read_sig(cfg.bias_abits, signed(cfg.bias_bits))),
        "shift_r": Out(read_sig(cfg.shift_abits, signed(cfg.shift_bits))),
        "thresh_r": Out(read_sig(cfg.thresh_abits, signed(cfg.thresh_bits))),
        "rom_r": Out(read_sig(cfg.rom_abits + 1, unsigned(rom_word_bits(cfg)))),
    }


def _fit(name: str, values: np.ndarray, bits: int, signed_: bool = True) -> list[int]:
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed_ else (0, (1 << bits) - 1)
    if v.size and (v.min() < lo or v.max() > hi):
        raise ValueError(f"program {name} must fit {bits}-bit integers, not [{v.min()}, {v.max()}]")
    return [int(x) for x in v]


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


def _serve_read(m: Module, outer, port) -> None:
    """Drive the memory's read ``port`` from the component's port ``outer`` (a flipped
    ``read_sig``: ``addr``, ``en``, with ``take`` its register's enable) and its word back."""
    inputs = ("addr", "en") + (("take",) if hasattr(outer, "take") else ())
    m.d.comb += [getattr(port, n).eq(getattr(outer, n)) for n in inputs]
    m.d.comb += outer.data.eq(port.data)


def _serve_write(m: Module, outer, port) -> None:
    """Drive the memory's write ``port`` from the component's port ``outer`` (a flipped ``write_sig``)."""
    m.d.comb += [port.addr.eq(outer.addr), port.data.eq(outer.data), port.en.eq(outer.en)]


class AccelMemories(wiring.Component):
    """The memories of the accelerator for ``program`` (configuration ``cfg``), initialised from it
    (all but WMEM with ``weights="spram"``, which is then written through ``weights``; with
    ``weights="sdram"`` WMEM is the on-chip buffer the WLOAD engine writes through ``weights``).

    Members: the flipped :func:`memory_ports` (``act_r``, ``act_w``, ``spk_r``, ``spk_w``,
    ``acc_r[P]``, ``acc_w[P]``, ``wmem_r``, ``bias_r``, ``shift_r``, ``thresh_r``, ``rom_r``),
    and with ``weights="spram"`` or ``"sdram"`` ``weights`` (In, :func:`weight_port_signature`)."""

    def __init__(self, program: Program, cfg: MachineConfig, *, weights: str):
        self._program, self._cfg, self._weights = program, cfg, weights
        members = {name: member.flip() for name, member in memory_ports(cfg).items()}
        if weights in ("spram", "sdram"):
            members["weights"] = In(weight_port_signature(addr_bits=cfg.wmem_abits,
                                                          word_bits=cfg.lanes * cfg.weight_bits))
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        self._act(m)
        self._spk(m)
        self._acc(m)
        self._wmem(m)
        self._tables(m)
        return m

    @staticmethod
    def _memory(m, name, shape, depth, init=(), attrs=None) -> Memory:
        mm = Memory(shape=shape, depth=depth, init=list(init), attrs=attrs)
        m.submodules[name] = mm
        return mm

    def _unordered_ram(self, m, name, shape, depth):
        """``(read, write)`` ports of a block RAM whose reads never meet a write of their word:
        ``no_rw_check``, the read port a :func:`registered_read_port`."""
        mem = self._memory(m, name, shape, depth, attrs={"no_rw_check": 1})
        write = mem.write_port()
        return registered_read_port(m, mem, f"{name}_r"), write

    def _act(self, m):
        cfg = self._cfg
        # INPUT, ATTN and SUM write ACT, CONV/HEAD, LIF and SUM read it, one engine at a time; CONV
        # reads its input in the scan and the old words (OUT_ACCUM) in the readout at ``oa``, which
        # grows by one a cycle, while the word read four cycles before is written (R3, and the
        # write's register in the port multiplexer; five with more than one lane: RS); SUM reads
        # its input and writes its output, a different tensor. So no read meets a write to its
        # word, and the emulated order (the address compare behind the engines' address mux) was
        # the ECP5's critical path once the lanes' multiplier fitted one DSP block.
        # With the deep pipeline ACT is a BankedRAM (hw/banked_ram.py): banks of one block RAM's
        # depth, each bank's word registered right behind its block RAMs when the reading engine
        # takes it (its register's enable, ``take``), the bank mux behind those registers
        if cfg.taken:
            m.submodules.act = act = BankedRAM(shape=signed(cfg.act_bits), depth=cfg.act_words,
                                               bank_words=cfg.act_bank_words)
            act_w, act_r = act.write, act.read
        else:
            act_r, act_w = self._unordered_ram(m, "act", signed(cfg.act_bits), cfg.act_words)
        _serve_read(m, self.act_r, act_r)
        _serve_write(m, self.act_w, act_w)

    def _spk(self, m):
        cfg = self._cfg
        # SPK is written only by the LIF engine and read only by CONV/HEAD and ATTN, and the port
        # multiplexers enable each port only while its engines' opcode runs: a read and a write
        # never meet in one cycle. Yosys cannot see that and emulates the read-before-write order
        # of a collision in logic (the write delayed a cycle, an address compare and a bypass mux
        # on the read data), which sat on the critical path of both FPGA families; no_rw_check
        # tells it there is no collision to order (see registered_read_port).
        spk_r, spk_w = self._unordered_ram(m, "spk", unsigned(1), cfg.spk_words)
        _serve_read(m, self.spk_r, spk_r)
        _serve_write(m, self.spk_w, spk_w)

    def _acc(self, m):
        cfg = self._cfg
        # ACC: with one lane each read port is transparent for its write port (the short
        # pipeline's back-to-back read-modify-write of a word relies on it). With more than one
        # lane it is not, and the banks are no_rw_check: the transparency's address compare of the
        # muxed write and read addresses into its bypass register, across the die, was the ECP5's
        # critical path. There a read that meets a write of its word is a CONV tap's whose word
        # the lane takes from its forward instead (hw/sfa_conv.py: T4's third forward), so the
        # word it reads does not matter; every other read meets no write of its word
        # (rtl_tests/test_port_collisions.py)
        deep = deep_acc_pipeline(cfg.lanes)
        acc_attrs = {"no_rw_check": 1} if deep else None
        for p in range(cfg.lanes):
            acc = self._memory(m, f"acc{p}", signed(cfg.acc_bits), cfg.acc_words, attrs=acc_attrs)
            acc_w = acc.write_port()
            if deep:
                acc_r = registered_read_port(m, acc, f"acc{p}_r")
            else:
                acc_r = acc.read_port(transparent_for=(acc_w,))
            if cfg.taken:
                # the bank's word registered right behind its block RAMs when the reading engine
                # takes it (the register the engine would have loaded: see read_sig), so that the
                # block RAMs' clock-to-output and the route to the engine are in different cycles
                t = SimpleNamespace(addr=acc_r.addr, en=acc_r.en, take=Signal(name=f"acc{p}_take"),
                                    data=Signal.like(acc_r.data, name=f"acc{p}_data", reset_less=True))
                with m.If(t.take):
                    m.d.sync += t.data.eq(acc_r.data)
                acc_r = t
            _serve_read(m, self.acc_r[p], acc_r)
            _serve_write(m, self.acc_w[p], acc_w)

    def _packed_weights(self) -> list[int]:
        """WMEM's words: ``lanes`` weights each, lane ``p`` in bits ``[p * wb, (p + 1) * wb)``."""
        prog, P, wb = self._program, self._cfg.lanes, self._cfg.weight_bits
        wmask = (1 << wb) - 1
        words = _fit("weights", prog.wmem, wb)
        packed = []
        for r in range(len(prog.wmem)):
            word = 0
            for p in range(P):
                word |= (words[r * P + p] & wmask) << (p * wb)
            packed.append(word)
        return packed

    def _wmem(self, m):
        cfg = self._cfg
        P, wb = cfg.lanes, cfg.weight_bits
        deep = deep_acc_pipeline(P)
        packed = self._packed_weights()
        # With the deep ACC pipeline the CONV engine takes WMEM's word three cycles after its address
        # (hw/sfa_conv.py, T3): the block RAM WMEM is then a BankedROM (each bank's word registered
        # behind its block RAMs, groups of banks a cycle later, the group mux in the third), the
        # SPRAM one gets two registers
        if self._weights == "sdram":
            self._wmem_buffer(m, packed)
            return
        if self._weights == "spram":
            m.submodules.wmem = wmem = SPRAMWeightMemory(words=cfg.wmem_words, width=P * wb)
            wiring.connect(m, wiring.flipped(self.weights), wmem.write)
        elif deep:
            m.submodules.wmem = wmem = BankedROM(width=P * wb, depth=cfg.wmem_words,
                                                 bank_words=cfg.wmem_bank_words, init=packed)
        else:
            wmem = self._memory(m, "wmem", unsigned(P * wb), cfg.wmem_words, packed)
        if self._weights == "spram" and deep:
            # the SPRAM's word through as many registers as the BankedROM's (READ_LATENCY)
            wmem_r = SimpleNamespace(addr=wmem.read.addr, en=wmem.read.en, data=wmem.read.data)
            for stage in range(2, BANKED_READ_LATENCY + 1):
                q = Signal.like(wmem.read.data, name=f"wmem_r_data{stage}")
                m.d.sync += q.eq(wmem_r.data)
                wmem_r.data = q
        else:
            wmem_r = wmem.read if self._weights == "spram" or deep else wmem.read_port()
        _serve_read(m, self.wmem_r, wmem_r)

    def _wmem_buffer(self, m, packed):
        """WMEM for weights in external memory: a block RAM buffer (zero at the start, as the
        program's ``wmem`` is) that the WLOAD engine writes through ``weights`` and CONV/HEAD read.
        WLOAD and CONV/HEAD never run at once (the sequencer runs one engine at a time), so a read
        never meets a write (``no_rw_check``). With the deep ACC pipeline the word goes through as
        many registers as the BankedROM's (``READ_LATENCY``), as the SPRAM's does."""
        cfg = self._cfg
        wmem = self._memory(m, "wmem", unsigned(cfg.lanes * cfg.weight_bits), cfg.wmem_words, packed,
                            attrs={"no_rw_check": 1})
        _serve_write(m, self.weights, wmem.write_port())
        read = registered_read_port(m, wmem, "wmem_r")
        if deep_acc_pipeline(cfg.lanes):
            for stage in range(2, BANKED_READ_LATENCY + 1):
                q = Signal.like(read.data, name=f"wmem_r_data{stage}")
                m.d.sync += q.eq(read.data)
                read = SimpleNamespace(addr=read.addr, en=read.en, data=q)
        _serve_read(m, self.wmem_r, read)

    def _tables(self, m):
        """BIAS, SHIFT, THRESH and the program ROM: read-only, initialised from the program."""
        prog, cfg = self._program, self._cfg
        bias = self._memory(m, "bias", signed(cfg.bias_bits), cfg.bias_words,
                            _fit("biases", prog.bias, cfg.bias_bits))
        shift = self._memory(m, "shift", signed(cfg.shift_bits), cfg.shift_words,
                             _fit("shifts", prog.shift, cfg.shift_bits))
        thresh = self._memory(m, "thresh", signed(cfg.thresh_bits), cfg.thresh_words,
                              _fit("thresholds", prog.thresh, cfg.thresh_bits))
        # the ROM holds the program in this accelerator's own instruction layout: every field only as
        # wide as the program's largest value of it (MachineConfig.field_bits)
        rom = self._memory(m, "rom", unsigned(rom_word_bits(cfg)), 2 * cfg.rom_words,
                           rom_image(prog.instrs, cfg.lanes))
        for outer, mem in ((self.bias_r, bias), (self.shift_r, shift), (self.thresh_r, thresh),
                           (self.rom_r, rom)):
            _serve_read(m, outer, mem.read_port())
