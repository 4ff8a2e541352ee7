"""cocotb tests of the whole SFA accelerator (:class:`spikegate.hw.accelerator.Accelerator`).

The design's Program (with the images, and the golden model's logits when the Program was compiled
from an IR) comes from a pickle written by ``test_accelerator.py``; its path is in the test config.

* Pixel driver + input monitor: drives ``pixels`` (optionally with random idle cycles) and records
  what the DUT accepted; every accepted image goes to the reference.
* Logits sink + output monitor: drives ``logits.ready`` (optionally with random back-pressure) and
  records every accepted logit; after an image's last logit it reads the ``cycles`` output.
* Debug monitor: every ``dbg_instr_done`` pulse with ``dbg_tag`` and ``dbg_spikes``.
* Reference: the ISS (``compiler/iss.py``) on each image the DUT accepted: logits, total cycles,
  cycles per instruction, spikes per LIF instruction; and the golden model's logits.
* Scoreboard: logits exactly equal (ISS and golden), ``last`` only on the final class, every
  instruction done in program order, every LIF's spike count equal; on stall-free runs ``cycles``
  equal to the ISS prediction exactly (with the per-instruction breakdown of any difference logged);
  with stalls, at least the stall-free prediction. A stall run draws its idle pixels and
  back-pressured logits from the printed seed and always has at least one of each (the first pixel
  offered and the first logit are always held back), so it can never pass without stalling.

The accelerator spends most cycles computing with both streams idle, so the driver and the
monitors sleep on the interface's own edges (``ready`` of pixels rising, ``logits.valid`` rising,
``dbg_instr_done`` rising) and only step clock by clock while a transfer can happen: a cocotb
wake-up per clock cycle would cost more than the simulation itself.
"""

from __future__ import annotations

import pickle

import cocotb
import numpy as np
from amaranth.hdl import signed
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, RisingEdge, with_timeout

from spikegate.compiler import iss
from spikegate.machine.program import OP_CONV, OP_HEAD, OP_LIF, OPCODES
from spikegate.hw.accel_interface import logit_stream
from spikegate.rtl_tests.tb_streams import PERIOD_NS, TB, Codec


class AccelTB(TB):
    def __init__(self, dut, name, *, idle=0.0, backpressure=0.0):
        super().__init__(dut, name=name)
        with open(self.config["case"], "rb") as f:
            case = pickle.load(f)
        self.prog = prog = case["program"]
        self.images = np.asarray(case["pixels"], dtype=np.int64)
        self.golden = case.get("golden")
        # ISS results the pytest side already computed, by image bytes (the reference is still
        # chosen by what the DUT accepted; an image not in the cache is run here)
        self.iss_cache = dict(case.get("iss", {}))
        self.npix = prog.num_pixels
        self.K = prog.num_classes
        self.idle, self.backpressure = idle, backpressure
        self.idle_cycles = self.backpressure_cycles = 0     # stalls drawn (the first of each forced)
        self.pix_codec = Codec(signed(prog.pixel_bits))
        self.logit_codec = Codec(logit_stream(prog.logit_bits).members["payload"].shape)
        self.queue: list[int] = []
        self.accepted: list[int] = []
        self.first_pixel_time: list[int] = []
        self.expected: list[iss.RunResult] = []    # ISS results of the images the DUT accepted
        self.logits: list[dict] = []
        self.cycles_out: list[int] = []
        self.dbg: list[tuple[int, int, int]] = []   # (cycle, tag, spikes)
        self._more = Event()
        self._logits_seen = Event()

    async def start(self, reset_cycles: int = 2):
        # the simulator's own clock (not a Python coroutine): the clock costs no cocotb wake-ups
        Clock(self.clk, PERIOD_NS, unit="ns", impl="gpi").start()
        self.dut.rst.value = 1
        self.dut.pixels__valid.value = 0
        self.dut.logits__ready.value = 0
        await ClockCycles(self.clk, reset_cycles)
        self.dut.rst.value = 0
        await RisingEdge(self.clk)
        cocotb.start_soon(self._pixel_driver())
        cocotb.start_soon(self._logit_sink())
        cocotb.start_soon(self._debug_monitor())

    # ------------------------------------------------------------------ pixels
    def send(self, images):
        for img in images:
            self.queue.extend(int(v) for v in img.reshape(-1))
        self._more.set()

    async def _pixel_driver(self):
        dut, rng = self.dut, self.rng
        while True:
            if not self.queue:
                self._more.clear()
                await self._more.wait()
            if not int(dut.pixels__ready.value):
                await RisingEdge(dut.pixels__ready)
            # INPUT is running: one transfer per clock edge while valid and ready
            while self.queue and int(dut.pixels__ready.value):
                offer = not (self.idle and (self.idle_cycles == 0 or rng.random() < self.idle))
                self.idle_cycles += not offer
                if offer:
                    dut.pixels__payload.value = self.pix_codec.pack(self.queue[0])
                dut.pixels__valid.value = int(offer)
                await RisingEdge(self.clk)
                # (values read right after an edge are the ones the edge saw)
                if offer and int(dut.pixels__ready.value):
                    self._accept(self.queue.pop(0))
                    if len(self.accepted) % self.npix == 0:
                        break               # INPUT's ``ready`` falls after its last pixel
            dut.pixels__valid.value = 0
            await RisingEdge(self.clk)

    def _accept(self, value):
        if len(self.accepted) % self.npix == 0:
            self.first_pixel_time.append(self.cycle())
        self.accepted.append(self.pix_codec.unpack(value))
        if len(self.accepted) % self.npix == 0:
            self.expected.append(self.reference(np.array(self.accepted[-self.npix:], dtype=np.int64)))

    def reference(self, img):
        key = np.asarray(img, dtype=np.int64).reshape(-1).tobytes()
        if key not in self.iss_cache:
            self.iss_cache[key] = iss.run(self.prog, np.asarray(img).reshape(-1))
        return self.iss_cache[key]

    # ------------------------------------------------------------------ logits
    async def _logit_sink(self):
        dut, rng = self.dut, self.rng
        while True:
            if not int(dut.logits__valid.value):
                dut.logits__ready.value = 0
                await RisingEdge(dut.logits__valid)
            ready = not (self.backpressure and (self.backpressure_cycles == 0 or rng.random() < self.backpressure))
            self.backpressure_cycles += not ready
            dut.logits__ready.value = int(ready)
            await RisingEdge(self.clk)
            if ready and int(dut.logits__valid.value):
                item = self.logit_codec.unpack(int(dut.logits__payload.value))
                self.logits.append(item)
                if item["last"]:
                    dut.logits__ready.value = 0
                    await ClockCycles(self.clk, 2)
                    assert int(dut.busy.value) == 0, "busy still high after the last logit"
                    self.cycles_out.append(int(dut.cycles.value))
                    self._logits_seen.set()

    async def wait_images(self, n_images, timeout_cycles):
        async def enough():
            while len(self.cycles_out) < n_images:
                self._logits_seen.clear()
                await self._logits_seen.wait()
        await with_timeout(enough(), timeout_cycles * PERIOD_NS, "ns")
        await ClockCycles(self.clk, 4)

    # ------------------------------------------------------------------ debug
    async def _debug_monitor(self):
        dut = self.dut
        while True:
            await RisingEdge(dut.dbg_instr_done)
            await RisingEdge(self.clk)      # sample the pulse's cycle at its closing edge
            self.dbg.append((self.cycle(), int(dut.dbg_tag.value), int(dut.dbg_spikes.value)))

    # ------------------------------------------------------------------ scoreboard
    def check(self, which, *, exact_cycles: bool):
        """The DUT's ``i``-th image was ``self.images[which[i]]``."""
        prog, K, log = self.prog, self.K, self.dut._log
        L = len(prog.instrs)
        assert len(self.expected) == len(which), f"{len(self.expected)} images accepted, {len(which)} sent"
        report = []
        for i, src in enumerate(which):
            exp = self.expected[i]
            sent = self.images[src].reshape(-1)
            assert np.array_equal(np.array(self.accepted[i * self.npix:(i + 1) * self.npix]), sent), \
                f"image {i}: the DUT accepted other pixels than were sent"
            items = self.logits[i * K:(i + 1) * K]
            got = np.array([it["value"] for it in items], dtype=np.int64)
            lasts = [it["last"] for it in items]
            assert lasts == [0] * (K - 1) + [1], f"image {i}: last flags {lasts}"
            assert np.array_equal(got, exp.logits), f"image {i}: logits {got.tolist()} != ISS {exp.logits.tolist()}"
            if self.golden is not None:
                gold = np.asarray(self.golden[src], dtype=np.int64)
                assert np.array_equal(got, gold), f"image {i}: logits {got.tolist()} != golden {gold.tolist()}"
            recs = self.dbg[i * L:(i + 1) * L]
            assert [r[1] for r in recs] == [ins.tag for ins in prog.instrs], f"image {i}: instruction order"
            for (_, _, spikes), ins in zip(recs, prog.instrs):
                if ins.opcode == OP_LIF:
                    assert spikes == exp.spike_counts[ins.name], \
                        f"image {i}: {ins.name}: {spikes} spikes, ISS {exp.spike_counts[ins.name]}"
            measured, predicted = self.cycles_out[i], exp.cycles
            err = (measured - predicted) / predicted
            report.append((measured, predicted))
            log.info("image %d: logits %s; cycles measured %d, predicted %d (%+.3f%%)", i, got.tolist(),
                     measured, predicted, 100 * err)
            if exact_cycles and measured != predicted:
                # per instruction: between done pulses (the first from the first pixel)
                rtl = [b[0] - a[0] for a, b in zip(recs, recs[1:])]
                rtl = [measured - sum(rtl)] + rtl
                for ins, c_rtl, c_iss in zip(prog.instrs, rtl, exp.cycles_per_instr):
                    if c_rtl != c_iss:
                        log.warning("  %3d %-6s %-40s rtl %6d iss %6d", ins.tag, OPCODES[ins.opcode], ins.name,
                                    c_rtl, c_iss)
            if exact_cycles:
                assert measured == predicted, f"image {i}: cycles {measured} vs predicted {predicted}"
            else:
                assert measured >= predicted, f"image {i}: cycles {measured} < stall-free prediction {predicted}"
        return report


def timeout_for(tb, n):
    est = tb.reference(tb.images[0]).cycles
    return n * (3 * est + 1000)


@cocotb.test()
async def accelerator_back_to_back(dut):
    """Images back to back, no stalls: exact logits, spike counts and cycles."""
    tb = AccelTB(dut, "back_to_back")
    await tb.start()
    assert int(dut.busy.value) == 0
    which = list(range(int(tb.config.get("images", len(tb.images)))))
    tb.send(tb.images[which])
    await tb.wait_images(len(which), timeout_for(tb, len(which)))
    rep = tb.check(which, exact_cycles=True)
    dut._log.info("cycles: %d of %d images exactly as predicted", sum(m == p for m, p in rep), len(rep))


@cocotb.test()
async def accelerator_with_stalls(dut):
    """Random idle pixels and random logit back-pressure: the same logits, more cycles."""
    tb = AccelTB(dut, "stalls", idle=0.3, backpressure=0.4)
    n = int(tb.config.get("stall_images", 1))
    assert n >= 1, "every accelerator run includes a stall run (test_accelerator.py RUNS)"
    await tb.start()
    which = list(range(len(tb.images)))[-n:]
    tb.send(tb.images[which])
    await tb.wait_images(len(which), 2 * timeout_for(tb, len(which)))
    tb.check(which, exact_cycles=False)
    dut._log.info("stalls: %d idle pixel cycles, %d back-pressured logit cycles", tb.idle_cycles,
                  tb.backpressure_cycles)
    assert tb.idle_cycles > 0 and tb.backpressure_cycles > 0


@cocotb.test()
async def accelerator_reset_mid_inference(dut):
    """Resets in the middle of inferences: in the first CONV's scatter, and after HEAD (the ACC
    banks then hold the whole logits). The next image's logits and cycles are exact: the
    sequencer clears the ACC banks after a reset."""
    tb = AccelTB(dut, "reset")
    if not tb.config.get("reset_test") or len(tb.images) < 2:
        dut._log.info("reset test not configured")
        return
    await tb.start()
    prog = tb.prog
    assert prog.instrs[1].opcode == OP_CONV and prog.instrs[-2].opcode == OP_HEAD
    conv = prog.instrs[1]

    async def reset():
        assert int(dut.busy.value) == 1 and not tb.logits, "an inference should be running"
        dut.rst.value = 1
        await ClockCycles(tb.clk, 2)
        dut.rst.value = 0
        for record in (tb.accepted, tb.expected, tb.first_pixel_time, tb.logits, tb.cycles_out, tb.dbg):
            record.clear()
        await RisingEdge(tb.clk)
        assert int(dut.busy.value) == 0
        # white box: once INPUT runs, every ACC word is zero again (docs/accelerator.md)
        await RisingEdge(dut.pixels__ready)
        for p in range(prog.lanes):
            bank = getattr(dut.mems, f"acc{p}")     # hw/accel_memories.py, instance "mems"
            dirty = [i for i in range(prog.acc_words) if int(bank[i].value) != 0]
            assert not dirty, f"ACC bank {p} words {dirty[:8]} not cleared after the reset"

    tb.send(tb.images[[0]])
    while len(tb.dbg) < 1:                      # INPUT done: the first CONV starts
        await RisingEdge(tb.clk)
    await ClockCycles(tb.clk, 5 + conv.cin * conv.h * conv.w // 2)
    await reset()
    tb.send(tb.images[[0]])
    while len(tb.dbg) < len(prog.instrs) - 1:  # HEAD done: the logits are in the ACC banks
        await RisingEdge(tb.clk)
    await reset()
    tb.send(tb.images[[1]])
    await tb.wait_images(1, timeout_for(tb, 1))
    tb.check([1], exact_cycles=True)
