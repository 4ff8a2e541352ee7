"""cocotb tests of the WLOAD engine alone (``hw/wload.py``) against ``machine/external_memory.py``.

The design is the engine; the burst port is served by :class:`~spikegate.rtl_tests.burst_memory.
BurstMemory` from an image holding every WLOAD's packed words (``pack_words``) at its own beat
address, with unused beats between them filled with noise (a read past a WLOAD's beats would show).

* Sequencer: puts ``src``/``n``/``wbase`` up, pulses ``start``, then scrambles the fields (the
  engine registers them at ``start``) and waits for ``done`` within a cycle budget.
* Scoreboard, per WLOAD: the commands are ``burst_plan``'s; WMEM gets exactly the words
  ``wbase .. wbase + n - 1`` in order with the image's words (``unpack_beats`` of its beats equal
  the words packed: the engine's gearbox against the reference), nothing else, nothing after
  ``done``.
* ``wload_random_memory``: random latency, beat gaps and command stalls (correctness).
* ``wload_deterministic_memory``: the deterministic model, with a small timing that refreshes often
  and with the ULX3S's; ``done``'s edge minus ``start``'s equals ``wload_cycles`` exactly (the
  refresh phase carried from WLOAD to WLOAD), and every command, beat and write lands on the edge
  ``beat_edges`` gives.
"""

from __future__ import annotations

import math

import cocotb
from cocotb.triggers import ClockCycles, RisingEdge

from spikegate.hw.wload import burst_cmd_layout
from spikegate.machine.external_memory import (
    ULX3S_TIMING, BurstPort, MemoryTiming, beat_edges, beats_for, burst_plan, pack_words, unpack_beats,
    wload_cycles)
from spikegate.rtl_tests.burst_memory import BurstMemory
from spikegate.rtl_tests.tb_streams import TB

# refreshes every 37 beats: several inside a WLOAD, at burst starts and in the middle
TEST_TIMING = MemoryTiming(latency=3, refresh_every=37, refresh_cycles=5)
RANDOM_MAX_LATENCY = 20


class WLoadTB(TB):
    def __init__(self, dut, name):
        super().__init__(dut, name=name)
        c = self.config
        self.wb, self.port = c["word_bits"], BurstPort(**c["port"])
        self.wmem_words, self.n_max = 1 << c["wmem_abits"], (1 << c["n_bits"]) - 1
        self.loads = self._loads()
        self.image = self._image()
        self.mem = BurstMemory(self, "mem", self.image, self.port, burst_cmd_layout(self.port),
                               max_latency=RANDOM_MAX_LATENCY)
        self.writes: list[tuple[int, int, int]] = []
        self.failures: list[str] = []
        cocotb.start_soon(self._wmon())

    def _loads(self):
        """WLOADs ``(n, wbase, words)``: 1, 2 and 3 words, a whole number of full bursts, the
        largest ``n`` that fits, and random ones, in a seeded order."""
        rng, wb, pb, mb = self.rng, self.wb, self.port.port_bits, self.port.max_burst
        exact = mb * pb // math.gcd(wb, mb * pb)             # n * wb a multiple of a full burst
        top = min(self.n_max, self.wmem_words, self.config["n_top"])
        ns = [1, 2, 3, exact, top] + [rng.randint(4, top) for _ in range(3)]
        rng.shuffle(ns)
        return [(n, rng.randint(0, self.wmem_words - n), [rng.randrange(1 << wb) for _ in range(n)])
                for n in ns]

    def _image(self):
        """Each WLOAD's packed beats at its ``src`` (0 .. 3 noise beats apart)."""
        image, self.srcs = [], []
        for n, _, words in self.loads:
            image += [self.rng.randrange(1 << self.port.port_bits) for _ in range(self.rng.randint(0, 3))]
            self.srcs.append(len(image))
            image += pack_words(words, self.wb, self.port.port_bits)
        return image + [self.rng.randrange(1 << self.port.port_bits) for _ in range(4)]

    async def _wmon(self):
        while True:
            await RisingEdge(self.clk)
            if int(self.dut.wmem__en.value):
                self.writes.append((self.cycle() - 1, int(self.dut.wmem__addr.value),
                                    int(self.dut.wmem__data.value)))

    async def start(self):
        for name in ("start", "src", "n", "wbase"):
            getattr(self.dut, name).value = 0
        await super().start()

    async def wload(self, k: int, budget: int) -> tuple[int, list, list, list]:
        """Run WLOAD ``k``; returns its cycles and its commands, beats and writes, edges counted
        from ``start``'s."""
        n, wbase, words = self.loads[k]
        d = self.dut
        self.writes.clear()
        ncmd, nbeat = len(self.mem.commands), len(self.mem.beats)
        d.src.value, d.n.value, d.wbase.value = self.srcs[k], n, wbase
        await RisingEdge(self.clk)
        d.start.value = 1
        await RisingEdge(self.clk)
        s = self.cycle()                                  # the edge that samples start
        d.start.value = 0
        d.src.value, d.n.value = self.rng.randrange(1 << len(d.src)), self.rng.randrange(1 << len(d.n))
        d.wbase.value = self.rng.randrange(1 << len(d.wbase))
        waited = await self.until(lambda: int(d.done.value), budget, f"WLOAD {k} (n {n}) done")
        cycles = waited - 1                               # done seen one edge after the edge that raised it
        await ClockCycles(self.clk, 2 + self.rng.randint(0, 4))
        what = f"WLOAD {k} (n {n}, {self.wb}-bit words, src {self.srcs[k]}, wbase {wbase})"
        cmds = [(e - s, a, ln) for e, a, ln in self.mem.commands[ncmd:]]
        if [(a, ln) for _, a, ln in cmds] != burst_plan(self.srcs[k], n, self.wb, self.port):
            self.failures.append(f"{what}: commands {cmds[:6]}..., burst_plan "
                                 f"{burst_plan(self.srcs[k], n, self.wb, self.port)[:6]}...")
        beats = [b[1] for b in self.mem.beats[nbeat:]]
        ref = unpack_beats([self.image[b] for b in beats], n, self.wb, self.port.port_bits) \
            if len(beats) >= beats_for(n, self.wb, self.port.port_bits) else []
        want = [(wbase + i, w) for i, w in enumerate(words)]
        got = [(a, v) for _, a, v in self.writes]
        if got != want or ref != words:
            bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
            self.failures.append(f"{what}: {len(got)} writes (want {n}); first wrong (index, got, want): " +
                                 ", ".join(f"({i}, {got[i]}, {want[i]})" for i in bad[:4]))
        late = [w for w in self.writes if w[0] > s + cycles]
        if late:
            self.failures.append(f"{what}: written after done (edge {s + cycles}): {late[:4]}")
        takes = [e - s for e, _ in self.mem.beats[nbeat:]]
        return cycles, [c[0] for c in cmds], takes, [w[0] - s for w in self.writes]

    def report(self):
        assert not self.mem.errors, "burst port protocol:\n" + "\n".join(self.mem.errors)
        assert not self.failures, f"{len(self.failures)} failures:\n" + "\n".join(self.failures)


@cocotb.test()
async def wload_random_memory(dut):
    """Every WLOAD right under random latency, beat gaps and command stalls; ``n = 0`` is done at once."""
    tb = WLoadTB(dut, "random")
    await tb.start()
    for k, (n, _, _) in enumerate(tb.loads):
        beats = beats_for(n, tb.wb, tb.port.port_bits)
        budget = 4 * (beats + n) + 8 * -(-beats // tb.port.max_burst) * RANDOM_MAX_LATENCY + 100
        cycles, *_ = await tb.wload(k, budget)
        dut._log.info("WLOAD %d: n %d, %d beats: %d cycles", k, n, beats, cycles)
    # n = 0: no command, no write, done at start's edge
    ncmd = len(tb.mem.commands)
    tb.writes.clear()
    dut.n.value = 0
    dut.start.value = 1
    await RisingEdge(tb.clk)
    dut.start.value = 0
    await RisingEdge(tb.clk)
    assert int(dut.done.value) == 1, "n = 0: done not raised at start's edge"
    await ClockCycles(tb.clk, 20)
    assert len(tb.mem.commands) == ncmd and not tb.writes, "n = 0 asked for beats or wrote WMEM"
    tb.report()


@cocotb.test()
async def wload_deterministic_memory(dut):
    """Cycles equal ``wload_cycles``, and every edge equals ``beat_edges``, under two timings."""
    tb = WLoadTB(dut, "deterministic")
    await tb.start()
    for timing in (TEST_TIMING, ULX3S_TIMING):
        tb.mem.set_timing(timing)
        tb.mem.reset_count()                              # an image starts here
        before = 0
        for k, (n, _, _) in enumerate(tb.loads):
            want = wload_cycles(n, tb.wb, tb.port, timing, before)
            cycles, cmds, takes, writes = await tb.wload(k, want + 50)
            sched = beat_edges(n, tb.wb, tb.port, timing, before)
            dut._log.info("%s WLOAD %d: n %d from beat %d of the image: %d cycles, wload_cycles %d",
                          timing, k, n, before, cycles, want)
            if cycles != want:
                tb.failures.append(f"{timing} WLOAD {k} (n {n}, beats before {before}): {cycles} cycles, "
                                   f"wload_cycles {want}")
            for name, got, ref in zip(("commands", "beats", "writes"), (cmds, takes, writes), sched):
                if got != ref:
                    i = next((i for i, (a, b) in enumerate(zip(got, ref)) if a != b), min(len(got), len(ref)))
                    tb.failures.append(f"{timing} WLOAD {k} (n {n}): {name} at edges {got[i:i + 4]}, "
                                       f"beat_edges {ref[i:i + 4]} (from #{i})")
            before += beats_for(n, tb.wb, tb.port.port_bits)
    tb.report()
