"""Formal equivalence of the shared datapath pieces with their integer definitions.

For every input of the given widths (not a sample): ``LIFStep`` equals ``intops.lif_step`` and
``AlignBias`` equals ``intops.shift_round`` + bias. The specifications below are written without
the shifts the hardware uses (comparisons against constant multiples), so they are independent
re-statements of docs/integer-semantics.md, not copies of the implementation.
"""

from __future__ import annotations

import pytest
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Mux, Signal, signed
from amaranth.hdl._ast import AnyConst  # not re-exported by amaranth.hdl in 0.5

from spikeforge.hw.datapath import AlignBias, LIFStep
from spikeforge.rtl_tests.formal import prove, tools_available

pytestmark = pytest.mark.skipif(tools_available() is not None, reason=str(tools_available()))


class LIFHarness(Elaboratable):
    def __init__(self, dut_cls=LIFStep, **widths):
        self.dut_cls = dut_cls
        self.widths = widths

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut_cls(**self.widths)
        w = self.widths
        v, x, th = AnyConst(signed(w["state_bits"])), AnyConst(signed(w["x_bits"])), AnyConst(w["threshold_bits"])
        m.d.comb += [dut.v.eq(v), dut.x.eq(x), dut.threshold.eq(th)]
        # the state a neuron can hold (the range analysis' invariant): below its threshold
        m.d.comb += Assume(v < th)
        m.d.comb += Assume(th >= 1)
        h = Signal(signed(w["membrane_bits"] + 2))
        m.d.comb += h.eq(v + x)
        m.d.comb += Assert(dut.h2 == h)
        m.d.comb += Assert(dut.spike == (h >= 2 * th))
        with m.If(dut.spike):
            m.d.comb += Assert(dut.v_next == 0)
        with m.Else():  # v_next = floor(h / 2)  <=>  2 v_next <= h <= 2 v_next + 1
            m.d.comb += Assert((2 * dut.v_next <= h) & (h <= 2 * dut.v_next + 1))
        return m


class AlignHarness(Elaboratable):
    def __init__(self, max_shift: int, dut_cls=AlignBias, **widths):
        self.max_shift = max_shift
        self.dut_cls = dut_cls
        self.widths = widths

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut_cls(**self.widths)
        w = self.widths
        acc, sh, b = AnyConst(signed(w["acc_bits"])), AnyConst(signed(w["shift_bits"])), AnyConst(signed(w["bias_bits"]))
        m.d.comb += [dut.acc.eq(acc), dut.shift.eq(sh), dut.bias.eq(b)]
        m.d.comb += Assume((sh >= -self.max_shift) & (sh <= self.max_shift))
        # z: the exact aligned value, pinned down by constraints (no shifts involved)
        z = AnyConst(signed(w["acc_bits"] + self.max_shift + 2))
        with m.Switch(sh):
            for s in range(-self.max_shift, self.max_shift + 1):
                with m.Case(s):
                    if s >= 0:
                        m.d.comb += Assume(z == acc * (1 << s))
                    else:  # z = floor((acc + 2**(r-1)) / 2**r)
                        r = -s
                        m.d.comb += Assume((z * (1 << r) <= acc + (1 << (r - 1))) &
                                           (acc + (1 << (r - 1)) < (z + 1) * (1 << r)))
        # the declared output width holds the result (what the range analysis guarantees)
        lim = 1 << (w["out_bits"] - 1)
        m.d.comb += Assume((z + b >= -lim) & (z + b < lim))
        m.d.comb += Assert(dut.y == z + b)
        return m


@pytest.mark.parametrize("widths", [
    dict(x_bits=16, state_bits=16, membrane_bits=17, threshold_bits=9),
    dict(x_bits=24, state_bits=24, membrane_bits=26, threshold_bits=13),
])
def test_lif_step_is_the_integer_lif(tmp_path, widths):
    prove(LIFHarness(**widths), tmp_path / "lif")


def test_formal_catches_a_wrong_lif(tmp_path):
    class TiesDoNotFire(LIFStep):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.comb += self.spike.eq(self.h2 > (self.threshold << 1))
            return m

    with pytest.raises(AssertionError, match="formal proof failed"):
        prove(LIFHarness(TiesDoNotFire, x_bits=8, state_bits=8, membrane_bits=9, threshold_bits=6), tmp_path / "bad")


@pytest.mark.parametrize("widths,max_shift", [
    (dict(acc_bits=16, shift_bits=5, bias_bits=20, out_bits=24), 8),
    (dict(acc_bits=24, shift_bits=6, bias_bits=24, out_bits=28), 6),
])
def test_align_bias_is_shift_round_plus_bias(tmp_path, widths, max_shift):
    prove(AlignHarness(max_shift, **widths), tmp_path / "align")


def test_formal_catches_truncating_alignment(tmp_path):
    class Truncates(AlignBias):
        def elaborate(self, platform):
            m = Module()
            r = Signal(self.shift_bits)
            m.d.comb += r.eq(-self.shift)
            left = self.acc << self.shift.as_unsigned()[: self.shift_bits - 1]
            m.d.comb += self.y.eq(Mux(self.shift[-1], self.acc >> r, left) + self.bias)
            return m

    with pytest.raises(AssertionError, match="formal proof failed"):
        prove(AlignHarness(4, dut_cls=Truncates, acc_bits=10, shift_bits=4, bias_bits=8, out_bits=16),
              tmp_path / "bad")
