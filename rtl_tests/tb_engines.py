"""cocotb tests of each accelerator engine alone against one ISS step (``compiler/iss.py: execute``).

The design is an :class:`~spikegate.rtl_tests.engine_harness.EngineHarness`: one engine with its
memories wired as the accelerator wires them. The pickle written by ``test_engines.py`` holds the
program and, for every instruction the engine runs (on each image), the ISS's memory state before
and after it, its cycles and its stream data.

* Loader: before an instruction, writes into ACT, SPK and the ACC banks (their ``_load`` ports,
  all at once) every word where the memory (as the testbench knows it: zero after configuration,
  then what was loaded and written) differs from the ISS's state before.
* Sequencer: drives ``instr``, then ``drv`` and ``start``, as the accelerator's DEC1/DEC2 do;
  waits for ``done`` within a cycle budget (a hung engine fails fast); then presents the program's
  next instruction as the sequencer's FETCH/DEC1 would, while the last writes land.
* Write monitors: every write each memory's port gets from the engine (``_wmon``), with its cycle.
* Streams: a pixel driver with random idle cycles (INPUT) and a logit sink with random
  back-pressure (OUTPUT), with a monitor of every transfer and every stalled cycle.
* Scoreboard: the state before with the recorded writes applied equals the ISS's state after,
  word for word, in every memory; the logits (values, ``last``) and LIF's spike count equal the
  ISS's; the engine's cycles (``start`` to ``done``) equal the ISS's less the sequencer's FETCH
  (INPUT: from the first pixel), plus the cycles the streams stalled; no write lands after the
  cycle the next instruction's engine could start in.

The steps run in an order drawn from the seed (an engine must not depend on what it ran
before); INPUT and OUTPUT run each step a second time with the streams stalling.
"""

from __future__ import annotations

import pickle

import cocotb
import numpy as np
from amaranth.hdl import signed
from cocotb.triggers import ClockCycles, RisingEdge

from spikegate.compiler import cycle_model as cm
from spikegate.hw.accel_interface import logit_stream
from spikegate.hw.sfa_common import derived_layout, instr_layout
from spikegate.machine.config import MachineConfig
from spikegate.machine.program import OP_INPUT, OP_LIF, OP_OUTPUT, OPCODES, derived_values
from spikegate.rtl_tests.engine_harness import ram_depth, ram_shape
from spikegate.rtl_tests.cocotb_util import tb_config
from spikegate.rtl_tests.tb_streams import TB, Codec

# the cycles from ``done`` to the next engine's start in the accelerator (FETCH, DEC1, DEC2, DEC3):
# an instruction's last write must land by then
SEQ_GAP = cm.FETCH
LATE_WINDOW = 8         # cycles after that watched for writes that land too late
STALL = 0.3             # idle / back-pressure probability of the stalled runs


class WriteMonitor:
    """Records ``(cycle, addr, data)`` of every write a memory's port gets from the engine."""

    def __init__(self, tb, prefix: str, shape):
        self.tb, self.codec = tb, Codec(shape)
        self.en, self.addr, self.data = (getattr(tb.dut, f"{prefix}__{n}") for n in ("en", "addr", "data"))
        self.writes: list[tuple[int, int, int]] = []
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.tb.clk)
            if int(self.en.value):
                self.writes.append((self.tb.cycle(), int(self.addr.value), self.codec.unpack(int(self.data.value))))


class HandshakeMonitor:
    """Records every transfer ``(cycle, payload)`` of a stream, and the cycles it stalled (valid
    without ready: ``held``; ready without valid: ``starved``)."""

    def __init__(self, tb, prefix: str, shape):
        self.tb, self.codec = tb, Codec(shape)
        self.valid, self.ready, self.payload = (getattr(tb.dut, f"{prefix}__{n}")
                                                for n in ("valid", "ready", "payload"))
        self.clear()
        cocotb.start_soon(self._run())

    def clear(self):
        self.transfers: list[tuple[int, object]] = []
        self.held: list[int] = []
        self.starved: list[int] = []

    async def _run(self):
        while True:
            await RisingEdge(self.tb.clk)
            v, r = int(self.valid.value), int(self.ready.value)
            if v and r:
                self.transfers.append((self.tb.cycle(), self.codec.unpack(int(self.payload.value))))
            elif v:
                self.held.append(self.tb.cycle())
            elif r:
                self.starved.append(self.tb.cycle())


class PixelDriver:
    """Drives the pixel stream from a queue; ``idle`` is the probability of an idle cycle."""

    def __init__(self, tb, prefix: str, shape):
        self.tb, self.codec, self.idle = tb, Codec(shape), 0.0
        self.valid, self.ready, self.payload = (getattr(tb.dut, f"{prefix}__{n}")
                                                for n in ("valid", "ready", "payload"))
        self.queue: list[int] = []
        self.valid.value = 0
        cocotb.start_soon(self._run())

    async def _run(self):
        offered = False
        while True:
            await RisingEdge(self.tb.clk)
            if offered and int(self.ready.value):
                self.queue.pop(0)               # taken at this edge
            offered = bool(self.queue) and not (self.idle and self.tb.rng.random() < self.idle)
            if offered:
                self.payload.value = self.codec.pack(self.queue[0])
            self.valid.value = int(offered)


class LogitSink:
    """Drives ``ready`` of the logit stream; ``backpressure`` is the probability of ready low."""

    def __init__(self, tb, prefix: str):
        self.tb, self.backpressure = tb, 0.0
        self.ready = getattr(tb.dut, f"{prefix}__ready")
        self.ready.value = 1
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.tb.clk)
            self.ready.value = int(not (self.backpressure and self.tb.rng.random() < self.backpressure))


class EngineTB(TB):
    """The harness' driver (loader, sequencer, streams), its monitors and the scoreboard."""

    def __init__(self, dut):
        super().__init__(dut, name=tb_config().get("engine", ""))
        with open(self.config["case"], "rb") as f:
            case = pickle.load(f)
        self.prog = prog = case["program"]
        self.steps = case["steps"]
        self.cfg = cfg = MachineConfig.from_program(prog)
        self.rams, self.written = self.config["rams"], self.config["written"]
        self.banks = {m: cfg.lanes if m == "acc" else 1 for m in self.rams}
        self.instr_codec, self.drv_codec = Codec(instr_layout(cfg)), Codec(derived_layout(cfg))
        self.monitors = {m: [WriteMonitor(self, self._prefix(m, "wmon", b), ram_shape(cfg, m))
                             for b in range(self.banks[m])] for m in self.written}
        self.load_codecs = {m: Codec(ram_shape(cfg, m)) for m in self.rams}
        # what each memory holds: zeros after configuration (their ``init``), then what was loaded
        # and written
        self.shadow = {m: [np.zeros(ram_depth(cfg, m), dtype=np.int64) for _ in range(self.banks[m])]
                       for m in self.rams}
        self.pixels = self.logits = None
        if "pixels" in self.config["streams"]:
            self.pixel_driver = PixelDriver(self, "pixels", signed(cfg.pixel_bits))
            self.pixels = HandshakeMonitor(self, "pixels", signed(cfg.pixel_bits))
        if "logits" in self.config["streams"]:
            self.logit_sink = LogitSink(self, "logits")
            self.logits = HandshakeMonitor(self, "logits", logit_stream(cfg.logit_bits).members["payload"].shape)
        self.failures: list[str] = []

    @staticmethod
    def _prefix(mem, kind, bank):
        return f"{mem}_{kind}__{bank}" if mem == "acc" else f"{mem}_{kind}"

    async def start(self):
        self.dut.start.value = 0
        self.dut.instr.value = 0
        self.dut.drv.value = 0
        for m in self.rams:
            for b in range(self.banks[m]):
                getattr(self.dut, self._prefix(m, "load", b) + "__en").value = 0
        await super().start()

    # ------------------------------------------------------------------ state
    def _image(self, state, mem):
        """The words of ``mem`` (per bank) in ``state`` (an ISS state's arrays), padded to the memory."""
        depth = ram_depth(self.cfg, mem)
        arr = np.asarray(state[mem], dtype=np.int64).reshape(self.banks[mem], -1)
        out = np.zeros((self.banks[mem], depth), dtype=np.int64)
        out[:, :arr.shape[1]] = arr
        return out

    async def load(self, state):
        """Write the memories' words that differ from ``state``, every memory (and ACC bank) on its
        own load port at once."""
        tasks = []
        for m in self.rams:
            want = self._image(state, m)
            for b in range(self.banks[m]):
                addrs = np.flatnonzero(self.shadow[m][b] != want[b])
                if len(addrs):
                    tasks.append(cocotb.start_soon(self._write_words(
                        self._prefix(m, "load", b), self.load_codecs[m], [(int(a), int(want[b][a])) for a in addrs])))
                self.shadow[m][b] = want[b].copy()
        for task in tasks:
            await task

    async def _write_words(self, prefix, codec, words):
        en, addr, data = (getattr(self.dut, f"{prefix}__{n}") for n in ("en", "addr", "data"))
        for a, v in words:
            en.value, addr.value, data.value = 1, a, codec.pack(v)
            await RisingEdge(self.clk)
        en.value = 0

    # ------------------------------------------------------------------ one instruction
    def _encode(self, ins):
        instr = self.instr_codec.pack({f: int(getattr(ins, f)) for f, w in self.cfg.field_bits})
        names = [n for n, _ in self.cfg.derived_bits]
        drv = derived_values(ins, self.cfg.lanes)
        return instr, self.drv_codec.pack({n: drv[n] for n in names})

    async def run_step(self, step, stall: bool):
        prog, ins = self.prog, self.prog.instrs[step["pc"]]
        what = f"pc {step['pc']} {OPCODES[ins.opcode]} (image {step['image']}{', stalled' if stall else ''})"
        await self.load(step["before"])
        await ClockCycles(self.clk, self.rng.randint(1, 4))
        for mons in self.monitors.values():
            for mon in mons:
                mon.writes.clear()
        if ins.opcode == OP_INPUT:
            self.pixel_driver.idle = STALL if stall else 0.0
            self.pixel_driver.queue.extend(int(v) for v in np.asarray(step["pixels"]).reshape(-1))
        if ins.opcode == OP_OUTPUT:
            self.logit_sink.backpressure = STALL if stall else 0.0
        for mon in (self.pixels, self.logits):
            if mon is not None:
                mon.clear()
        instr, drv = self._encode(ins)
        self.dut.instr.value = instr                       # DEC1
        await RisingEdge(self.clk)
        self.dut.drv.value = drv                           # DEC2 (start's flip-flop)
        self.dut.start.value = 1
        await RisingEdge(self.clk)
        self.dut.start.value = 0
        t_start = self.cycle()                             # the engine's start is high in the next cycle
        expect = step["cycles"] - (0 if ins.opcode == OP_INPUT else cm.FETCH)
        budget = (10 if stall else 2) * expect + 100
        k = 0
        while True:
            await RisingEdge(self.clk)
            k += 1
            if k > 1 and int(self.dut.done.value):       # the sequencer looks at done from RUN on
                break
            if k > budget:
                raise AssertionError(f"{what}: no done within {budget} cycles (ISS: {expect}); engine hung")
        t_done = self.cycle()
        # FETCH, DEC1 (the next instruction's fields), DEC2 (its products), DEC3, and a watch for
        # writes that land later than that
        nxt_instr, nxt_drv = self._encode(prog.instrs[(step["pc"] + 1) % len(prog.instrs)])
        await RisingEdge(self.clk)
        self.dut.instr.value = nxt_instr
        await RisingEdge(self.clk)
        self.dut.drv.value = nxt_drv
        await ClockCycles(self.clk, SEQ_GAP - 2 + LATE_WINDOW)
        self.check(step, ins, what, stall, t_start, t_done, k - 1, expect)

    # ------------------------------------------------------------------ scoreboard
    def check(self, step, ins, what, stall, t_start, t_done, cycles, expect):
        fail = self.failures.append
        for m in self.written:
            after = self._image(step["after"], m)
            for b, mon in enumerate(self.monitors[m]):
                got = self.shadow[m][b].copy()
                late = [w for w in mon.writes if w[0] > t_done + SEQ_GAP or w[0] <= t_start]
                if late:
                    fail(f"{what}: {m}{b if m == 'acc' else ''} written outside the instruction "
                         f"(start {t_start}, done {t_done}): {late[:4]}")
                for _, a, v in mon.writes:
                    got[a] = v
                bad = np.flatnonzero(got != after[b])
                if len(bad):
                    before = self.shadow[m][b]
                    fail(f"{what}: {m}{b if m == 'acc' else ''} differs from the ISS at {len(bad)} words, "
                         "(addr, before, ISS, engine): " +
                         ", ".join(f"({a}, {before[a]}, {after[b][a]}, {got[a]})" for a in bad[:6]))
                self.shadow[m][b] = got
        if ins.opcode == OP_LIF:
            spikes = int(self.dut.spikes.value)
            if spikes != step["spikes"]:
                fail(f"{what}: spike count {spikes}, ISS {step['spikes']}")
        stalls = 0
        if ins.opcode == OP_INPUT:
            first = self.pixels.transfers[0][0] if self.pixels.transfers else t_done
            stalls = sum(1 for c in self.pixels.starved if first <= c <= t_done)
            cycles = t_done - first + 1           # INPUT's count starts at its first pixel
            if len(self.pixels.transfers) != len(np.asarray(step["pixels"]).reshape(-1)):
                fail(f"{what}: {len(self.pixels.transfers)} pixels accepted")
        if ins.opcode == OP_OUTPUT:
            stalls = sum(1 for c in self.logits.held if t_start < c <= t_done)
            got = [p["value"] for _, p in self.logits.transfers]
            last = [p["last"] for _, p in self.logits.transfers]
            want = [int(v) for v in step["logits"]]
            if got != want or last != [0] * (len(want) - 1) + [1]:
                fail(f"{what}: logits {got} (last {last}), ISS {want}")
        writes = [w for mons in self.monitors.values() for mon in mons for w in mon.writes]
        lag = max(w[0] for w in writes) - t_done if writes else None
        self.dut._log.info("%s: %d cycles (ISS %d + %d stalled), %s; last write at done%+d", what, cycles, expect,
                           stalls, ", ".join(f"{m} {sum(len(x.writes) for x in mons)} writes"
                                             for m, mons in self.monitors.items()), lag or 0)
        if cycles != expect + stalls:
            fail(f"{what}: {cycles} cycles from start to done, ISS {expect} + {stalls} stalled")


@cocotb.test()
async def engine_matches_iss_steps(dut):
    """Every step of the engine's opcodes, in a seeded random order; INPUT/OUTPUT also stalled."""
    tb = EngineTB(dut)
    await tb.start()
    runs = [(s, False) for s in tb.steps]
    if tb.pixels is not None or tb.logits is not None:
        runs += [(s, True) for s in tb.steps]
    tb.rng.shuffle(runs)
    for step, stall in runs:
        await tb.run_step(step, stall)
    assert not tb.failures, f"{len(tb.failures)} mismatches with the ISS:\n" + "\n".join(tb.failures)
