"""cocotb testbench of ``rtl_tests/test_sdram_bridge.py``: preload words through the controller's
native port (``dram`` domain), then burst reads through the bridge in the core domain (``clk``) with
idle cycles and random back-pressure; a scoreboard of the written words (see the test module)."""

from __future__ import annotations

import random
import zlib

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, RisingEdge, SimTimeoutError, Timer, with_timeout

from spikegate.rtl_tests.cocotb_util import tb_config, tb_seed


def _layouts(port_bits):
    from spikegate.board_targets.litedram_core import ULX3S_SDRAM
    from spikegate.board_targets.sdram import native_cmd_layout, native_wdata_layout
    from spikegate.hw.wload import burst_cmd_layout
    from spikegate.rtl_tests.test_sdram_bridge import burst_port
    port = burst_port(port_bits)
    return (burst_cmd_layout(port), native_cmd_layout(ULX3S_SDRAM.word_address_bits),
            native_wdata_layout(ULX3S_SDRAM.data_bits), ULX3S_SDRAM, port)


async def _settle():
    await Timer(1, unit="ns")   # combinational outputs after a falling-edge input change


async def _send(clk, valid, ready, payload, items, rng, idle):
    """Drive ``items`` (payload bit values) on a valid/ready stream, idle cycles at random."""
    for bits in items:
        await FallingEdge(clk)
        while rng.random() < idle:
            valid.value = 0
            await FallingEdge(clk)
        payload.value = bits
        valid.value = 1
        await _settle()
        while not int(ready.value):
            await FallingEdge(clk)
            await _settle()
    await FallingEdge(clk)
    valid.value = 0


async def _run_until(clk, tasks, budget, what, *detail):
    """Wait for ``tasks`` for at most ``budget`` cycles of ``clk``; ``what`` (formatted with the
    ``detail`` callables' values) names them in the timeout."""
    for _ in range(budget):
        await RisingEdge(clk)
        if all(t.done() for t in tasks):
            return
    raise AssertionError(f"TIMEOUT: {what.format(*(f() for f in detail))} not done within "
                         f"{budget} cycles")


def _plan(rng, cfg, chip, port):
    """Regions of words (one across a row end) with random contents, and bursts (in beats of
    ``k`` words) inside them."""
    k = port.port_bits // chip.data_bits
    words, n = 1 << chip.word_address_bits, cfg["region_words"]
    starts = [rng.randrange(1, chip.rows * chip.banks) * chip.cols - n // 2]   # across a row end
    while len(starts) < cfg["regions"]:
        s = rng.randrange(0, words - n)
        if all(abs(s - t) > n for t in starts):
            starts.append(s)
    ref = {a: rng.getrandbits(16) for s in starts for a in range(s, s + n)}
    bursts = []
    for _ in range(cfg["bursts"]):
        s = rng.choice(starts)
        length = rng.randint(1, min(port.max_burst, n // k - 1))
        first = -(-s // k)
        bursts.append((rng.randrange(first, (s + n) // k - length + 1), length))
    return ref, bursts


def _beat(ref, b, k, word_bits):
    """Beat ``b``: its ``k`` words, the first low."""
    return sum(ref[b * k + j] << (j * word_bits) for j in range(k))


async def start_sdram_side(dut, cfg: dict, margin: int) -> None:
    """Both SDRAM harnesses' start (this one and ``tb_sdram_upload``'s): the core clock, ``dram``
    and the chip's clock 90 degrees after it, both resets held 4 ``dram`` cycles, then LiteDRAM's
    power-up sequence (``cfg["init_cycles"]``), which must raise ``init_done`` within ``margin``
    more ``dram`` cycles."""
    dut.rst.value = dut.dram_rst.value = 1
    Clock(dut.clk, cfg["core_period_ps"], unit="ps").start()
    Clock(dut.dram_clk, cfg["dram_period_ps"], unit="ps").start()
    await Timer(cfg["dram_period_ps"] // 4, unit="ps")          # the chip's clock: 90 degrees late
    Clock(dut.sdram_clk, cfg["dram_period_ps"], unit="ps").start()
    await ClockCycles(dut.dram_clk, 4)
    dut.rst.value = dut.dram_rst.value = 0
    budget = cfg["init_cycles"] + margin
    try:
        await with_timeout(RisingEdge(dut.init_done), budget * cfg["dram_period_ps"], "ps")
    except SimTimeoutError:
        raise AssertionError(f"TIMEOUT: init_done not within {budget} dram cycles") from None


@cocotb.test()
async def bursts_through_the_bridge(dut):
    cfg = tb_config()
    burst_l, cmd_l, wdata_l, chip, port = _layouts(cfg["port_bits"])
    k = port.port_bits // chip.data_bits
    seed = tb_seed() ^ zlib.crc32(b"sdram-bridge") & 0xFFFF
    dut._log.info(f"seed {seed}")
    rng = random.Random(seed)

    for s in (dut.mem__cmd__valid, dut.mem__rdata__ready, dut.pre_cmd__valid, dut.pre_wdata__valid):
        s.value = 0
    dut.preload.value = 1
    await start_sdram_side(dut, cfg, margin=1000)

    ref, bursts = _plan(rng, cfg, chip, port)
    addrs = list(ref)
    dram = dut.dram_clk
    cmds = [cmd_l.const({"we": 1, "addr": a}).as_bits() for a in addrs]
    wdata = [wdata_l.const({"data": ref[a], "we": 3}).as_bits() for a in addrs]
    tasks = [cocotb.start_soon(_send(dram, dut.pre_cmd__valid, dut.pre_cmd__ready, dut.pre_cmd__payload,
                                     cmds, rng, cfg["idle"])),
             # (no idle cycles on wdata: LiteDRAM's native port takes the write data the cycle it
             # raises wdata.ready, valid or not; the words are always there before it asks)
             cocotb.start_soon(_send(dram, dut.pre_wdata__valid, dut.pre_wdata__ready,
                                     dut.pre_wdata__payload, wdata, rng, 0.0))]
    await _run_until(dram, tasks, 20 * len(addrs) + 1000, f"{len(addrs)} preload writes (the chip "
                     f"model saw {{}} WRITE)", lambda: int(dut.writes.value))
    await ClockCycles(dram, 4)
    await FallingEdge(dram)
    dut.preload.value = 0

    # the core's side: bursts in, beats out under back-pressure; expected beats in command order
    expected = [_beat(ref, b + i, k, chip.data_bits) for b, n in bursts for i in range(n)]
    got = []

    async def take():
        clk = dut.clk
        stall = 0
        while len(got) < len(expected):
            await FallingEdge(clk)
            if stall == 0 and rng.random() < 0.01:      # now and then long enough to fill the FIFOs
                stall = 60
            stall = max(0, stall - 1)
            ready = not stall and rng.random() >= cfg["backpressure"]
            dut.mem__rdata__ready.value = int(ready)
            await _settle()
            if ready and int(dut.mem__rdata__valid.value):
                got.append(str(dut.mem__rdata__payload.value))
        await FallingEdge(clk)
        dut.mem__rdata__ready.value = 0

    items = [burst_l.const({"addr": a, "len": n}).as_bits() for a, n in bursts]
    tasks = [cocotb.start_soon(_send(dut.clk, dut.mem__cmd__valid, dut.mem__cmd__ready,
                                     dut.mem__cmd__payload, items, rng, cfg["idle"])),
             cocotb.start_soon(take())]
    budget = 30 * len(expected) + 2000
    await _run_until(dut.clk, tasks, budget, f"{len(bursts)} bursts ({{}} of {len(expected)} beats "
                     f"back)", lambda: len(got))

    bad = [f"beat {i}: read {g}, expected {w:0{port.port_bits}b}"
           for i, (g, w) in enumerate(zip(got, expected)) if g != f"{w:0{port.port_bits}b}"]
    if cfg["expect_mismatch"]:
        assert bad, "the mutant bridge returned every beat right"
        dut._log.info(f"{len(bad)} of {len(got)} beats wrong, as expected; first: {bad[0]}")
        return
    assert not bad, f"{len(bad)} of {len(got)} beats wrong; first: {bad[0]}"
    violations = int(dut.violations.value)
    dut._log.info(f"{len(bursts)} bursts, {len(got)} {port.port_bits}-bit beats equal to the "
                  f"{len(ref)} preloaded words; "
                  f"chip model: {int(dut.writes.value)} WRITE, {int(dut.reads.value)} READ, "
                  f"{violations} timing violations")
    assert violations == 0, f"the chip model saw {violations} timing violations (see sim.log)"
