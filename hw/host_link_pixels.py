"""The host link's image path: LOAD's bytes into the pixel memory, START's pixels out to the core.

* :class:`PixelLoader`  a LOAD frame's payload bytes -> pixel words written to the pixel memory
  (little-endian, ``bytes_per_pixel`` bytes each), for a frame the command dispatcher accepts.
* :class:`PixelStreamer`  the pixel memory -> the core's ``pixels`` stream, from ``start`` on.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import ReadPort, WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikegate.hw.accel_interface import pixel_stream
from spikegate.machine.host_protocol import bytes_per_pixel

from .host_link_framing import EventKind, index_signal, taken_event

__all__ = ["PixelLoader", "PixelStreamer"]


class PixelLoader(wiring.Component):
    """Writes a LOAD frame's payload, ``num_pixels`` pixels of ``pixel_bits``, to the pixel memory.

    Members: ``event`` (In, :func:`~spikegate.hw.host_link_framing.taken_event`: every frame event
    the command dispatcher takes), ``accept`` (In: whether a HEADER event now starts a LOAD that is
    written), ``load_ok`` (Out: the frame being received is such a LOAD) and ``write`` (the pixel
    memory's write port, flipped)."""

    def __init__(self, *, num_pixels: int, pixel_bits: int):
        self._num_pixels, self._pixel_bits = num_pixels, pixel_bits
        super().__init__({
            "event": In(taken_event()),
            "accept": In(1),
            "load_ok": Out(1),
            "write": In(WritePort.Signature(addr_width=ceil_log2(num_pixels), shape=signed(pixel_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        npix, bpp = self._num_pixels, bytes_per_pixel(self._pixel_bits)
        ev, pix_wr = self.event, self.write
        wr_addr = Signal(range(npix + 1))
        byte_idx = index_signal(bpp, "byte_idx")
        shreg = Signal(8 * bpp)
        word = Cat(shreg[8:], ev.payload.data)
        m.d.comb += [pix_wr.addr.eq(wr_addr), pix_wr.data.eq(word[:self._pixel_bits])]
        with m.If(ev.taken):
            with m.Switch(ev.payload.kind):
                with m.Case(EventKind.HEADER):
                    m.d.sync += [self.load_ok.eq(self.accept), wr_addr.eq(0), byte_idx.eq(0)]
                with m.Case(EventKind.DATA):
                    with m.If(self.load_ok):
                        m.d.sync += shreg.eq(word)
                        with m.If(byte_idx == bpp - 1):
                            m.d.sync += [byte_idx.eq(0), wr_addr.eq(wr_addr + 1)]
                            m.d.comb += pix_wr.en.eq(wr_addr != npix)
                        with m.Else():
                            m.d.sync += byte_idx.eq(byte_idx + 1)
        return m


class PixelStreamer(wiring.Component):
    """From ``start`` on, streams the ``num_pixels`` pixels of the pixel memory to the core.

    Two stages (memory read, output register) under one stall signal, so the core sees a
    flip-flop, not the block RAM's clock-to-out; one pixel per cycle when the core keeps up.

    Members: ``start`` (In, a pulse), ``read`` (the pixel memory's read port, flipped) and
    ``pixels`` (Out, to the core's ``pixels``)."""

    def __init__(self, *, num_pixels: int, pixel_bits: int):
        self._num_pixels = num_pixels
        super().__init__({
            "start": In(1),
            "read": In(ReadPort.Signature(addr_width=ceil_log2(num_pixels), shape=signed(pixel_bits))),
            "pixels": Out(pixel_stream(pixel_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        npix, pix_rd, pixels = self._num_pixels, self.read, self.pixels
        rd_addr = Signal(range(npix + 1))
        streaming = Signal()
        s1_valid = Signal()
        out_valid = Signal()
        out_data = Signal.like(pixels.payload)
        stall = out_valid & ~pixels.ready
        m.d.comb += [pix_rd.addr.eq(rd_addr), pix_rd.en.eq(~stall),
                     pixels.valid.eq(out_valid), pixels.payload.eq(out_data)]
        with m.If(self.start):
            m.d.sync += [rd_addr.eq(0), streaming.eq(1)]
        with m.Elif(~stall):
            fetch = streaming & (rd_addr != npix)
            m.d.sync += [s1_valid.eq(fetch), out_valid.eq(s1_valid), out_data.eq(pix_rd.data)]
            with m.If(fetch):
                m.d.sync += rd_addr.eq(rd_addr + 1)
            with m.Else():
                m.d.sync += streaming.eq(0)
        return m
