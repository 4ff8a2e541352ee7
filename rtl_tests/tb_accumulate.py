"""cocotb tests of :class:`spikegate.hw.accumulate.AccumulateEngine` against ``intops.conv``.

Stimulus: random spike maps (and all-zero / all-one maps) as address events in ``C, H, W`` order,
one ``end`` per map. Reference: the events the DUT accepted (input monitor) are turned back into
spike maps and convolved by ``intops.conv`` (with the design's weights, shift and bias); the
scoreboard compares every readout word exactly. The cycle model (cycles per event = landing taps
x output-channel chunks) is checked on stall-free runs.
"""

from __future__ import annotations

import cocotb
import numpy as np

from spikegate.hw.accumulate import AccumulateEngine
from spikegate.quantize import intops
from spikegate.rtl_tests.tb_streams import TB, StreamDriver, StreamMonitor, StreamSink


def design_from_config(cfg):
    cfg = dict(cfg)
    for key in ("weights", "shift", "bias"):
        if cfg.get(key) is not None:
            cfg[key] = np.asarray(cfg[key], dtype=np.int64)
    return AccumulateEngine(**cfg)


def landing_taps(cfg, y, x):
    """Kernel taps of input pixel (y, x) that land on the output map, counted by brute force."""
    k, s, p = cfg["kernel"], cfg.get("stride", 1), cfg.get("padding", 0)
    ho = (cfg["height"] + 2 * p - k) // s + 1
    wo = (cfg["width"] + 2 * p - k) // s + 1
    n = 0
    for oy in range(ho):
        for ox in range(wo):
            ky, kx = y + p - oy * s, x + p - ox * s
            n += 0 <= ky < k and 0 <= kx < k
    return n


class AccumulateTB(TB):
    def __init__(self, dut, name, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, name=name)
        self.design = d = design_from_config(self.config)
        g = d.geometry
        self.g = g
        self.driver = StreamDriver(self, "events", d.events.payload.shape(), idle=idle)
        self.inputs = StreamMonitor(self, "events", d.events.payload.shape())
        self.outputs = StreamMonitor(self, "o", d.o.payload.shape())
        self.sink = StreamSink(self, "o", backpressure=backpressure)

    def spike_map(self, density):
        g = self.g
        if density == "pixel":   # one spike per channel, all at one pixel: with one chunk,
            smap = np.zeros((g.cin, g.height, g.width), np.uint8)   # back-to-back updates
            smap[:, self.rng.randrange(g.height), self.rng.randrange(g.width)] = 1  # of a word
            return smap
        return (np.array([self.rng.random() < density
                          for _ in range(g.cin * g.height * g.width)])
                .reshape(g.cin, g.height, g.width).astype(np.uint8))

    @staticmethod
    def events_of(smap):
        evs = [{"c": int(c), "y": int(y), "x": int(x), "end": 0} for c, y, x in zip(*np.nonzero(smap))]
        return evs + [{"c": 0, "y": 0, "x": 0, "end": 1}]

    def accepted_maps(self):
        """Spike maps rebuilt from the accepted events, with the accept cycles of each map."""
        g = self.g
        maps, cycles, cur, cur_cyc = [], [], np.zeros((g.cin, g.height, g.width), np.uint8), []
        for ev, cyc in zip(self.inputs.items, self.inputs.cycles):
            cur_cyc.append(cyc)
            if ev["end"]:
                maps.append(cur)
                cycles.append(cur_cyc)
                cur, cur_cyc = np.zeros_like(cur), []
            else:
                assert cur[ev["c"], ev["y"], ev["x"]] == 0, f"event sent twice: {ev}"
                cur[ev["c"], ev["y"], ev["x"]] = 1
        return maps, cycles

    def reference(self, smap):
        d, g = self.design, self.g
        cfg = self.config
        return intops.conv(smap[None].astype(np.int64), np.asarray(cfg["weights"]),
                           None if cfg.get("bias") is None else np.asarray(cfg["bias"]),
                           stride=g.stride, padding=g.padding, groups=g.groups,
                           shift=None if cfg.get("shift") is None else np.asarray(cfg["shift"]))[0]

    async def run(self, maps, *, check_cycles=False):
        d = self.design
        for smap in maps:
            self.driver.send(self.events_of(smap))
        words = d.readout_words
        budget = sum(int(s.sum()) * 60 * d.chunks for s in maps) + len(maps) * (10 * words + 50)
        await self.outputs.wait_count(words * len(maps), timeout_cycles=budget)
        await self.cycles(3)
        assert len(self.outputs.items) == words * len(maps), "extra output words"

        acc_maps, acc_cycles = self.accepted_maps()
        assert len(acc_maps) == len(maps)
        for f, smap in enumerate(acc_maps):
            ref = self.reference(smap).reshape(-1)
            out = self.outputs.items[f * words:(f + 1) * words]
            got = np.array([o["value"] for o in out])
            bad = np.flatnonzero(got != ref)
            assert bad.size == 0, (f"map {f} ({int(smap.sum())} spikes): {bad.size} of {words} "
                                   f"words differ, first at {np.unravel_index(bad[0], (d.geometry.cout, d.geometry.out_height, d.geometry.out_width))}: "
                                   f"DUT {got[bad[0]]}, intops.conv {ref[bad[0]]}")
            lasts = [o["last"] for o in out]
            assert lasts == [0] * (words - 1) + [1], "'last' must mark only the final word"
            if check_cycles:
                self.check_cycles(f, smap, acc_cycles[f])

    def check_cycles(self, f, smap, cycles):
        d, words = self.design, self.design.readout_words
        chunks = 1 if self.g.depthwise else -(-self.g.cout // d.lanes)
        model = sum(max(1, landing_taps(self.config, int(y), int(x)) * chunks)
                    for _, y, x in zip(*np.nonzero(smap)))
        measured = cycles[-1] - cycles[0]
        assert measured == model, f"map {f}: accumulate phase {measured} cycles, model {model}"
        out_cycles = self.outputs.cycles[f * words:(f + 1) * words]
        assert out_cycles[-1] - out_cycles[0] == words - 1, "readout must stream one word per cycle"
        latency = out_cycles[0] - cycles[-1]
        assert 1 <= latency <= 3, f"readout latency {latency} cycles"
        self.dut._log.info("map %d: %d spikes -> %d accumulate cycles (model %d), readout %d words",
                           f, int(smap.sum()), measured, model, words)


@cocotb.test()
async def accumulate_random_stalls(dut):
    tb = AccumulateTB(dut, "random", idle=0.3, backpressure=0.3)
    await tb.start()
    await tb.run([tb.spike_map(p) for p in (0.3, 1.0, 0.0, 0.1)])


@cocotb.test()
async def accumulate_cycle_model(dut):
    tb = AccumulateTB(dut, "cycles")
    await tb.start()
    await tb.run([tb.spike_map(p) for p in (0.25, 0.0, 1.0, "pixel")], check_cycles=True)
