"""The host link's framing (``docs/host-protocol.md``): bytes to frame events and back.

* :class:`Deframer`  bytes -> frame events (header, payload bytes, end with checksum verdict, or
  timeout). Drops bytes outside frames; an inter-byte timeout resets it, so a truncated frame
  cannot wedge the link.
* :class:`EventRegister`  a register stage for the frame events, between the deframer and its
  consumers.
* :class:`Enframer`  header + payload bytes -> bytes on the wire, with sync and checksum.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib import enum as hdl_enum
from amaranth.lib.wiring import In, Out

from spikegate.hw.uart import byte_stream
from spikegate.machine.host_protocol import SYNC

__all__ = ["Deframer", "Enframer", "EventRegister", "EventKind", "EVENT_LAYOUT", "HEADER_LAYOUT", "taken_event",
           "index_signal", "check_int"]


def index_signal(n: int, name: str) -> Signal:
    """A signal for an index in ``0..n-1``, at least one bit wide: for ``n = 1`` a zero-width
    signal would be emitted as ``wire [-1:0]``, which Verilator rejects (ASCRANGE lint). The case
    of ``byte_idx`` whenever pixels take one byte (``pixel_bits <= 8``, the default input width)."""
    return Signal(range(max(n, 2)), name=name)


def check_int(name, value, lo, hi=None):
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{name} must be an integer {rng}, not {value!r}")
    return value


# ---------------------------------------------------------------------------------------- deframer


class EventKind(hdl_enum.Enum, shape=3):
    HEADER = 0     # cmd and length are valid
    DATA = 1       # one payload byte in ``data``
    END_OK = 2     # checksum matched
    END_BAD = 3    # checksum mismatch
    TIMEOUT = 4    # the frame stopped arriving


EVENT_LAYOUT = data.StructLayout({
    "kind": EventKind,
    "cmd": unsigned(8),
    "length": unsigned(16),
    "data": unsigned(8),
})


def taken_event() -> wiring.Signature:
    """A frame event as its consumer takes it: ``taken`` (the event is consumed this cycle) and
    its ``payload``; for the parts of the host link that act on the events one part consumes."""
    return wiring.Signature({"taken": Out(1), "payload": Out(EVENT_LAYOUT)})


class Deframer(wiring.Component):
    """Byte stream in, frame event stream out.

    Bytes before a sync byte are dropped. ``timeout`` is the most clock cycles the deframer waits
    for the next byte of a frame it has started; then it emits a ``TIMEOUT`` event and hunts for
    sync again. While the consumer stalls, no time is counted.
    """

    def __init__(self, *, timeout: int):
        self._timeout = check_int("timeout", timeout, 1)
        super().__init__({"i": In(byte_stream()), "o": Out(stream.Signature(EVENT_LAYOUT))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o

        cmd = Signal(8)
        length = Signal(16)
        remaining = Signal(16)
        total = Signal(8)
        timer = Signal(range(self._timeout + 1))

        m.d.comb += [o.payload.cmd.eq(cmd), o.payload.length.eq(length), o.payload.data.eq(i.payload)]
        got = i.valid & i.ready

        waiting = Signal()   # inside a frame, waiting for the next input byte
        with m.If(got | ~waiting):
            m.d.sync += timer.eq(0)
        with m.Elif(~i.valid):
            m.d.sync += timer.eq(timer + 1)
        expired = waiting & ~i.valid & (timer == self._timeout)

        def or_timeout():      # after the If of a state waiting for a byte: the wait is over
            with m.Elif(expired):
                m.next = "TIMEOUT"

        with m.FSM():
            with m.State("SYNC"):
                m.d.comb += i.ready.eq(1)
                with m.If(i.valid & (i.payload == SYNC)):
                    m.d.sync += [total.eq(0), cmd.eq(0), length.eq(0)]
                    m.next = "CMD"
            # the header's bytes: each stored as it comes, and summed
            for state, nxt, store in (("CMD", "LEN_LO", [cmd.eq(i.payload)]),
                                      ("LEN_LO", "LEN_HI", [length[:8].eq(i.payload)]),
                                      ("LEN_HI", "HEADER", [length[8:].eq(i.payload),
                                                            remaining.eq(Cat(length[:8], i.payload))])):
                with m.State(state):
                    m.d.comb += [i.ready.eq(1), waiting.eq(1)]
                    with m.If(i.valid):
                        m.d.sync += [*store, total.eq(total + i.payload)]
                        m.next = nxt
                    or_timeout()
            with m.State("HEADER"):
                m.d.comb += [o.valid.eq(1), o.payload.kind.eq(EventKind.HEADER)]
                with m.If(o.ready):
                    m.next = "PAYLOAD"
                    with m.If(remaining == 0):
                        m.next = "CHECK"
            with m.State("PAYLOAD"):
                m.d.comb += [o.valid.eq(i.valid), o.payload.kind.eq(EventKind.DATA),
                             i.ready.eq(o.ready), waiting.eq(1)]
                with m.If(got):
                    m.d.sync += [total.eq(total + i.payload), remaining.eq(remaining - 1)]
                    with m.If(remaining == 1):
                        m.next = "CHECK"
                or_timeout()
            with m.State("CHECK"):
                m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready), waiting.eq(1),
                             o.payload.kind.eq(Mux(i.payload == total, EventKind.END_OK,
                                                   EventKind.END_BAD))]
                with m.If(got):
                    m.next = "SYNC"
                or_timeout()
            with m.State("TIMEOUT"):
                m.d.comb += [o.valid.eq(1), o.payload.kind.eq(EventKind.TIMEOUT)]
                with m.If(o.ready):
                    m.next = "SYNC"
        return m


class EventRegister(wiring.Component):
    """A register stage for a stream of frame events: ``o`` is ``i`` a cycle later.

    The deframer's events are a decode of its state and, at a frame's end, of an 8-bit checksum
    compare; without this stage that decode ran on into every consumer's registers (the pixel and
    weight loaders' addresses, the LEDs), the UP5K's worst paths. Bytes arrive a UART frame apart,
    so the cycle it adds costs nothing. ``i.ready`` is high while the stage is empty or ``o`` is
    taken, so a stalled consumer stalls the deframer as before."""

    def __init__(self):
        super().__init__({"i": In(stream.Signature(EVENT_LAYOUT)), "o": Out(stream.Signature(EVENT_LAYOUT))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o
        m.d.comb += i.ready.eq(~o.valid | o.ready)
        with m.If(i.ready):
            m.d.sync += [o.valid.eq(i.valid), o.payload.eq(i.payload)]
        return m


# ---------------------------------------------------------------------------------------- enframer

HEADER_LAYOUT = data.StructLayout({"cmd": unsigned(8), "length": unsigned(16)})


class Enframer(wiring.Component):
    """Header (``cmd``, ``length``) and exactly ``length`` payload bytes in; a frame out."""

    def __init__(self):
        super().__init__({
            "hdr": In(stream.Signature(HEADER_LAYOUT)),
            "i": In(byte_stream()),
            "o": Out(byte_stream()),
        })

    def elaborate(self, platform):
        m = Module()
        hdr, i, o = self.hdr, self.i, self.o
        cmd = Signal(8)
        length = Signal(16)
        remaining = Signal(16)
        total = Signal(8)
        # The checksum adds each byte sent a cycle later, from a register: the byte's source (the
        # host link's payload mux) and the adder in one cycle were the UP5K's critical path. CHECK
        # waits for the last byte's add (``pending``).
        sent = Signal(8)
        pending = Signal()

        m.d.sync += pending.eq(0)
        with m.If(pending):
            m.d.sync += total.eq(total + sent)
        with m.If(o.valid & o.ready):
            m.d.sync += [sent.eq(o.payload), pending.eq(1)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += hdr.ready.eq(1)
                with m.If(hdr.valid):
                    m.d.sync += [cmd.eq(hdr.payload.cmd), length.eq(hdr.payload.length),
                                 remaining.eq(hdr.payload.length)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += [o.valid.eq(1), o.payload.eq(SYNC)]
                with m.If(o.ready):
                    m.d.sync += [total.eq(0), pending.eq(0)]   # the sync byte is not summed
                    m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += [o.valid.eq(1), o.payload.eq(cmd)]
                with m.If(o.ready):
                    m.next = "LEN_LO"
            with m.State("LEN_LO"):
                m.d.comb += [o.valid.eq(1), o.payload.eq(length[:8])]
                with m.If(o.ready):
                    m.next = "LEN_HI"
            with m.State("LEN_HI"):
                m.d.comb += [o.valid.eq(1), o.payload.eq(length[8:])]
                with m.If(o.ready):
                    m.next = "CHECK"
                    with m.If(remaining != 0):
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [o.valid.eq(i.valid), o.payload.eq(i.payload), i.ready.eq(o.ready)]
                with m.If(i.valid & o.ready):
                    m.d.sync += remaining.eq(remaining - 1)
                    with m.If(remaining == 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += [o.valid.eq(~pending), o.payload.eq(total)]
                with m.If(~pending & o.ready):
                    m.next = "IDLE"
        return m
