"""cocotb testbench behind `spikegate verify`: run images through an emitted accelerator.

A pixel driver feeds each image through the ``pixels`` stream; a logits monitor collects the
``logits`` stream (with optional random back-pressure); for a build whose weights are loaded at run
time (``config["weights"]``: the build's ``weights.bin``) a weight loader first writes every word
through the ``weights`` port, one per cycle, as the host link does; a debug monitor records the spike count of
every LIF instruction from the debug port and, with ``capture_spikes``, every spike the LIF engine
writes: its spike-memory write port (the ``lif`` instance's ``spk_w__en``/``addr``/``data``, read
through VPI: the core has no debug port for spike writes), each write tagged with the instruction
it belongs to, so that ``spikegate.verify`` can rebuild every LIF layer's spike map and compare it
with the golden model's. What was observed is written to ``config["out"]`` as JSON; the comparison
happens in ``spikegate.verify`` (which knows the IR). This bench asserts the protocol: K logits per
image, ``last`` on the K-th only, ``busy`` low afterwards.

Whole networks run for hundreds of thousands of cycles, so the monitors wake on signal edges
(``dbg_instr_done``, ``logits.valid``, the spike write enable) rather than on every clock; the spike
monitor samples every clock only while the LIF engine is writing.
"""

from __future__ import annotations

import json
import random

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer

from spikegate.rtl_tests.cocotb_util import tb_config, tb_seed

PERIOD_NS = 10


def _signed(raw: int, bits: int) -> int:
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >> (bits - 1) else raw


class PixelDriver:
    def __init__(self, dut, bits: int):
        self.dut, self.bits = dut, bits
        dut.pixels__valid.value = 0

    async def send(self, values):
        dut = self.dut
        mask = (1 << self.bits) - 1
        for v in values:
            dut.pixels__payload.value = int(v) & mask
            dut.pixels__valid.value = 1
            while True:
                await RisingEdge(dut.clk)
                if int(dut.pixels__ready.value):
                    break
        dut.pixels__valid.value = 0


class LogitsMonitor:
    def __init__(self, dut, bits: int, rng: random.Random, backpressure: float):
        self.dut, self.bits, self.rng, self.bp = dut, bits, rng, backpressure
        dut.logits__ready.value = 1

    async def collect(self, k: int, timeout_ns: int):
        dut = self.dut
        got = []
        while len(got) < k:
            if not int(dut.logits__valid.value):
                edge = await First(RisingEdge(dut.logits__valid), Timer(timeout_ns, "ns"))
                if not isinstance(edge, RisingEdge) and not int(dut.logits__valid.value):
                    raise AssertionError(f"no logit after {timeout_ns} ns ({len(got)} of {k} received)")
            ready = 0 if (self.bp and self.rng.random() < self.bp) else 1
            dut.logits__ready.value = ready
            await RisingEdge(dut.clk)
            if ready and int(dut.logits__valid.value):
                raw = int(dut.logits__payload.value)
                got.append((_signed(raw, self.bits), (raw >> self.bits) & 1))
        dut.logits__ready.value = 1
        return got


class DebugMonitor:
    """(tag, spike count) at each instruction's end; when capturing, the LIF engine's spike writes
    as (index of the instruction writing, address, spike)."""

    def __init__(self, dut, capture: bool):
        self.dut = dut
        self.events: list[tuple[int, int]] = []
        self.spk_writes: list[tuple[int, int, int]] = []
        cocotb.start_soon(self._instrs())
        if capture:
            try:
                lif = dut.lif
                lif.spk_w__en, lif.spk_w__addr, lif.spk_w__data
            except AttributeError:
                raise AssertionError("the core has no LIF engine instance 'lif' with spk_w__en/addr/data ports: "
                                     "its spike maps cannot be read (the spike monitor needs them)") from None
            cocotb.start_soon(self._writes(lif))

    async def _instrs(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.dbg_instr_done)
            await ReadOnly()
            self.events.append((int(dut.dbg_tag.value), int(dut.dbg_spikes.value)))

    async def _writes(self, lif):
        """One sample per clock while the write enable is high: each such cycle is one write."""
        clk, en, addr, data = self.dut.clk, lif.spk_w__en, lif.spk_w__addr, lif.spk_w__data
        while True:
            await ReadOnly()
            if not int(en.value):
                await RisingEdge(en)        # (a combinational enable may glitch: re-check when settled)
                continue
            self.spk_writes.append((len(self.events), int(addr.value), int(data.value)))
            await RisingEdge(clk)


async def load_weights(dut, path: str, bytes_per_word: int) -> int:
    """Write the weight image through the core's ``weights`` port, one word per cycle."""
    with open(path, "rb") as f:
        image = f.read()
    n = len(image) // bytes_per_word
    dut.weights__en.value = 1
    for a in range(n):
        dut.weights__addr.value = a
        dut.weights__data.value = int.from_bytes(image[a * bytes_per_word:(a + 1) * bytes_per_word], "little")
        await RisingEdge(dut.clk)
    dut.weights__en.value = 0
    return n


@cocotb.test()
async def run_images(dut):
    cfg = tb_config()
    seed = tb_seed()
    dut._log.info("seed %d", seed)
    pixels = np.load(cfg["pixels"])  # int64 [B, num_pixels]
    K = cfg["num_classes"]
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    driver = PixelDriver(dut, cfg["pixel_bits"])
    logits = LogitsMonitor(dut, cfg["logit_bits"], random.Random(seed), cfg.get("backpressure", 0.0))
    if cfg.get("weights"):
        dut.weights__en.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    if cfg.get("weights"):
        n = await load_weights(dut, cfg["weights"], cfg["weight_bytes_per_word"])
        dut._log.info("%d weight words loaded through the weight port", n)
    debug = DebugMonitor(dut, cfg.get("capture_spikes", False))
    results = []
    for i, img in enumerate(pixels):
        e0, w0 = len(debug.events), len(debug.spk_writes)   # (write tags count from e0 on)
        cocotb.start_soon(driver.send(img))
        got = await logits.collect(K, cfg["timeout_cycles"] * PERIOD_NS)
        await ClockCycles(dut.clk, 3)
        assert [g[1] for g in got] == [0] * (K - 1) + [1], f"image {i}: 'last' is not on the final logit"
        assert int(dut.busy.value) == 0, f"image {i}: busy still high after the last logit"
        results.append({"logits": [g[0] for g in got], "cycles": int(dut.cycles.value),
                        "instr": debug.events[e0:],
                        "spk_writes": [(i - e0, a, v) for i, a, v in debug.spk_writes[w0:]]})
        if cfg.get("progress"):      # the caller's progress bar counts these lines
            with open(cfg["progress"], "a") as f:
                f.write(f"{i}\n")
    with open(cfg["out"], "w") as f:
        json.dump(results, f)
