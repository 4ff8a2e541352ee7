# amaranth: UnusedElaboratable=no
"""The host link gateware end to end: a simulated host talks to ``UARTAccelerator`` (UART receiver,
``HostLink``, UART transmitter, and a ``ToyCore``) over the two UART pins.

Monitors on the core's own pixel and logit streams feed the reference model, so the checks are:
the pixels the core accepted are the image the host loaded; the logits it produced match
``toy_model``; the RESULT frame carries those logits, the first-max argmax, and a cycle count equal to
the cycles the monitors measured. Error paths: bad checksum, wrong lengths, unknown command, start
before load, read before start, busy, truncated frames (timeout), and garbage between frames.

Frames are built here independently of ``spikegate.host`` (one line: sync, cmd, length, payload,
sum of all bytes after the sync modulo 256).
"""

from __future__ import annotations

import os
import random
import zlib

import cocotb
import pytest
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from spikegate.hw.host_link import HostLink, UARTAccelerator, accel_widths, connect_core
from spikegate.rtl_tests.cocotb_util import (SIMULATORS, UARTSink, UARTSource, run_cocotb,
                                              sim_build_dir, tb_config, tb_seed)
from spikegate.rtl_tests.toy_core import ToyCore, toy_model
from spikegate.hw.accel_interface import accelerator_signature
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

# The design under test. pixel_bits 12 => two bytes per pixel, sign extension on the way in;
# logits are sign-extended to 32 bits on the way out.
DESIGN = dict(num_pixels=16, num_classes=4, pixel_bits=12, logit_bits=14)
DIVISOR = 4
TIMEOUT = 800          # inter-byte timeout, cycles (20 byte times)
LATENCY = 1500         # the toy core idles this long before emitting logits: long enough to be busy
CLK_HZ = 12_000_000

# Protocol numbers, written out here (not imported) so that the test is an independent check.
SYNC, INFO, LOAD, START, READ, ERROR = 0xA5, 0x01, 0x02, 0x03, 0x04, 0xFF
E_CHECKSUM, E_LENGTH, E_UNKNOWN, E_NOT_LOADED, E_BUSY, E_NO_RESULT, E_TIMEOUT = range(1, 8)


def frame(cmd: int, payload: bytes = b"") -> bytes:
    body = bytes([cmd, len(payload) & 0xFF, len(payload) >> 8]) + payload
    return bytes([SYNC]) + body + bytes([sum(body) & 0xFF])


def pixels_payload(pixels, pixel_bits) -> bytes:
    nbytes = (pixel_bits + 7) // 8
    return b"".join((p & ((1 << (8 * nbytes)) - 1)).to_bytes(nbytes, "little") for p in pixels)


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) & 1 else v


# ---------------------------------------------------------------------------------------- cocotb


class StreamTap:
    """Passive monitor of a stream inside the DUT: records (cycle, payload) at each handshake."""

    def __init__(self, clk, dut_scope, name, counter):
        self.valid = getattr(dut_scope, f"{name}__valid")
        self.ready = getattr(dut_scope, f"{name}__ready")
        self.payload = getattr(dut_scope, f"{name}__payload")
        self.clk, self.counter = clk, counter
        self.items: list[tuple[int, int]] = []
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            if str(self.valid.value) == "1" and str(self.ready.value) == "1":
                self.items.append((self.counter.cycle, int(self.payload.value)))


class CycleCounter:
    def __init__(self, clk):
        self.cycle = 0
        self.clk = clk
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            self.cycle += 1


class HostTB:
    def __init__(self, dut, test: str):
        self.dut = dut
        cfg = tb_config()
        self.npix, self.ncls = cfg["num_pixels"], cfg["num_classes"]
        self.pbits, self.lbits = cfg["pixel_bits"], cfg["logit_bits"]
        self.divisor, self.timeout = cfg["divisor"], cfg["timeout"]
        self.clk_hz = cfg["clk_hz"]
        seed = tb_seed() ^ zlib.crc32(test.encode()) & 0xFFFF
        dut._log.info(f"{test}: seed {seed}")
        self.rng = random.Random(seed)
        Clock(dut.clk, 10, unit="ns").start()
        self.cycles = CycleCounter(dut.clk)
        self.src = UARTSource(dut.clk, dut.rx, self.divisor)
        self.sink = UARTSink(dut.clk, dut.tx, self.divisor)
        self.pix_tap = StreamTap(dut.clk, dut.core, "pixels", self.cycles)
        self.logit_tap = StreamTap(dut.clk, dut.core, "logits", self.cycles)
        self.byte_cycles = 10 * self.divisor
        self.busy_seen = 0

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 3)

    async def send(self, data: bytes):
        await self.src.write(data, gap_cycles=self.rng.choice([0, 0, 0, 1, 13]))

    async def read_frame(self, extra_wait: int = 0) -> tuple[int, bytes]:
        wait = 40 * self.byte_cycles + extra_wait
        head = await self.sink.read(4, timeout_cycles=wait)
        assert head[0] == SYNC, f"response starts with {head[0]:#04x}, not the sync byte"
        n = head[2] | head[3] << 8
        rest = await self.sink.read(n + 1, timeout_cycles=(n + 2) * self.byte_cycles + 100)
        assert (sum(head[1:]) + sum(rest[:-1])) & 0xFF == rest[-1], "bad response checksum"
        assert not self.sink.errors, self.sink.errors
        return head[1], rest[:-1]

    async def request(self, cmd: int, payload: bytes = b"", *, raw: bytes | None = None,
                      extra_wait: int = 0) -> tuple[int, bytes]:
        await self.send(raw if raw is not None else frame(cmd, payload))
        return await self.read_frame(extra_wait)

    async def expect_error(self, code: int, cmd: int, payload: bytes = b""):
        rcode, rpay = await self.request(cmd, payload)
        assert (rcode, rpay) == (ERROR, bytes([code, cmd])), \
            f"expected ERROR {code} for cmd {cmd:#x}, got {rcode:#x} {rpay.hex()}"

    async def expect_ack(self, cmd: int, payload: bytes = b""):
        rcode, rpay = await self.request(cmd, payload)
        assert (rcode, rpay) == (cmd | 0x80, b""), f"cmd {cmd:#x}: expected ACK, got {rcode:#x} {rpay.hex()}"

    def random_image(self):
        lo, hi = -(1 << (self.pbits - 1)), (1 << (self.pbits - 1)) - 1
        return [self.rng.randint(lo, hi) for _ in range(self.npix)]

    async def infer(self, image, *, poke_busy: bool = False) -> dict:
        """LOAD, START, READ until not busy; check everything against the monitors and the model."""
        await self.expect_ack(LOAD, pixels_payload(image, self.pbits))
        n_pix, n_log = len(self.pix_tap.items), len(self.logit_tap.items)
        await self.expect_ack(START)
        if poke_busy:   # the core is still working: these must all be refused without harm
            await self.expect_error(E_BUSY, START)
            await self.expect_error(E_BUSY, LOAD, pixels_payload(self.random_image(), self.pbits))
        for _ in range(50):
            rcode, rpay = await self.request(READ)
            if (rcode, rpay) != (ERROR, bytes([E_BUSY, READ])):
                break
            self.busy_seen += 1
        assert rcode == READ | 0x80, f"READ: got {rcode:#x} {rpay.hex()}"
        assert len(rpay) == 2 + 4 * self.ncls + 4

        # input monitor -> reference model
        pix = self.pix_tap.items[n_pix:]
        accepted = [_signed(p, self.pbits) for _, p in pix]
        assert accepted == list(image), f"core saw {accepted}, host loaded {image}"
        expected = toy_model(accepted, num_classes=self.ncls, logit_bits=self.lbits)
        logs = self.logit_tap.items[n_log:]
        seen = [_signed(p & ((1 << self.lbits) - 1), self.lbits) for _, p in logs]
        lasts = [p >> self.lbits & 1 for _, p in logs]
        assert seen == expected, (seen, expected)
        assert lasts == [0] * (self.ncls - 1) + [1]

        cls = int.from_bytes(rpay[0:2], "little")
        logits = [int.from_bytes(rpay[2 + 4 * k:6 + 4 * k], "little", signed=True) for k in range(self.ncls)]
        cycles = int.from_bytes(rpay[-4:], "little")
        assert logits == expected, (logits, expected)
        assert cls == expected.index(max(expected)), (cls, expected)
        assert cycles == logs[-1][0] - pix[0][0] + 1, (cycles, logs[-1][0], pix[0][0])
        return {"class": cls, "logits": logits, "cycles": cycles}


@cocotb.test()
async def info_and_errors(dut):
    """INFO answers; every error code that needs no image comes back as an ERROR frame."""
    tb = HostTB(dut, "info_and_errors")
    await tb.reset()
    code, pay = await tb.request(INFO)
    nbytes = (tb.pbits + 7) // 8
    assert code == INFO | 0x80
    assert pay == bytes([1, tb.pbits, tb.lbits, nbytes]) + tb.npix.to_bytes(4, "little") + \
        tb.ncls.to_bytes(2, "little") + (tb.clk_hz // 1000).to_bytes(4, "little"), pay.hex()
    await tb.expect_error(E_NOT_LOADED, START)
    await tb.expect_error(E_NO_RESULT, READ)
    await tb.expect_error(E_UNKNOWN, 0x42)
    await tb.expect_error(E_UNKNOWN, 0x42, b"\x01\x02\x03")
    await tb.expect_error(E_LENGTH, INFO, b"\x00")
    await tb.expect_error(E_LENGTH, START, b"\x00\x00")
    await tb.expect_error(E_LENGTH, LOAD, bytes(tb.npix * nbytes - 1))
    await tb.expect_error(E_LENGTH, LOAD, bytes(tb.npix * nbytes + 1))
    bad = bytearray(frame(INFO))
    bad[-1] ^= 0x01
    rcode, rpay = await tb.request(INFO, raw=bytes(bad))
    assert (rcode, rpay) == (ERROR, bytes([E_CHECKSUM, INFO])), (rcode, rpay.hex())
    # garbage between frames is skipped while hunting for sync
    await tb.send(bytes([0x00, 0x13, 0xFF, 0x5A]))
    code, pay = await tb.request(INFO)
    assert code == INFO | 0x80 and len(pay) == 14
    await tb.expect_error(E_NOT_LOADED, START)   # a BAD_LENGTH LOAD loaded nothing


@cocotb.test()
async def inferences(dut):
    """Directed and random images: results, argmax (first max wins), cycle counts, busy."""
    tb = HostTB(dut, "inferences")
    await tb.reset()
    lo, hi = -(1 << (tb.pbits - 1)), (1 << (tb.pbits - 1)) - 1
    images = [
        [hi] * tb.npix,                                   # all logits equal: class 0 wins
        [lo] * tb.npix,                                   # most negative sums
        [0] * tb.npix,
        [(-1) ** i * (i + 1) for i in range(tb.npix)],
        [0xA5 - 0x100 if 0xA5 > hi else 0xA5] * tb.npix,  # sync bytes inside the payload
        [0] * (tb.npix - 1) + [1],                        # the last class wins by one
    ] + [tb.random_image() for _ in range(4)]
    for n, image in enumerate(images):
        r = await tb.infer(image, poke_busy=(n == 3))
        dut._log.info(f"image {n}: class {r['class']} logits {r['logits']} cycles {r['cycles']}")
    # READ again returns the same last result
    code, pay = await tb.request(READ)
    assert code == READ | 0x80
    assert tb.busy_seen > 0, "the core was never observed busy: LATENCY too small for the test"


@cocotb.test()
async def truncated_frames_time_out(dut):
    """A frame that stops arriving is answered with ERROR TIMEOUT and the link recovers; a failed
    LOAD (timeout or bad checksum) invalidates the image."""
    tb = HostTB(dut, "truncated_frames_time_out")
    await tb.reset()
    image = tb.random_image()
    await tb.expect_ack(LOAD, pixels_payload(image, tb.pbits))

    full = frame(LOAD, pixels_payload(tb.random_image(), tb.pbits))
    await tb.send(full[:9])  # header and a few payload bytes
    t0 = tb.cycles.cycle
    code, pay = await tb.read_frame(extra_wait=tb.timeout)
    assert (code, pay) == (ERROR, bytes([E_TIMEOUT, LOAD])), (code, pay.hex())
    assert tb.cycles.cycle - t0 >= tb.timeout
    await tb.expect_error(E_NOT_LOADED, START)

    await tb.send(bytes([SYNC]))             # a lone sync byte
    code, pay = await tb.read_frame(extra_wait=tb.timeout)
    assert (code, pay) == (ERROR, bytes([E_TIMEOUT, 0])), (code, pay.hex())

    await tb.infer(image)

    bad = bytearray(frame(LOAD, pixels_payload(tb.random_image(), tb.pbits)))
    bad[-1] ^= 0x80
    rcode, rpay = await tb.request(LOAD, raw=bytes(bad))
    assert (rcode, rpay) == (ERROR, bytes([E_CHECKSUM, LOAD])), (rcode, rpay.hex())
    await tb.expect_error(E_NOT_LOADED, START)
    await tb.infer(tb.random_image())


# ---------------------------------------------------------------------------------------- pytest


def make_top():
    core = ToyCore(**DESIGN, stall=True, latency=LATENCY)
    return UARTAccelerator(core, num_pixels=DESIGN["num_pixels"], num_classes=DESIGN["num_classes"],
                           divisor=DIVISOR, timeout=TIMEOUT, clk_hz=CLK_HZ)


@pytest.mark.parametrize("weights", [False, True], ids=["rom-weights", "runtime-weights"])
def test_gateware_matches_protocol_model(weights):
    """Differential test in Amaranth's simulator, at the byte-stream level (no UART): a seeded random
    mix of good and bad requests goes to ``HostLink`` (+ a ``ToyCore``) and to the host library's
    ``ProtocolModel``; every response byte must agree. With runtime weights (a core with a weight
    port, 11-bit words in 2 bytes) the mix adds LOAD_WEIGHTS chunks at good and bad offsets, of
    bad lengths, corrupted and truncated, and the toy's logits depend on the words it was given."""
    from amaranth.sim import Simulator

    from spikegate.host import ProtocolModel, encode_frame

    npix, ncls, pbits, lbits, timeout = 6, 3, 10, 12, 200
    nw, wbits = (40, 11) if weights else (0, 0)
    link = HostLink(num_pixels=npix, num_classes=ncls, pixel_bits=pbits, logit_bits=lbits,
                    timeout=timeout, clk_hz=CLK_HZ, weight_words=nw, weight_bits=wbits)
    core = ToyCore(num_pixels=npix, num_classes=ncls, pixel_bits=pbits, logit_bits=lbits,
                   weight_words=nw, weight_bits=wbits or 8)
    m = Module()
    m.submodules.link, m.submodules.core = link, core
    connect_core(m, link.accel, core, link.weights if weights else None)
    # the toy core without stalls: pixels one per cycle, one idle cycle, then the logits
    cycles = npix + ncls + 1
    model = ProtocolModel(num_pixels=npix, num_classes=ncls, pixel_bits=pbits, logit_bits=lbits,
                          clk_hz=CLK_HZ, weight_words=nw, weight_bits=wbits,
                          compute=lambda px, w=None: (toy_model(px, num_classes=ncls, logit_bits=lbits,
                                                                weights=w), cycles))
    seed = int(os.environ.get("SPIKEGATE_TB_SEED", 20240611))
    print(f"seed {seed} (set SPIKEGATE_TB_SEED to change)")
    rng = random.Random(seed)
    lo, hi = -(1 << (pbits - 1)), (1 << (pbits - 1)) - 1
    nbytes = (pbits + 7) // 8

    def image_payload():
        return pixels_payload([rng.randint(lo, hi) for _ in range(npix)], pbits)

    def weights_payload(offset, n, pad=0):
        words = [rng.getrandbits(16) for _ in range(n)]     # (the top 5 bits are dropped)
        return offset.to_bytes(4, "little") + b"".join(w.to_bytes(2, "little") for w in words) + bytes(pad)

    kinds = ["info", "load", "load", "start", "start", "read", "read", "badsum", "unknown", "badlen",
             "truncated", "garbage"]
    if weights:
        kinds += ["wload"] * 8 + ["wbad"] * 3
    requests = []
    for _ in range(120 if weights else 60):
        kind = rng.choice(kinds)
        if kind == "info":
            data = encode_frame(INFO)
        elif kind == "load":
            data = encode_frame(LOAD, image_payload())
        elif kind == "start":
            data = encode_frame(START)
        elif kind == "read":
            data = encode_frame(READ)
        elif kind == "badsum":
            f = bytearray(encode_frame(rng.choice([INFO, LOAD, START, READ]),
                                       image_payload() if rng.random() < 0.5 else b""))
            f[-1] ^= 1 << rng.randrange(8)
            data = bytes(f)
        elif kind == "unknown":
            data = encode_frame(rng.choice([0x00, 0x05, 0x42, 0x81, 0xFF]), bytes(rng.randrange(3)))
        elif kind == "badlen":
            data = encode_frame(rng.choice([INFO, LOAD, START, READ]),
                                bytes(rng.choice([1, npix * nbytes - 1, npix * nbytes + 1])))
        elif kind == "truncated":
            full = encode_frame(LOAD, image_payload())
            data = full[:rng.randrange(1, len(full))]
        elif kind == "wload":     # a good chunk from where the loaded words end (or restart at 0)
            off = 0 if rng.random() < 0.1 else None
            data = ("wload", off)       # (the offset is chosen when sent: it depends on the state)
        elif kind == "wbad":
            choice = rng.choice(["offset", "partial", "past-end", "empty", "badsum", "truncated"])
            if choice == "offset":
                data = encode_frame(0x05, weights_payload(rng.choice([1, 3, nw, 2**31 + 5]), 2))
            elif choice == "partial":
                data = encode_frame(0x05, weights_payload(0, 2, pad=1))
            elif choice == "past-end":
                data = encode_frame(0x05, weights_payload(0, nw + 1))
            elif choice == "empty":
                data = encode_frame(0x05, weights_payload(0, 0, pad=rng.choice([0, 1])))
            else:
                f = bytearray(encode_frame(0x05, weights_payload(0, 5)))
                if choice == "badsum":
                    f[-1] ^= 0x04
                    data = bytes(f)
                else:
                    data = bytes(f[:rng.randrange(1, len(f))])
                    kind = "truncated"
        else:
            data = bytes(rng.choice([0x00, 0x13, 0x5A, 0xFF]) for _ in range(rng.randrange(1, 5)))
        requests.append((kind, data))

    # The link takes each byte the cycle it is offered (seen: always within 1 cycle); allow for an
    # inference and a RESULT frame (one byte per cycle, tx.ready high) four times over. A byte not
    # taken within it fails the test at once, where an unbounded wait would hang it.
    byte_budget = 4 * (cycles + 4 * ncls + 16) + 100
    got = bytearray()
    mismatches = []
    seen_kinds = set()       # response codes (and error payloads) the mix provoked

    async def collector(ctx):
        async for _, _, valid, payload in ctx.tick().sample(link.tx.valid, link.tx.payload):
            if valid:
                got.append(payload)

    async def host(ctx):
        ctx.set(link.tx.ready, 1)
        for n, (kind, data) in enumerate(requests):
            if isinstance(data, tuple):     # a good LOAD_WEIGHTS chunk, from the model's state
                off = model._w_next if data[1] is None or model._w_next == nw else data[1]
                off = 0 if off == nw else off
                data = encode_frame(0x05, weights_payload(off, rng.randint(1, nw - off)))
            for b in data:
                ctx.set(link.rx.payload, b)
                ctx.set(link.rx.valid, 1)
                for _ in range(byte_budget):
                    _, _, ready = await ctx.tick().sample(link.rx.ready)
                    if ready:
                        break
                else:
                    raise AssertionError(f"TIMEOUT: request {n} ({kind}): rx.ready not within "
                                         f"{byte_budget} cycles")
                ctx.set(link.rx.valid, 0)
                await ctx.tick().repeat(rng.choice([0, 1, 3]) + 1)
            expected = model.feed(data)
            seen_kinds.add(expected[1:2] + expected[4:6] if expected[1:2] == b"\xff" else expected[1:2])
            if kind == "truncated":
                expected += model.timeout()
            await ctx.tick().repeat(timeout + 60 if kind == "truncated" else 80)
            if bytes(got) != expected:
                mismatches.append((n, kind, data.hex(), bytes(got).hex(), expected.hex()))
            got.clear()

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_process(collector)
    sim.add_testbench(host)
    sim.run()
    assert not mismatches, mismatches[:3]
    assert model._result is not None   # the mix did run inferences
    if weights:   # ... with the weights loaded; START refused without them; every weight error
        for code, cmd in [(0x08, 0x03), (0x09, 0x05), (0x02, 0x05), (0x01, 0x05)]:
            assert bytes([0xFF, code, cmd]) in seen_kinds, (hex(code), hex(cmd), seen_kinds)
        assert b"\x85" in seen_kinds


@pytest.mark.parametrize("sim", SIMULATORS)
def test_host_link(sim):
    run_cocotb(make_top(), "host_link_top", "spikegate.rtl_tests.test_host_link", sim,
               sim_build_dir("host_link", sim),
               config={**DESIGN, "divisor": DIVISOR, "timeout": TIMEOUT, "clk_hz": CLK_HZ},
               vpi_access="all")      # (the monitors watch the core's streams inside the top)


def test_one_byte_pixels_pass_verilator_lint(tmp_path):
    """With pixels of one byte (8 bits, as the compiled models have), the pixel byte index used to be
    a zero-width signal, emitted as ``wire [-1:0]``, which Verilator rejects (ASCRANGE): the
    whole-board simulation on Verilator (``test_board_uart.py``) found it."""
    import subprocess

    from spikegate.rtl_tests.cocotb_util import VERILATOR_LINT_OFF, verilator_env, write_verilog

    core = ToyCore(num_pixels=4, num_classes=3, pixel_bits=8, logit_bits=10, latency=3)
    top = UARTAccelerator(core, num_pixels=4, num_classes=3, divisor=DIVISOR, timeout=TIMEOUT)
    path = write_verilog(top, "host_link_top", tmp_path / "top.v")
    with verilator_env():
        r = subprocess.run(["verilator", "--lint-only", *VERILATOR_LINT_OFF, str(path)],
                           capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_parameter_validation():
    ok = dict(num_pixels=16, num_classes=4, pixel_bits=8, logit_bits=16, timeout=100)
    HostLink(**ok)
    for key, bad, msg in [
        ("num_pixels", 0, r"^num_pixels must be an integer in 1\.\.65535, not 0$"),
        ("num_classes", 2.5, r"^num_classes must be an integer in 1\.\.16382, not 2\.5$"),
        ("logit_bits", 33, r"^logit_bits must be an integer in 2\.\.32, not 33$"),
        ("timeout", 0, r"^timeout must be an integer >= 1, not 0$"),
    ]:
        with pytest.raises(ValueError, match=msg):
            HostLink(**{**ok, key: bad})
    with pytest.raises(ValueError, match=r"^num_pixels must be an integer in 1\.\.32767, not 40000$"):
        HostLink(**{**ok, "pixel_bits": 12, "num_pixels": 40000})


def test_core_signature_is_checked():
    with pytest.raises(TypeError, match=r"^core must be a component with the accelerator signature"):
        accel_widths(object())
    with pytest.raises(TypeError, match=r"^core must be a component with the accelerator signature"):
        UARTAccelerator(HostLink(num_pixels=4, num_classes=2, pixel_bits=8, logit_bits=8, timeout=10),
                        num_pixels=4, num_classes=2, divisor=4, timeout=10)
    assert accel_widths(ToyCore(**DESIGN)) == (12, 14)

    class WithDebug(wiring.Component):      # extra output ports are allowed (left unconnected)
        def __init__(self, extra):
            members = dict(accelerator_signature(pixel_bits=8, logit_bits=16).members)
            super().__init__({**members, **extra})

        def elaborate(self, platform):
            return Module()

    assert accel_widths(WithDebug({"dbg_state": Out(4)})) == (8, 16)
    with pytest.raises(TypeError, match=r"^core may add only output ports to the accelerator "
                                        r"signature, not 'dbg_in': In\(1\)$"):
        accel_widths(WithDebug({"dbg_in": In(1)}))
    with pytest.raises(TypeError, match=r"^core must have the accelerator signature: member 'busy'"):
        accel_widths(WithDebug({"busy": Out(2)}))
