"""cocotb tests of the whole SFA accelerator (:class:`spikegate.hw.accelerator.Accelerator`).

The design's Program (with the images, and the golden model's logits when the Program was compiled
from an IR) comes from a pickle written by ``test_accelerator.py``; its path is in the test config.

* Pixel driver + input monitor: drives ``pixels`` (optionally with random idle cycles) and records
  what the DUT accepted; every accepted image goes to the reference.
* Logits sink + output monitor: drives ``logits.ready`` (optionally with random back-pressure) and
  records every accepted logit; after an image's last logit it reads the ``cycles`` output.
* Debug monitor: every ``dbg_instr_done`` pulse with ``dbg_tag`` and ``dbg_spikes``.
* Reference: the ISS (``compiler/iss.py``) on each image the DUT accepted: logits, total cycles,
  cycles per instruction, spikes per LIF instruction (and per CONV with ``fire``); and the golden model's logits.
* Scoreboard: logits exactly equal (ISS and golden), ``last`` only on the final class, every
  instruction done in program order, every LIF's (and CONV-with-fire's) spike count equal; on stall-free runs ``cycles``
  equal to the ISS prediction exactly (with the per-instruction breakdown of any difference logged);
  with stalls, at least the stall-free prediction. A stall run draws its idle pixels and
  back-pressured logits from the printed seed and always has at least one of each (the first pixel
  offered and the first logit are always held back), so it can never pass without stalling.
* Budgets: every wait on the DUT is bounded by a cycle budget from the cycle model (the ISS's
  prediction of each image's cycles, which a stall-free run equals exactly; :func:`budget_for`),
  so a hung design fails within a few times an inference's length with one ``TIMEOUT:`` line, and
  ``accelerator_hang_fails_fast`` shows that it does.

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
from cocotb.triggers import ClockCycles, Event, RisingEdge

from spikegate.compiler import iss
from spikegate.machine.program import OP_CONV, OP_HEAD, OP_LIF, OPCODES
from spikegate.hw.accel_interface import logit_stream
from spikegate.rtl_tests.tb_streams import PERIOD_NS, TB, TIMEOUT_PREFIX, Codec, within


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

    async def wait_images(self, n_images, timeout_cycles, why=None):
        """Until ``n_images`` results are out; at most ``timeout_cycles`` (:func:`budget_for`)."""
        async def enough():
            while len(self.cycles_out) < n_images:
                self._logits_seen.clear()
                await self._logits_seen.wait()
        try:
            await within(enough(), timeout_cycles, f"the results of {n_images} image(s)", why or BUDGET_WHY)
        except AssertionError as e:
            raise AssertionError(f"{e}; {len(self.cycles_out)} result(s) out, {len(self.accepted)} pixels "
                                 f"accepted, {len(self.dbg)} instructions done") from None
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
                # a LIF's spikes, or those a CONV with fire fired for the LIF it fused (ins.fires)
                fired = ins.name if ins.opcode == OP_LIF else ins.fires if ins.opcode == OP_CONV and ins.fire else None
                if fired is not None:
                    assert spikes == exp.spike_counts[fired], \
                        f"image {i}: {ins.name}: {spikes} spikes, ISS {exp.spike_counts[fired]}"
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


BUDGET_FACTOR, BUDGET_SLACK = 3, 1000
BUDGET_WHY = f"{BUDGET_FACTOR}x the cycle model's prediction + {BUDGET_SLACK} per image"


def budget_for(tb, which, *, stalls: bool = False) -> int:
    """Cycle budget of the images ``which`` (indices into ``tb.images``): the cycle model's cycles
    of each (the ISS's, which a stall-free run equals exactly) times ``BUDGET_FACTOR`` plus
    ``BUDGET_SLACK``, summed; twice that with idle pixels and back-pressure (at most 30% / 40% of
    the cycles of the two streams, which are a small part of an inference)."""
    predicted = sum(tb.reference(tb.images[i]).cycles for i in which)
    return (1 + stalls) * (BUDGET_FACTOR * predicted + BUDGET_SLACK * len(which))


@cocotb.test()
async def accelerator_back_to_back(dut):
    """Images back to back, no stalls: exact logits, spike counts and cycles."""
    tb = AccelTB(dut, "back_to_back")
    await tb.start()
    assert int(dut.busy.value) == 0
    which = list(range(int(tb.config.get("images", len(tb.images)))))
    tb.send(tb.images[which])
    await tb.wait_images(len(which), budget_for(tb, which))
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
    await tb.wait_images(len(which), budget_for(tb, which, stalls=True))
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
        await within(RisingEdge(dut.pixels__ready), BUDGET_SLACK, "pixels.ready after a reset",
                     "INPUT starts a few cycles after a reset")
        for p in range(prog.lanes):
            bank = getattr(dut.mems, f"acc{p}")     # hw/accel_memories.py, instance "mems"
            dirty = [i for i in range(prog.acc_words) if int(bank[i].value) != 0]
            assert not dirty, f"ACC bank {p} words {dirty[:8]} not cleared after the reset"

    per_instr = tb.reference(tb.images[0]).cycles_per_instr
    tb.send(tb.images[[0]])
    await tb.until(lambda: len(tb.dbg) >= 1, BUDGET_FACTOR * per_instr[0] + BUDGET_SLACK,
                   "INPUT done", BUDGET_WHY)    # the first CONV starts
    await ClockCycles(tb.clk, 5 + conv.cin * conv.h * conv.w // 2)
    await reset()
    tb.send(tb.images[[0]])
    await tb.until(lambda: len(tb.dbg) >= len(prog.instrs) - 1,   # HEAD done: the logits are in ACC
                   BUDGET_FACTOR * sum(per_instr[:-1]) + BUDGET_SLACK, "HEAD done", BUDGET_WHY)
    await reset()
    tb.send(tb.images[[1]])
    await tb.wait_images(1, budget_for(tb, [1]))
    tb.check([1], exact_cycles=True)


@cocotb.test()
async def accelerator_hang_fails_fast(dut):
    """The budget works: waiting for an image with a budget below the cycle model's prediction
    (what a hung or too-slow design looks like to the testbench) fails at the budget, with the
    ``TIMEOUT:`` line, not later and not silently."""
    tb = AccelTB(dut, "hang")
    if not tb.config.get("timeout_test"):
        dut._log.info("timeout test not configured")
        return
    await tb.start()
    predicted = tb.reference(tb.images[0]).cycles
    budget = predicted // 2
    tb.send(tb.images[[0]])
    t0 = tb.cycle()
    try:
        await tb.wait_images(1, budget, "half the cycle model's prediction, on purpose")
    except AssertionError as e:
        message = str(e)
    else:
        raise AssertionError(f"an image predicted at {predicted} cycles finished within {budget}")
    waited = tb.cycle() - t0
    dut._log.info("budget %d of %d predicted cycles: failed after %d cycles with %r", budget, predicted,
                  waited, message)
    assert message.startswith(TIMEOUT_PREFIX) and f"within {budget} cycles" in message, message
    assert waited == budget, f"the timeout fired after {waited} cycles, not at the budget {budget}"
    assert not tb.cycles_out, "an image finished although the budget was too small for it"
