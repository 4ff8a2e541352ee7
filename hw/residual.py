"""Residual (membrane shortcut) adder: ``o = a + (b << shift)`` on two aligned streams.

``intops.add`` adds two operands already at the residual stream's scale; the writer of each branch
aligns it with a left shift (``intops.conv``'s ``shift``). ``shift`` here is for a branch that
arrives unshifted: the adder aligns it itself, with wiring, not a multiplier (``shift = 0`` is
exactly ``intops.add``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .params import check_int, check_width

__all__ = ["ResidualAdder"]


class ResidualAdder(wiring.Component):
    """Element-wise ``a + (b << shift)`` of two streams in the same order.

    Parameters (keyword-only)
    -------------------------
    a_bits, b_bits, out_bits : int
        Signed widths of the operands and of the sum (the IR's declared widths; the sum is
        truncated to ``out_bits``, which the IR's range analysis makes sufficient).
    shift : int
        Left shift of ``b`` (0..32).

    Ports
    -----
    a : In(stream of signed(a_bits)), b : In(stream of signed(b_bits))
        Operands; a pair is taken when both are valid.
    o : Out(stream of signed(out_bits))
        Sums, registered: one per cycle, latency 1.
    """

    def __init__(self, *, a_bits: int, b_bits: int, out_bits: int, shift: int = 0):
        self._a_bits = check_width("a_bits", a_bits, minimum=2)
        self._b_bits = check_width("b_bits", b_bits, minimum=2)
        self._out_bits = check_width("out_bits", out_bits, minimum=2)
        self._shift = check_int("shift", shift, minimum=0, maximum=32)
        super().__init__({
            "a": In(stream.Signature(signed(self._a_bits))),
            "b": In(stream.Signature(signed(self._b_bits))),
            "o": Out(stream.Signature(signed(self._out_bits))),
        })

    a_bits = property(lambda self: self._a_bits)
    b_bits = property(lambda self: self._b_bits)
    out_bits = property(lambda self: self._out_bits)
    shift = property(lambda self: self._shift)

    def elaborate(self, platform):
        m = Module()
        o_valid = Signal()
        take = Signal()
        m.d.comb += [
            take.eq(self.a.valid & self.b.valid & (~o_valid | self.o.ready)),
            self.a.ready.eq(take),
            self.b.ready.eq(take),
            self.o.valid.eq(o_valid),
        ]
        with m.If(self.o.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(take):
            m.d.sync += [o_valid.eq(1),
                         self.o.payload.eq(self.a.payload + (self.b.payload << self._shift))]
        return m
