"""Convolution / linear layer on multi-bit integer inputs (not spikes).

Two layers of the network see multi-bit inputs: the first conv (7x7 stride 2 on the quantised
pixels) and SepConv's ``pwconv2`` (1x1 on the depthwise conv's integer output). This unit runs
them through the same scatter engine as the spiking layers
(:class:`~spikegate.hw.accumulate.AccumulateEngine`), with one change: each input element is an
event carrying its value, and each lane adds ``w * value`` instead of ``w``.

Arithmetic choice: one **multiplier per lane** (``weight_bits x in_bits``, signed), registered
before the accumulator adder. On the iCE40 UP5K that is one SB_MAC16 per lane (8 in the device),
on the ECP5 one MULT18X18D per lane; ``bench/hw_components.py`` reports the DSP count. A bit-serial
shift-add would save the DSPs at ``in_bits`` times the cycles; the first layer is the only
layer where the multiplier is busy for every pixel, so the parallel multiplier is the better trade.

Zero inputs are skipped (they contribute nothing), so ``pwconv2`` after a sparse depthwise output
costs only its non-zero elements.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .accumulate import _ScatterEngine, output_layout
from .params import check_int, check_width

__all__ = ["MultibitLinearUnit", "ValueEventizer"]


class ValueEventizer(wiring.Component):
    """Dense ``C, H, W`` stream of signed values -> events ``(c, y, x, value)`` for the non-zero
    ones, then one ``end`` event per map. Output is registered; one element per cycle."""

    def __init__(self, *, channels: int, height: int, width: int, in_bits: int, event_shape):
        self._channels = check_int("channels", channels, minimum=1)
        self._height = check_int("height", height, minimum=1)
        self._width = check_int("width", width, minimum=1)
        self._in_bits = check_width("in_bits", in_bits, minimum=2)
        super().__init__({
            "i": In(stream.Signature(signed(self._in_bits))),
            "o": Out(stream.Signature(event_shape)),
        })

    def elaborate(self, platform):
        m = Module()
        c = Signal.like(self.o.payload.c)
        y = Signal.like(self.o.payload.y)
        x = Signal.like(self.o.payload.x)
        last = Signal()
        end_wait = Signal()
        o_valid = Signal()
        fire = Signal()
        m.d.comb += [
            last.eq((c == self._channels - 1) & (y == self._height - 1) & (x == self._width - 1)),
            self.o.valid.eq(o_valid),
            fire.eq(self.o.valid & self.o.ready),
            self.i.ready.eq((~o_valid | self.o.ready) & ~end_wait),
        ]
        end_event = [self.o.payload.c.eq(0), self.o.payload.y.eq(0), self.o.payload.x.eq(0),
                     self.o.payload.value.eq(0), self.o.payload.end.eq(1)]
        with m.If(fire):
            m.d.sync += o_valid.eq(0)
        with m.If(end_wait & (~o_valid | fire)):
            m.d.sync += [o_valid.eq(1), end_wait.eq(0), *end_event]
        with m.If(self.i.valid & self.i.ready):
            with m.If(x == self._width - 1):
                m.d.sync += x.eq(0)
                with m.If(y == self._height - 1):
                    m.d.sync += y.eq(0)
                    with m.If(c == self._channels - 1):
                        m.d.sync += c.eq(0)
                    with m.Else():
                        m.d.sync += c.eq(c + 1)
                with m.Else():
                    m.d.sync += y.eq(y + 1)
            with m.Else():
                m.d.sync += x.eq(x + 1)
            with m.If(self.i.payload != 0):
                m.d.sync += [o_valid.eq(1), self.o.payload.c.eq(c), self.o.payload.y.eq(y),
                             self.o.payload.x.eq(x), self.o.payload.value.eq(self.i.payload),
                             self.o.payload.end.eq(0)]
                with m.If(last):
                    m.d.sync += end_wait.eq(1)
            with m.Elif(last):
                m.d.sync += [o_valid.eq(1), *end_event]
        return m


class MultibitLinearUnit(wiring.Component):
    """``y = (sum w * x) << shift[c] + bias[c]`` on multi-bit inputs (``intops.conv``).

    Parameters (keyword-only)
    -------------------------
    cin, cout, height, width, kernel, stride, padding, depthwise
        The convolution, as for :class:`~spikegate.hw.accumulate.AccumulateEngine` (kernel 1, 3
        or 7, stride 1 or 2). A linear layer is kernel 1 on a 1x1 map.
    in_bits : int
        Signed width of the input values.
    weights, weight_bits, acc_bits, out_bits, shift, bias, lanes
        As for :class:`~spikegate.hw.accumulate.AccumulateEngine`; ``lanes`` multipliers.

    Ports
    -----
    i : In(stream of signed(in_bits))
        The input map, ``cin * height * width`` values in ``C, H, W`` order.
    o : Out(stream of {value: signed(out_bits), last})
        ``cout * Ho * Wo`` values in ``C, H, W`` order; ``last`` on the final one.

    Timing (no stalls): a non-zero input occupies the engine ``max(1, taps * ceil(cout/lanes))``
    cycles, a zero input at most one cycle (zeros are consumed while the engine works on the
    previous non-zero one); readout one value per cycle.
    """

    def __init__(self, *, cin, cout, height, width, kernel, stride=1, padding=0,
                 depthwise=False, in_bits, weights, weight_bits, acc_bits, out_bits,
                 shift=None, bias=None, lanes=1):
        self._in_bits = check_width("in_bits", in_bits, minimum=2)
        self._engine = _ScatterEngine(
            cin=cin, cout=cout, height=height, width=width, kernel=kernel, stride=stride,
            padding=padding, depthwise=depthwise, weights=weights, weight_bits=weight_bits,
            acc_bits=acc_bits, out_bits=out_bits, shift=shift, bias=bias, lanes=lanes,
            value_bits=self._in_bits)
        super().__init__({
            "i": In(stream.Signature(signed(self._in_bits))),
            "o": Out(stream.Signature(output_layout(self._engine.out_bits))),
        })

    geometry = property(lambda self: self._engine.geometry)
    lanes = property(lambda self: self._engine.lanes)
    chunks = property(lambda self: self._engine.chunks)
    in_bits = property(lambda self: self._in_bits)
    readout_words = property(lambda self: self._engine.readout_words)

    def event_cycles(self, y: int, x: int) -> int:
        return self._engine.event_cycles(y, x)

    def elaborate(self, platform):
        m = Module()
        g = self._engine.geometry
        m.submodules.engine = engine = self._engine
        m.submodules.eventizer = ev = ValueEventizer(
            channels=g.cin, height=g.height, width=g.width, in_bits=self._in_bits,
            event_shape=engine.events.payload.shape())
        wiring.connect(m, wiring.flipped(self.i), ev.i)
        wiring.connect(m, ev.o, engine.events)
        wiring.connect(m, engine.o, wiring.flipped(self.o))
        return m
