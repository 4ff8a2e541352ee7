# amaranth: UnusedElaboratable=no
"""UART receiver/transmitter: bit timing, back-pressure, framing errors, glitches, loopback.

The pytest half (bottom) builds ``UARTPair`` (both halves side by side) for each simulator and runs
the cocotb half (top) against it. Bit timing is checked cycle by cycle: every bit the transmitter
puts on the line must last exactly ``divisor`` cycles.
"""

from __future__ import annotations

import random
import zlib

import cocotb
import pytest
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge

from spikegate.hw.uart import UARTRx, UARTTx, byte_stream
from spikegate.rtl_tests.cocotb_util import (SIMULATORS, UARTSource, run_cocotb, sim_build_dir, tb_config,
                                              tb_seed)


class UARTPair(wiring.Component):
    """Test top: a receiver and a transmitter with the same divisor, not connected to each other."""

    def __init__(self, *, divisor: int):
        self._divisor = divisor
        super().__init__({
            "rx": In(1, init=1), "rx_data": Out(byte_stream()),
            "frame_error": Out(1), "overrun": Out(1),
            "tx_data": In(byte_stream()), "tx": Out(1, init=1),
        })

    def elaborate(self, platform):
        from amaranth.hdl import Module
        m = Module()
        m.submodules.urx = urx = UARTRx(divisor=self._divisor)
        m.submodules.utx = utx = UARTTx(divisor=self._divisor)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx),
                     self.frame_error.eq(urx.frame_error), self.overrun.eq(urx.overrun)]
        wiring.connect(m, urx.o, wiring.flipped(self.rx_data))
        wiring.connect(m, wiring.flipped(self.tx_data), utx.i)
        return m


# ---------------------------------------------------------------------------------------- cocotb


class LineMonitor:
    """Watches a UART line (the DUT's ``tx``), checks every bit lasts exactly ``divisor`` cycles."""

    def __init__(self, clk, line, divisor):
        self.clk, self.line, self.divisor = clk, line, divisor
        self.bytes: list[int] = []
        self.errors: list[str] = []
        cocotb.start_soon(self._run())

    async def _run(self):
        d = self.divisor
        while True:
            await RisingEdge(self.clk)
            if int(self.line.value) != 0:
                continue
            samples = [0]
            for _ in range(10 * d - 1):
                await RisingEdge(self.clk)
                samples.append(int(self.line.value))
            bits = []
            for j in range(10):
                chunk = samples[j * d:(j + 1) * d]
                if len(set(chunk)) != 1:
                    self.errors.append(f"bit {j} not stable for {d} cycles: {chunk}")
                bits.append(chunk[d // 2])
            if bits[0] != 0 or bits[9] != 1:
                self.errors.append(f"bad start/stop bits {bits}")
            self.bytes.append(sum(b << i for i, b in enumerate(bits[1:9])))


class StreamDriver:
    """Drives a byte stream sink with random idle cycles. The transmitter takes a byte at most one
    frame (10 bit times) after the previous one, so a byte not taken within ``budget`` cycles
    (a frame and a bit) fails the test at once instead of hanging it."""

    def __init__(self, clk, prefix, rng, idle=0.3, *, divisor: int):
        self.clk, self.p, self.rng, self.idle = clk, prefix, rng, idle
        self.budget = 11 * divisor

    async def send(self, byte: int):
        while self.rng.random() < self.idle:
            await RisingEdge(self.clk)
        self.p["valid"].value = 1
        self.p["payload"].value = byte
        for _ in range(self.budget):
            await RisingEdge(self.clk)
            if int(self.p["ready"].value):
                break
        else:
            raise AssertionError(f"TIMEOUT: byte {byte:#04x} not taken within {self.budget} cycles "
                                 "(one frame and one bit)")
        self.p["valid"].value = 0


class StreamMonitor:
    """Sink for a byte stream with random back-pressure; records accepted payloads."""

    def __init__(self, clk, prefix, rng, stall=0.3):
        self.clk, self.p, self.rng, self.stall = clk, prefix, rng, stall
        self.items: list[int] = []
        self.errors: list[str] = []
        cocotb.start_soon(self._run())

    async def _run(self):
        held = None
        while True:
            ready = int(self.rng.random() >= self.stall)
            self.p["ready"].value = ready
            await RisingEdge(self.clk)
            if int(self.p["valid"].value):
                payload = int(self.p["payload"].value)
                if held is not None and held != payload:
                    self.errors.append(f"payload changed while stalled: {held:#x} -> {payload:#x}")
                if ready:
                    self.items.append(payload)
                    held = None
                else:
                    held = payload
            elif held is not None:
                self.errors.append("valid dropped while stalled")
                held = None


def _ports(dut, name):
    return {k: getattr(dut, f"{name}__{k}") for k in ("valid", "ready", "payload")}


class PulseCounter:
    def __init__(self, clk, sig):
        self.count = 0
        self.clk, self.sig = clk, sig
        cocotb.start_soon(self._run())

    async def _run(self):
        while True:
            await RisingEdge(self.clk)
            self.count += int(self.sig.value)


class TB:
    def __init__(self, dut, test: str):
        self.dut = dut
        self.divisor = tb_config()["divisor"]
        seed = tb_seed() ^ zlib.crc32(test.encode()) & 0xFFFF
        dut._log.info(f"{test}: seed {seed}, divisor {self.divisor}")
        self.rng = random.Random(seed)
        Clock(dut.clk, 10, unit="ns").start()
        dut.rx.value = 1
        dut.tx_data__valid.value = 0
        dut.tx_data__payload.value = 0
        dut.rx_data__ready.value = 0
        self.line = UARTSource(dut.clk, dut.rx, self.divisor)
        self.frame_errors = PulseCounter(dut.clk, dut.frame_error)
        self.overruns = PulseCounter(dut.clk, dut.overrun)

    async def reset(self):
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, 3)
        self.dut.rst.value = 0
        await ClockCycles(self.dut.clk, 2)


@cocotb.test()
async def rx_random_bytes(dut):
    """Random bytes with random gaps arrive intact under random back-pressure."""
    tb = TB(dut, "rx_random_bytes")
    await tb.reset()
    mon = StreamMonitor(dut.clk, _ports(dut, "rx_data"), tb.rng, stall=0.3)
    sent = [0x00, 0xFF, 0x55, 0xAA, 0xA5] + [tb.rng.randrange(256) for _ in range(40)]
    for b in sent:
        await ClockCycles(dut.clk, tb.rng.choice([1, 1, 2, 5, 3 * tb.divisor]))
        await tb.line.write_byte(b)
    await ClockCycles(dut.clk, 4 * tb.divisor)
    assert not mon.errors, mon.errors
    assert mon.items == sent, (mon.items, sent)
    assert tb.frame_errors.count == 0 and tb.overruns.count == 0


@cocotb.test()
async def rx_framing_error_and_glitch(dut):
    """A zero stop bit drops the byte and pulses frame_error; a short glitch is ignored."""
    tb = TB(dut, "rx_framing_error_and_glitch")
    await tb.reset()
    mon = StreamMonitor(dut.clk, _ports(dut, "rx_data"), tb.rng, stall=0.0)
    await tb.line.write_byte(0x3C, stop=0)
    await ClockCycles(dut.clk, 2 * tb.divisor)   # line back high ("break" over)
    assert tb.frame_errors.count == 1
    # a glitch shorter than half a bit
    dut.rx.value = 0
    await ClockCycles(dut.clk, max(1, tb.divisor // 2 - 2))
    dut.rx.value = 1
    await ClockCycles(dut.clk, 3 * tb.divisor)
    await tb.line.write_byte(0xC3)
    await ClockCycles(dut.clk, 2 * tb.divisor)
    assert mon.items == [0xC3], mon.items
    assert tb.frame_errors.count == 1


@cocotb.test()
async def rx_overrun(dut):
    """A byte arriving while the previous is unread is dropped and flagged; the unread one stays."""
    tb = TB(dut, "rx_overrun")
    await tb.reset()
    dut.rx_data__ready.value = 0
    await tb.line.write_byte(0x11)
    await tb.line.write_byte(0x22)
    await ClockCycles(dut.clk, 2 * tb.divisor)
    assert tb.overruns.count == 1
    assert int(dut.rx_data__valid.value) == 1 and int(dut.rx_data__payload.value) == 0x11
    mon = StreamMonitor(dut.clk, _ports(dut, "rx_data"), tb.rng, stall=0.0)
    await tb.line.write_byte(0x33)
    await ClockCycles(dut.clk, 2 * tb.divisor)
    assert mon.items == [0x11, 0x33], mon.items


@cocotb.test()
async def tx_bit_timing(dut):
    """Every transmitted bit lasts exactly `divisor` cycles; bytes come out in order."""
    tb = TB(dut, "tx_bit_timing")
    await tb.reset()
    mon = LineMonitor(dut.clk, dut.tx, tb.divisor)
    drv = StreamDriver(dut.clk, _ports(dut, "tx_data"), tb.rng, idle=0.4, divisor=tb.divisor)
    sent = [0x00, 0xFF, 0x01, 0x80] + [tb.rng.randrange(256) for _ in range(30)]
    for b in sent:
        await drv.send(b)
    await ClockCycles(dut.clk, 12 * tb.divisor)
    assert not mon.errors, mon.errors[:5]
    assert mon.bytes == sent, (mon.bytes, sent)


@cocotb.test()
async def loopback(dut):
    """tx wired back to rx in the testbench: a random stream makes the round trip unchanged."""
    tb = TB(dut, "loopback")
    await tb.reset()

    async def wire():
        while True:
            await RisingEdge(dut.clk)
            dut.rx.value = int(dut.tx.value)

    cocotb.start_soon(wire())
    mon = StreamMonitor(dut.clk, _ports(dut, "rx_data"), tb.rng, stall=0.2)
    drv = StreamDriver(dut.clk, _ports(dut, "tx_data"), tb.rng, idle=0.2, divisor=tb.divisor)
    sent = [tb.rng.randrange(256) for _ in range(40)]
    for b in sent:
        await drv.send(b)
    await ClockCycles(dut.clk, 12 * tb.divisor)
    assert not mon.errors, mon.errors
    assert mon.items == sent
    assert tb.frame_errors.count == 0 and tb.overruns.count == 0


# ---------------------------------------------------------------------------------------- pytest


def test_divisor_validation():
    for bad in (3, 0, -1, 4.0, "8", True):
        with pytest.raises(ValueError, match=r"^divisor must be an integer >= 4 \(clock cycles per bit\), not "):
            UARTRx(divisor=bad)
        with pytest.raises(ValueError, match=r"^divisor must be an integer >= 4"):
            UARTTx(divisor=bad)
    assert UARTTx(divisor=4).divisor == 4


@pytest.mark.parametrize("divisor", [4, 7])
@pytest.mark.parametrize("sim", SIMULATORS)
def test_uart(sim, divisor):
    run_cocotb(UARTPair(divisor=divisor), "uart_pair", "spikegate.rtl_tests.test_uart", sim,
               sim_build_dir(f"uart-d{divisor}", sim), config={"divisor": divisor})
