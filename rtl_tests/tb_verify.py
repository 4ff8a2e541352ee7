"""cocotb testbench behind `spikegate verify`: run images through an emitted accelerator.

A pixel driver feeds each image through the ``pixels`` stream, with random idle cycles between
pixels (``config["idle"]``: the probability of an idle stretch before a pixel); a logits monitor
collects the ``logits`` stream with random back-pressure (``config["backpressure"]``: the
probability of ``ready`` low in a cycle the core offers a logit). Both draw from the printed seed,
and the first of each is forced, so a run with a non-zero probability always has both. For a build
whose weights are loaded at run time (``config["weights"]``: the build's ``weights.bin``) a weight
loader first writes every word through the ``weights`` port, one per cycle, as the host link does.
For a build whose weights live in external memory (``config["external"]``: the build's
``sdram.bin``, the burst port's parameters and the memory timing) a
:class:`~spikegate.rtl_tests.burst_memory.BurstMemory` serves the core's burst port ``mem`` from
that image: deterministic (``machine/external_memory.py``'s model, its refresh phase restarted at
every image as the cycle model's is, so the cycles equal the ISS's) or, with ``timing`` null, random
latency, beat gaps and command stalls from the printed seed (bit-exactness under any timing). Any
protocol error the memory model saw fails the run.

Observed per image, written to ``config["out"]`` as JSON (the comparison happens in
``spikegate.verify``, which knows the IR):

* ``logits``, and ``cycles``: the core's cycle counter (first accepted pixel to last accepted
  logit, both included), with ``idle_cycles`` (cycles in that span in which the driver held
  ``valid`` low between two pixels) and ``backpressure_cycles`` (cycles in which the core offered a
  logit and ``ready`` was low): the cycles this bench added, which the cycle model does not count;
* ``instr``: (tag, spike count) at each instruction's end, from the debug port;
* with ``capture_spikes``: ``spk_writes``, every spike the LIF engine writes (its spike-memory
  write port ``lif.spk_w__*``, read through VPI), tagged with the index of the instruction making it;
* with ``capture_writes`` (the second, locating pass of a failed verify): ``writes``, every write
  the memories receive (the port multiplexers' ACT, SPK and ACC write ports, ``ports.act_w__*``,
  ``ports.spk_w__*``, ``ports.acc_w__<lane>__*``) as (cycle, memory, lane, address, value), and
  ``done``, the (cycle, tag) of each ``dbg_instr_done`` pulse, sampled in the same phase of the
  same clock, so that ``spikegate.verify`` can attribute each write to its instruction.

The bench asserts the protocol: K logits per image, ``last`` on the K-th only, ``busy`` low
afterwards, and a cycle budget per image (``config["timeout_cycles"]``), so a hung core fails fast.

Whole networks run for hundreds of thousands of cycles, so the monitors of the first pass wake on
signal edges (``dbg_instr_done``, ``logits.valid``, the spike write enable) rather than on every
clock; only the locating pass samples every clock.
"""

from __future__ import annotations

import json
import random
from types import SimpleNamespace

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.triggers import ClockCycles, First, ReadOnly, RisingEdge, Timer

from spikegate.machine.external_memory import BurstPort, MemoryTiming
from spikegate.rtl_tests.burst_memory import BurstMemory
from spikegate.rtl_tests.cocotb_util import tb_config, tb_seed

PERIOD_NS = 10
IDLE_MAX = 3         # an idle stretch between two pixels lasts 1..IDLE_MAX cycles


def _signed(raw: int, bits: int) -> int:
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >> (bits - 1) else raw


class PixelDriver:
    """Drives ``pixels``; ``idle`` is the probability of an idle stretch before each pixel but the
    first (idle before the first pixel is outside the cycle counter's span, so it is not drawn)."""

    def __init__(self, dut, bits: int, rng: random.Random, idle: float):
        self.dut, self.bits, self.rng, self.idle = dut, bits, rng, idle
        self.idle_total = 0           # idle cycles driven so far (the first stretch forced)
        dut.pixels__valid.value = 0

    async def send(self, values) -> int:
        """Send one image; return the idle cycles driven between its first and last pixel."""
        dut = self.dut
        mask = (1 << self.bits) - 1
        idle = 0
        for i, v in enumerate(values):
            if i and self.idle and (self.idle_total == 0 or self.rng.random() < self.idle):
                n = self.rng.randint(1, IDLE_MAX)
                dut.pixels__valid.value = 0
                await ClockCycles(dut.clk, n)
                idle += n
                self.idle_total += n
            dut.pixels__payload.value = int(v) & mask
            dut.pixels__valid.value = 1
            while True:
                await RisingEdge(dut.clk)
                if int(dut.pixels__ready.value):
                    break
        dut.pixels__valid.value = 0
        return idle


class LogitsMonitor:
    """Collects ``logits``; ``backpressure`` is the probability of ``ready`` low in a cycle where a
    logit is offered (the very first such cycle forced low)."""

    def __init__(self, dut, bits: int, rng: random.Random, backpressure: float):
        self.dut, self.bits, self.rng, self.bp = dut, bits, rng, backpressure
        self.stall_total = 0
        dut.logits__ready.value = 1

    async def collect(self, k: int, timeout_ns: int) -> tuple[list, int]:
        """K (logit, last) pairs, and the cycles a logit was offered and refused."""
        dut = self.dut
        got, stalls = [], 0
        while len(got) < k:
            if not int(dut.logits__valid.value):
                edge = await First(RisingEdge(dut.logits__valid), Timer(timeout_ns, "ns"))
                if not isinstance(edge, RisingEdge) and not int(dut.logits__valid.value):
                    raise AssertionError(f"no logit within the cycle budget ({timeout_ns // PERIOD_NS} "
                                         f"cycles; {len(got)} of {k} received)")
            ready = 0 if (self.bp and (self.stall_total == 0 or self.rng.random() < self.bp)) else 1
            dut.logits__ready.value = ready
            await RisingEdge(dut.clk)
            if int(dut.logits__valid.value):
                if ready:
                    raw = int(dut.logits__payload.value)
                    got.append((_signed(raw, self.bits), (raw >> self.bits) & 1))
                else:
                    stalls += 1
                    self.stall_total += 1
        dut.logits__ready.value = 1
        return got, stalls


class DebugMonitor:
    """(tag, spike count) at each instruction's end; when capturing, the spike writes of the LIF
    engine and, in a core whose program fires (a CONV with ``fire``: then the CONV engine has an
    SPK write port), of the CONV engine, as (index of the instruction writing, address, spike).
    The engines' own write ports, not the memory's: the port multiplexer registers SPK's write,
    which then may land after the instruction's end. (A core whose CONV should fire but had no such
    port would leave its LIF layers' spike maps unwritten, which verify reports as a mismatch.)"""

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
            try:
                conv = dut.conv
                conv.spk_w__en, conv.spk_w__addr, conv.spk_w__data
            except AttributeError:
                conv = None                 # (a program without fire)
            if conv is not None:
                cocotb.start_soon(self._writes(conv))

    async def _instrs(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.dbg_instr_done)
            await ReadOnly()
            self.events.append((int(dut.dbg_tag.value), int(dut.dbg_spikes.value)))

    async def _writes(self, engine):
        """One sample per clock while the write enable is high: each such cycle is one write."""
        clk, en, addr, data = self.dut.clk, engine.spk_w__en, engine.spk_w__addr, engine.spk_w__data
        while True:
            await ReadOnly()
            if not int(en.value):
                await RisingEdge(en)        # (a combinational enable may glitch: re-check when settled)
                continue
            self.spk_writes.append((len(self.events), int(addr.value), int(data.value)))
            await RisingEdge(clk)


class WriteMonitor:
    """Every write the ACT, SPK and ACC memories receive, and every instruction's end, with its
    clock cycle: the locating pass. Samples every clock (in the read-only phase after the edge),
    so writes and ``dbg_instr_done`` share one time base; reads ``addr``/``data`` only when
    ``en`` is high."""

    def __init__(self, dut, lanes: int):
        self.dut = dut
        try:
            p = dut.ports
            self.ports = [("act", 0, p.act_w__en, p.act_w__addr, p.act_w__data, True),
                          ("spk", 0, p.spk_w__en, p.spk_w__addr, p.spk_w__data, False)]
            self.ports += [("acc", lane, getattr(p, f"acc_w__{lane}__en"), getattr(p, f"acc_w__{lane}__addr"),
                            getattr(p, f"acc_w__{lane}__data"), True) for lane in range(lanes)]
        except AttributeError as e:
            raise AssertionError(f"the core's port multiplexer 'ports' lacks a memory write port ({e}): "
                                 f"the memories' writes cannot be observed") from None
        self.writes: list[tuple] = []
        self.done: list[tuple[int, int]] = []
        cocotb.start_soon(self._run())

    async def _run(self):
        dut, cycle = self.dut, 0
        while True:
            await RisingEdge(dut.clk)
            await ReadOnly()
            cycle += 1
            if int(dut.dbg_instr_done.value):
                self.done.append((cycle, int(dut.dbg_tag.value)))
            for mem, lane, en, addr, data, signed in self.ports:
                if int(en.value):
                    v = data.value.to_signed() if signed else int(data.value)
                    self.writes.append((cycle, mem, lane, int(addr.value), v))


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


async def _reset(dut, cfg) -> None:
    if cfg.get("weights"):
        dut.weights__en.value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    if cfg.get("weights"):
        n = await load_weights(dut, cfg["weights"], cfg["weight_bytes_per_word"])
        dut._log.info("%d weight words loaded through the weight port", n)


def external_memory(dut, ext: dict, seed: int) -> BurstMemory:
    """The burst memory behind the core's ``mem`` port, serving ``ext["image"]`` (``port_bits / 8``
    little-endian bytes a beat)."""
    from spikegate.hw.wload import burst_cmd_layout       # (Amaranth: only for external builds)

    port = BurstPort(port_bits=ext["port_bits"], max_burst=ext["max_burst"], addr_bits=ext["addr_bits"])
    with open(ext["image"], "rb") as f:
        data = f.read()
    n = port.port_bits // 8
    image = [int.from_bytes(data[a:a + n], "little") for a in range(0, len(data), n)]
    timing = MemoryTiming(**ext["timing"]) if ext.get("timing") else None
    tb = SimpleNamespace(dut=dut, clk=dut.clk, seed=seed, rng=random.Random(f"{seed}/memory"),
                         cycle=lambda: int(get_sim_time("ns")) // PERIOD_NS)
    return BurstMemory(tb, "mem", image, port, burst_cmd_layout(port), timing=timing)


@cocotb.test()
async def run_images(dut):
    cfg = tb_config()
    seed = tb_seed()
    dut._log.info("seed %d (idle %.2f, back-pressure %.2f)", seed, cfg.get("idle", 0.0), cfg.get("backpressure", 0.0))
    pixels = np.load(cfg["pixels"])  # int64 [B, num_pixels]
    K = cfg["num_classes"]
    Clock(dut.clk, PERIOD_NS, unit="ns").start()
    rng = random.Random(seed)
    driver = PixelDriver(dut, cfg["pixel_bits"], rng, cfg.get("idle", 0.0))
    logits = LogitsMonitor(dut, cfg["logit_bits"], rng, cfg.get("backpressure", 0.0))
    memory = external_memory(dut, cfg["external"], seed) if cfg.get("external") else None
    await _reset(dut, cfg)
    debug = DebugMonitor(dut, cfg.get("capture_spikes", False))
    monitor = WriteMonitor(dut, cfg["lanes"]) if cfg.get("capture_writes") else None
    results = []
    for i, img in enumerate(pixels):
        e0, w0 = len(debug.events), len(debug.spk_writes)   # (write tags count from e0 on)
        if memory:
            memory.reset_count()          # (the previous image's WLOADs are over: its logits are out)
        sender = cocotb.start_soon(driver.send(img))
        got, stalls = await logits.collect(K, cfg["timeout_cycles"] * PERIOD_NS)
        idle = await sender                                   # (done: every pixel was accepted)
        await ClockCycles(dut.clk, 3)
        assert [g[1] for g in got] == [0] * (K - 1) + [1], f"image {i}: 'last' is not on the final logit"
        assert int(dut.busy.value) == 0, f"image {i}: busy still high after the last logit"
        assert not (memory and memory.errors), f"image {i}: burst port: {memory.errors[:3]}"
        r = {"logits": [g[0] for g in got], "cycles": int(dut.cycles.value), "idle_cycles": idle,
             "backpressure_cycles": stalls, "instr": debug.events[e0:],
             "spk_writes": [(i - e0, a, v) for i, a, v in debug.spk_writes[w0:]]}
        if monitor:
            r.update(writes=monitor.writes, done=monitor.done)
            monitor.writes, monitor.done = [], []
        results.append(r)
        if cfg.get("progress"):      # the caller's progress bar counts these lines
            with open(cfg["progress"], "a") as f:
                f.write(f"{i}\n")
    with open(cfg["out"], "w") as f:
        json.dump(results, f)
