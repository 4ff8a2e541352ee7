"""The host link's weight loader (LOAD_WEIGHTS): for a core whose weights are loaded at run time.

Words are written as they arrive (registered, one per cycle, to the core's weight port); ``next``
counts the words ``[0, next)`` written by frames that ended well, each starting at 0 or where the
previous one ended, so that ``loaded`` (``next`` reached the end) means every word came through a
good frame. The command dispatcher answers the frame from :func:`weight_status` and ``commit``\\ s
a good one.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.hw.accel_interface import weight_port_signature
from spikegate.machine.host_protocol import WEIGHT_OFFSET_BYTES, Cmd, bytes_per_word

from .host_link_framing import EventKind, index_signal, taken_event

__all__ = ["WeightLoader", "weight_status"]


def weight_status() -> wiring.Signature:
    """The weight loader's state as the command dispatcher needs it (the loader's view):
    ``loaded`` (every word written by good frames), of the frame being received ``header_busy``
    (its header came while the core was busy), ``offset_ok`` (its offset is accepted: its words
    are written), ``over`` (it runs past the last word), ``partial`` (it ended inside a word),
    and ``commit`` (In: the frame ended well; its words count)."""
    return wiring.Signature({"loaded": Out(1), "header_busy": Out(1), "offset_ok": Out(1),
                             "over": Out(1), "partial": Out(1), "commit": In(1)})


class WeightLoader(wiring.Component):
    """Writes LOAD_WEIGHTS frames' words (``weight_bits`` each, after a little-endian u32 offset)
    to the core's weight port; ``weight_words`` words in all.

    Members: ``event`` (In, the frame events the dispatcher takes), ``busy`` (In: the core is
    busy), ``status`` (Out, :func:`weight_status`), ``next`` (Out: the words loaded so far) and
    ``weights`` (Out, :func:`weight_port_signature`, registered)."""

    def __init__(self, *, weight_words: int, weight_bits: int, weight_addr_bits: int):
        self._weight_words, self._weight_bits = weight_words, weight_bits
        super().__init__({
            "event": In(taken_event()),
            "busy": In(1),
            "status": Out(weight_status()),
            "next": Out(range(weight_words + 1)),
            "weights": Out(weight_port_signature(addr_bits=weight_addr_bits, word_bits=weight_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        nw, bpw = self._weight_words, bytes_per_word(self._weight_bits)
        ev, wp = self.event, self.weights
        cmd = ev.payload.cmd
        w_loaded, w_next, w_busy = self.status.loaded, self.next, self.status.header_busy
        w_ok, w_over = self.status.offset_ok, self.status.over
        w_off = Signal(8 * WEIGHT_OFFSET_BYTES)
        w_off_idx = Signal(range(WEIGHT_OFFSET_BYTES + 1))
        w_addr = Signal(range(nw + 1))
        w_byte = index_signal(bpw, "w_byte")
        w_shreg = Signal(8 * bpw)
        w_word = Cat(w_shreg[8:], ev.payload.data)
        m.d.comb += self.status.partial.eq(w_byte != 0)
        m.d.sync += wp.en.eq(0)

        with m.If(ev.taken):
            with m.Switch(ev.payload.kind):
                with m.Case(EventKind.HEADER):
                    m.d.sync += [w_busy.eq(self.busy), w_off_idx.eq(0), w_ok.eq(0), w_over.eq(0),
                                 w_byte.eq(0)]
                with m.Case(EventKind.DATA):
                    with m.If((cmd == Cmd.LOAD_WEIGHTS) & (w_off_idx != WEIGHT_OFFSET_BYTES)):
                        off = Cat(w_off[8:], ev.payload.data)      # little-endian u32
                        m.d.sync += [w_off.eq(off), w_off_idx.eq(w_off_idx + 1)]
                        with m.If(w_off_idx == WEIGHT_OFFSET_BYTES - 1):
                            m.d.sync += [w_addr.eq(off), w_over.eq(off > nw)]
                            with m.If(~w_busy & ((off == 0) | (off == w_next))):
                                # from here on the words from `off` are being replaced
                                m.d.sync += [w_ok.eq(1), w_loaded.eq(0), w_next.eq(off)]
                    with m.Elif(cmd == Cmd.LOAD_WEIGHTS):
                        m.d.sync += w_shreg.eq(w_word)
                        with m.If(w_byte == bpw - 1):
                            m.d.sync += w_byte.eq(0)
                            with m.If(w_addr == nw):
                                m.d.sync += w_over.eq(1)
                            with m.Else():
                                m.d.sync += [w_addr.eq(w_addr + 1), wp.en.eq(w_ok),
                                             wp.addr.eq(w_addr), wp.data.eq(w_word)]
                        with m.Else():
                            m.d.sync += w_byte.eq(w_byte + 1)
        with m.If(self.status.commit):
            m.d.sync += [w_next.eq(w_addr), w_loaded.eq(w_addr == nw)]
        return m
