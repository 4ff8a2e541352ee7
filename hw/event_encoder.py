"""Spike-map rows in, address events out: the front end of every spike-driven layer.

A spike map ``[C, H, W]`` arrives as ``C*H`` rows of ``W`` bits (bit ``x`` of a row is column
``x``), rows in ``(c, y)`` order. The encoder emits one address event ``(c, y, x)`` per spike,
lowest column first, skipping zeros, and after the last row of a map one ``end`` event (its
``c``/``y``/``x`` are 0). Downstream engines do work only for events: that is where a spiking
network saves its multiply-accumulates.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .params import bits_for, check_int

__all__ = ["event_layout", "SpikeEventEncoder", "encoder_cycles"]


def event_layout(channels: int, height: int, width: int) -> data.StructLayout:
    """Address event of a ``[channels, height, width]`` map: ``c``, ``y``, ``x``, ``end``.

    Every field is at least 1 bit wide (a 1x1 map has ``y = x = 0`` in 1-bit fields).
    """
    return data.StructLayout({
        "c": unsigned(bits_for(channels - 1)),
        "y": unsigned(bits_for(height - 1)),
        "x": unsigned(bits_for(width - 1)),
        "end": unsigned(1),
    })


def encoder_cycles(row_spike_counts) -> int:
    """Cycle model: cycles from the first row accepted to the ``end`` event accepted, with no
    stalls. Each row costs ``max(spikes, 1)`` cycles (the next row is taken in the cycle the
    previous row's last event leaves); the ``end`` event costs one more cycle unless the last
    row was empty (then it leaves in that row's slot)."""
    counts = [int(k) for k in row_spike_counts]
    return sum(max(k, 1) for k in counts) + (1 if counts and counts[-1] > 0 else 0)


class SpikeEventEncoder(wiring.Component):
    """Zero-skipping row-to-event encoder.

    Parameters (keyword-only)
    -------------------------
    channels, height, width : int
        The spike map's shape ``[C, H, W]``.

    Ports
    -----
    i : In(stream of unsigned(width))
        Spike rows, ``C*H`` per map, in ``(c, y)`` order.
    o : Out(stream of :func:`event_layout`)
        One event per spike, then one ``end`` event per map.

    Timing: one event per cycle; a row without spikes costs one cycle. See :func:`encoder_cycles`:
    ``sum_rows max(spikes, 1) + 1`` cycles per map without stalls.
    """

    def __init__(self, *, channels: int, height: int, width: int):
        self._channels = check_int("channels", channels, minimum=1)
        self._height = check_int("height", height, minimum=1)
        self._width = check_int("width", width, minimum=1)
        super().__init__({
            "i": In(stream.Signature(unsigned(self._width))),
            "o": Out(stream.Signature(event_layout(self._channels, self._height, self._width))),
        })

    channels = property(lambda self: self._channels)
    height = property(lambda self: self._height)
    width = property(lambda self: self._width)

    def elaborate(self, platform):
        m = Module()
        W = self._width
        layout = self.o.payload.shape()

        # Position of the next row to accept.
        in_c = Signal.like(self.o.payload.c)
        in_y = Signal.like(self.o.payload.y)
        # The row being emitted: the spikes not yet sent, and its coordinates.
        pending = Signal(W)
        row_c = Signal.like(in_c)
        row_y = Signal.like(in_y)
        end_pending = Signal()

        # Lowest set bit of `pending` (priority encoder) and `pending` without it.
        lowest = Signal(layout["x"].shape)
        pick = Const(0, lowest.shape())
        for i in reversed(range(W)):
            pick = Mux(pending[i], i, pick)
        rest = Signal(W)
        m.d.comb += [lowest.eq(pick), rest.eq(pending & (pending - 1))]

        row_done = Signal()    # no spike left in `pending` after this cycle
        out_fire = Signal()
        m.d.comb += [
            self.o.valid.eq((pending != 0) | end_pending),
            self.o.payload.c.eq(Mux(pending != 0, row_c, 0)),
            self.o.payload.y.eq(Mux(pending != 0, row_y, 0)),
            self.o.payload.x.eq(Mux(pending != 0, lowest, 0)),
            self.o.payload.end.eq((pending == 0) & end_pending),
            out_fire.eq(self.o.valid & self.o.ready),
            row_done.eq((pending == 0) | (out_fire & (rest == 0))),
            self.i.ready.eq(row_done & ~end_pending),
        ]

        with m.If(out_fire):
            with m.If(pending != 0):
                m.d.sync += pending.eq(rest)
            with m.Else():
                m.d.sync += end_pending.eq(0)

        with m.If(self.i.valid & self.i.ready):
            m.d.sync += [pending.eq(self.i.payload), row_c.eq(in_c), row_y.eq(in_y)]
            with m.If(in_y == self._height - 1):
                m.d.sync += in_y.eq(0)
                with m.If(in_c == self._channels - 1):
                    m.d.sync += [in_c.eq(0), end_pending.eq(1)]
                with m.Else():
                    m.d.sync += in_c.eq(in_c + 1)
            with m.Else():
                m.d.sync += in_y.eq(in_y + 1)
        return m
