"""cocotb building blocks of the accelerator's testbench (``tb_accelerator.py``).

* :class:`Codec` packs/unpacks a stream payload with the design's own Amaranth shape or layout
  (widths are read from the design, never written down in a testbench).
* :class:`TB` owns the clock, the reset, the seeded random generator and the cycle clock.
* :func:`within` and :meth:`TB.until` bound every wait on the DUT by a cycle budget, so a hung
  design fails fast with one line naming what it was waiting for (never a CI job that hangs).
"""

from __future__ import annotations

import random

from amaranth.hdl import Shape
from amaranth.lib import data
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout

from spikegate.rtl_tests.cocotb_util import tb_config, tb_seed

PERIOD_NS = 10
TIMEOUT_PREFIX = "TIMEOUT:"     # every budget failure starts with it (tests match on it)


def timeout_message(what: str, budget: int, why: str = "") -> str:
    return f"{TIMEOUT_PREFIX} {what} not within {budget} cycles" + (f" ({why})" if why else "")


async def within(awaitable, budget: int, what: str, why: str = ""):
    """Await a trigger or coroutine for at most ``budget`` clock cycles; past that, fail with an
    ``AssertionError`` saying what was awaited, the budget and where the budget came from."""
    try:
        return await with_timeout(awaitable, budget * PERIOD_NS, "ns")
    except SimTimeoutError:
        raise AssertionError(timeout_message(what, budget, why)) from None


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

    async def until(self, cond, budget: int, what: str, why: str = "") -> int:
        """Step clock by clock until ``cond()`` holds (checked after each rising edge), at most
        ``budget`` cycles; returns the cycles waited. Past the budget: ``AssertionError``."""
        for n in range(budget + 1):
            if cond():
                return n
            await RisingEdge(self.clk)
        raise AssertionError(timeout_message(what, budget, why))
