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

The host link's port (``host``, :func:`~spikegate.hw.host_link_sdram.sdram_access_signature`,
``core_domain``): single-word writes and reads, for loading the weights (LOAD_SDRAM) and reading
them back (CHECK_SDRAM). Arbitration: both ports feed the one command FIFO, a burst before a host
access in the same cycle; the host link uses its port only while the core is idle, so in practice
they never compete. Entries are executed in FIFO order on the dram side, so a host read after host
writes sees them. Each read's owner (core or host) goes into a small tag FIFO as the controller
takes it; the words come back in command order and go to the beat joiner or, through a third
``AsyncFIFO``, to ``host.rdata``. A host write is one native write command with its word: the
word is in a register before the command is offered and stays there until the controller raises
``wdata.ready`` (LiteDRAM's native port takes the data in that cycle whether ``wdata.valid`` is
high or not), and the next entry waits for it.

Ports: ``mem`` (In(:func:`~spikegate.hw.wload.burst_port_signature`), in ``core_domain``), ``host``
(In, ``core_domain``), and in ``dram_domain`` ``dram_cmd`` (Out, :func:`.sdram.native_cmd_layout`),
``dram_wdata`` (Out, :func:`.sdram.native_wdata_layout`) and ``dram_rdata`` (In, one word per
transfer): connect them to the controller's ``cmd``/``wdata``/``rdata``.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Cat, DomainRenamer, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import AsyncFIFO, SyncFIFO
from amaranth.lib.wiring import In, Out

from spikegate.hw.host_link_sdram import sdram_access_signature, sdram_op_layout
from spikegate.hw.wload import burst_cmd_layout, burst_port_signature
from spikegate.machine.external_memory import BurstPort

from .litedram_core import ULX3S_SDRAM
from .sdram import native_cmd_layout, native_wdata_layout

__all__ = ["SDRAMBridge"]


class SDRAMBridge(wiring.Component):
    """Burst port ``mem`` and host port ``host`` (``core_domain``) -> the native port
    ``dram_cmd``/``dram_wdata``/``dram_rdata`` (``dram_domain``); see the module docstring.
    ``cmd_depth`` commands, ``beat_depth`` beats and ``host_depth`` host words can wait in the
    crossing FIFOs; ``tag_depth`` reads can be in the controller (its rdata FIFO's depth, 16)."""

    def __init__(self, port: BurstPort, *, core_domain: str = "sync", dram_domain: str = "dram",
                 word_bits: int = ULX3S_SDRAM.data_bits,
                 word_address_bits: int = ULX3S_SDRAM.word_address_bits,
                 cmd_depth: int = 4, beat_depth: int = 16, host_depth: int = 4, tag_depth: int = 16):
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
        self.host_depth, self.tag_depth = host_depth, tag_depth
        super().__init__({
            "mem": In(burst_port_signature(port)),
            "host": In(sdram_access_signature(word_address_bits, word_bits)),
            "dram_cmd": Out(stream.Signature(native_cmd_layout(word_address_bits))),
            "dram_wdata": Out(stream.Signature(native_wdata_layout(word_bits))),
            "dram_rdata": In(stream.Signature(word_bits)),
        })

    def _entry_layout(self) -> data.StructLayout:
        """A command FIFO entry: a burst, or (``host``) one host access."""
        return data.StructLayout({"host": 1, "burst": burst_cmd_layout(self.port),
                                  "op": sdram_op_layout(self.word_address_bits, self.word_bits)})

    def elaborate(self, platform):
        m = Module()
        port = self.port
        layout = self._entry_layout()
        m.submodules.cmd_fifo = cf = AsyncFIFO(width=layout.size, depth=self.cmd_depth,
                                               w_domain=self.core_domain, r_domain=self.dram_domain)
        m.submodules.beat_fifo = bf = AsyncFIFO(width=port.port_bits, depth=self.beat_depth,
                                                w_domain=self.dram_domain, r_domain=self.core_domain)
        m.submodules.host_fifo = hf = AsyncFIFO(width=self.word_bits, depth=self.host_depth,
                                                w_domain=self.dram_domain, r_domain=self.core_domain)
        m.submodules.tag_fifo = tags = DomainRenamer(self.dram_domain)(SyncFIFO(width=1, depth=self.tag_depth))
        entry = layout(cf.w_data)
        with m.If(self.mem.cmd.valid):       # the core's bursts first (module docstring)
            m.d.comb += [entry.burst.eq(self.mem.cmd.payload), cf.w_en.eq(1), self.mem.cmd.ready.eq(cf.w_rdy)]
        with m.Else():
            m.d.comb += [entry.host.eq(1), entry.op.eq(self.host.cmd.payload), cf.w_en.eq(self.host.cmd.valid),
                         self.host.cmd.ready.eq(cf.w_rdy)]
        m.d.comb += [
            self.mem.rdata.payload.eq(bf.r_data), self.mem.rdata.valid.eq(bf.r_rdy),
            bf.r_en.eq(self.mem.rdata.ready),
            self.host.rdata.payload.eq(hf.r_data), self.host.rdata.valid.eq(hf.r_rdy),
            hf.r_en.eq(self.host.rdata.ready),
        ]
        self._issue(m, layout(cf.r_data), cf, tags)
        self._route(m, bf, hf, tags)
        return m

    def _issue(self, m, entry, cf, tags):
        """dram side: one entry at a time; a burst is ``len * k`` word reads from ``addr * k`` on,
        a host read one read, a host write one write (module docstring: its data first)."""
        dram = m.d[self.dram_domain]
        k = self.words_per_beat
        cmd, wdata = self.dram_cmd, self.dram_wdata
        addr = Signal(self.word_address_bits)
        left = Signal(range(self.port.max_burst * k + 1))
        host = Signal()                      # the reads being issued are the host's
        m.d.comb += [cmd.payload.addr.eq(addr), wdata.payload.we.eq(-1), tags.w_data.eq(host)]
        with m.FSM(domain=self.dram_domain):
            with m.State("IDLE"):
                m.d.comb += cf.r_en.eq(1)
                with m.If(cf.r_rdy & entry.host & entry.op.we):
                    dram += [addr.eq(entry.op.addr), wdata.payload.data.eq(entry.op.data)]
                    m.next = "WRITE"
                with m.Elif(cf.r_rdy & entry.host):
                    dram += [addr.eq(entry.op.addr), left.eq(1), host.eq(1)]
                    m.next = "READ"
                with m.Elif(cf.r_rdy):
                    dram += [addr.eq(self._word_address(entry.burst.addr)), left.eq(entry.burst.len * k),
                             host.eq(0)]
                    m.next = "READ"
            with m.State("READ"):
                m.d.comb += [cmd.valid.eq(tags.w_rdy), tags.w_en.eq(cmd.ready)]
                with m.If(cmd.ready):
                    dram += [addr.eq(addr + 1), left.eq(left - 1)]
                    with m.If(left == 1):
                        m.next = "IDLE"
            with m.State("WRITE"):           # the command, its word already presented
                m.d.comb += [cmd.valid.eq(1), cmd.payload.we.eq(1), wdata.valid.eq(1)]
                with m.If(cmd.ready & wdata.ready):
                    m.next = "IDLE"
                with m.Elif(cmd.ready):
                    m.next = "WDATA"
            with m.State("WDATA"):           # until the controller takes the word
                m.d.comb += wdata.valid.eq(1)
                with m.If(wdata.ready):
                    m.next = "IDLE"

    def _route(self, m, bf, hf, tags):
        """dram side: each word read goes where its tag says: to the host FIFO or the joiner."""
        rd = self.dram_rdata
        joined = SimpleNamespace(valid=Signal(name="join_valid"), ready=Signal(name="join_ready"),
                                 payload=Signal(self.word_bits, name="join_word"))
        m.d.comb += [tags.r_en.eq(rd.valid & rd.ready), joined.payload.eq(rd.payload),
                     hf.w_data.eq(rd.payload)]
        with m.If(tags.r_data):
            m.d.comb += [hf.w_en.eq(rd.valid), rd.ready.eq(hf.w_rdy)]
        with m.Else():
            m.d.comb += [joined.valid.eq(rd.valid), rd.ready.eq(joined.ready)]
        self._join(m, bf, joined)

    def _word_address(self, beat_addr):
        """The native word address of a beat's first word (the SDRAM holds the packed image from
        word 0: beat ``b`` at word ``k * b``)."""
        return beat_addr * self.words_per_beat

    def _join(self, m, bf, rd):
        """dram side: ``k`` words of ``rd`` (the first low) -> one beat into the beat FIFO."""
        k = self.words_per_beat
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
