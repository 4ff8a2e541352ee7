"""cocotb tests of :class:`spikegate.hw.multibit.MultibitLinearUnit` against ``intops.conv``.

Stimulus: random multi-bit maps with zeros and the extremes of ``in_bits`` planted, an all-zero
map and an all-extreme map. Reference: ``intops.conv`` of the values the DUT accepted (input
monitor); the scoreboard compares every output word exactly. On a stall-free run the cycles up to
the first output word must lie between the busy cycles of the non-zero inputs and that plus one
cycle per zero input (plus the pipeline's few cycles).
"""

from __future__ import annotations

import cocotb
import numpy as np

from spikegate.hw.multibit import MultibitLinearUnit
from spikegate.quantize import intops
from spikegate.rtl_tests.tb_accumulate import landing_taps
from spikegate.rtl_tests.tb_streams import TB, StreamDriver, StreamMonitor, StreamSink


def design_from_config(cfg):
    cfg = dict(cfg)
    for key in ("weights", "shift", "bias"):
        if cfg.get(key) is not None:
            cfg[key] = np.asarray(cfg[key], dtype=np.int64)
    return MultibitLinearUnit(**cfg)


class MultibitTB(TB):
    def __init__(self, dut, name, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, name=name)
        self.design = d = design_from_config(self.config)
        self.g = d.geometry
        self.driver = StreamDriver(self, "i", d.i.payload.shape(), idle=idle)
        self.inputs = StreamMonitor(self, "i", d.i.payload.shape())
        self.outputs = StreamMonitor(self, "o", d.o.payload.shape())
        self.sink = StreamSink(self, "o", backpressure=backpressure)
        b = d.in_bits
        self.lo, self.hi = -(1 << (b - 1)), (1 << (b - 1)) - 1

    def value_map(self, mode):
        g, rng = self.g, self.rng
        n = g.cin * g.height * g.width
        if mode == "zeros":
            vals = [0] * n
        elif mode == "extremes":
            vals = [rng.choice([self.lo, self.hi]) for _ in range(n)]
        else:
            vals = [0 if rng.random() < 0.3 else
                    rng.choice([self.lo, self.hi, -1, 1]) if rng.random() < 0.2 else
                    rng.randint(self.lo, self.hi) for _ in range(n)]
        return np.array(vals, dtype=np.int64).reshape(g.cin, g.height, g.width)

    def reference(self, xmap):
        cfg, g = self.config, self.g
        return intops.conv(xmap[None], np.asarray(cfg["weights"]), np.asarray(cfg["bias"]),
                           stride=g.stride, padding=g.padding, groups=g.groups,
                           shift=np.asarray(cfg["shift"]))[0]

    async def run(self, maps, *, check_cycles=False):
        d, g = self.design, self.g
        n_in = g.cin * g.height * g.width
        words = d.readout_words
        for xmap in maps:
            self.driver.send(int(v) for v in xmap.reshape(-1))
        budget = len(maps) * (n_in * 40 * d.chunks + 10 * words + 100)
        await self.outputs.wait_count(words * len(maps), timeout_cycles=budget)
        await self.cycles(3)
        assert len(self.outputs.items) == words * len(maps)
        assert len(self.inputs.items) == n_in * len(maps)
        for f in range(len(maps)):
            xmap = np.array(self.inputs.items[f * n_in:(f + 1) * n_in]).reshape(g.cin, g.height, g.width)
            ref = self.reference(xmap).reshape(-1)
            out = self.outputs.items[f * words:(f + 1) * words]
            got = np.array([o["value"] for o in out])
            bad = np.flatnonzero(got != ref)
            assert bad.size == 0, (f"map {f}: {bad.size} of {words} words differ, first at flat "
                                   f"index {bad[0]}: DUT {got[bad[0]]}, intops.conv {ref[bad[0]]}")
            assert [o["last"] for o in out] == [0] * (words - 1) + [1]
            if check_cycles:
                nz = list(zip(*np.nonzero(xmap)))
                busy = sum(max(1, landing_taps(self.config, int(y), int(x)) * d.chunks)
                           for _, y, x in nz)
                zeros = n_in - len(nz)
                measured = self.outputs.cycles[f * words] - self.inputs.cycles[f * n_in]
                assert busy <= measured <= busy + zeros + 6, \
                    f"map {f}: {measured} cycles to first output; model {busy}..{busy + zeros + 6}"
                self.dut._log.info("map %d: %d non-zero of %d inputs: %d cycles to first output "
                                   "(model %d..%d)", f, len(nz), n_in, measured, busy, busy + zeros + 6)


@cocotb.test()
async def multibit_random_stalls(dut):
    tb = MultibitTB(dut, "random", idle=0.3, backpressure=0.3)
    await tb.start()
    await tb.run([tb.value_map("random"), tb.value_map("zeros"), tb.value_map("extremes")])


@cocotb.test()
async def multibit_cycle_model(dut):
    tb = MultibitTB(dut, "cycles")
    await tb.start()
    await tb.run([tb.value_map("random"), tb.value_map("zeros")], check_cycles=True)
