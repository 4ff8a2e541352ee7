"""cocotb tests of :class:`spikegate.hw.head.HeadAccumulator` against ``intops.head``.

Spikes ``[T, 1, C]`` go in one per cycle; the reference is ``intops.head`` on the spikes the DUT
accepted, with the design's per-head weights and biases (``head`` and ``head_kd``).
"""

from __future__ import annotations

import cocotb
import numpy as np

from spikegate.hw.head import HeadAccumulator
from spikegate.quantize import intops
from spikegate.rtl_tests.tb_streams import TB, StreamDriver, StreamMonitor, StreamSink


def design_from_config(cfg):
    cfg = dict(cfg)
    cfg["weights"] = np.asarray(cfg["weights"], np.int64)
    cfg["biases"] = np.asarray(cfg["biases"], np.int64)
    return HeadAccumulator(**cfg)


class HeadTB(TB):
    def __init__(self, dut, name, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, name=name)
        self.design = d = design_from_config(self.config)
        self.w = np.asarray(self.config["weights"], np.int64)
        self.b = np.asarray(self.config["biases"], np.int64)
        self.driver = StreamDriver(self, "i", d.i.payload.shape(), idle=idle)
        self.inputs = StreamMonitor(self, "i", d.i.payload.shape())
        self.outputs = StreamMonitor(self, "o", d.o.payload.shape())
        self.sink = StreamSink(self, "o", backpressure=backpressure)

    def spikes(self, density):
        d = self.design
        return (np.array([self.rng.random() < density
                          for _ in range(d.timesteps * d.channels)])
                .reshape(d.timesteps, 1, d.channels).astype(np.uint8))

    async def run(self, samples):
        d = self.design
        for s in samples:
            self.driver.send(int(v) for v in s.reshape(-1))
        n_out = d.classes * len(samples)
        await self.outputs.wait_count(n_out, timeout_cycles=len(samples) * (
            d.timesteps * d.channels * (4 + 2 * d.classes) + 20 * d.classes + 100))
        await self.cycles(3)
        assert len(self.outputs.items) == n_out
        per = d.timesteps * d.channels
        for i in range(len(samples)):
            s = np.array(self.inputs.items[i * per:(i + 1) * per]).reshape(d.timesteps, 1, d.channels)
            ref = intops.head(s, self.w, self.b)[0]
            out = self.outputs.items[i * d.classes:(i + 1) * d.classes]
            got = np.array([o["value"] for o in out])
            assert np.array_equal(got, ref), f"sample {i} ({int(s.sum())} spikes): DUT {got}, intops.head {ref}"
            assert [o["last"] for o in out] == [0] * (d.classes - 1) + [1]


@cocotb.test()
async def head_random_stalls(dut):
    tb = HeadTB(dut, "random", idle=0.3, backpressure=0.3)
    await tb.start()
    await tb.run([tb.spikes(0.3), tb.spikes(0.0), tb.spikes(1.0), tb.spikes(0.6)])
