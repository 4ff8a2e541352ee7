"""The combinational heart of the integer ops, one component each, shared by every engine.

These are the hardware twins of ``quantize.intops.lif_step`` and ``intops.shift_round`` (+ bias);
``rtl_tests/test_formal.py`` proves each equal to its definition for *every* input of the given
widths with SymbiYosys, and the engines instantiate them rather than re-writing the logic.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def _width(name: str, v, lo: int = 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{name} must be an integer, not {v!r}")
    if v < lo:
        raise ValueError(f"{name} must be at least {lo}, not {v!r}")
    return v


class LIFStep(wiring.Component):
    """One LIF update (tau = 2, doubled units): ``h2 = v + x``; ``spike = h2 >= 2*threshold``;
    ``v_next = 0 if spike else h2 >> 1``. ``membrane_bits`` must hold ``h2`` (the IR's declared
    membrane width); ``v`` and ``v_next`` are ``state_bits`` wide."""

    def __init__(self, *, x_bits: int, state_bits: int, membrane_bits: int, threshold_bits: int):
        self.x_bits = _width("x_bits", x_bits, 2)
        self.state_bits = _width("state_bits", state_bits, 2)
        self.membrane_bits = _width("membrane_bits", membrane_bits, 2)
        self.threshold_bits = _width("threshold_bits", threshold_bits, 1)
        super().__init__({
            "v": In(signed(state_bits)), "x": In(signed(x_bits)), "threshold": In(unsigned(threshold_bits)),
            "h2": Out(signed(membrane_bits)), "spike": Out(1), "v_next": Out(signed(state_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.h2.eq(self.v + self.x)
        m.d.comb += self.spike.eq(self.h2 >= (self.threshold << 1))
        m.d.comb += self.v_next.eq(Mux(self.spike, 0, self.h2 >> 1))
        return m


class AlignBias(wiring.Component):
    """``y = align(acc, shift) + bias``: ``acc << shift`` for ``shift >= 0``, else
    ``(acc + 2**(-shift-1)) >> -shift`` (round half up); the stream aligner of the residual adds."""

    def __init__(self, *, acc_bits: int, shift_bits: int, bias_bits: int, out_bits: int):
        self.acc_bits = _width("acc_bits", acc_bits, 2)
        self.shift_bits = _width("shift_bits", shift_bits, 2)
        self.bias_bits = _width("bias_bits", bias_bits, 2)
        self.out_bits = _width("out_bits", out_bits, 2)
        super().__init__({
            "acc": In(signed(acc_bits)), "shift": In(signed(shift_bits)), "bias": In(signed(bias_bits)),
            "y": Out(signed(out_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        wide = self.out_bits + (1 << (self.shift_bits - 1)) + 2
        left = Signal(signed(wide))
        right = Signal(signed(self.acc_bits + 1))
        r = Signal(unsigned(self.shift_bits))
        m.d.comb += r.eq(-self.shift)
        m.d.comb += left.eq(self.acc << self.shift.as_unsigned()[: self.shift_bits - 1])
        # round half up: floor((acc + 2**(r-1)) / 2**r) == (floor(acc / 2**(r-1)) + 1) >> 1
        m.d.comb += right.eq(((self.acc >> (r - 1).as_unsigned()[: self.shift_bits]) + 1) >> 1)
        m.d.comb += self.y.eq(Mux(self.shift[-1], right, left) + self.bias)
        return m
