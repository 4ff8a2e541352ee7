"""cocotb building blocks shared by the datapath testbenches (``tb_*.py``).

* :class:`Codec` packs/unpacks a stream payload with the design's own Amaranth shape or layout
  (widths are read from the design, never written down in a testbench).
* :class:`TB` owns the clock, the reset, the seeded random generator and the cycle clock.
* :class:`StreamDriver` drives ``valid``/``payload`` of a DUT input stream, with random idle cycles.
* :class:`StreamMonitor` passively records every handshake of a stream (input or output) with the
  cycle it happened on; reference models are fed from the monitor of an *input*, i.e. from what
  the DUT actually accepted.
* :class:`StreamSink` drives ``ready`` of a DUT output stream with random back-pressure.

Handshake convention: a transfer happens on a rising edge where ``valid`` and ``ready`` were both
high (values sampled at the edge are the ones from before it).
"""

from __future__ import annotations

import random
from collections import deque

import cocotb
from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, Event, RisingEdge, with_timeout

from spikegate.rtl_tests.cocotb_util import tb_config, tb_seed

PERIOD_NS = 10


class Codec:
    """Pack/unpack a payload of an Amaranth shape: a plain ``Shape`` (ints) or a ``StructLayout``
    (dicts of ints; signed fields are sign-extended)."""

    def __init__(self, shape):
        if isinstance(shape, data.Layout):
            self.layout, self.shape = shape, None
            self.width = shape.size
        else:
            self.layout, self.shape = None, Shape.cast(shape)
            self.width = self.shape.width
        self._mask = (1 << self.width) - 1

    def pack(self, value) -> int:
        if self.layout is not None:
            return self.layout.const(value).as_bits()
        value = int(value)
        lo = -(1 << (self.width - 1)) if self.shape.signed else 0
        hi = (1 << (self.width - (1 if self.shape.signed else 0))) - 1
        if not lo <= value <= hi:
            raise ValueError(f"{value} does not fit {self.shape!r}")
        return value & self._mask

    def unpack(self, raw: int):
        raw = int(raw) & self._mask
        if self.layout is not None:
            view = self.layout.from_bits(raw)
            return {name: int(view[name]) for name, _ in self.layout}
        if self.shape.signed and raw >> (self.width - 1):
            return raw - (1 << self.width)
        return raw


class TB:
    """Clock, reset, seed and cycle clock of one test."""

    def __init__(self, dut, *, name: str = ""):
        self.dut = dut
        self.clk = dut.clk
        self.config = tb_config()
        self.seed = tb_seed()
        self.rng = random.Random(f"{self.seed}/{name}")
        dut._log.info("seed %d (rerun with SPIKEGATE_TB_SEED=%d) %s", self.seed, self.seed, name)

    async def start(self, reset_cycles: int = 2):
        Clock(self.clk, PERIOD_NS, unit="ns").start()
        self.dut.rst.value = 1
        await ClockCycles(self.clk, reset_cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.clk)

    @staticmethod
    def cycle() -> int:
        """The index of the current clock cycle (rising edges since time 0)."""
        return int(get_sim_time("ns")) // PERIOD_NS

    async def cycles(self, n: int):
        await ClockCycles(self.clk, n)


def _port(dut, prefix, name):
    return getattr(dut, f"{prefix}__{name}")


class StreamDriver:
    """Drives a DUT input stream from a queue; ``idle`` is the probability of an idle cycle."""

    def __init__(self, tb: TB, prefix: str, shape, *, idle: float = 0.0):
        self.tb, self.codec, self.idle = tb, Codec(shape), idle
        self.valid = _port(tb.dut, prefix, "valid")
        self.ready = _port(tb.dut, prefix, "ready")
        self.payload = _port(tb.dut, prefix, "payload")
        self.queue: deque = deque()
        self._empty = Event()
        self.valid.value = 0
        self.payload.value = 0
        cocotb.start_soon(self._run())

    def send(self, items):
        self.queue.extend(items)
        self._empty.clear()

    async def wait_empty(self, timeout_cycles: int):
        if self.queue or not self._empty.is_set():
            await with_timeout(self._empty.wait(), timeout_cycles * PERIOD_NS, "ns")

    async def _run(self):
        busy = False
        rng = self.tb.rng
        while True:
            await RisingEdge(self.tb.clk)
            if busy and int(self.ready.value):
                busy = False
            if not busy:
                if self.queue and not (self.idle and rng.random() < self.idle):
                    self.payload.value = self.codec.pack(self.queue.popleft())
                    self.valid.value = 1
                    busy = True
                else:
                    self.valid.value = 0
                    if not self.queue:
                        self._empty.set()


class StreamMonitor:
    """Records ``(cycle, payload)`` of every transfer of a stream; calls ``callback(payload)``."""

    def __init__(self, tb: TB, prefix: str, shape, *, callback=None):
        self.tb, self.codec, self.callback = tb, Codec(shape), callback
        self.valid = _port(tb.dut, prefix, "valid")
        self.ready = _port(tb.dut, prefix, "ready")
        self.payload = _port(tb.dut, prefix, "payload")
        self.items: list = []
        self.cycles: list[int] = []
        self._want: int | None = None
        self._enough = Event()
        cocotb.start_soon(self._run())

    async def wait_count(self, count: int, timeout_cycles: int):
        """Wait until ``count`` transfers in total have been seen (fails after the timeout)."""
        if len(self.items) >= count:
            return
        self._want = count
        self._enough.clear()
        await with_timeout(self._enough.wait(), timeout_cycles * PERIOD_NS, "ns")

    async def _run(self):
        while True:
            await RisingEdge(self.tb.clk)
            if int(self.valid.value) and int(self.ready.value):
                item = self.codec.unpack(int(self.payload.value))
                self.items.append(item)
                self.cycles.append(self.tb.cycle())
                if self.callback is not None:
                    self.callback(item)
                if self._want is not None and len(self.items) >= self._want:
                    self._want = None
                    self._enough.set()


class StreamSink:
    """Drives ``ready`` of a DUT output stream; ``backpressure`` = probability of ready low."""

    def __init__(self, tb: TB, prefix: str, *, backpressure: float = 0.0):
        self.tb, self.backpressure = tb, backpressure
        self.ready = _port(tb.dut, prefix, "ready")
        self.ready.value = 0 if backpressure >= 1 else 1
        cocotb.start_soon(self._run())

    async def _run(self):
        rng = self.tb.rng
        while True:
            await RisingEdge(self.tb.clk)
            if self.backpressure:
                self.ready.value = 0 if rng.random() < self.backpressure else 1
