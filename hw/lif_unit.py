"""LIF neuron unit: ``intops.lif_step`` on a stream, membranes kept in block RAM across time steps.

Per element (one neuron of one time step)::

    h2     = v + x                      # doubled charged membrane
    spike  = h2 >= 2 * threshold[c]     # ties fire
    v_next = 0 if spike else h2 >> 1    # hard reset / arithmetic shift

``v`` is read from the membrane memory (address = neuron index) and ``v_next`` written back; at
the first time step of a sample ``v`` is taken as 0 (the state is reset between samples, so no
clearing pass is needed).
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .memories import MembraneMemory, WeightMemory
from .params import check_int, check_int_array, check_width

__all__ = ["LIFUnit", "lif_output_layout"]


def lif_output_layout(x_bits: int, v_bits: int) -> data.StructLayout:
    """LIF result: the spike, the new membrane, the input current it answered, ``last``."""
    return data.StructLayout({"spike": unsigned(1), "membrane": signed(v_bits),
                              "x": signed(x_bits), "last": unsigned(1)})


class LIFUnit(wiring.Component):
    """Integer LIF neurons (tau = 2) for ``channels * size`` neurons over ``timesteps`` steps.

    Parameters (keyword-only)
    -------------------------
    channels : int
        Channels C; neuron ``n`` belongs to channel ``n // size`` (elements arrive in C,H,W order).
    size : int
        Neurons per channel (H*W).
    timesteps : int
        T. After T time steps the membranes start again from 0 (next sample).
    x_bits : int
        Width of the signed input current ``x``.
    v_bits : int
        Width of the signed membrane (the IR's declared width; it must hold ``v_next``: with
        ``v_bits >= x_bits`` it always does, since ``v_next = floor((v + x) / 2)``).
    thresholds : integer array ``[channels]``, each >= 1
        Per-channel thresholds (in the units of ``x``; a spike fires when ``h2 >= 2*threshold``).
    threshold_bits : int
        Unsigned width of the threshold memory.

    Ports
    -----
    i : In(stream of signed(x_bits))
        One current per neuron, neurons in order 0..C*size-1, then the next time step.
    o : Out(stream of {spike, membrane: signed(v_bits), x: signed(x_bits), last})
        One result per input, same order; ``membrane`` is ``v_next`` (what the memory now holds),
        ``x`` the input current (for units that forward it, e.g. attention's ``Y8``), ``last``
        marks the last neuron of a time step. Unused fields cost nothing after synthesis.

    Timing: one element per cycle, latency 1 cycle (output register); with no stalls the last
    output of ``T`` steps is accepted ``T * channels * size`` cycles after the first input.
    """

    def __init__(self, *, channels: int, size: int, timesteps: int, x_bits: int, v_bits: int,
                 thresholds, threshold_bits: int):
        self._channels = check_int("channels", channels, minimum=1)
        self._size = check_int("size", size, minimum=1)
        self._timesteps = check_int("timesteps", timesteps, minimum=1)
        self._x_bits = check_width("x_bits", x_bits, minimum=2)
        self._v_bits = check_width("v_bits", v_bits, minimum=2)
        self._threshold_bits = check_width("threshold_bits", threshold_bits)
        self._thresholds = check_int_array("thresholds", thresholds, shape=(self._channels,),
                                           bits=self._threshold_bits, signed=False, minimum=1)
        super().__init__({
            "i": In(stream.Signature(signed(self._x_bits))),
            "o": Out(stream.Signature(lif_output_layout(self._x_bits, self._v_bits))),
        })

    channels = property(lambda self: self._channels)
    size = property(lambda self: self._size)
    timesteps = property(lambda self: self._timesteps)
    x_bits = property(lambda self: self._x_bits)
    v_bits = property(lambda self: self._v_bits)
    threshold_bits = property(lambda self: self._threshold_bits)

    @property
    def thresholds(self) -> np.ndarray:
        return self._thresholds.copy()

    @property
    def neurons(self) -> int:
        return self._channels * self._size

    def elaborate(self, platform):
        m = Module()
        n_total = self.neurons
        m.submodules.membranes = mem = MembraneMemory(neurons=n_total, width=self._v_bits)
        m.submodules.thresholds = thr = WeightMemory(values=self._thresholds,
                                                     width=self._threshold_bits, signed=False)
        wr = mem.write_port()
        rd = mem.read_port(transparent_for=(wr,))   # a single neuron reads what it just wrote
        th = thr.read_port()

        # Stage 0 counters: neuron index, its channel, position within the channel, time step.
        n = Signal(range(max(2, n_total)))          # (never zero bits wide: see memories.py)
        c = Signal(range(max(2, self._channels)))
        pos = Signal(range(max(2, self._size)))
        t = Signal(range(max(2, self._timesteps)))

        # Stage 1 registers.
        s1_valid = Signal()
        s1_x = Signal(signed(self._x_bits))
        s1_n = Signal.like(n)
        s1_first = Signal()
        s1_last = Signal()

        advance = Signal()
        m.d.comb += [
            advance.eq(~s1_valid | self.o.ready),
            self.i.ready.eq(advance),
            rd.addr.eq(n), rd.en.eq(advance),
            th.addr.eq(c), th.en.eq(advance),
        ]
        with m.If(advance):
            m.d.sync += s1_valid.eq(self.i.valid)
        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [s1_x.eq(self.i.payload), s1_n.eq(n), s1_first.eq(t == 0),
                         s1_last.eq(n == n_total - 1)]
            with m.If(n == n_total - 1):
                m.d.sync += [n.eq(0), c.eq(0), pos.eq(0)]
                m.d.sync += t.eq(Mux(t == self._timesteps - 1, 0, t + 1))
            with m.Else():
                m.d.sync += n.eq(n + 1)
                with m.If(pos == self._size - 1):
                    m.d.sync += [pos.eq(0), c.eq(c + 1)]
                with m.Else():
                    m.d.sync += pos.eq(pos + 1)

        # Stage 1: the neuron update, straight from the memory read data.
        v = Signal(signed(self._v_bits))
        h2 = Signal(signed(max(self._x_bits, self._v_bits) + 1))
        spike = Signal()
        v_next = Signal(signed(self._v_bits))
        m.d.comb += [
            v.eq(Mux(s1_first, 0, rd.data)),
            h2.eq(v + s1_x),
            spike.eq(h2 >= (th.data << 1)),
            v_next.eq(Mux(spike, 0, h2 >> 1)),
            self.o.valid.eq(s1_valid),
            self.o.payload.spike.eq(spike),
            self.o.payload.membrane.eq(v_next),
            self.o.payload.x.eq(s1_x),
            self.o.payload.last.eq(s1_last),
            wr.addr.eq(s1_n), wr.data.eq(v_next), wr.en.eq(s1_valid & self.o.ready),
        ]
        return m
