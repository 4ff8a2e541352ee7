"""cocotb tests of :class:`spikegate.hw.residual.ResidualAdder` against ``intops.add``.

The two operand streams are driven independently (their own idle cycles); the reference pairs the
i-th accepted ``a`` with the i-th accepted ``b`` (input monitors) and computes
``intops.add(a, b << shift)``.
"""

from __future__ import annotations

import cocotb
import numpy as np

from spikegate.hw.residual import ResidualAdder
from spikegate.quantize import intops
from spikegate.rtl_tests.tb_streams import TB, StreamDriver, StreamMonitor, StreamSink


class ResidualTB(TB):
    def __init__(self, dut, name, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, name=name)
        self.design = d = ResidualAdder(**self.config)
        self.a_drv = StreamDriver(self, "a", d.a.payload.shape(), idle=idle)
        self.b_drv = StreamDriver(self, "b", d.b.payload.shape(), idle=idle / 2)
        self.a_mon = StreamMonitor(self, "a", d.a.payload.shape())
        self.b_mon = StreamMonitor(self, "b", d.b.payload.shape())
        self.outputs = StreamMonitor(self, "o", d.o.payload.shape())
        self.sink = StreamSink(self, "o", backpressure=backpressure)

    def values(self, bits, n, mode):
        lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        if mode == "lo":
            return [lo] * n
        if mode == "hi":
            return [hi] * n
        return [self.rng.choice([lo, hi, 0, -1]) if self.rng.random() < 0.2 else
                self.rng.randint(lo, hi) for _ in range(n)]

    async def run(self, pairs, *, check_cycles=False):
        d = self.design
        for mon in (self.a_mon, self.b_mon, self.outputs):
            mon.items.clear()
            mon.cycles.clear()
        a, b = zip(*pairs)
        self.a_drv.send(a)
        self.b_drv.send(b)
        await self.outputs.wait_count(len(pairs), timeout_cycles=20 * len(pairs) + 50)
        await self.cycles(3)
        assert len(self.outputs.items) == len(pairs)
        ref = intops.add(np.array(self.a_mon.items), np.array(self.b_mon.items) << d.shift)
        got = np.array(self.outputs.items)
        bad = np.flatnonzero(got != ref)
        assert bad.size == 0, (f"{bad.size} sums differ, first #{bad[0]}: a={self.a_mon.items[bad[0]]} "
                               f"b={self.b_mon.items[bad[0]]}: DUT {got[bad[0]]}, ref {ref[bad[0]]}")
        if check_cycles:
            cycles = self.outputs.cycles[-1] - self.a_mon.cycles[0]
            assert cycles == len(pairs), f"{cycles} cycles for {len(pairs)} sums"


@cocotb.test()
async def residual_random_stalls(dut):
    tb = ResidualTB(dut, "random", idle=0.3, backpressure=0.3)
    await tb.start()
    d, n = tb.design, 300
    await tb.run(list(zip(tb.values(d.a_bits, n, "rand"), tb.values(d.b_bits, n, "rand"))))


@cocotb.test()
async def residual_extremes_and_rate(dut):
    tb = ResidualTB(dut, "extremes")
    await tb.start()
    d = tb.design
    for ma, mb in (("lo", "lo"), ("hi", "hi"), ("lo", "hi"), ("hi", "lo")):
        await tb.run(list(zip(tb.values(d.a_bits, 8, ma), tb.values(d.b_bits, 8, mb))),
                     check_cycles=True)
