"""The host link's SDRAM loader (LOAD_SDRAM, CHECK_SDRAM): for a core whose weights live in SDRAM.

The SDRAM is empty at power-up, and the bitstream cannot fill it, so the host writes the packed
image (``sdram.bin``) over the link and then proves it arrived: CHECK_SDRAM makes the device read
words ``[0, count)`` back and compute their CRC-32 (:func:`spikegate.machine.host_protocol.sdram_crc`).
``verified`` is set only when ``count`` is the whole image and the CRC equals the host's; reset,
any LOAD_SDRAM word and any other check clear it, and the command dispatcher refuses START while
it is clear (``WEIGHTS_NOT_VERIFIED``).

The SDRAM is reached through :func:`sdram_access_signature` (one word per command, in this
domain); on the board the SDRAM bridge (``board_targets/sdram_bridge.py``) carries it to the
controller. The loader uses it only while the core is idle: a frame whose header came while the
core was busy writes nothing and is answered BUSY, and the dispatcher counts a running check as
busy, so START cannot overlap it.

Words are written as they arrive (before the frame's checksum is known, as LOAD_WEIGHTS does; the
CRC check is what makes them trusted). They wait in a small FIFO for the SDRAM; a word that finds
it full is lost and the frame is answered OVERRUN (at the UART's rate, two bytes per word, the
SDRAM is far faster, so this flags a broken memory side rather than a normal event).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out

from spikegate.machine.host_protocol import SDRAM_CHECK_BYTES, SDRAM_OFFSET_BYTES, SDRAM_WORD_BYTES, Cmd

from .host_link_framing import EventKind, taken_event

__all__ = ["SDRAMLoader", "sdram_access_signature", "sdram_op_layout", "sdram_status", "crc32_step",
           "SDRAM_WORD_BITS"]

SDRAM_WORD_BITS = 8 * SDRAM_WORD_BYTES
CRC32_POLY = 0xEDB88320          # reflected, as zlib


def sdram_op_layout(addr_bits: int, word_bits: int = SDRAM_WORD_BITS) -> data.StructLayout:
    """One SDRAM access: ``we`` (1 write ``data``, 0 read) at word address ``addr``."""
    return data.StructLayout({"we": 1, "addr": addr_bits, "data": word_bits})


def sdram_access_signature(addr_bits: int, word_bits: int = SDRAM_WORD_BITS) -> wiring.Signature:
    """The host link's SDRAM port (the loader's view): ``cmd`` (Out, stream of
    :func:`sdram_op_layout`) and ``rdata`` (In, one word per read, in command order)."""
    return wiring.Signature({"cmd": Out(stream.Signature(sdram_op_layout(addr_bits, word_bits))),
                             "rdata": In(stream.Signature(word_bits))})


def sdram_status() -> wiring.Signature:
    """The loader's state as the command dispatcher needs it: ``verified``; of the frame being
    received ``header_busy`` (its header came while the core or a check was busy), ``bad`` (a
    LOAD_SDRAM's offset or words run past the image; the dispatcher checks lengths itself),
    ``overrun`` (a word was lost), ``count`` (a CHECK_SDRAM's word count); ``checking`` (a check
    runs: its response waits, START is busy); and ``commit`` (In: the frame ended well, act on it)."""
    return wiring.Signature({"verified": Out(1), "header_busy": Out(1), "bad": Out(1),
                             "overrun": Out(1), "checking": Out(1), "count": Out(32), "commit": In(1)})


def crc32_step(crc, word, bits: int):
    """The CRC-32 register after ``bits`` data bits of ``word`` (LSB first, so a little-endian word's
    low byte first): the bit-serial update unrolled into one cycle's XOR network."""
    state = [crc[i] for i in range(32)]
    for i in range(bits):
        fb = state[0] ^ word[i]
        state = state[1:] + [Const(0, 1)]
        state = [s ^ fb if (CRC32_POLY >> n) & 1 else s for n, s in enumerate(state)]
    return Cat(*state)


class SDRAMLoader(wiring.Component):
    """LOAD_SDRAM frames' words into the SDRAM, CHECK_SDRAM's read-back CRC, and ``verified``.

    ``words``: the image's 16-bit words (the SDRAM's, from word 0). Members: ``event`` (In, the
    frame events the dispatcher takes), ``busy`` (In: the core is busy), ``status`` (Out,
    :func:`sdram_status`), ``next`` (Out: the word after the last one the current LOAD_SDRAM
    wrote, LOAD_SDRAM's acknowledgement), ``crc`` (Out: the last check's CRC-32) and ``sdram``
    (Out, :func:`sdram_access_signature`)."""

    def __init__(self, *, words: int, addr_bits: int, fifo_depth: int = 16):
        if not 1 <= words <= 1 << addr_bits:
            raise ValueError(f"sdram words must be in 1..{1 << addr_bits}, not {words!r}")
        self._words, self._addr_bits, self._fifo_depth = words, addr_bits, fifo_depth
        super().__init__({
            "event": In(taken_event()),
            "busy": In(1),
            "status": Out(sdram_status()),
            "next": Out(range(words + 1)),
            "crc": Out(32),
            "sdram": Out(sdram_access_signature(addr_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.wfifo = wfifo = SyncFIFOBuffered(width=sdram_op_layout(self._addr_bits).size,
                                                      depth=self._fifo_depth)
        self._frames(m, wfifo)
        self._check(m, wfifo)
        return m

    def _frames(self, m, wfifo):
        """The frame's bytes: LOAD_SDRAM's offset and words (into ``wfifo``), CHECK_SDRAM's count
        and CRC."""
        nw, ev, st = self._words, self.event, self.status
        cmd = ev.payload.cmd
        self._arg = arg = Signal(8 * SDRAM_CHECK_BYTES)     # offset, or count + expected CRC
        arg_idx = Signal(range(SDRAM_CHECK_BYTES + 1))
        addr, ok = self.next, Signal()
        low, have_low = Signal(8), Signal()
        m.d.comb += st.count.eq(arg[:32])
        op = sdram_op_layout(self._addr_bits)(wfifo.w_data)
        m.d.comb += [op.we.eq(1), op.addr.eq(addr), op.data.eq(Cat(low, ev.payload.data))]
        taking_arg = arg_idx != Mux(cmd == Cmd.LOAD_SDRAM, SDRAM_OFFSET_BYTES, SDRAM_CHECK_BYTES)
        with m.If(ev.taken):
            with m.Switch(ev.payload.kind):
                with m.Case(EventKind.HEADER):
                    m.d.sync += [st.header_busy.eq(self.busy | st.checking), arg_idx.eq(0), ok.eq(0),
                                 st.bad.eq(0), st.overrun.eq(0), have_low.eq(0)]
                with m.Case(EventKind.DATA):
                    with m.If(cmd.matches(Cmd.LOAD_SDRAM, Cmd.CHECK_SDRAM) & taking_arg):
                        m.d.sync += [arg.word_select(arg_idx[:3], 8).eq(ev.payload.data), arg_idx.eq(arg_idx + 1)]
                    with m.Elif(cmd == Cmd.LOAD_SDRAM):
                        self._word(m, wfifo, ok, low, have_low)
            # the offset's last byte: the words from here on go to SDRAM (if the core is idle)
            with m.If((ev.payload.kind == EventKind.DATA) & (cmd == Cmd.LOAD_SDRAM) &
                      (arg_idx == SDRAM_OFFSET_BYTES - 1)):
                off = Cat(arg[:24], ev.payload.data)      # little-endian u32
                m.d.sync += [addr.eq(off), st.bad.eq(off >= nw), ok.eq(~st.header_busy)]
                with m.If(~st.header_busy):
                    m.d.sync += st.verified.eq(0)      # the SDRAM changes: check it again

    def _word(self, m, wfifo, ok, low, have_low):
        """A LOAD_SDRAM payload byte after the offset: the low byte is kept, the high one completes
        the word, which goes to the write FIFO at ``next`` (and ``next`` moves on)."""
        st, addr = self.status, self.next
        with m.If(~have_low):
            m.d.sync += [low.eq(self.event.payload.data), have_low.eq(1)]
        with m.Else():
            m.d.sync += have_low.eq(0)
            with m.If(addr == self._words):
                m.d.sync += st.bad.eq(1)
            with m.Else():
                m.d.sync += addr.eq(addr + 1)
                with m.If(ok & ~st.bad):
                    m.d.comb += wfifo.w_en.eq(1)
                    with m.If(~wfifo.w_rdy):
                        m.d.sync += st.overrun.eq(1)

    def _check(self, m, wfifo):
        """The SDRAM port: pending writes first, then a committed CHECK_SDRAM's reads of words
        ``[0, count)``, their CRC as they come back, and the verdict."""
        st, sd, nw = self.status, self.sdram, self._words
        count, expected = self._arg[:32], self._arg[32:]
        issued = Signal(range(nw + 1))
        received = Signal(range(nw + 1))
        n = Signal(range(nw + 1))
        crc = Signal(32)
        op = sdram_op_layout(self._addr_bits)(sd.cmd.payload)
        with m.If(wfifo.r_rdy):           # writes (only ever while no check runs)
            m.d.comb += [sd.cmd.valid.eq(1), sd.cmd.payload.eq(wfifo.r_data), wfifo.r_en.eq(sd.cmd.ready)]
        with m.Elif(st.checking & (issued != n)):
            m.d.comb += [sd.cmd.valid.eq(1), op.we.eq(0), op.addr.eq(issued)]
            with m.If(sd.cmd.ready):
                m.d.sync += issued.eq(issued + 1)
        m.d.comb += sd.rdata.ready.eq(1)
        with m.If(sd.rdata.valid):
            m.d.sync += [crc.eq(crc32_step(crc, sd.rdata.payload, SDRAM_WORD_BITS)), received.eq(received + 1)]
        with m.If(st.checking & (received == n) & ~sd.rdata.valid):
            m.d.sync += [st.checking.eq(0), self.crc.eq(~crc),
                         st.verified.eq((n == nw) & (~crc == expected))]
        with m.If(st.commit & (self.event.payload.cmd == Cmd.CHECK_SDRAM)):
            m.d.sync += [st.checking.eq(1), issued.eq(0), received.eq(0), crc.eq(0xFFFFFFFF),
                         n.eq(count), st.verified.eq(0)]
