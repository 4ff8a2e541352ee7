"""cocotb tests of :class:`spikegate.hw.event_encoder.SpikeEventEncoder`.

Reference: the rows the DUT accepted (input monitor), re-read as spike maps; every spike becomes
``(c, y, x)`` in ``C, H, W`` order, then one ``end`` per map. The cycle count per map is checked
against the cycle model (one cycle per spike, one per empty row, one for ``end``).
"""

from __future__ import annotations

import cocotb
import numpy as np

from spikegate.hw.event_encoder import SpikeEventEncoder
from spikegate.rtl_tests.tb_streams import TB, StreamDriver, StreamMonitor, StreamSink


class EncoderTB(TB):
    def __init__(self, dut, name, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, name=name)
        self.design = d = SpikeEventEncoder(**self.config)
        self.rows_per_map = d.channels * d.height
        self.driver = StreamDriver(self, "i", d.i.payload.shape(), idle=idle)
        self.inputs = StreamMonitor(self, "i", d.i.payload.shape())
        self.outputs = StreamMonitor(self, "o", d.o.payload.shape())
        self.sink = StreamSink(self, "o", backpressure=backpressure)

    def spike_map(self, density):
        d = self.design
        return (np.array([[[self.rng.random() < density for _ in range(d.width)]
                           for _ in range(d.height)] for _ in range(d.channels)])).astype(np.uint8)

    @staticmethod
    def pack_rows(smap):
        return [int(sum(int(b) << x for x, b in enumerate(row))) for row in smap.reshape(-1, smap.shape[-1])]

    def reference(self):
        """Events expected from the accepted rows, and each map's rows' spike counts."""
        d = self.design
        rows = np.array(self.inputs.items, dtype=object)
        assert len(rows) % self.rows_per_map == 0
        events, counts = [], []
        for f in range(len(rows) // self.rows_per_map):
            frame = rows[f * self.rows_per_map:(f + 1) * self.rows_per_map]
            smap = np.array([[(int(r) >> x) & 1 for x in range(d.width)] for r in frame])
            smap = smap.reshape(d.channels, d.height, d.width)
            for c, y, x in zip(*np.nonzero(smap)):
                events.append({"c": int(c), "y": int(y), "x": int(x), "end": 0})
            events.append({"c": 0, "y": 0, "x": 0, "end": 1})
            counts.append(smap.reshape(-1, d.width).sum(axis=1).tolist())
        return events, counts

    async def run(self, maps):
        for smap in maps:
            self.driver.send(self.pack_rows(smap))
        n_events = sum(int(s.sum()) + 1 for s in maps)
        await self.outputs.wait_count(n_events, timeout_cycles=10 * n_events + 20 * len(maps) * self.rows_per_map)
        await self.cycles(5)
        expected, counts = self.reference()
        got = self.outputs.items
        assert len(got) == len(expected), f"{len(got)} events, expected {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert g == e, f"event {i}: DUT {g}, expected {e}"
        return counts


def model_cycles(counts):
    """Independent statement of the cycle model: max(k, 1) per row, +1 for `end` after a
    non-empty last row."""
    return sum(max(k, 1) for k in counts) + (1 if counts[-1] else 0)


@cocotb.test()
async def encoder_random_stalls(dut):
    tb = EncoderTB(dut, "random", idle=0.3, backpressure=0.4)
    await tb.start()
    maps = [tb.spike_map(p) for p in (0.3, 0.0, 1.0, 0.05, 0.7)]
    await tb.run(maps)


@cocotb.test()
async def encoder_cycle_model(dut):
    tb = EncoderTB(dut, "cycles")
    await tb.start()
    maps = [tb.spike_map(p) for p in (0.0, 1.0, 0.25, 0.6)]
    maps[2][-1, -1, :] = 0          # a map ending on an empty row
    counts = await tb.run(maps)
    # per map: first row accepted -> end event accepted
    ends = [i for i, e in enumerate(tb.outputs.items) if e["end"]]
    for f, cnt in enumerate(counts):
        first_row = tb.inputs.cycles[f * tb.rows_per_map]
        end_cycle = tb.outputs.cycles[ends[f]]
        measured = end_cycle - first_row
        assert measured == model_cycles(cnt), \
            f"map {f}: {measured} cycles, model {model_cycles(cnt)} (spikes {sum(cnt)})"
        dut._log.info("map %d: %d spikes in %d rows: %d cycles", f, sum(cnt), len(cnt), measured)
