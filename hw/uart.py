"""8N1 UART receiver and transmitter with ``lib.stream`` byte interfaces.

Both take ``divisor``, the number of clock cycles per bit (``clk_freq // baud``). Bits are LSB
first: one start bit (0), eight data bits, one stop bit (1); the line idles high.

* :class:`UARTRx` synchronises the ``rx`` pin (two flip-flops), waits half a bit after a falling
  edge, checks the start bit is still low (else it was a glitch), then samples every ``divisor``
  cycles in the middle of each bit. A byte whose stop bit reads 0 is dropped and pulses
  ``frame_error`` (the receiver then waits for the line to go high again, so a held-low "break"
  gives one error, not a stream of them). A UART cannot be stalled: if the previous byte was not
  taken by the time the next one is complete, the new byte is dropped and ``overrun`` pulses.
* :class:`UARTTx` accepts a byte when idle and shifts it out; ``o.ready`` is low while a byte is on
  the line. ``tx`` is driven from a flip-flop (no glitches on the pin).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTRx", "UARTTx", "byte_stream", "check_divisor", "MIN_DIVISOR"]

MIN_DIVISOR = 4


def byte_stream() -> stream.Signature:
    """The stream of bytes both UART halves (and the host link) speak."""
    return stream.Signature(unsigned(8))


def check_divisor(divisor) -> int:
    if not isinstance(divisor, int) or isinstance(divisor, bool) or divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be an integer >= {MIN_DIVISOR} (clock cycles per bit), "
                         f"not {divisor!r}")
    return divisor


class _UARTComponent(wiring.Component):
    """What the receiver and the transmitter share: a checked bit period of ``divisor`` cycles."""

    def __init__(self, members: dict, *, divisor: int):
        self._divisor = check_divisor(divisor)
        super().__init__(members)

    @property
    def divisor(self) -> int:
        return self._divisor


class UARTRx(_UARTComponent):
    """UART receiver.

    Members: ``rx`` (In, the pin, idles high), ``o`` (Out byte stream), ``frame_error`` and
    ``overrun`` (Out, one-cycle pulses).
    """

    def __init__(self, *, divisor: int):
        super().__init__({
            "rx": In(1, init=1),
            "o": Out(byte_stream()),
            "frame_error": Out(1),
            "overrun": Out(1),
        }, divisor=divisor)

    def elaborate(self, platform):
        m = Module()
        div = self._divisor

        rx = Signal(init=1)
        m.submodules.sync_rx = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(div))
        bits = Signal(range(8))
        shreg = Signal(8)

        with m.If(self.o.ready):
            m.d.sync += self.o.valid.eq(0)
        m.d.sync += [self.frame_error.eq(0), self.overrun.eq(0)]

        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(div // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(~rx):
                        m.d.sync += [timer.eq(div - 1), bits.eq(0)]
                        m.next = "DATA"
                    with m.Else():  # glitch shorter than half a bit
                        m.next = "IDLE"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)),
                                 timer.eq(div - 1), bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        with m.If(self.o.valid & ~self.o.ready):
                            m.d.sync += self.overrun.eq(1)  # keep the unread byte, drop this one
                        with m.Else():
                            m.d.sync += [self.o.payload.eq(shreg), self.o.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.frame_error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTx(_UARTComponent):
    """UART transmitter.

    Members: ``i`` (In byte stream), ``tx`` (Out, the pin, idles high).
    """

    def __init__(self, *, divisor: int):
        super().__init__({
            "i": In(byte_stream()),
            "tx": Out(1, init=1),
        }, divisor=divisor)

    def elaborate(self, platform):
        m = Module()
        div = self._divisor

        timer = Signal(range(div))
        shreg = Signal(10, init=0x3FF)   # stop bit, 8 data bits, start bit (sent LSB first)
        remaining = Signal(range(11))    # bits still to put on the line, including the current one

        m.d.comb += self.i.ready.eq(remaining == 0)
        m.d.sync += self.tx.eq(shreg[0])

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [shreg.eq((1 << 9) | (self.i.payload << 1)),
                         remaining.eq(10), timer.eq(div - 1)]
        with m.Elif(remaining != 0):
            with m.If(timer == 0):
                m.d.sync += [shreg.eq((1 << 9) | (shreg >> 1)), remaining.eq(remaining - 1),
                             timer.eq(div - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
