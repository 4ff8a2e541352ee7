"""cocotb tests of :class:`spikegate.hw.attention.AttentionUnit` against ``intops.attention``,
``intops.attention_kv`` and ``intops.lif`` (threshold 4 in ``Y8`` units).

The reference is fed from the two input monitors (the ``kv`` and ``q`` tokens the DUT accepted),
rebuilt into ``[T, 1, C, H, W]`` spike tensors; every ``Y8`` value and every attention spike is
compared exactly. A directed test drives one-hot ``q`` rows so that each output row is a row of
``K^T V``, checked against ``intops.attention_kv``.
"""

from __future__ import annotations

import cocotb
import numpy as np

from spikegate.hw.attention import ATTENTION_THRESHOLD, AttentionUnit
from spikegate.quantize import intops
from spikegate.rtl_tests.tb_streams import TB, StreamDriver, StreamMonitor, StreamSink


def split_config(cfg):
    cfg = dict(cfg)
    hw = cfg.pop("map_hw")
    return cfg, tuple(hw)


class AttentionTB(TB):
    def __init__(self, dut, name, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, name=name)
        params, self.hw = split_config(self.config)
        self.design = d = AttentionUnit(**params)
        self.C = d.heads * d.head_dim
        self.kv_driver = StreamDriver(self, "kv", d.kv.payload.shape(), idle=idle)
        self.q_driver = StreamDriver(self, "q", d.q.payload.shape(), idle=idle)
        self.kv_mon = StreamMonitor(self, "kv", d.kv.payload.shape())
        self.q_mon = StreamMonitor(self, "q", d.q.payload.shape())
        self.outputs = StreamMonitor(self, "o", d.o.payload.shape())
        self.sink = StreamSink(self, "o", backpressure=backpressure)

    def spikes(self, density):
        d = self.design
        shape = (d.timesteps, 1, self.C) + self.hw
        return (np.array([self.rng.random() < density for _ in range(int(np.prod(shape)))])
                .reshape(shape).astype(np.uint8))

    def tokens(self, s, t, h):
        """``[N, d]`` tokens of head ``h`` at step ``t`` of a ``[T,1,C,H,W]`` tensor."""
        d = self.design
        return s[t, 0, h * d.head_dim:(h + 1) * d.head_dim].reshape(d.head_dim, -1).T

    @staticmethod
    def word(bits):
        return int(sum(int(b) << j for j, b in enumerate(bits)))

    def send(self, q, k, v):
        d = self.design
        for t in range(d.timesteps):
            for h in range(d.heads):
                kt, vt, qt = self.tokens(k, t, h), self.tokens(v, t, h), self.tokens(q, t, h)
                self.kv_driver.send({"k": self.word(kr), "v": self.word(vr)} for kr, vr in zip(kt, vt))
                self.q_driver.send(self.word(qr) for qr in qt)

    def accepted(self, sample):
        """Q, K, V of ``sample`` rebuilt from the input monitors."""
        d = self.design
        N, dd, T = d.tokens, d.head_dim, d.timesteps
        per_sample = T * d.heads * N
        kv = self.kv_mon.items[sample * per_sample:(sample + 1) * per_sample]
        qs = self.q_mon.items[sample * per_sample:(sample + 1) * per_sample]
        out = [np.zeros((T, 1, self.C) + self.hw, np.uint8) for _ in range(3)]

        def put(arr, i, word):
            t, rest = divmod(i, d.heads * N)
            h, n = divmod(rest, N)
            for j in range(dd):
                arr[t, 0, h * dd + j].reshape(-1)[n] = (word >> j) & 1

        for i, (kvw, qw) in enumerate(zip(kv, qs)):
            put(out[0], i, qw)
            put(out[1], i, kvw["k"])
            put(out[2], i, kvw["v"])
        return out

    def dut_order(self, arr):
        """``[T,1,C,H,W]`` -> the DUT's output order (t, head, token, channel of head)."""
        d = self.design
        T = d.timesteps
        a = arr.reshape(T, d.heads, d.head_dim, d.tokens)
        return a.transpose(0, 1, 3, 2).reshape(-1)

    async def run(self, samples, *, check_cycles=False, onehot_q=False):
        d = self.design
        per_sample = d.timesteps * self.C * d.tokens
        for mon in (self.kv_mon, self.q_mon, self.outputs):   # a run checks its own samples
            mon.items.clear()
            mon.cycles.clear()
        for q, k, v in samples:
            self.send(q, k, v)
        await self.outputs.wait_count(per_sample * len(samples),
                                      timeout_cycles=len(samples) * (per_sample * 20 + 500))
        await self.cycles(3)
        assert len(self.outputs.items) == per_sample * len(samples)
        for s in range(len(samples)):
            q, k, v = self.accepted(s)
            y8 = intops.attention(q, k, v, d.heads)
            spikes, _ = intops.lif(y8, np.full(self.C, ATTENTION_THRESHOLD))
            out = self.outputs.items[s * per_sample:(s + 1) * per_sample]
            got_y = np.array([o["y8"] for o in out])
            got_s = np.array([o["spike"] for o in out])
            ref_y, ref_s = self.dut_order(y8), self.dut_order(spikes)
            bad = np.flatnonzero((got_y != ref_y) | (got_s != ref_s))
            assert bad.size == 0, (f"sample {s}: {bad.size} mismatches, first at {bad[0]}: Y8 "
                                   f"{got_y[bad[0]]} (ref {ref_y[bad[0]]}), spike {got_s[bad[0]]} "
                                   f"(ref {ref_s[bad[0]]})")
            step = self.C * d.tokens
            lasts = [o["last"] for o in out]
            assert lasts == ([0] * (step - 1) + [1]) * d.timesteps, "'last' must end each time step"
            if onehot_q:
                self.check_kv_rows(s, q, k, v, got_y)
            if check_cycles:
                self.check_cycles(s, q, k, v)

    def check_kv_rows(self, s, q, k, v, got_y):
        """One-hot q rows: Y8[n] is row (n mod d) of K^T V (``intops.attention_kv``)."""
        d = self.design
        got = got_y.reshape(d.timesteps, d.heads, d.tokens, d.head_dim)
        for t in range(d.timesteps):
            for h in range(d.heads):
                kv = intops.attention_kv(self.tokens(k, t, h), self.tokens(v, t, h))
                for n in range(d.tokens):
                    i = int(np.flatnonzero(self.tokens(q, t, h)[n])[0])
                    assert np.array_equal(got[t, h, n], kv[i]), \
                        f"step {t} head {h} token {n}: row {got[t, h, n]} != K^T V row {i} {kv[i]}"

    def check_cycles(self, s, q, k, v):
        d = self.design
        N, dd = d.tokens, d.head_dim
        step_out = self.C * N
        for t in range(d.timesteps):
            kv_cost, q_cost = [], []
            for h in range(d.heads):
                kt, vt, qt = self.tokens(k, t, h), self.tokens(v, t, h), self.tokens(q, t, h)
                kv_cost.append(sum(int(kr.sum()) if kr.any() and vr.any() else 1
                                   for kr, vr in zip(kt, vt)))
                q_cost.append(sum(max(int(qr.sum()) + 3, dd) for qr in qt))
            first_in = self.kv_mon.cycles[(s * d.timesteps + t) * d.heads * N]
            last_out = self.outputs.cycles[(s * d.timesteps + t) * step_out + step_out - 1]
            measured = last_out - first_in
            lower = kv_cost[0] + d.heads * N * dd
            upper = sum(kv_cost) + sum(q_cost) + 8
            assert lower <= measured <= upper, f"step {t}: {measured} cycles, model {lower}..{upper}"
            self.dut._log.info("sample %d step %d: %d cycles (model %d..%d)", s, t, measured,
                               lower, upper)


@cocotb.test()
async def attention_random_stalls(dut):
    tb = AttentionTB(dut, "random", idle=0.3, backpressure=0.3)
    await tb.start()
    samples = [tuple(tb.spikes(p) for _ in range(3)) for p in (0.4, 1.0)]
    samples.append((tb.spikes(0.5), tb.spikes(0.0), tb.spikes(0.5)))   # no K: Y8 = 0
    await tb.run(samples)


@cocotb.test()
async def attention_kv_rows_and_cycles(dut):
    tb = AttentionTB(dut, "onehot")
    await tb.start()
    d = tb.design
    q = np.zeros((d.timesteps, 1, tb.C) + tb.hw, np.uint8)
    for t in range(d.timesteps):
        for h in range(d.heads):
            for n in range(d.tokens):
                q[t, 0, h * d.head_dim + n % d.head_dim].reshape(-1)[n] = 1
    await tb.run([(q, tb.spikes(0.5), tb.spikes(0.5))], onehot_q=True, check_cycles=True)
    await tb.run([tuple(tb.spikes(0.3) for _ in range(3))], check_cycles=True)
