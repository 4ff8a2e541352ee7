"""cocotb tests of :class:`spikegate.hw.lif_unit.LIFUnit` against ``intops.lif``.

The reference sees the currents the DUT accepted (input monitor), split into samples of T steps,
and runs ``intops.lif``; the scoreboard compares every spike and every membrane exactly.
"""

from __future__ import annotations

import cocotb
import numpy as np

from spikegate.hw.lif_unit import LIFUnit
from spikegate.quantize import intops
from spikegate.rtl_tests.tb_streams import TB, StreamDriver, StreamMonitor, StreamSink


class LIFTB(TB):
    def __init__(self, dut, name, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, name=name)
        cfg = self.config
        self.design = LIFUnit(**cfg)
        self.th = np.asarray(cfg["thresholds"], dtype=np.int64)
        self.driver = StreamDriver(self, "i", self.design.i.payload.shape(), idle=idle)
        self.inputs = StreamMonitor(self, "i", self.design.i.payload.shape())
        self.outputs = StreamMonitor(self, "o", self.design.o.payload.shape())
        self.sink = StreamSink(self, "o", backpressure=backpressure)

    def clear(self):
        for mon in (self.inputs, self.outputs):
            mon.items.clear()
            mon.cycles.clear()

    @property
    def x_range(self):
        b = self.design.x_bits
        return -(1 << (b - 1)), (1 << (b - 1)) - 1

    def stimulus(self, samples, mode):
        """Currents ``[samples, T, C*size]``; ``mode`` picks random / extremes / ties / zeros."""
        d, rng = self.design, self.rng
        lo, hi = self.x_range
        T, N = d.timesteps, d.neurons
        th = np.repeat(self.th, d.size)
        xs = np.zeros((samples, T, N), dtype=np.int64)
        for s in range(samples):
            v = np.zeros(N, dtype=np.int64)
            for t in range(T):
                for n in range(N):
                    if mode == "zeros":
                        x = 0
                    elif mode == "max":
                        x = hi
                    elif mode == "tie" or (mode == "random" and rng.random() < 0.25):
                        x = int(2 * th[n] - v[n])      # h2 == 2*threshold exactly: must fire
                        if not lo <= x <= hi:
                            x = rng.randint(lo, hi)
                    elif mode == "random" and rng.random() < 0.2:
                        x = rng.choice([lo, hi, lo + 1, hi - 1, 0, -1, 1])
                    else:
                        x = rng.randint(lo, hi)
                    xs[s, t, n] = x
                _, v, _ = intops.lif_step(v, xs[s, t], th)
        return xs

    async def run(self, samples, mode, *, check_cycles=False):
        d = self.design
        self.clear()                       # a run checks its own samples
        xs = self.stimulus(samples, mode)
        n_out = xs.size
        self.driver.send(int(x) for x in xs.reshape(-1))
        await self.outputs.wait_count(n_out, timeout_cycles=20 * n_out + 100)

        got = np.array([int(x) for x in self.inputs.items], dtype=np.int64)
        assert got.size == n_out, f"DUT accepted {got.size} currents, {n_out} sent"
        x_seq = got.reshape(samples, d.timesteps, d.channels, d.size)
        ref_s, ref_v = [], []
        for s in range(samples):
            sp, mem = intops.lif(x_seq[s][:, None], self.th)   # [T, B=1, C, size]
            ref_s.append(sp[:, 0])
            ref_v.append(mem[:, 0])
        ref_s = np.stack(ref_s).reshape(-1)
        ref_v = np.stack(ref_v).reshape(-1)
        out = self.outputs.items
        dut_s = np.array([o["spike"] for o in out])
        dut_v = np.array([o["membrane"] for o in out])
        dut_last = np.array([o["last"] for o in out])
        assert [o["x"] for o in out] == got.tolist(), "forwarded current 'x' differs from the input"
        bad = np.flatnonzero((dut_s != ref_s) | (dut_v != ref_v))
        assert bad.size == 0, (
            f"{bad.size} mismatches, first at element {bad[0]}: x={got[bad[0]]} "
            f"spike {dut_s[bad[0]]} (ref {ref_s[bad[0]]}), membrane {dut_v[bad[0]]} "
            f"(ref {ref_v[bad[0]]})")
        exp_last = (np.arange(n_out) % d.neurons) == d.neurons - 1
        assert np.array_equal(dut_last.astype(bool), exp_last), "'last' flags misplaced"
        if check_cycles:
            cycles = self.outputs.cycles[-1] - self.inputs.cycles[0]
            assert cycles == n_out, f"{cycles} cycles for {n_out} neuron updates (model: {n_out})"
        return ref_s


@cocotb.test()
async def lif_random_with_ties(dut):
    tb = LIFTB(dut, "random", idle=0.3, backpressure=0.3)
    await tb.start()
    spikes = await tb.run(3, "random")
    assert 0 < spikes.mean() < 1, "stimulus should give both spikes and silences"


@cocotb.test()
async def lif_directed_corners(dut):
    tb = LIFTB(dut, "directed")
    await tb.start()
    assert not (await tb.run(1, "zeros", check_cycles=True)).any(), "zero input must never fire"
    ties = await tb.run(1, "tie", check_cycles=True)
    reachable = np.repeat(2 * tb.th <= tb.x_range[1], tb.design.size)
    assert ties.reshape(-1, tb.design.neurons)[:, reachable].all(), \
        "h2 == 2*threshold must fire on every neuron"
    await tb.run(1, "max", check_cycles=True)
