"""The host link's command dispatcher: frame events -> control, and a response request per frame."""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.host_protocol import (SDRAM_CHECK_BYTES, SDRAM_OFFSET_BYTES, SDRAM_WORD_BYTES,
                                             WEIGHT_OFFSET_BYTES, Cmd, Err, bytes_per_pixel, bytes_per_word)

from .host_link_framing import EVENT_LAYOUT, EventKind, taken_event
from .host_link_response import REQUEST_LAYOUT, ResponseKind
from .host_link_sdram import sdram_status
from .host_link_weights import weight_status

__all__ = ["CommandDispatcher"]


class CommandDispatcher(wiring.Component):
    """Consumes the deframer's events; answers each frame's end (or timeout) with a response request,
    and starts what a good frame asks for. A frame's end waits while the previous response is
    still requested (``request.valid``), so requests never overlap.

    Members: ``events`` (In, the deframer's), ``event`` (Out, :func:`taken_event`: the events
    taken, for the loaders), ``request`` (Out, stream of :data:`REQUEST_LAYOUT`, to the response
    builder), ``busy`` (In: the core or the result keeper is busy), ``have_result`` (In),
    ``accept`` (Out: a LOAD header now accepted, for the pixel loader), ``load_ok`` (In, the pixel
    loader's), ``loaded`` (Out: the pixel memory holds a complete, checksum-verified image) and
    ``start`` (Out: a one-cycle pulse, START accepted); with ``weight_words`` also ``weights``
    (In, :func:`weight_status`, the weight loader's); with ``sdram_words`` (weights in SDRAM)
    ``sdram`` (In, :func:`sdram_status`, the SDRAM loader's): LOAD_SDRAM and CHECK_SDRAM are
    answered and START is refused until the SDRAM is verified.

    With ``registered_start`` (the ECP5 boards: the frame decode behind the deframer's register,
    into the collector's and streamer's resets, was the ECP5's worst path on some placements)
    ``start`` is a cycle later, from a register. Nothing can meet the cycle in between: the next
    command is a whole frame later."""

    def __init__(self, *, num_pixels: int, pixel_bits: int, weight_words: int = 0, weight_bits: int = 0,
                 registered_start: bool = False, sdram_words: int = 0):
        self._num_pixels, self._pixel_bits = num_pixels, pixel_bits
        self._sdram_words = sdram_words
        self._weight_words, self._weight_bits = weight_words, weight_bits
        self._registered_start = registered_start
        members = {
            "events": In(stream.Signature(EVENT_LAYOUT)),
            "event": Out(taken_event()),
            "request": Out(stream.Signature(REQUEST_LAYOUT)),
            "busy": In(1),
            "have_result": In(1),
            "accept": Out(1),
            "load_ok": In(1),
            "loaded": Out(1),
            "start": Out(1),
        }
        if weight_words:
            members["weights"] = In(weight_status())
        if sdram_words:
            members["sdram"] = In(sdram_status())
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        ev, req = self.events, self.request
        npix, bpp = self._num_pixels, bytes_per_pixel(self._pixel_bits)
        cmd, length, busy = ev.payload.cmd, ev.payload.length, self.busy
        # one-cycle pulse: START accepted (with registered_start ``start`` follows it a cycle later)
        start_cmd = Signal(name="start_cmd") if self._registered_start else self.start
        if self._registered_start:
            m.d.sync += self.start.eq(start_cmd)
        m.d.comb += [self.event.taken.eq(ev.valid & ev.ready), self.event.payload.eq(ev.payload)]
        m.d.comb += self.accept.eq((cmd == Cmd.LOAD) & (length == npix * bpp) & ~busy)

        is_end = ev.payload.kind.as_value().matches(EventKind.END_OK, EventKind.END_BAD, EventKind.TIMEOUT)
        m.d.comb += ev.ready.eq(~is_end | ~req.valid)

        def respond(kind, err=0):
            m.d.sync += [req.valid.eq(1), req.payload.kind.eq(kind), req.payload.cmd.eq(cmd),
                         req.payload.err.eq(err)]

        with m.If(ev.valid & ev.ready):
            with m.Switch(ev.payload.kind):
                with m.Case(EventKind.HEADER):
                    with m.If(self.accept):
                        m.d.sync += self.loaded.eq(0)   # about to be overwritten
                with m.Case(EventKind.TIMEOUT):
                    respond(ResponseKind.ERROR, Err.TIMEOUT)
                with m.Case(EventKind.END_BAD):
                    respond(ResponseKind.ERROR, Err.BAD_CHECKSUM)
                with m.Case(EventKind.END_OK):
                    self._command(m, respond, start_cmd)
        with m.If(req.ready):
            m.d.sync += req.valid.eq(0)
        return m

    def _command(self, m, respond, start_cmd):
        """A good frame's command (its END_OK event): the error of its first failing check, else
        its response and action."""
        ev = self.events
        cmd, length, busy = ev.payload.cmd, ev.payload.length, self.busy
        npix, bpp = self._num_pixels, bytes_per_pixel(self._pixel_bits)
        nw = self._weight_words

        def answer(checks, kind, action=None):
            """``checks``: (failed, error) in order; ``action``: (domain, statement) if none fails"""
            for n, (failed, err) in enumerate(checks):
                with (m.If if n == 0 else m.Elif)(failed):
                    respond(ResponseKind.ERROR, err)
            with m.Else():
                if action is not None:
                    m.d[action[0]] += action[1]
                respond(kind)

        with m.Switch(cmd):
            with m.Case(Cmd.INFO):
                answer([(length != 0, Err.BAD_LENGTH)], ResponseKind.INFO)
            with m.Case(Cmd.LOAD):
                answer([(length != npix * bpp, Err.BAD_LENGTH), (~self.load_ok, Err.BUSY)], ResponseKind.ACK,
                       ("sync", self.loaded.eq(1)))
            with m.Case(Cmd.START):
                weights = [(~self.weights.loaded, Err.WEIGHTS_NOT_LOADED)] if nw else []
                if self._sdram_words:
                    weights.append((~self.sdram.verified, Err.WEIGHTS_NOT_VERIFIED))
                answer([(length != 0, Err.BAD_LENGTH), (busy, Err.BUSY), *weights,
                        (~self.loaded, Err.NOT_LOADED)], ResponseKind.ACK,
                       ("comb", start_cmd.eq(1)))
            with m.Case(Cmd.READ):
                answer([(length != 0, Err.BAD_LENGTH), (busy, Err.BUSY), (~self.have_result, Err.NO_RESULT)],
                       ResponseKind.RESULT)
            if nw:
                with m.Case(Cmd.LOAD_WEIGHTS):
                    w = self.weights
                    bpw = bytes_per_word(self._weight_bits)
                    answer([((length < WEIGHT_OFFSET_BYTES + bpw) | w.partial | w.over, Err.BAD_LENGTH),
                            (w.header_busy, Err.BUSY), (~w.offset_ok, Err.BAD_OFFSET)], ResponseKind.WACK,
                           ("comb", w.commit.eq(1)))
            if self._sdram_words:
                self._sdram_commands(m, answer)
            with m.Default():
                respond(ResponseKind.ERROR, Err.UNKNOWN_CMD)

    def _sdram_commands(self, m, answer):
        """LOAD_SDRAM (an offset and at least one whole word, inside the image) and CHECK_SDRAM
        (a count of 1 .. the image's words, and the CRC): the loader acts on ``commit``."""
        length, s = self.events.payload.length, self.sdram
        with m.Case(Cmd.LOAD_SDRAM):
            short = length < SDRAM_OFFSET_BYTES + SDRAM_WORD_BYTES
            partial = (length - SDRAM_OFFSET_BYTES)[:1] != 0
            answer([(short | partial | s.bad, Err.BAD_LENGTH), (s.header_busy, Err.BUSY),
                    (s.overrun, Err.OVERRUN)], ResponseKind.SACK, ("comb", s.commit.eq(1)))
        with m.Case(Cmd.CHECK_SDRAM):
            answer([((length != SDRAM_CHECK_BYTES) | (s.count == 0) | (s.count > self._sdram_words), Err.BAD_LENGTH),
                    (s.header_busy, Err.BUSY)], ResponseKind.CRC, ("comb", s.commit.eq(1)))
