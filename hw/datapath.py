"""The combinational heart of the integer ops, one component each, shared by the engines.

* :class:`LIFStep`: ``quantize.intops.lif_step`` (one membrane update), instantiated by the LIF
  engine (``hw/sfa_lif.py``);
* :class:`AlignBias`: ``intops.shift_round`` + bias (a convolution's readout), instantiated by the
  CONV engine's readout (``hw/sfa_conv.py``);
* :class:`AccumulateLane`: one accumulator lane's read-modify-write (``intops.conv``'s
  ``acc += w * x``, and the head's bias), instantiated once per lane by the CONV/HEAD engine.

``rtl_tests/test_formal.py`` proves each equal to its definition with SymbiYosys for *every* input
of the given widths within the range analysis' invariant (``quantize/ranges.py``), at the widths
the engines instantiate them with for real programs; the engines use these components rather than
re-writing the arithmetic, so the proofs cover the shipped hardware. The widths come from the
``MachineConfig`` (``hw/sfa_common.py``), i.e. from the IR's declared widths.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


def _width(name: str, v, lo: int = 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool):
        raise TypeError(f"{name} must be an integer, not {v!r}")
    if v < lo:
        raise ValueError(f"{name} must be at least {lo}, not {v!r}")
    return v


def _set_widths(component, widths: dict, lo: dict | None = None) -> None:
    """Check each width (an integer >= 2, or ``lo[name]``) and keep it as an attribute and in
    ``component.widths`` (the harnesses and reports read the widths an instance was built with)."""
    for name, v in widths.items():
        setattr(component, name, _width(name, v, (lo or {}).get(name, 2)))
    component.widths = dict(widths)


class LIFStep(wiring.Component):
    """One LIF update (tau = 2, doubled units): ``h2 = v + x``; ``spike = h2 >= 2*threshold``;
    ``v_next = 0 if spike else h2 >> 1``. ``membrane_bits`` must hold ``h2`` (the IR's declared
    membrane width); ``v`` and ``v_next`` are ``state_bits`` wide (the IR's declared state width:
    a neuron that does not fire keeps ``h2 < 2*threshold``, so ``v_next`` stays within it)."""

    def __init__(self, *, x_bits: int, state_bits: int, membrane_bits: int, threshold_bits: int):
        _set_widths(self, dict(x_bits=x_bits, state_bits=state_bits, membrane_bits=membrane_bits,
                               threshold_bits=threshold_bits), lo={"threshold_bits": 1})
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
        _set_widths(self, dict(acc_bits=acc_bits, shift_bits=shift_bits, bias_bits=bias_bits, out_bits=out_bits))
        super().__init__({
            "acc": In(signed(acc_bits)), "shift": In(signed(shift_bits)), "bias": In(signed(bias_bits)),
            "y": Out(signed(out_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        wide = self.out_bits + (1 << (self.shift_bits - 1)) + 2
        right = self.shift[-1]
        # One adder after the shifters: for a right shift by r = -shift > 0, round half up,
        #   floor((acc + 2**(r-1)) / 2**r) + bias == (floor(acc / 2**(r-1)) + 2*bias + 1) >> 1,
        # with r - 1 == -shift - 1 == ~shift (two's complement: an inversion, not two subtractions);
        # for a left shift, (acc << shift) + bias == (2*(acc << shift) + 2*bias) >> 1. So the
        # shifted value (doubled when shifting left) plus 2*bias + [right] (the bias with the
        # rounding bit below it, wiring only), halved. (The rounding add and the bias add in series
        # after the shifter were the UP5K's critical path.)
        r1 = Signal(unsigned(self.shift_bits))
        m.d.comb += r1.eq(~self.shift)
        shifted = Signal(signed(wide + 1))
        m.d.comb += shifted.eq(Mux(right, self.acc >> r1,
                                   (self.acc << self.shift.as_unsigned()[: self.shift_bits - 1]) << 1))
        total = Signal(signed(wide + 2))
        m.d.comb += total.eq(shifted + Cat(right, self.bias).as_signed())
        m.d.comb += self.y.eq(total >> 1)
        return m


class AccumulateLane(wiring.Component):
    """One accumulator lane: ``acc_next = acc + addend`` with, by ``mode``,

    * ``SPIKE``: ``weight`` (``w * x`` for a spike ``x = 1``: the weight is selected, no multiplier;
      the accumulation is event driven, so a lane only runs for an input that spiked, and an input
      that did not leaves the accumulator as it is: the engine does not write it back);
    * ``MUL``: ``x * weight`` (multi-bit inputs: the pixels, the depthwise convolution's output);
    * ``BIAS``: ``bias`` (the head adds its biases into the accumulators once per time step).

    ``acc_bits`` is the IR's declared accumulator width. It holds every partial sum, in any order:
    the range analysis bounds each term ``w * x`` by a range that contains 0 (a tap may see padding
    or no spike), so any sum of some of the terms lies between the sum of the negative parts and
    the sum of the positive parts, and those two sums are what the declared width is made of (the
    head's width likewise includes its biases). ``mode`` 3 is not used.

    With ``registered=True`` (the CONV engine's deep pipeline) the addend is registered: ``mode``,
    ``x``, ``weight`` and ``bias`` are presented one cycle before the ``acc`` they are added to,
    and ``acc_next`` is ``acc`` plus the addend of the previous cycle's inputs, so that the multiplier and the adder
    are in different cycles (in one they were the ECP5's critical path). What is registered is
    the product and the other operands, and the addend is selected after the registers: the
    multiplier's route, its partial product sum and the mode mux in one cycle were the ECP5's
    critical path next."""

    SPIKE, MUL, BIAS = 0, 1, 2

    def __init__(self, *, acc_bits: int, weight_bits: int, x_bits: int, bias_bits: int, registered: bool = False):
        _set_widths(self, dict(acc_bits=acc_bits, weight_bits=weight_bits, x_bits=x_bits, bias_bits=bias_bits))
        if not isinstance(registered, bool):
            raise TypeError(f"registered must be a bool, not {registered!r}")
        self.registered = registered
        super().__init__({
            "mode": In(2), "acc": In(signed(acc_bits)), "x": In(signed(x_bits)),
            "weight": In(signed(weight_bits)), "bias": In(signed(bias_bits)),
            "acc_next": Out(signed(acc_bits)),
        })

    def select(self, mode, product, weight, bias):
        """The addend by ``mode``: ``weight`` (SPIKE), ``product`` (``x * weight``, MUL), ``bias``."""
        return Mux(mode == self.BIAS, bias, Mux(mode == self.MUL, product, weight))

    def addend(self):
        return self.select(self.mode, self.x * self.weight, self.weight, self.bias)

    def elaborate(self, platform):
        m = Module()
        if self.registered:
            # the operands of the selection registered (no reset: pipeline registers, used only a
            # cycle after inputs were given; the product at its full width: synthesis drops the
            # bits the sum does not use, and the proof's product stays the design's,
            # rtl_tests/formal.py)
            ops = [(self.mode, "mode_q"), (self.x * self.weight, "product_q"), (self.weight, "weight_q"),
                   (self.bias, "bias_q")]
            regs = []
            for v, name in ops:
                reg = Signal.like(v, name=name, reset_less=True)
                m.d.sync += reg.eq(v)
                regs.append(reg)
            addend = self.select(*regs)
        else:
            addend = self.addend()
        m.d.comb += self.acc_next.eq(self.acc + addend)
        return m


class Saturate(wiring.Component):
    """``y = clamp(x, -2**(out_bits-1), 2**(out_bits-1) - 1)``: ``intops.saturate``, a value that
    does not fit ``out_bits`` becomes the nearest end of its range, never wrapped. The CONV
    readout and the SUM engine put it in front of their ACT writes when the program saturates
    (``MachineConfig.sat_bits``). It is a test of the bits above the output's sign bit (all equal
    to it: the value fits) and a mux, no comparator."""

    def __init__(self, *, in_bits: int, out_bits: int):
        _set_widths(self, dict(in_bits=in_bits, out_bits=out_bits))
        super().__init__({"x": In(signed(in_bits)), "y": Out(signed(out_bits))})

    def elaborate(self, platform):
        m = Module()
        if self.in_bits <= self.out_bits:
            m.d.comb += self.y.eq(self.x)
            return m
        top = self.x[self.out_bits - 1:]          # the output's sign bit and every bit above it
        fits = (top == 0) | (top == (1 << len(top)) - 1)
        lo, hi = -(1 << (self.out_bits - 1)), (1 << (self.out_bits - 1)) - 1
        m.d.comb += self.y.eq(Mux(fits, self.x[: self.out_bits].as_signed(), Mux(self.x[-1], lo, hi)))
        return m
