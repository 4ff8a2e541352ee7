"""Bad parameters of the datapath components fail at construction, with the wording pinned.

(``TypeError``: wrong kind of value; ``ValueError``: right kind, wrong value; always
"NAME must be ..., not VALUE!r".) Also the memories' sizing and the shift-add constant product.
"""

from __future__ import annotations

import gc
import re

import numpy as np
import pytest
from amaranth.hdl import Const, Elaboratable, Signal, unsigned
from amaranth.sim import Simulator

from spikegate.hw.accumulate import AccumulateEngine, ConvGeometry
from spikegate.hw.attention import AttentionUnit
from spikegate.hw.event_encoder import SpikeEventEncoder, encoder_cycles
from spikegate.hw.head import Argmax, HeadAccumulator, SpatialSum
from spikegate.hw.lif_unit import LIFUnit
from spikegate.hw.memories import MembraneMemory, SpikeBuffer, WeightMemory
from spikegate.hw.multibit import MultibitLinearUnit
from spikegate.hw.params import mul_const
from spikegate.hw.residual import ResidualAdder


# Components built only to inspect their parameters are never elaborated: that is the point.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.fixture(autouse=True)
def _collect_components():
    yield
    gc.collect()        # collect them here, under the filter above, not at interpreter exit


def conv_kwargs(**over):
    kw = dict(cin=3, cout=4, height=5, width=5, kernel=3, stride=1, padding=1,
              weights=np.zeros((4, 3, 3, 3), int), weight_bits=4, acc_bits=10, out_bits=12)
    kw.update(over)
    return kw


def lif_kwargs(**over):
    kw = dict(channels=2, size=3, timesteps=4, x_bits=8, v_bits=8, thresholds=[1, 2],
              threshold_bits=4)
    kw.update(over)
    return kw


def raises(exc, message):
    return pytest.raises(exc, match="^" + re.escape(message) + "$")


# ----------------------------------------------------------------------------------- widths

@pytest.mark.parametrize("make,message", [
    (lambda: LIFUnit(**lif_kwargs(x_bits=0)), "x_bits must be a bit width >= 2, not 0"),
    (lambda: LIFUnit(**lif_kwargs(threshold_bits=0)), "threshold_bits must be a bit width >= 1, not 0"),
    (lambda: AccumulateEngine(**conv_kwargs(weight_bits=0)), "weight_bits must be a bit width >= 2, not 0"),
    (lambda: AccumulateEngine(**conv_kwargs(acc_bits=3)), "acc_bits must be at least weight_bits (4), not 3"),
    (lambda: ResidualAdder(a_bits=8, b_bits=8, out_bits=1), "out_bits must be a bit width >= 2, not 1"),
    (lambda: WeightMemory(values=[1], width=0), "width must be a bit width >= 2, not 0"),
    (lambda: SpatialSum(channels=2, tokens=3, in_bits=8, out_bits=0), "out_bits must be a bit width >= 2, not 0"),
])
def test_width_of_zero_or_too_small(make, message):
    with raises(ValueError, message):
        make()


@pytest.mark.parametrize("make,message", [
    (lambda: LIFUnit(**lif_kwargs(x_bits=8.0)), "x_bits must be a positive integer bit width, not 8.0"),
    (lambda: LIFUnit(**lif_kwargs(channels=2.5)), "channels must be an integer, not 2.5"),
    (lambda: LIFUnit(**lif_kwargs(timesteps=True)), "timesteps must be an integer, not True"),
    (lambda: AccumulateEngine(**conv_kwargs(depthwise=1)), "depthwise must be a bool, not 1"),
    (lambda: AccumulateEngine(**conv_kwargs(weights=np.zeros((4, 3, 3, 3)))),
     "weights must be an integer array, not an array of float64"),
    (lambda: LIFUnit(**lif_kwargs(thresholds=["1", "2"])),
     "thresholds must be an integer array, not ['1', '2']"),
])
def test_wrong_type(make, message):
    with raises(TypeError, message):
        make()


# ----------------------------------------------------------------------------------- lanes

@pytest.mark.parametrize("lanes,message", [
    (0, "lanes must be an integer >= 1, not 0"),
    (5, "lanes must be at most cout (4), not 5"),
])
def test_bad_lanes(lanes, message):
    with raises(ValueError, message):
        AccumulateEngine(**conv_kwargs(lanes=lanes))


def test_lanes_need_not_divide_cout():
    """A partial last chunk is handled (zero weights in the unused lanes), not refused."""
    eng = AccumulateEngine(**conv_kwargs(lanes=3))
    assert eng.chunks == 2
    assert eng.lane_weights().shape == (3, 2 * 3 * 9)
    assert not eng.lane_weights()[1:, 27:].any()      # lanes 1, 2 of chunk 1: channels 4, 5


def test_depthwise_lanes_and_channels():
    dw = dict(depthwise=True, cout=3, weights=np.zeros((3, 1, 3, 3), int))
    with raises(ValueError, "lanes must be 1 for a depthwise conv (one output channel per input "
                            "event), not 2"):
        AccumulateEngine(**conv_kwargs(lanes=2, **dw))
    with raises(ValueError, "cout must equal cin (3) for a depthwise conv, not 4"):
        AccumulateEngine(**conv_kwargs(depthwise=True))


def test_heads_must_divide_channels():
    with raises(ValueError, "heads must divide channels (10), not 3"):
        AttentionUnit.for_block(channels=10, heads=3, tokens=4, timesteps=1)
    unit = AttentionUnit.for_block(channels=16, heads=8, tokens=49, timesteps=4)
    assert (unit.head_dim, unit.count_bits, unit.y_bits) == (2, 6, 7)


# ----------------------------------------------------------------------------------- geometry

@pytest.mark.parametrize("over,message", [
    (dict(kernel=5), "kernel must be one of 1, 3, 7, not 5"),
    (dict(kernel=2), "kernel must be one of 1, 3, 7, not 2"),
    (dict(stride=3), "stride must be one of 1, 2, not 3"),
    (dict(padding=3), "padding must be an integer between 0 and 2, not 3"),
    (dict(padding=-1), "padding must be an integer between 0 and 2, not -1"),
    (dict(kernel=7, padding=0), "height + 2*padding must be at least the kernel (7), not 5"),
    (dict(cin=0), "cin must be an integer >= 1, not 0"),
])
def test_unsupported_geometry(over, message):
    with raises(ValueError, message):
        AccumulateEngine(**conv_kwargs(**over))


def test_geometry_of_the_network():
    first = ConvGeometry(cin=3, cout=16, height=32, width=32, kernel=7, stride=2, padding=3)
    assert (first.out_height, first.out_width) == (16, 16)
    down = ConvGeometry(cin=16, cout=32, height=16, width=16, kernel=3, stride=2, padding=1)
    assert (down.out_height, down.out_width) == (8, 8)
    assert down.taps(0, 0) == 1 and down.taps(1, 1) == 4 and down.taps(15, 15) == 1
    dw = ConvGeometry(cin=8, cout=8, height=4, width=4, kernel=7, padding=3, depthwise=True)
    assert dw.weight_shape == (8, 1, 7, 7) and dw.taps(0, 0) == 16


# ----------------------------------------------------------------------------------- values

@pytest.mark.parametrize("make,message", [
    (lambda: AccumulateEngine(**conv_kwargs(weights=np.full((4, 3, 3, 3), 8))),
     "weights must fit 4-bit signed integers [-8, 7], not 8"),
    (lambda: AccumulateEngine(**conv_kwargs(weights=np.zeros((4, 3, 1, 1), int))),
     "weights must have shape (4, 3, 3, 3), not (4, 3, 1, 1)"),
    (lambda: AccumulateEngine(**conv_kwargs(shift=[0, 1, -1, 0])), "shift must hold integers >= 0, not -1"),
    (lambda: AccumulateEngine(**conv_kwargs(bias=[1, 2, 3])), "bias must have shape (4,), not (3,)"),
    (lambda: LIFUnit(**lif_kwargs(thresholds=[0, 2])), "thresholds must hold integers >= 1, not 0"),
    (lambda: LIFUnit(**lif_kwargs(thresholds=[16, 2])),
     "thresholds must fit 4-bit unsigned integers [0, 15], not 16"),
    (lambda: ResidualAdder(a_bits=8, b_bits=8, out_bits=9, shift=33),
     "shift must be an integer between 0 and 32, not 33"),
    (lambda: MultibitLinearUnit(**conv_kwargs(in_bits=1)), "in_bits must be a bit width >= 2, not 1"),
    (lambda: HeadAccumulator(channels=4, classes=3, timesteps=2, weights=np.zeros((3, 4), int),
                             biases=np.zeros((1, 3), int), weight_bits=4, logit_bits=8),
     "weights must have shape [n_heads, 3, 4], not (3, 4)"),
    (lambda: Argmax(classes=0, logit_bits=8), "classes must be an integer >= 1, not 0"),
    (lambda: SpikeEventEncoder(channels=1, height=0, width=4), "height must be an integer >= 1, not 0"),
    (lambda: WeightMemory(values=np.array([], dtype=int), width=4), "values must not be empty, not an array of shape (0,)"),
])
def test_bad_values(make, message):
    with raises(ValueError, message):
        make()


# ----------------------------------------------------------------------------------- memories

def test_memories_are_sized_from_parameters():
    w = WeightMemory(values=np.array([[1, -2], [3, -4]]), width=4)
    assert (w.depth, w.shape.width, w.shape.signed) == (4, 4, True)
    assert list(w.init) == [1, -2, 3, -4]
    assert WeightMemory(values=[5], width=3, signed=False, depth=6).depth == 6
    assert WeightMemory(values=[1], width=2).depth == 2          # never a 0-bit address
    m = MembraneMemory(neurons=100, width=9)
    assert (m.depth, m.shape.width, m.shape.signed, list(m.init)) == (100, 9, True, [0] * 100)
    b = SpikeBuffer(depth=24, width=56)
    assert (b.depth, b.shape.width, b.shape.signed) == (24, 56, False)


def test_encoder_cycle_model():
    assert encoder_cycles([0, 0, 0]) == 3
    assert encoder_cycles([2, 0, 3]) == 2 + 1 + 3 + 1
    assert encoder_cycles([5, 0]) == 6


# ----------------------------------------------------------------------------------- mul_const

@pytest.mark.parametrize("constant", [0, 1, 7, 12, 49, 56 * 56])
def test_mul_const_is_a_product(constant):
    a = Signal(unsigned(7))
    out = Signal(unsigned(7 + max(1, constant.bit_length())))
    sim = Simulator(_Comb(out, mul_const(a, constant)))

    async def bench(ctx):
        for v in (0, 1, 5, 127):
            ctx.set(a, v)
            assert ctx.get(out) == v * constant

    sim.add_testbench(bench)
    sim.run()


class _Comb(Elaboratable):
    def __init__(self, out, expr):
        self.out, self.expr = out, expr

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        m.d.comb += self.out.eq(self.expr)
        return m


def test_mul_const_refuses_negative():
    with raises(ValueError, "constant must be a non-negative integer, not -3"):
        mul_const(Const(1, 2), -3)
