"""cocotb tests of :class:`spikegate.hw.head.SpatialSum` against ``intops.spatial_sum``."""

from __future__ import annotations

import cocotb
import numpy as np

from spikegate.hw.head import SpatialSum
from spikegate.quantize import intops
from spikegate.rtl_tests.tb_streams import TB, StreamDriver, StreamMonitor, StreamSink


class SpatialSumTB(TB):
    def __init__(self, dut, name, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, name=name)
        cfg = dict(self.config)
        self.hw = tuple(cfg.pop("map_hw"))
        self.design = d = SpatialSum(**cfg)
        self.driver = StreamDriver(self, "i", d.i.payload.shape(), idle=idle)
        self.inputs = StreamMonitor(self, "i", d.i.payload.shape())
        self.outputs = StreamMonitor(self, "o", d.o.payload.shape())
        self.sink = StreamSink(self, "o", backpressure=backpressure)
        b = d.in_bits
        self.lo, self.hi = -(1 << (b - 1)), (1 << (b - 1)) - 1

    def tensor(self, steps, mode):
        d = self.design
        n = steps * d.channels * d.tokens
        vals = {"lo": [self.lo] * n, "hi": [self.hi] * n}.get(mode) or \
            [self.rng.randint(self.lo, self.hi) for _ in range(n)]
        return np.array(vals, np.int64).reshape((steps, 1, d.channels) + self.hw)

    async def run(self, x, *, check_cycles=False):
        d = self.design
        self.driver.send(int(v) for v in x.reshape(-1))
        n_out = x.shape[0] * d.channels
        await self.outputs.wait_count(n_out, timeout_cycles=20 * x.size + 50)
        await self.cycles(3)
        assert len(self.outputs.items) == n_out
        acc = np.array(self.inputs.items).reshape(x.shape)
        ref = intops.spatial_sum(acc).reshape(-1)
        got = np.array([o["value"] for o in self.outputs.items])
        bad = np.flatnonzero(got != ref)
        assert bad.size == 0, f"{bad.size} sums differ, first #{bad[0]}: DUT {got[bad[0]]}, ref {ref[bad[0]]}"
        assert [o["last"] for o in self.outputs.items] == ([0] * (d.channels - 1) + [1]) * x.shape[0]
        if check_cycles:
            cycles = self.outputs.cycles[-1] - self.inputs.cycles[0]
            assert cycles == x.size, f"{cycles} cycles for {x.size} values"


@cocotb.test()
async def spatial_sum_random_stalls(dut):
    tb = SpatialSumTB(dut, "random", idle=0.3, backpressure=0.5)
    await tb.start()
    await tb.run(tb.tensor(4, "rand"))


@cocotb.test()
async def spatial_sum_extremes(dut):
    tb = SpatialSumTB(dut, "extremes")
    await tb.start()
    x = np.concatenate([tb.tensor(1, "lo"), tb.tensor(1, "hi"), tb.tensor(1, "rand")])
    await tb.run(x, check_cycles=True)
