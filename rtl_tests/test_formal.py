"""Formal equivalence of the datapath components with their integer definitions (SymbiYosys).

For every input of the given widths (not a sample), within the range analysis' invariant
(``quantize/ranges.py``: the values a declared width is proven to hold):

* ``LIFStep`` equals ``intops.lif_step``, and keeps the state inside the range the analysis
  derives (so over any number of time steps nothing wraps);
* ``AlignBias`` equals ``intops.shift_round`` + bias;
* ``Saturate`` equals ``intops.saturate`` (a clamp, never a wrap) for every input;
* ``AccumulateLane`` equals one step of ``intops.conv``'s accumulation (``acc + w * x``; for a
  spike the selected weight) or of the head's bias;
* a lane accumulating every tap of a convolution's output channel (or the head's T steps) into a
  register of the IR's declared accumulator width never wraps, for any input (the whole
  accumulation, unrolled);
* the accelerators built for the shipped checkpoints (and a random model) contain these components,
  and each instance, at the widths it is built with, is proven.

The specifications are written without the hardware's shifts and muxes (comparisons against
constant multiples, products), so they are independent re-statements of
docs/integer-semantics.md, not copies of the implementation. Each proof has a mutant the prover
must refute.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import pytest
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Mux, Signal, signed, unsigned
from amaranth.hdl._ast import AnyConst  # not re-exported by amaranth.hdl in 0.5
from amaranth.hdl._ir import Fragment

from spikegate.hw.datapath import AccumulateLane, AlignBias, LIFStep, Saturate
from spikegate.quantize.intops import signed_bits
from spikegate.rtl_tests.formal import prove, tools_available

pytestmark = pytest.mark.skipif(tools_available() is not None, reason=str(tools_available()))


def _lim(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


class _Harness(Elaboratable):
    """A proof harness around one datapath component: ``dut_cls`` (the component or a mutant of
    it) built with ``widths``; subclasses add free inputs, assumptions and assertions."""

    default_dut = None

    def __init__(self, dut_cls=None, **widths):
        self.dut_cls = dut_cls or self.default_dut
        self.widths = widths

    def _dut(self, m: Module):
        m.submodules.dut = dut = self.dut_cls(**self.widths)
        return dut, self.widths


# ---------------------------------------------------------------------------------------------
# LIF
# ---------------------------------------------------------------------------------------------

class LIFHarness(_Harness):
    """One neuron (one channel) of a ``lif`` op. Its input lies in some ``[xlo, xhi]`` (free); the
    analysis makes the state range ``[vlo, vhi] = [min(0, xlo), max(0, min(th - 1, xhi))]`` and
    declares widths holding it and ``h2``'s range ``[vlo + xlo, vhi + xhi]`` and ``2 th``: assumed
    here of ``state_bits`` and ``membrane_bits``. The state ``v`` is anywhere in its range."""

    default_dut = LIFStep

    def elaborate(self, platform):
        m = Module()
        dut, w = self._dut(m)
        xb, sb, mb, tb = w["x_bits"], w["state_bits"], w["membrane_bits"], w["threshold_bits"]
        v, x, th = AnyConst(signed(sb)), AnyConst(signed(xb)), AnyConst(unsigned(tb))
        xlo, xhi = AnyConst(signed(xb)), AnyConst(signed(xb))
        m.d.comb += [dut.v.eq(v), dut.x.eq(x), dut.threshold.eq(th)]
        W = max(xb, sb, mb, tb) + 3
        t, vlo, vhi, h = (Signal(signed(W), name=n) for n in ("t", "vlo", "vhi", "h"))
        m.d.comb += [t.eq(th), h.eq(v + x), vlo.eq(Mux(xlo < 0, xlo, 0))]
        with m.If(xhi >= t - 1):
            m.d.comb += vhi.eq(t - 1)
        with m.Elif(xhi > 0):
            m.d.comb += vhi.eq(xhi)
        with m.Else():
            m.d.comb += vhi.eq(0)
        slo, shi = _lim(sb)
        mlo, mhi = _lim(mb)
        m.d.comb += [
            Assume(t >= 1),
            Assume((xlo <= x) & (x <= xhi)),
            Assume((vlo >= slo) & (vhi <= shi)),                                  # state width
            Assume((vlo + xlo >= mlo) & (vhi + xhi <= mhi) & (2 * t <= mhi)),    # membrane width
            Assume((vlo <= v) & (v <= vhi)),
        ]
        m.d.comb += Assert(dut.h2 == h)
        m.d.comb += Assert(dut.spike == (h >= 2 * t))
        with m.If(dut.spike):
            m.d.comb += Assert(dut.v_next == 0)
        with m.Else():  # v_next = floor(h / 2)  <=>  2 v_next <= h <= 2 v_next + 1
            m.d.comb += Assert((2 * dut.v_next <= h) & (h <= 2 * dut.v_next + 1))
        # the invariant holds again for the next time step (it holds for v = 0, the first one)
        m.d.comb += Assert((vlo <= dut.v_next) & (dut.v_next <= vhi))
        return m


@pytest.mark.parametrize("widths", [
    dict(x_bits=16, state_bits=16, membrane_bits=17, threshold_bits=9),
    dict(x_bits=24, state_bits=24, membrane_bits=26, threshold_bits=13),
    # the ACT word wider than the membrane (ACT holds every tensor; this LIF's input is narrower)
    dict(x_bits=20, state_bits=11, membrane_bits=12, threshold_bits=8),
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


def test_formal_catches_a_lif_state_one_bit_short(tmp_path):
    class NarrowState(LIFStep):
        def elaborate(self, platform):
            m = super().elaborate(platform)
            kept = Signal(signed(self.state_bits - 1))
            m.d.comb += [kept.eq(Mux(self.spike, 0, self.h2 >> 1)), self.v_next.eq(kept)]
            return m

    with pytest.raises(AssertionError, match="formal proof failed"):
        prove(LIFHarness(NarrowState, x_bits=8, state_bits=8, membrane_bits=9, threshold_bits=8), tmp_path / "bad")


# ---------------------------------------------------------------------------------------------
# align + bias
# ---------------------------------------------------------------------------------------------

class AlignHarness(_Harness):
    """``shift`` in ``[-max_shift, max_shift]`` (all of ``shift_bits`` when ``max_shift`` is None),
    or in ``shifts = (lo, hi)``; the result fits ``out_bits`` (what the analysis' output width
    guarantees)."""

    def __init__(self, max_shift: int | None = None, dut_cls=AlignBias, shifts: tuple[int, int] | None = None,
                 **widths):
        lo, hi = _lim(widths["shift_bits"])
        if shifts is None:
            shifts = (lo, hi) if max_shift is None else (max(lo, -max_shift), min(hi, max_shift))
        self.shifts = shifts
        self.max_shift = max(-shifts[0], shifts[1], 0)
        super().__init__(dut_cls, **widths)

    def elaborate(self, platform):
        m = Module()
        dut, w = self._dut(m)
        acc, sh, b = AnyConst(signed(w["acc_bits"])), AnyConst(signed(w["shift_bits"])), AnyConst(signed(w["bias_bits"]))
        m.d.comb += [dut.acc.eq(acc), dut.shift.eq(sh), dut.bias.eq(b)]
        lo, hi = self.shifts
        m.d.comb += Assume((sh >= lo) & (sh <= hi))
        # z: the exact aligned value, pinned down by constraints (no shifts involved)
        z = AnyConst(signed(w["acc_bits"] + self.max_shift + 2))
        with m.Switch(sh):
            for s in range(lo, hi + 1):
                with m.Case(s):
                    if s >= 0:
                        m.d.comb += Assume(z == acc * (1 << s))
                    else:  # z = floor((acc + 2**(r-1)) / 2**r)
                        r = -s
                        m.d.comb += Assume((z * (1 << r) <= acc + (1 << (r - 1))) &
                                           (acc + (1 << (r - 1)) < (z + 1) * (1 << r)))
        # the declared output width holds the result (what the range analysis guarantees)
        olo, ohi = _lim(w["out_bits"])
        m.d.comb += Assume((z + b >= olo) & (z + b <= ohi))
        m.d.comb += Assert(dut.y == z + b)
        return m


@pytest.mark.parametrize("widths,max_shift", [
    (dict(acc_bits=16, shift_bits=5, bias_bits=20, out_bits=24), 8),
    (dict(acc_bits=24, shift_bits=6, bias_bits=24, out_bits=28), 6),
    (dict(acc_bits=12, shift_bits=4, bias_bits=10, out_bits=14), None),  # every shift of 4 bits
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


# ---------------------------------------------------------------------------------------------
# accumulate lane
# ---------------------------------------------------------------------------------------------

class LaneHarness(_Harness):
    """One read-modify-write of a lane, any mode and inputs, the result within the declared
    accumulator width (the range analysis' invariant: every partial sum fits it). A lane built with
    ``registered=True`` adds to ``acc`` the term of the previous cycle's inputs: the specification's
    term is registered likewise (computed in the same cycle as the lane's, so the product is one
    multiplier cell, see rtl_tests/formal.py), and checked from the second cycle on."""

    default_dut = AccumulateLane

    def elaborate(self, platform):
        m = Module()
        dut, w = self._dut(m)
        mode, acc = AnyConst(2), AnyConst(signed(w["acc_bits"]))
        x, wt, b = AnyConst(signed(w["x_bits"])), AnyConst(signed(w["weight_bits"])), AnyConst(signed(w["bias_bits"]))
        m.d.comb += [dut.mode.eq(mode), dut.acc.eq(acc), dut.x.eq(x), dut.weight.eq(wt), dut.bias.eq(b)]
        W = w["acc_bits"] + w["x_bits"] + w["weight_bits"] + w["bias_bits"] + 2
        term = Signal(signed(W))
        with m.Switch(mode):
            with m.Case(AccumulateLane.SPIKE):
                m.d.comb += term.eq(1 * wt)         # w * x for the spike x = 1 (event driven)
            with m.Case(AccumulateLane.MUL):
                m.d.comb += term.eq(x * wt)
            with m.Case(AccumulateLane.BIAS):
                m.d.comb += term.eq(b)
        registered = w.get("registered", False)
        if registered:
            term_q = Signal.like(term)
            m.d.sync += term_q.eq(term)
            term = term_q
        exact = Signal(signed(W))
        m.d.comb += exact.eq(acc + term)
        lo, hi = _lim(w["acc_bits"])
        m.d.comb += [Assume(mode != 3), Assume((exact >= lo) & (exact <= hi))]
        if registered:
            started = Signal(init=0)
            m.d.sync += started.eq(1)
            m.d.comb += Assert(~started | (dut.acc_next == exact))
        else:
            m.d.comb += Assert(dut.acc_next == exact)
        return m


@pytest.mark.parametrize("widths", [
    dict(acc_bits=20, weight_bits=8, x_bits=8, bias_bits=12),
    dict(acc_bits=22, weight_bits=8, x_bits=23, bias_bits=18),
    dict(acc_bits=12, weight_bits=6, x_bits=16, bias_bits=14),   # x * w wider than the accumulator
    dict(acc_bits=22, weight_bits=8, x_bits=23, bias_bits=18, registered=True),  # the deep pipeline's
    dict(acc_bits=12, weight_bits=6, x_bits=16, bias_bits=14, registered=True),
])
def test_accumulate_lane_is_the_integer_accumulate(tmp_path, widths):
    prove(LaneHarness(**widths), tmp_path / "lane")


class DropsCarry(AccumulateLane):
    """A lane whose adder is one bit short of the declared accumulator (sign-extended back)."""

    def elaborate(self, platform):
        m = Module()
        short = Signal(signed(self.acc_bits - 1))
        m.d.comb += [short.eq(self.acc + self.addend()), self.acc_next.eq(short)]
        return m


class CutsTheProduct(AccumulateLane):
    """A lane whose product is cut one bit below the accumulator width."""

    def elaborate(self, platform):
        m = Module()
        prod = Signal(signed(self.acc_bits - 1))
        m.d.comb += prod.eq(self.x * self.weight)
        addend = Mux(self.mode == self.BIAS, self.bias, Mux(self.mode == self.MUL, prod, self.weight))
        m.d.comb += self.acc_next.eq(self.acc + addend)
        return m


class TreatsXAsASpike(AccumulateLane):
    """A lane that selects the weight for a multi-bit input too (as if it were a spike)."""

    def select(self, mode, product, weight, bias):
        return Mux(mode == self.BIAS, bias, weight)


class CutsTheRegisteredProduct(AccumulateLane):
    """A registered lane whose product register is one bit short of the accumulator."""

    def elaborate(self, platform):
        m = Module()
        prod = Signal(signed(self.acc_bits - 1))
        mode, w, b = Signal.like(self.mode), Signal.like(self.weight), Signal.like(self.bias)
        m.d.sync += [prod.eq(self.x * self.weight), mode.eq(self.mode), w.eq(self.weight), b.eq(self.bias)]
        m.d.comb += self.acc_next.eq(self.acc + self.select(mode, prod, w, b))
        return m


@pytest.mark.parametrize("mutant, registered", [(DropsCarry, False), (CutsTheProduct, False),
                                                (TreatsXAsASpike, False), (TreatsXAsASpike, True),
                                                (CutsTheRegisteredProduct, True)])
def test_formal_catches_a_wrong_lane(tmp_path, mutant, registered):
    with pytest.raises(AssertionError, match="formal proof failed"):
        prove(LaneHarness(mutant, acc_bits=16, weight_bits=6, x_bits=16, bias_bits=8, registered=registered),
              tmp_path / "bad")


# ---------------------------------------------------------------------------------------------
# the declared accumulator width never wraps (a whole accumulation)
# ---------------------------------------------------------------------------------------------

class AccumulateRun(Elaboratable):
    """A lane's whole accumulation, unrolled: ``terms`` ``(mode, weight or bias, x_lo, x_hi)`` added
    one after the other into an accumulator of ``acc_bits`` starting at 0, each by its own copy of
    the lane (what the CONV/HEAD engine does with one lane and an ACC word over successive
    cycles); each term's ``x`` is free in ``[x_lo, x_hi]``. In SPIKE mode ``x`` is a spike, 0 or 1,
    and as in the engine the lane's result is written back only for a spike (an event).
    ``Assert``: after every term the accumulator equals the exact sum. Any other order of the same
    terms has the same partial sums as this order with some inputs 0 (every range includes 0), so
    one order covers them all."""

    def __init__(self, terms, acc_bits: int, lane_cls=AccumulateLane):
        self.terms = terms
        self.acc_bits = acc_bits
        self.lane_cls = lane_cls

    def elaborate(self, platform):
        m = Module()
        terms = self.terms
        wb = signed_bits(min(t[1] for t in terms), max(t[1] for t in terms))
        xb = signed_bits(min(t[2] for t in terms), max(t[3] for t in terms))
        W = self.acc_bits + xb + wb + len(terms).bit_length() + 2
        acc = Signal(signed(self.acc_bits), name="acc0")
        exact = Signal(signed(W), name="exact0")
        m.d.comb += [acc.eq(0), exact.eq(0)]
        for i, (mode, wv, xlo, xhi) in enumerate(terms):
            lane = self.lane_cls(acc_bits=self.acc_bits, weight_bits=wb, x_bits=xb, bias_bits=wb)
            m.submodules[f"lane{i}"] = lane
            x = AnyConst(signed(xb))
            m.d.comb += Assume((x >= xlo) & (x <= xhi))
            m.d.comb += [lane.mode.eq(mode), lane.acc.eq(acc), lane.x.eq(x), lane.weight.eq(wv), lane.bias.eq(wv)]
            nacc = Signal(signed(self.acc_bits), name=f"acc{i + 1}")
            nexact = Signal(signed(W), name=f"exact{i + 1}")
            written = lane.acc_next if mode != AccumulateLane.SPIKE else Mux(x != 0, lane.acc_next, acc)
            m.d.comb += [nacc.eq(written), nexact.eq(exact + (wv if mode == AccumulateLane.BIAS else x * wv))]
            m.d.comb += Assert(nacc == nexact)
            acc, exact = nacc, nexact
        return m


def _small_ir():
    """A small integer IR (first conv on pixels, a spike conv, the head with two heads) and its
    range analysis; weights include the extremes."""
    from spikegate.quantize.graph import Graph, Op
    from spikegate.quantize.ranges import analyse

    rng = np.random.default_rng(5)

    def weights(shape):
        w = rng.integers(-127, 128, shape)
        return np.where(rng.random(shape) < 0.3, rng.choice([-127, 127], shape), w).astype(np.int64)

    def conv(name, x, cin, cout, in_kind):
        return Op(name, "conv", [x], (cout, 4, 4),
                  {"kernel": 3, "stride": 1, "padding": 1, "groups": 1, "in_kind": in_kind, "role": "lif"},
                  {"weight": weights((cout, cin, 3, 3)), "bias": rng.integers(-300, 300, cout),
                   "shift": np.zeros(cout, dtype=np.int64)})

    ops = [Op("input", "quant_input", [], (1, 4, 4), {"scale": 1.0, "bits": 8, "channels": 1, "size": 4}),
           conv("conv1", "input", 1, 3, "int"),
           Op("lif1", "lif", ["conv1"], (3, 4, 4), {}, {"threshold": np.array([50, 900, 3000])}),
           conv("conv2", "lif1", 3, 2, "spike"),
           Op("lif2", "lif", ["conv2"], (2, 4, 4), {}, {"threshold": np.array([100, 200])}),
           Op("sum", "spatial_sum", ["lif2"], (2,), {}),
           Op("lif3", "lif", ["sum"], (2,), {}, {"threshold": np.array([400, 900])}),
           Op("head", "head", ["lif3"], (3,), {"num_heads_out": 2},
              {"weight": weights((2, 3, 2)), "bias": rng.integers(-127, 128, (2, 3))})]
    g = Graph(ops, meta={"T": 2})
    return g, analyse(g, T=2)


def _conv_terms(g, res, name):
    """The terms of the output channel whose own bounds need the op's declared width."""
    from spikegate.quantize.ranges import _conv_bounds

    o = g.op(name)
    lo, hi = res[o.inputs[0]]["lo"], res[o.inputs[0]]["hi"]
    alo, ahi, _ = _conv_bounds(o, np.array(lo, dtype=object), np.array(hi, dtype=object))
    c = max(range(len(alo)), key=lambda i: signed_bits(alo[i], ahi[i]))
    assert signed_bits(alo[c], ahi[c]) == res[name]["widths"]["acc"]
    mode = AccumulateLane.SPIKE if o.attrs["in_kind"] == "spike" else AccumulateLane.MUL
    w = o.params["weight"][c]
    return [(mode, int(w[j, ky, kx]), int(lo[j]), int(hi[j]))
            for j in range(w.shape[0]) for ky in range(w.shape[1]) for kx in range(w.shape[2])]


def _head_terms(g, res, k):
    """Class ``k`` of the head as the engine runs it (heads merged): per step every channel's
    weight (spike selected), then the bias."""
    o = g.op("head")
    w, b = o.params["weight"].sum(axis=0), o.params["bias"].sum(axis=0)
    per_t = [(AccumulateLane.SPIKE, int(v), 0, 1) for v in w[k]] + [(AccumulateLane.BIAS, int(b[k]), 0, 0)]
    return per_t * res["head"]["T"]


@pytest.mark.parametrize("op", ["conv1", "conv2", "head"])
def test_declared_accumulator_width_never_wraps(tmp_path, op):
    g, res = _small_ir()
    width = res[op]["widths"]["acc"]
    if op == "head":
        for k in range(g.op("head").shape[0]):
            terms = _head_terms(g, res, k)
            prove(AccumulateRun(terms, width), tmp_path / f"run{k}")
        return
    terms = _conv_terms(g, res, op)
    prove(AccumulateRun(terms, width), tmp_path / "run")
    # one bit less and some input wraps it: the check has teeth, and the analysis' width is tight
    with pytest.raises(AssertionError, match="formal proof failed"):
        prove(AccumulateRun(terms, width - 1), tmp_path / "short")


# ---------------------------------------------------------------------------------------------
# saturation
# ---------------------------------------------------------------------------------------------

class SaturateHarness(_Harness):
    """Any ``in_bits`` value; the output is the value clamped to ``out_bits`` (stated with
    comparisons against the range's ends, not the hardware's test of the top bits)."""

    default_dut = Saturate

    def elaborate(self, platform):
        m = Module()
        dut, w = self._dut(m)
        x = AnyConst(signed(w["in_bits"]))
        m.d.comb += dut.x.eq(x)
        lo, hi = _lim(w["out_bits"])
        with m.If(x < lo):
            m.d.comb += Assert(dut.y == lo)
        with m.Elif(x > hi):
            m.d.comb += Assert(dut.y == hi)
        with m.Else():
            m.d.comb += Assert(dut.y == x)
        return m


@pytest.mark.parametrize("widths", [dict(in_bits=30, out_bits=22), dict(in_bits=9, out_bits=8),
                                    dict(in_bits=44, out_bits=24), dict(in_bits=16, out_bits=16)])
def test_saturate_is_a_clamp(tmp_path, widths):
    prove(SaturateHarness(**widths), tmp_path / "sat")


class _Wraps(Saturate):
    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(self.x[: self.out_bits].as_signed())
        return m


class _BoundOneLow(Saturate):
    def elaborate(self, platform):
        m = Module()
        hi = (1 << (self.out_bits - 1)) - 1
        m.d.comb += self.y.eq(Mux(self.x >= hi, hi - 1, Mux(self.x < -hi - 1, -hi - 1, self.x)))
        return m


class _TopBitMissed(Saturate):
    """Tests one bit too few above the sign bit: a value just past the range passes as fitting."""

    def elaborate(self, platform):
        m = Module()
        top = self.x[self.out_bits: -1]
        fits = (top == 0) | (top == (1 << len(top)) - 1)
        lo, hi = -(1 << (self.out_bits - 1)), (1 << (self.out_bits - 1)) - 1
        m.d.comb += self.y.eq(Mux(fits, self.x[: self.out_bits].as_signed(), Mux(self.x[-1], lo, hi)))
        return m


@pytest.mark.parametrize("mutant", [_Wraps, _BoundOneLow, _TopBitMissed])
def test_formal_catches_a_wrong_saturation(tmp_path, mutant):
    with pytest.raises(AssertionError, match="formal proof failed"):
        prove(SaturateHarness(mutant, in_bits=14, out_bits=9), tmp_path / "bad")


# ---------------------------------------------------------------------------------------------
# the shipped hardware: every datapath component instance of the accelerator, at its widths
# ---------------------------------------------------------------------------------------------

HARNESS = {LIFStep: LIFHarness, AlignBias: AlignHarness, AccumulateLane: LaneHarness, Saturate: SaturateHarness}


def datapath_instances(top) -> list:
    """Every LIFStep / AlignBias / AccumulateLane / Saturate in the elaborated design ``top``."""
    found = []

    def walk(frag):
        found.extend(o for o in (getattr(frag, "origins", None) or ()) if isinstance(o, tuple(HARNESS)))
        for sub, _, _ in frag.subfragments:
            walk(sub)

    walk(Fragment.get(top, None))
    return found


@functools.lru_cache(maxsize=None)
def _graph(name: str):
    if name == "fpga-tiny-random":
        from spikegate.rtl_tests.sfa_programs import model_program
        return model_program("fpga-tiny", lanes=1)[1]
    if name == "saturating-random":   # a random graph whose activations saturate (compiler/irgen.py)
        from spikegate.compiler.irgen import GenConfig, random_graph
        g, _ = random_graph(7, GenConfig(saturating=1.0))
        assert any(o.attrs.get("saturate") for o in g.ops)
        return g
    from spikegate.quantize.checkpoint import resolve_checkpoint
    from spikegate.quantize.pipeline import quantize_checkpoint
    path = resolve_checkpoint(name)
    if not os.path.exists(path):
        pytest.fail(f"embedded checkpoint {name!r} is missing: {path} (it ships in quantize/data/)")
    return quantize_checkpoint(name, calib="digits", evaluate=False)[0]


@pytest.mark.parametrize("model", ["default", "fpga-tiny-t2", "saturating-random",
                                   pytest.param("fpga-tiny-random", marks=pytest.mark.slow)])
def test_the_accelerators_datapath_is_proven(tmp_path, model):
    """The accelerator for ``model`` at the boards' lane counts (1, 4, 8): its LIF engine, CONV
    lanes and readout are the proven components, and every instance's widths are proven here."""
    from spikegate.compiler.build import lower_to_program
    from spikegate.hw.accelerator import Accelerator

    g = _graph(model)
    todo = {}
    for lanes in (1, 4, 8):
        prog = lower_to_program(g, lanes)
        acc = Accelerator(prog)
        found = datapath_instances(acc)
        kinds = [type(o) for o in found]
        assert kinds.count(LIFStep) == 1 and kinds.count(AlignBias) == 1 and kinds.count(AccumulateLane) == lanes
        cfg = acc.config
        # a saturating program clamps the CONV readout's and the SUM engine's results
        assert kinds.count(Saturate) == (2 if cfg.sat_bits else 0)
        for o in found:
            kw = dict(o.widths)
            if isinstance(o, AccumulateLane):   # and its pipelining (the deep pipeline's lanes)
                kw["registered"] = o.registered
            if isinstance(o, AlignBias):    # the SHIFT memory is read-only: only the table's shifts occur
                kw["shifts"] = (int(prog.shift.min()), int(prog.shift.max()))
            todo[(type(o).__name__, tuple(sorted(kw.items())))] = (HARNESS[type(o)], kw)
        assert next(o for o in found if isinstance(o, LIFStep)).widths == dict(
            x_bits=cfg.act_bits, state_bits=cfg.state_bits, membrane_bits=cfg.membrane_bits,
            threshold_bits=cfg.thresh_bits)
        assert next(o for o in found if isinstance(o, AccumulateLane)).widths == dict(
            acc_bits=cfg.acc_bits, weight_bits=cfg.weight_bits, x_bits=cfg.mul_x_bits, bias_bits=cfg.bias_bits)
    for i, key in enumerate(sorted(todo)):
        harness, kw = todo[key]
        prove(harness(**kw), tmp_path / f"{key[0]}{i}")
