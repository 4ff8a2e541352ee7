"""``SDRAMBridge``: the accelerator's burst port (core clock) onto the SDRAM controller's native
port (its own, slower clock), across two ``AsyncFIFO``s.

Why a second clock: the LiteDRAM controller alone reaches 94.5-98.4 MHz on the LFE5U-85F when
asked for 100 (docs/sdram.md, "Synthesis"), so it cannot share the core's clock; the board top
runs it in a domain of its own (``dram``, 50 MHz; see :mod:`.top`) and this bridge crosses.

Commands (core -> dram): a burst {``addr``, ``len``} goes through a small ``AsyncFIFO`` whole;
on the dram side it becomes ``len * k`` native read commands of one 16-bit word each at word
addresses ``addr * k`` .. (``k = port_bits // word_bits`` words per beat: the packed image's
beat ``b`` is words ``k*b`` .. ``k*b + k - 1``, little-endian, the low word first, as
``machine/external_memory.py`` packs it). Beats (dram -> core): ``k`` read words are joined into
one beat (the first word low) and go through a second ``AsyncFIFO`` to ``mem.rdata``.

Back-pressure: nothing is ever dropped. The controller (:class:`.sdram.SDRAMController`) passes a
read on only while its own read FIFO has room for the word counting the reads in flight (LiteDRAM's
native port cannot be stalled), and hands words on as a valid/ready stream; this bridge takes one
only while the beat FIFO can be written. So a core that stops taking beats fills the beat FIFO,
then the controller's FIFO, and then no more reads are issued: no FIFO overflows.

Ports: ``mem`` (In(:func:`~spikegate.hw.wload.burst_port_signature`), in ``core_domain``), and in
``dram_domain`` ``dram_cmd`` (Out, :func:`.sdram.native_cmd_layout`, reads only: ``we`` = 0) and
``dram_rdata`` (In, one word per transfer): connect them to the controller's ``cmd``/``rdata``.
Read-only: loading the SDRAM (over the host link) is not built yet.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import AsyncFIFO
from amaranth.lib.wiring import In, Out

from spikegate.hw.wload import burst_cmd_layout, burst_port_signature
from spikegate.machine.external_memory import BurstPort

from .litedram_core import ULX3S_SDRAM
from .sdram import native_cmd_layout

__all__ = ["SDRAMBridge"]


class SDRAMBridge(wiring.Component):
    """Burst port ``mem`` (``core_domain``) -> native reads ``dram_cmd``/``dram_rdata``
    (``dram_domain``); see the module docstring. ``cmd_depth`` bursts and ``beat_depth`` beats
    can wait in the crossing FIFOs."""

    def __init__(self, port: BurstPort, *, core_domain: str = "sync", dram_domain: str = "dram",
                 word_bits: int = ULX3S_SDRAM.data_bits,
                 word_address_bits: int = ULX3S_SDRAM.word_address_bits,
                 cmd_depth: int = 4, beat_depth: int = 16):
        if not isinstance(port, BurstPort):
            raise TypeError(f"port must be a BurstPort, not {port!r}")
        if port.port_bits % word_bits:
            raise ValueError(f"the burst port's {port.port_bits}-bit beats are not whole "
                             f"{word_bits}-bit SDRAM words")
        self.port = port
        self.words_per_beat = port.port_bits // word_bits
        self.word_bits, self.word_address_bits = word_bits, word_address_bits
        self.core_domain, self.dram_domain = core_domain, dram_domain
        self.cmd_depth, self.beat_depth = cmd_depth, beat_depth
        super().__init__({
            "mem": In(burst_port_signature(port)),
            "dram_cmd": Out(stream.Signature(native_cmd_layout(word_address_bits))),
            "dram_rdata": In(stream.Signature(word_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        k, port = self.words_per_beat, self.port
        layout = burst_cmd_layout(port)
        m.submodules.cmd_fifo = cf = AsyncFIFO(width=layout.size, depth=self.cmd_depth,
                                               w_domain=self.core_domain, r_domain=self.dram_domain)
        m.submodules.beat_fifo = bf = AsyncFIFO(width=port.port_bits, depth=self.beat_depth,
                                                w_domain=self.dram_domain, r_domain=self.core_domain)
        m.d.comb += [
            cf.w_data.eq(self.mem.cmd.payload), cf.w_en.eq(self.mem.cmd.valid),
            self.mem.cmd.ready.eq(cf.w_rdy),
            self.mem.rdata.payload.eq(bf.r_data), self.mem.rdata.valid.eq(bf.r_rdy),
            bf.r_en.eq(self.mem.rdata.ready),
        ]
        self._issue(m, layout(cf.r_data), cf)
        self._join(m, bf)
        return m

    def _issue(self, m, burst, cf):
        """dram side: one burst at a time, ``len * k`` word reads from ``addr * k`` on."""
        dram = m.d[self.dram_domain]
        k = self.words_per_beat
        addr = Signal(self.word_address_bits)
        left = Signal(range(self.port.max_burst * k + 1))
        m.d.comb += [self.dram_cmd.payload.we.eq(0), self.dram_cmd.payload.addr.eq(addr)]
        with m.If(left == 0):
            m.d.comb += cf.r_en.eq(1)
            with m.If(cf.r_rdy):
                dram += [addr.eq(self._word_address(burst.addr)), left.eq(burst.len * k)]
        with m.Else():
            m.d.comb += self.dram_cmd.valid.eq(1)
            with m.If(self.dram_cmd.ready):
                dram += [addr.eq(addr + 1), left.eq(left - 1)]

    def _word_address(self, beat_addr):
        """The native word address of a beat's first word (the SDRAM holds the packed image from
        word 0: beat ``b`` at word ``k * b``)."""
        return beat_addr * self.words_per_beat

    def _join(self, m, bf):
        """dram side: ``k`` words (the first low) -> one beat into the beat FIFO."""
        k, rd = self.words_per_beat, self.dram_rdata
        if k == 1:
            m.d.comb += [bf.w_data.eq(rd.payload), bf.w_en.eq(rd.valid), rd.ready.eq(bf.w_rdy)]
            return
        dram = m.d[self.dram_domain]
        held = Signal((k - 1) * self.word_bits)
        i = Signal(range(k))
        m.d.comb += bf.w_data.eq(Cat(held, rd.payload))
        with m.If(i == k - 1):
            m.d.comb += [bf.w_en.eq(rd.valid), rd.ready.eq(bf.w_rdy)]
            with m.If(rd.valid & bf.w_rdy):
                dram += i.eq(0)
        with m.Else():
            m.d.comb += rd.ready.eq(1)
            with m.If(rd.valid):
                dram += [i.eq(i + 1), held.word_select(i, self.word_bits).eq(rd.payload)]
