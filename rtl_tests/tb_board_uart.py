"""cocotb half of ``rtl_tests/test_board_uart.py``: a simulated host talks to the whole board top
(``BoardTop``: power-on reset, I/O buffers, ``UARTAccelerator`` around the real compiled accelerator)
over its UART pins, with the host client users run (``spikegate.host.Device``).

* **Host**: ``Device`` runs unmodified in a cocotb bridge thread, on :class:`SimSerial`, a
  pyserial-like port (``write``, ``read`` with a short timeout, ``in_waiting``,
  ``reset_input_buffer``) whose calls drive the board's RX pin and sample its TX pin
  (``UARTSource``/``UARTSink``, ``divisor`` cycles per bit). Raw frames (corrupt, truncated) are
  built with ``spikegate.host.encode_frame`` and answered frames parsed with its ``FrameParser``.
* **Monitors** (passive, on probes: inner signals the pytest half makes top-level outputs): the
  core's ``pixels`` and ``logits`` streams (cycle and payload of every transfer), the core's
  ``cycles`` output when ``busy`` falls, the sync-domain reset; and the board's "running" LED.
* **Scoreboard**: per inference, the pixels the core accepted are the image the host loaded; the
  logits it produced (``last`` on the K-th only) and the logits in the RESULT frame equal the golden
  model's; the class is their first maximum; the cycle count in the RESULT equals the core's
  ``cycles`` output, the span the stream monitors measured (first pixel to last logit, inclusive)
  and the ISS's prediction, exactly (the host link streams pixels back to back and always takes
  logits, so the run is stall-free). The golden logits and ISS cycles come in the config.

Runtime weights (``config["weights"]``, the iCEBreaker build with WMEM in SPRAM): until the host has
uploaded ``weights.bin`` START answers WEIGHTS_NOT_LOADED; ``runtime_weights`` uploads it with
``Device.load_weights`` (several chunks, each acknowledgement checked) after provoking BAD_OFFSET
and a corrupted chunk. A build with its weights in the bitstream answers LOAD_WEIGHTS with
UNKNOWN_CMD.

The tests share one simulation and one board: there is no reset pin, the power-on reset happens once
(first test), and the later tests rely on the state the earlier ones leave (weights uploaded, a
result exists, an image is loaded). Each test waits out the inter-byte timeout first, so a failed
predecessor cannot leave a half-sent frame behind.
"""

from __future__ import annotations

import random
import zlib

import cocotb
from cocotb.clock import Clock
from cocotb.simtime import get_sim_time
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, Edge, Event, FallingEdge, ReadOnly, RisingEdge, Timer

from spikegate.host import Device, DeviceError, FrameParser, encode_frame, encode_pixels
from spikegate.machine.host_protocol import ERROR_RESPONSE, Cmd, Err
from spikegate.rtl_tests.cocotb_util import UARTSink, UARTSource, tb_config, tb_seed

HOST_TIMEOUT_S = 600.0     # wall-clock limit of the host client; the port's own guard counts cycles


def _signed(raw: int, bits: int) -> int:
    raw &= (1 << bits) - 1
    return raw - (1 << bits) if raw >> (bits - 1) else raw


class Board:
    """The DUT's pins and probes, the clock, and the monitors (one per test)."""

    def __init__(self, dut, test: str):
        self.dut = dut
        self.cfg = cfg = tb_config()
        seed = tb_seed() ^ zlib.crc32(test.encode()) & 0xFFFF
        dut._log.info(f"{test}: seed {seed}")
        self.rng = random.Random(seed)
        ports = cfg["ports"]
        probe = {k: getattr(dut, v) for k, v in cfg["probes"].items()}
        self.osc = getattr(dut, ports["clk"])
        # Behind a PLL (``config["pll"]``, the board's real clocking with ``sim_pll``'s stub) the
        # accelerator's clock is the PLL's output, measured here (period and first edge); the
        # oscillator runs until the PLL has seen it (the stub measures it once, then runs on its
        # own; stopping it halves the simulator's events).
        self.pll = cfg.get("pll")
        self.clk = probe["clk"] if self.pll else self.osc
        self.t_zero_ps, self.period_ps = (None, None) if self.pll else (0, None)
        self.rx, self.tx = getattr(dut, ports["rx"]), getattr(dut, ports["tx"])
        self.led_loaded = getattr(dut, ports["loaded"]) if ports.get("loaded") else None
        self.led_running = getattr(dut, ports["running"]) if ports.get("running") else None
        # pin levels of active-low LEDs (the iCEBreaker's) are inverted: the monitors see "lit"
        self.led_invert = {"loaded": ports.get("loaded_invert", False),
                           "running": ports.get("running_invert", False)}
        self.period_ns = cfg["period_ns"]
        self.divisor, self.timeout = cfg["divisor"], cfg["timeout"]
        self.byte_cycles = 10 * self.divisor
        self.pbits, self.lbits = cfg["pixel_bits"], cfg["logit_bits"]
        self.ncls = cfg["num_classes"]
        if not self.pll or get_sim_time("ns") == 0:
            self.osc_clock = Clock(self.osc, self.period_ns, unit="ns")
            self.osc_clock.start()
        if self.pll:
            self.measured = Event()
            cocotb.start_soon(self._measure())
        self.src = TimedUARTSource(self, self.rx)
        self.sink = TimedUARTSink(self, self.tx)
        self.rst = probe["rst"]
        self.pixels = StreamMonitor(self, *(probe[f"pixels_{s}"] for s in ("valid", "ready", "payload")))
        self.logits = StreamMonitor(self, *(probe[f"logits_{s}"] for s in ("valid", "ready", "payload")))
        self.runs = RunMonitor(self, probe["busy"], probe["cycles"])
        self.running_edges = (EdgeMonitor(self, self.led_running, self.led_invert["running"])
                              if self.led_running is not None else None)
        self.port = SimSerial(self)

    def led(self, which: str) -> int | None:
        """The "loaded" or "running" LED: 1 lit, 0 dark, None if the board has none."""
        sig = self.led_loaded if which == "loaded" else self.led_running
        return None if sig is None else int(sig.value) ^ int(self.led_invert[which])

    def cycle(self) -> int:
        if not self.pll:
            return int(round(get_sim_time("ns") / self.period_ns))
        if self.period_ps is None:     # before the PLL's first edges (the LEDs' X -> 0 at time 0)
            return 0
        return int(round((get_sim_time("ps") - self.t_zero_ps) / self.period_ps))

    def next_edge(self) -> int:
        """Behind the PLL: the index of the first rising edge after now (at a falling edge: the
        next one)."""
        return int((get_sim_time("ps") - self.t_zero_ps) // self.period_ps + 1)

    async def _measure(self):
        """The PLL's output: cycle 0 at its first rising edge seen, the period between two."""
        await RisingEdge(self.clk)
        t0 = get_sim_time("ps")
        await RisingEdge(self.clk)
        self.t_zero_ps, self.period_ps = t0, get_sim_time("ps") - t0
        self.measured.set()
        if getattr(self, "osc_clock", None) is not None:
            self.osc_clock.stop()

    async def cycles(self, n: int):
        """Wait ``n`` rising edges of the accelerator clock (as ``ClockCycles``). Behind the PLL,
        long waits (UART bit times at the real divisor: 182 clocks) take one timer to just before
        the n-th edge and that edge, instead of a Python wake-up per clock: the PLL's output is
        periodic, so the n-th edge's time is known once it has been measured."""
        if not self.pll or n < 4:
            await ClockCycles(self.clk, n)
            return
        now = get_sim_time("ps")
        if self.period_ps is None:
            await self.measured.wait()
        period, zero = self.period_ps, self.t_zero_ps
        first = (now - zero) // period + 1              # the first edge after now (index)
        target = zero + (first + n - 1) * period
        await Timer(target - period // 2 - get_sim_time("ps"), unit="ps")
        await RisingEdge(self.clk)
        assert get_sim_time("ps") == target, f"clock edge at {get_sim_time('ps')} ps, expected {target}"

    async def quiesce(self):
        """Wait until any frame a previous test left half-sent has timed out; drop its answer.
        (Not at a real baud rate, ``config["quiesce"]`` off: the 100 ms timeout is millions of
        cycles; there each test starts where the previous one, which passed, left the link.)"""
        if self.cfg.get("quiesce", True):
            await self.cycles(self.timeout + 60 * self.byte_cycles)
        while not self.sink.queue.empty():
            self.sink.queue.get_nowait()
        self.sink.errors.clear()

    # -- the host (runs in bridge threads) ------------------------------------------------------

    def device(self) -> Device:
        return Device(self.port, timeout=HOST_TIMEOUT_S, name="simulated board")

    async def call(self, fn, *args, **kwargs):
        """Run a blocking host call (a ``Device`` method) against the simulation."""
        return await bridge(fn)(*args, **kwargs)

    async def expect_error(self, fn, *args, code: int, cmd: int):
        try:
            got = await self.call(fn, *args)
        except DeviceError as e:
            assert (e.code, e.cmd) == (code, cmd), \
                f"expected ERROR {Err(code).name} for {Cmd(cmd).name}, got {str(e)!r} ({e.code}, {e.cmd:#x})"
        else:
            raise AssertionError(f"expected ERROR {Err(code).name} for {Cmd(cmd).name}, got {got!r}")

    async def exchange(self, data: bytes) -> tuple[int, bytes]:
        """Send raw bytes, return the one frame that answers them (parsed by the host's parser)."""
        return await self.call(_raw_exchange, self.port, data)

    # -- scoreboard -------------------------------------------------------------------------------

    def marks(self) -> tuple[int, int, int]:
        return len(self.pixels.items), len(self.logits.items), len(self.runs.items)

    def check_inference(self, marks, image: dict, result, what: str):
        p0, l0, r0 = marks
        pix, logs, runs = self.pixels.items[p0:], self.logits.items[l0:], self.runs.items[r0:]
        golden = image["golden"]
        accepted = [_signed(v, self.pbits) for _, v in pix]
        assert accepted == image["pixels"], f"{what}: the core accepted other pixels than the host loaded"
        seen = [_signed(v, self.lbits) for _, v in logs]
        lasts = [v >> self.lbits & 1 for _, v in logs]
        assert seen == golden, f"{what}: core logits {seen}, golden {golden}"
        assert lasts == [0] * (self.ncls - 1) + [1], f"{what}: 'last' flags {lasts}"
        assert result.logits == golden, f"{what}: RESULT logits {result.logits}, golden {golden}"
        assert result.cls == golden.index(max(golden)), f"{what}: RESULT class {result.cls}, logits {golden}"
        assert len(runs) == 1, f"{what}: the core finished {len(runs)} runs, expected 1"
        span = logs[-1][0] - pix[0][0] + 1
        assert result.cycles == runs[0][1] == span == image["iss_cycles"], \
            (f"{what}: RESULT cycles {result.cycles}, core cycles output {runs[0][1]}, measured span "
             f"{span}, ISS {image['iss_cycles']}")


def _raw_exchange(port: "SimSerial", data: bytes) -> tuple[int, bytes]:
    port.reset_input_buffer()
    port.write(data)
    parser = FrameParser()
    while True:
        frames = parser.feed(port.read(max(1, port.in_waiting)))
        if frames:
            assert len(frames) == 1 and not parser.pending, f"more than one frame: {frames}"
            assert parser.skipped == 0, f"{parser.skipped} bytes before the response's sync byte"
            return frames[0]


class SimSerial:
    """What ``Device`` needs of a pyserial port, over the simulated pins (call from bridge threads).

    ``read(n)`` waits up to ``poll_cycles`` for ``n`` bytes and returns what came (pyserial with a
    short timeout). Guards: more than ``max_silence`` cycles without a byte in either direction
    while the host waits fails the test (a dead link, in simulated time, not wall time); bytes
    nobody asked for (found by ``reset_input_buffer`` before a request) fail it too, as do UART
    framing errors on TX."""

    def __init__(self, board: Board):
        self.b = board
        self.poll_cycles = 4 * board.byte_cycles
        self.max_silence = board.timeout + 100 * board.byte_cycles
        self.silent = 0

    @property
    def in_waiting(self) -> int:
        return self.b.sink.queue.qsize()

    def reset_input_buffer(self):
        stray = self._drain()
        assert not stray, f"the board sent bytes nobody asked for: {stray.hex()}"

    def write(self, data: bytes) -> int:
        self._write(bytes(data))
        return len(data)

    def read(self, n: int = 1) -> bytes:
        return self._read(n)

    def close(self):
        pass

    def _drain(self, n: int | None = None) -> bytes:
        q = self.b.sink.queue
        out = bytearray()
        while not q.empty() and (n is None or len(out) < n):
            out.append(q.get_nowait())
        return bytes(out)

    @resume
    async def _write(self, data: bytes):
        b = self.b
        for byte in data:
            await b.src.write_byte(byte)
            gap = b.rng.choice([0, 0, 0, 0, 1, 7, 23])   # a host's bytes need not be back to back
            if gap:
                await b.cycles(gap)
        self.silent = 0

    @resume
    async def _read(self, n: int) -> bytes:
        b = self.b
        waited = 0
        while self.in_waiting < n and waited < self.poll_cycles:
            await b.cycles(b.divisor)
            waited += b.divisor
        assert not b.sink.errors, f"UART errors on TX: {b.sink.errors}"
        out = self._drain(n)
        self.silent = 0 if out else self.silent + waited
        assert self.silent <= self.max_silence, \
            f"no byte from the board for {self.silent} cycles while the host waits for a response"
        return out


class TimedUARTSource(UARTSource):
    """``UARTSource`` whose bit times are the board's :meth:`Board.cycles`."""

    def __init__(self, board: Board, line):
        self.b = board
        super().__init__(board.clk, line, board.divisor)

    async def write_byte(self, byte: int, *, stop: int = 1, bit_cycles: int | None = None):
        n = bit_cycles or self.divisor
        for bit in [0, *((byte >> i) & 1 for i in range(8)), stop]:
            self.line.value = bit
            await self.b.cycles(n)
        self.line.value = 1


class TimedUARTSink(UARTSink):
    """``UARTSink`` (samples mid-bit after the start bit's falling edge) with the board's bit times."""

    def __init__(self, board: Board, line):
        self.b = board
        super().__init__(board.clk, line, board.divisor)

    async def _run(self):
        d = self.divisor
        while True:
            await FallingEdge(self.line)
            await self.b.cycles(d // 2)
            if int(self.line.value) != 0:
                continue  # glitch
            byte = 0
            for i in range(8):
                await self.b.cycles(d)
                byte |= int(self.line.value) << i
            await self.b.cycles(d)
            if int(self.line.value) != 1:
                self.errors.append(f"byte {byte:#04x}: stop bit is 0")
            self.queue.put_nowait(byte)


class StreamMonitor:
    """Passive monitor of a stream inside the DUT: ``(cycle, payload)`` at each transfer. Sleeps
    until ``valid`` rises, then samples every clock while it is high (whole networks spend most
    cycles with both streams idle).

    A clock cocotb drives wakes ``RisingEdge`` before the simulator evaluates that edge (the
    values a transfer at this edge sees); the PLL stub's clock toggles inside the simulator, so
    ``RisingEdge`` wakes after the edge's updates. Behind the PLL the monitor therefore samples at
    the falling edge, the values the next rising edge will take."""

    def __init__(self, board: Board, valid, ready, payload):
        self.b = board
        self.valid, self.ready, self.payload = valid, ready, payload
        self.items: list[tuple[int, int]] = []
        cocotb.start_soon(self._run())

    async def _run(self):
        edge = FallingEdge if self.b.pll else RisingEdge
        while True:
            if str(self.valid.value) != "1":
                await RisingEdge(self.valid)
            await edge(self.b.clk)
            if str(self.valid.value) == "1" and str(self.ready.value) == "1":
                self.items.append((self.b.next_edge() if self.b.pll else self.b.cycle(),
                                   int(self.payload.value)))


class RunMonitor:
    """``(cycle, core cycles output)`` each time the core's ``busy`` falls (a run finished)."""

    def __init__(self, board: Board, busy, cycles):
        self.b, self.busy, self.cycles = board, busy, cycles
        self.items: list[tuple[int, int]] = []
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await FallingEdge(self.busy)
            await ReadOnly()
            if self.cycles.value.is_resolvable:      # (not the X -> 0 at time 0)
                self.items.append((self.b.cycle(), int(self.cycles.value)))


class EdgeMonitor:
    """``(cycle, new value)`` at every change of a one-bit output (an LED; ``invert`` for an active-low
    one, so that 1 means lit)."""

    def __init__(self, board: Board, sig, invert: bool = False):
        self.b, self.sig, self.invert = board, sig, int(invert)
        self.items: list[tuple[int, int]] = []
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await Edge(self.sig)
            await ReadOnly()
            if self.sig.value.is_resolvable:
                self.items.append((self.b.cycle(), int(self.sig.value) ^ self.invert))


# ---------------------------------------------------------------------------------------- tests


@cocotb.test()
async def power_on(dut):
    """Power-on reset: held for the POR delay (+2 synchroniser stages), TX idle and LEDs off
    meanwhile, a request sent during it is ignored; afterwards INFO describes the build, and READ
    before any START / START before any LOAD are refused with the right errors."""
    b = Board(dut, "power_on")
    cfg = b.cfg
    # An INFO frame while the system is still in reset: it must vanish without an answer
    await ClockCycles(b.clk, 8)
    assert str(b.rst.value) == "1", "sync domain not in reset at power-on"
    lock = 0
    if b.pll:   # the PLL stub makes the board record's clock from the oscillator it is given
        mhz = 1e6 / b.period_ps
        assert abs(mhz * 1e6 - b.pll["clk_hz"]) <= 1e-4 * b.pll["clk_hz"], \
            f"the PLL makes {mhz:.4f} MHz, the board's clock is {b.pll['clk_hz'] / 1e6:g} MHz"
        lock = b.pll["lock_cycles"] - 1          # LOCK rises at its lock_cycles-th edge (cycle 0 the 1st)
        dut._log.info(f"PLL output {mhz:.4f} MHz (period {b.period_ps} ps), UART divisor {b.divisor}")
    # (as much of it as fits: at 12 MHz the 15 us POR is 180 cycles, 4.5 bytes at the divisor 4; a
    # partial frame that got through would be answered TIMEOUT, caught below as well. At a real
    # baud rate not one byte fits in the POR: then nothing is sent during it.)
    fits = (lock + cfg["por_cycles"] - 8 - 10) // b.byte_cycles
    frame = encode_frame(Cmd.INFO)[:fits]
    assert len(frame) >= 2 or b.pll, "POR too short to send even 2 bytes during it"
    await b.src.write(frame)
    assert str(b.rst.value) == "1"
    assert int(b.tx.value) == 1, "TX not idle (high) during reset"
    assert b.led("loaded") in (0, None) and b.led("running") in (0, None), "LEDs on in reset"
    if str(b.rst.value) == "1":
        await FallingEdge(b.rst)
    released = b.cycle()
    lo, hi = lock + cfg["por_cycles"] + 1, lock + cfg["por_cycles"] + 3
    assert lo <= released <= hi, f"reset released at cycle {released}, expected {lo}..{hi}"
    if frame:
        await b.cycles(b.timeout + 20 * b.byte_cycles)
        assert b.sink.queue.empty(), "the board answered a request sent during the power-on reset"

    dev = b.device()
    info = await b.call(dev.info)
    want = cfg["info"]
    got = {k: getattr(info, k) for k in want}
    assert got == want, f"INFO {got}, expected {want}"
    await b.expect_error(dev.read, code=Err.NO_RESULT, cmd=Cmd.READ)
    await b.expect_error(dev.start, code=Err.WEIGHTS_NOT_LOADED if cfg["weights"] else Err.NOT_LOADED,
                         cmd=Cmd.START)
    assert b.led("loaded") in (0, None) and b.led("running") in (0, None)


@cocotb.test()
async def runtime_weights(dut):
    """Weights in SPRAM: START is refused until they are uploaded, even with an image loaded; a chunk
    at a wrong offset (BAD_OFFSET) or with a bad checksum changes nothing; the host client's upload
    (chunk by chunk, each acknowledgement checked) makes INFO report them loaded. Weights in the
    bitstream: LOAD_WEIGHTS is an unknown command."""
    b = Board(dut, "runtime_weights")
    await b.quiesce()
    dev = b.device()
    info = await b.call(dev.info)
    w = b.cfg["weights"]
    if w is None:
        assert not info.runtime_weights
        await b.expect_error(dev.request, Cmd.LOAD_WEIGHTS, bytes(5), code=Err.UNKNOWN_CMD,
                             cmd=Cmd.LOAD_WEIGHTS)
        return
    assert info.weights_needed and info.weight_words == w["words"]
    with open(w["image"], "rb") as f:
        image = f.read()
    bpw = info.weight_bytes_per_word
    assert len(image) == w["words"] * bpw
    await b.call(dev.load, b.cfg["images"][0]["pixels"])
    await b.expect_error(dev.start, code=Err.WEIGHTS_NOT_LOADED, cmd=Cmd.START)
    chunk = (5).to_bytes(4, "little") + image[5 * bpw:9 * bpw]
    await b.expect_error(dev.request, Cmd.LOAD_WEIGHTS, chunk, code=Err.BAD_OFFSET, cmd=Cmd.LOAD_WEIGHTS)
    bad = bytearray(encode_frame(Cmd.LOAD_WEIGHTS, bytes(4) + image[:16 * bpw]))
    bad[-1] ^= 0x21
    code, pay = await b.exchange(bytes(bad))
    assert (code, pay) == (ERROR_RESPONSE, bytes([Err.BAD_CHECKSUM, Cmd.LOAD_WEIGHTS])), (hex(code), pay.hex())
    assert not (await b.call(dev.info)).weights_loaded

    done = []
    chunk_bytes = max(bpw, len(image) // 3)            # a few chunks: offsets 0, n, 2n, ...
    t0 = b.cycle()
    info = await b.call(dev.load_weights, image, chunk_bytes=chunk_bytes, progress=done.append)
    assert info.weights_loaded and not info.weights_needed
    assert sum(done) == w["words"] and len(done) >= 3, done
    dut._log.info(f"weights: {w['words']} words ({len(image)} bytes) in {len(done)} chunks, "
                  f"{b.cycle() - t0} cycles")


@cocotb.test()
async def inferences_match_golden(dut):
    """LOAD, START, READ (polling while busy) through the host client, image after image: logits,
    class and cycles bit-exact against the golden model and the ISS. On the first image (unless the
    config's ``busy_checks`` is off: at a real baud rate the core is done before a frame is in),
    START, READ and LOAD while the core runs are refused with BUSY and change nothing."""
    b = Board(dut, "inferences_match_golden")
    await b.quiesce()
    dev = b.device()
    await b.call(dev.info)
    images = b.cfg["images"]
    for n, image in enumerate(images):
        marks = b.marks()
        led0 = len(b.running_edges.items) if b.running_edges else 0
        t0 = b.cycle()
        if n == 0 and b.cfg["busy_checks"]:
            await b.call(dev.load, image["pixels"])
            assert b.led("loaded") in (1, None), "'loaded' LED off after a successful LOAD"
            await b.call(dev.start)
            await b.expect_error(dev.start, code=Err.BUSY, cmd=Cmd.START)
            await b.expect_error(dev.request, Cmd.READ, code=Err.BUSY, cmd=Cmd.READ)
            await b.expect_error(dev.load, images[-1]["pixels"], code=Err.BUSY, cmd=Cmd.LOAD)
            result = await b.call(dev.read)
            b.check_inference(marks, image, result, f"image {n} ({image['name']})")
            # the refused LOAD left the image alone: START again without LOAD, same result
            marks = b.marks()
            await b.call(dev.start)
            result = await b.call(dev.read)
            what = f"image {n} ({image['name']}), started again"
            runs = 2
        else:
            result = await b.call(dev.infer, image["pixels"])
            what = f"image {n} ({image['name']})"
            runs = 1
        b.check_inference(marks, image, result, what)
        if b.running_edges:
            edges = [v for _, v in b.running_edges.items[led0:]]
            assert edges == [1, 0] * runs, f"{what}: 'running' LED edges {edges}, expected on, off"
        # READ again: the same result
        again = await b.call(dev.read)
        assert (again.cls, again.logits, again.cycles) == (result.cls, result.logits, result.cycles)
        dut._log.info(f"image {n} ({image['name']}): class {result.cls} logits {result.logits} "
                      f"cycles {result.cycles} (UART session {b.cycle() - t0} cycles)")


@cocotb.test()
async def corrupt_frames_and_recovery(dut):
    """A LOAD with a bad checksum is answered ERROR BAD_CHECKSUM and leaves no image (START:
    NOT_LOADED, 'loaded' LED off); a corrupt INFO and a truncated frame (inter-byte timeout) get
    their errors; garbage between frames is skipped; after all that, the board still infers
    bit-exactly."""
    b = Board(dut, "corrupt_frames_and_recovery")
    await b.quiesce()
    dev = b.device()
    info = await b.call(dev.info)
    image = b.cfg["images"][0]
    load = bytearray(encode_frame(Cmd.LOAD, encode_pixels(image["pixels"], info.pixel_bits)))

    bad = bytearray(load)
    bad[-1] ^= 0x5A                                   # checksum byte
    code, pay = await b.exchange(bytes(bad))
    assert (code, pay) == (ERROR_RESPONSE, bytes([Err.BAD_CHECKSUM, Cmd.LOAD])), (hex(code), pay.hex())
    assert b.led("loaded") in (0, None), "'loaded' LED on after a corrupt LOAD"
    await b.expect_error(dev.start, code=Err.NOT_LOADED, cmd=Cmd.START)

    bad = bytearray(load)
    bad[4 + len(load) // 3] ^= 0x01                   # a payload byte: the checksum no longer fits
    code, pay = await b.exchange(bytes(bad))
    assert (code, pay) == (ERROR_RESPONSE, bytes([Err.BAD_CHECKSUM, Cmd.LOAD])), (hex(code), pay.hex())

    bad = bytearray(encode_frame(Cmd.INFO))
    bad[-1] ^= 0xFF
    code, pay = await b.exchange(bytes(bad))
    assert (code, pay) == (ERROR_RESPONSE, bytes([Err.BAD_CHECKSUM, Cmd.INFO])), (hex(code), pay.hex())

    t0 = b.cycle()                                    # a LOAD that stops arriving
    code, pay = await b.exchange(bytes(load[:9]))
    assert (code, pay) == (ERROR_RESPONSE, bytes([Err.TIMEOUT, Cmd.LOAD])), (hex(code), pay.hex())
    assert b.cycle() - t0 >= b.timeout
    await b.expect_error(dev.start, code=Err.NOT_LOADED, cmd=Cmd.START)

    await b.call(b.port.write, bytes([0x00, 0x13, 0xFF, 0x5A]))   # garbage, no sync byte
    info2 = await b.call(dev.info)
    assert info2 == info

    image = b.cfg["images"][0]     # not the image of the last run: a new result, computed anew
    marks = b.marks()
    result = await b.call(dev.infer, image["pixels"])
    b.check_inference(marks, image, result, f"image 0 ({image['name']}) after the errors")
