"""The network's tail: spatial sum, classifier head accumulated over time steps, argmax.

``x = spatial_sum(stream)`` (``intops.spatial_sum``: sum over the ``N`` tokens of each channel,
``N`` times the float model's mean) -> LIF (a :class:`~spikegate.hw.lif_unit.LIFUnit` with
``size=1``) -> ``logits = sum over T and over heads of W s + b`` (``intops.head``) ->
``argmax`` (``intops.argmax``: the first maximum wins).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .accumulate import AccumulateEngine, output_layout
from .event_encoder import SpikeEventEncoder
from .params import bits_for, check_int, check_int_array, check_width

__all__ = ["SpatialSum", "HeadAccumulator", "Argmax"]


class SpatialSum(wiring.Component):
    """Sum over the ``tokens`` values of each channel (``intops.spatial_sum``).

    Parameters (keyword-only)
    -------------------------
    channels, tokens : int
        ``C`` and ``N = H*W``; values arrive in ``C, H, W`` order.
    in_bits, out_bits : int
        Signed widths of the values and of the sums (the IR's; ``in_bits + bits_for(tokens)``
        always suffices).

    Ports
    -----
    i : In(stream of signed(in_bits))
    o : Out(stream of {value: signed(out_bits), last})
        One sum per channel, ``last`` on channel ``C-1``.

    Timing: one value per cycle; a channel's sum leaves one cycle after its last value.
    """

    def __init__(self, *, channels: int, tokens: int, in_bits: int, out_bits: int):
        self._channels = check_int("channels", channels, minimum=1)
        self._tokens = check_int("tokens", tokens, minimum=1)
        self._in_bits = check_width("in_bits", in_bits, minimum=2)
        self._out_bits = check_width("out_bits", out_bits, minimum=2)
        super().__init__({
            "i": In(stream.Signature(signed(self._in_bits))),
            "o": Out(stream.Signature(output_layout(self._out_bits))),
        })

    channels = property(lambda self: self._channels)
    tokens = property(lambda self: self._tokens)
    in_bits = property(lambda self: self._in_bits)
    out_bits = property(lambda self: self._out_bits)

    def elaborate(self, platform):
        m = Module()
        acc = Signal(signed(self._out_bits))
        pos = Signal(range(max(2, self._tokens)))
        ch = Signal(range(max(2, self._channels)))
        o_valid = Signal()
        m.d.comb += [self.i.ready.eq(~o_valid | self.o.ready), self.o.valid.eq(o_valid)]
        with m.If(self.o.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            total = (acc + self.i.payload) if self._tokens > 1 else self.i.payload
            with m.If(pos == self._tokens - 1):
                m.d.sync += [pos.eq(0), acc.eq(0), o_valid.eq(1),
                             self.o.payload.value.eq(total),
                             self.o.payload.last.eq(ch == self._channels - 1)]
                with m.If(ch == self._channels - 1):
                    m.d.sync += ch.eq(0)
                with m.Else():
                    m.d.sync += ch.eq(ch + 1)
            with m.Else():
                m.d.sync += [pos.eq(pos + 1), acc.eq(total)]
        return m


class HeadAccumulator(wiring.Component):
    """Classifier logits summed over ``T`` time steps and the classifier heads (``intops.head``).

    The heads (``head`` and, with distillation, ``head_kd``) share their input, so their weights
    are added once at construction (``W = sum_h W_h``: exact, one more bit) and the biases enter
    once per sample as ``T * sum_h b_h``. The spikes go through a
    :class:`~spikegate.hw.event_encoder.SpikeEventEncoder` (rows of one bit) into an
    :class:`~spikegate.hw.accumulate.AccumulateEngine` configured as a linear layer
    (kernel 1 on a 1x1 map) with ``frames = T``.

    Parameters (keyword-only)
    -------------------------
    channels, classes, timesteps : int
        ``C`` (spikes per time step), ``K``, ``T``.
    weights : integer array ``[n_heads, K, C]``; biases : integer array ``[n_heads, K]``
    weight_bits : int
        Signed width of each head's weights (the stored sum has ``ceil(log2(n_heads))`` more).
    logit_bits : int
        Signed width of the accumulators and logits (the IR's).
    lanes : int
        Classes updated per cycle.

    Ports
    -----
    i : In(stream of unsigned(1))
        Spikes ``s[t, c]``: ``C`` per time step, ``T`` steps per sample.
    o : Out(stream of {value: signed(logit_bits), last})
        The ``K`` logits of the sample (the accelerator's logit stream layout).

    Timing: one cycle per silent channel, ``ceil(K / lanes)`` per spike (see the encoder and
    engine), then ``K`` cycles of readout.
    """

    def __init__(self, *, channels: int, classes: int, timesteps: int, weights, biases,
                 weight_bits: int, logit_bits: int, lanes: int = 1):
        self._channels = check_int("channels", channels, minimum=1)
        self._classes = check_int("classes", classes, minimum=1)
        self._timesteps = check_int("timesteps", timesteps, minimum=1)
        self._weight_bits = check_width("weight_bits", weight_bits, minimum=2)
        self._logit_bits = check_width("logit_bits", logit_bits, minimum=2)
        w = np.asarray(weights)
        if w.ndim != 3:
            raise ValueError(f"weights must have shape [n_heads, {self._classes}, "
                             f"{self._channels}], not {w.shape!r}")
        n_heads = w.shape[0]
        self._weights = check_int_array("weights", w, shape=(n_heads, self._classes,
                                                             self._channels),
                                        bits=self._weight_bits)
        self._biases = check_int_array("biases", biases, shape=(n_heads, self._classes))
        w_sum = self._weights.sum(axis=0)
        b_sum = self._timesteps * self._biases.sum(axis=0)
        self._engine = AccumulateEngine(
            cin=self._channels, cout=self._classes, height=1, width=1, kernel=1,
            weights=w_sum[:, :, None, None],
            weight_bits=self._weight_bits + (n_heads - 1).bit_length(),   # a sum of n_heads
            acc_bits=self._logit_bits, out_bits=self._logit_bits, bias=b_sum, lanes=lanes,
            frames=self._timesteps)
        self._encoder = SpikeEventEncoder(channels=self._channels, height=1, width=1)
        super().__init__({
            "i": In(stream.Signature(unsigned(1))),
            "o": Out(stream.Signature(output_layout(self._logit_bits))),
        })

    channels = property(lambda self: self._channels)
    classes = property(lambda self: self._classes)
    timesteps = property(lambda self: self._timesteps)
    logit_bits = property(lambda self: self._logit_bits)
    lanes = property(lambda self: self._engine.lanes)

    def elaborate(self, platform):
        m = Module()
        m.submodules.encoder = enc = self._encoder
        m.submodules.engine = eng = self._engine
        wiring.connect(m, wiring.flipped(self.i), enc.i)
        wiring.connect(m, enc.o, eng.events)
        wiring.connect(m, eng.o, wiring.flipped(self.o))
        return m


class Argmax(wiring.Component):
    """Index of the largest logit of each sample; the first maximum wins (``intops.argmax``).

    Parameters (keyword-only)
    -------------------------
    classes : int
        ``K`` (sizes the index).
    logit_bits : int
        Signed width of the logits.

    Ports
    -----
    i : In(stream of {value: signed(logit_bits), last})
        Logits in class order; ``last`` ends a sample.
    o : Out(stream of unsigned(bits_for(K - 1)))
        The class index, one cycle after the sample's last logit.
    """

    def __init__(self, *, classes: int, logit_bits: int):
        self._classes = check_int("classes", classes, minimum=1)
        self._logit_bits = check_width("logit_bits", logit_bits, minimum=2)
        super().__init__({
            "i": In(stream.Signature(output_layout(self._logit_bits))),
            "o": Out(stream.Signature(unsigned(bits_for(self._classes - 1)))),
        })

    classes = property(lambda self: self._classes)
    logit_bits = property(lambda self: self._logit_bits)

    def elaborate(self, platform):
        m = Module()
        idx = Signal(range(max(2, self._classes)))
        best = Signal(signed(self._logit_bits))
        best_idx = Signal.like(self.o.payload)
        first = Signal(init=1)
        o_valid = Signal()
        m.d.comb += [self.i.ready.eq(~o_valid | self.o.ready), self.o.valid.eq(o_valid)]
        with m.If(self.o.ready):
            m.d.sync += o_valid.eq(0)
        with m.If(self.i.valid & self.i.ready):
            value = self.i.payload.value
            better = first | (value > best)          # strict: an equal later logit loses
            new_idx = Signal.like(best_idx)
            m.d.comb += new_idx.eq(best_idx)
            with m.If(better):
                m.d.comb += new_idx.eq(idx)
                m.d.sync += [best.eq(value), best_idx.eq(idx)]
            with m.If(self.i.payload.last):
                m.d.sync += [o_valid.eq(1), self.o.payload.eq(new_idx), idx.eq(0), first.eq(1)]
            with m.Else():
                m.d.sync += [idx.eq(idx + 1), first.eq(0)]
        return m
