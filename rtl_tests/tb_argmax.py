"""cocotb tests of :class:`spikegate.hw.head.Argmax` against ``intops.argmax`` (first max wins)."""

from __future__ import annotations

import cocotb
import numpy as np

from spikegate.hw.head import Argmax
from spikegate.quantize import intops
from spikegate.rtl_tests.tb_streams import TB, StreamDriver, StreamMonitor, StreamSink


class ArgmaxTB(TB):
    def __init__(self, dut, name, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, name=name)
        self.design = d = Argmax(**self.config)
        self.driver = StreamDriver(self, "i", d.i.payload.shape(), idle=idle)
        self.inputs = StreamMonitor(self, "i", d.i.payload.shape())
        self.outputs = StreamMonitor(self, "o", d.o.payload.shape())
        self.sink = StreamSink(self, "o", backpressure=backpressure)
        b = d.logit_bits
        self.lo, self.hi = -(1 << (b - 1)), (1 << (b - 1)) - 1

    async def run(self, samples):
        K = self.design.classes
        for logits in samples:
            self.driver.send({"value": int(v), "last": int(i == K - 1)} for i, v in enumerate(logits))
        await self.outputs.wait_count(len(samples), timeout_cycles=len(samples) * K * 10 + 50)
        await self.cycles(3)
        assert len(self.outputs.items) == len(samples)
        acc = np.array([e["value"] for e in self.inputs.items]).reshape(len(samples), K)
        ref = intops.argmax(acc)
        got = np.array(self.outputs.items)
        bad = np.flatnonzero(got != ref)
        assert bad.size == 0, f"sample {bad[0]} {acc[bad[0]].tolist()}: DUT {got[bad[0]]}, ref {ref[bad[0]]}"


@cocotb.test()
async def argmax_random_and_ties(dut):
    tb = ArgmaxTB(dut, "random", idle=0.3, backpressure=0.5)
    await tb.start()
    K, rng = tb.design.classes, tb.rng
    samples = [[rng.randint(-3, 3) for _ in range(K)] for _ in range(30)]       # many ties
    samples += [[rng.randint(tb.lo, tb.hi) for _ in range(K)] for _ in range(20)]
    samples += [[tb.lo] * K, [tb.hi] * K, [tb.lo] * (K - 1) + [tb.hi], [tb.hi] + [tb.lo] * (K - 1),
                [0] * (K - 1) + [1], [tb.lo + 1] * (K - 1) + [tb.lo]]
    await tb.run(samples)
