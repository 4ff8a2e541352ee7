# amaranth: UnusedElaboratable=no
"""The burst-port bridge (``board_targets/sdram_bridge.py``) with the real LiteDRAM core and the chip
model, two clocks, on Icarus (issue 24, items 3/4b).

The design: a harness (below) holding the bridge, the ``SDRAMController`` in the ``dram`` domain
(the LiteDRAM core generated for 50 MHz, as the board top runs it) and a preload mux on the
controller's native port; a Verilog top wires it to the chip model
(``hw/sim_models/sdram_mt48lc16m16a2.v``), whose clock is ``dram``'s 90 degrees later, as on the
board. The core clock (``sync``, 60 MHz, the ULX3S's default) and ``dram`` are unrelated.

The testbench (``rtl_tests/tb_sdram_bridge.py``, seed printed): after ``init_done`` it writes random
words through the native port into a few regions (random rows and banks, one across a row end),
then plays the core: random bursts (1..16 beats) into those regions on ``mem.cmd`` in the core
domain with idle cycles, random back-pressure on ``mem.rdata``; every beat must equal the word
written there, in order, and the chip model must see no timing violation. The mutant (a bridge
reading one word too far) must fail the compare.

Beside them: a beat of partial words is refused, and the SDRAM board top elaborates for the ULX3S.
Cost: about 12 CPU seconds for the five tests from a clean build folder (each simulation covers
~21,000 dram cycles, ~10,000 of them LiteDRAM's 200 us power-up wait).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from amaranth.hdl import DomainRenamer, Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.rtl_tests.cocotb_util import run_cocotb, sim_build_dir, write_verilog

DRAM_HZ = 50_000_000
CORE_PERIOD_PS = 16_666      # 60 MHz (an even number of ps: cocotb halves it)
DRAM_PERIOD_PS = 20_000
MODEL = Path(__file__).resolve().parent.parent / "hw" / "sim_models" / "sdram_mt48lc16m16a2.v"

TB_TOP = """`timescale 1ns / 1ps
// The bridge harness (bridge + SDRAM controller + preload mux) wired to the chip model.
module bridge_tb (
    input  wire clk, input wire rst, input wire dram_clk, input wire dram_rst,
    input  wire sdram_clk,
    input  wire mem__cmd__valid, output wire mem__cmd__ready, input wire [{bw}:0] mem__cmd__payload,
    output wire mem__rdata__valid, input wire mem__rdata__ready, output wire [{pw}:0] mem__rdata__payload,
    input  wire preload,
    input  wire pre_cmd__valid, output wire pre_cmd__ready, input wire [{cw}:0] pre_cmd__payload,
    input  wire pre_wdata__valid, output wire pre_wdata__ready, input wire [{ww}:0] pre_wdata__payload,
    output wire init_done,
    output wire [31:0] violations, output wire [31:0] reads, output wire [31:0] writes
);
    wire [12:0] a; wire [1:0] ba, dm; wire ras_n, cas_n, we_n, cs_n, cke; wire [15:0] dq;
    wire [31:0] refreshes;
    bridge_harness h (.clk(clk), .rst(rst), .dram_clk(dram_clk), .dram_rst(dram_rst),
        .mem__cmd__valid(mem__cmd__valid), .mem__cmd__ready(mem__cmd__ready),
        .mem__cmd__payload(mem__cmd__payload),
        .mem__rdata__valid(mem__rdata__valid), .mem__rdata__ready(mem__rdata__ready),
        .mem__rdata__payload(mem__rdata__payload), .preload(preload),
        .pre_cmd__valid(pre_cmd__valid), .pre_cmd__ready(pre_cmd__ready),
        .pre_cmd__payload(pre_cmd__payload),
        .pre_wdata__valid(pre_wdata__valid), .pre_wdata__ready(pre_wdata__ready),
        .pre_wdata__payload(pre_wdata__payload), .init_done(init_done),
        .sdram_a(a), .sdram_ba(ba), .sdram_ras_n(ras_n), .sdram_cas_n(cas_n), .sdram_we_n(we_n),
        .sdram_cs_n(cs_n), .sdram_cke(cke), .sdram_dm(dm), .sdram_dq(dq));
    sdram_mt48lc16m16a2 chip (.clk(sdram_clk), .cke(cke),
        .cs_n(cs_n), .ras_n(ras_n), .cas_n(cas_n), .we_n(we_n), .ba(ba), .a(a), .dqm(dm), .dq(dq),
        .violations(violations), .refreshes(refreshes), .reads(reads), .writes(writes));
endmodule
"""


def burst_port(port_bits: int):
    """The ULX3S's burst port (the MNIST build's: 16-bit beats) with ``port_bits``-bit beats."""
    from dataclasses import replace

    from spikegate.machine.external_memory import ULX3S_PORT
    return replace(ULX3S_PORT, port_bits=port_bits)


def _bridge_class(mutant: bool):
    from spikegate.board_targets.sdram_bridge import SDRAMBridge
    if not mutant:
        return SDRAMBridge

    class OffByOne(SDRAMBridge):
        """The mutant: every burst starts one word too far."""
        def _word_address(self, beat_addr):
            return super()._word_address(beat_addr) + 1
    return OffByOne


class BridgeHarness(wiring.Component):
    """Bridge + controller (``dram`` domain) + a mux that gives the native port to ``pre_cmd``/
    ``pre_wdata`` (the testbench's preload, ``dram`` domain) while ``preload`` is high."""

    def __init__(self, port_bits: int = 16, mutant: bool = False):
        from spikegate.board_targets.litedram_core import ULX3S_SDRAM
        from spikegate.board_targets.sdram import native_cmd_layout, native_wdata_layout
        from spikegate.hw.wload import burst_port_signature
        self._mutant, self._port = mutant, burst_port(port_bits)
        super().__init__({
            "mem": In(burst_port_signature(self._port)),
            "preload": In(1),
            "pre_cmd": In(stream.Signature(native_cmd_layout(ULX3S_SDRAM.word_address_bits))),
            "pre_wdata": In(stream.Signature(native_wdata_layout(ULX3S_SDRAM.data_bits))),
            "init_done": Out(1),
        })

    def elaborate(self, platform):
        from spikegate.board_targets.sdram import SDRAMController
        m = Module()
        m.submodules.ctrl = ctrl = DomainRenamer("dram")(SDRAMController(DRAM_HZ))
        m.submodules.bridge = bridge = _bridge_class(self._mutant)(self._port)
        wiring.connect(m, wiring.flipped(self.mem), bridge.mem)
        wiring.connect(m, wiring.flipped(self.pre_wdata), ctrl.wdata)
        wiring.connect(m, bridge.dram_rdata, ctrl.rdata)
        m.d.comb += self.init_done.eq(ctrl.init_done)
        with m.If(self.preload):
            m.d.comb += [ctrl.cmd.valid.eq(self.pre_cmd.valid), ctrl.cmd.payload.eq(self.pre_cmd.payload),
                         self.pre_cmd.ready.eq(ctrl.cmd.ready)]
        with m.Else():
            m.d.comb += [ctrl.cmd.valid.eq(bridge.dram_cmd.valid),
                         ctrl.cmd.payload.eq(bridge.dram_cmd.payload),
                         bridge.dram_cmd.ready.eq(ctrl.cmd.ready)]
        return m


def _sources(build: Path, port_bits: int, mutant: bool) -> list[Path]:
    from spikegate.board_targets.litedram_core import ULX3S_SDRAM, generate_ulx3s_sdram_core
    from spikegate.board_targets.sdram import native_cmd_layout, native_wdata_layout
    from spikegate.hw.wload import burst_cmd_layout
    from spikegate.rtl_tests.test_litedram import _ecp5_models
    core = generate_ulx3s_sdram_core(build / "core", DRAM_HZ)
    harness = write_verilog(BridgeHarness(port_bits, mutant), "bridge_harness",
                            build / "bridge_harness.v")
    top = build / "bridge_tb.v"
    text = TB_TOP.format(bw=burst_cmd_layout(burst_port(port_bits)).size - 1, pw=port_bits - 1,
                         cw=native_cmd_layout(ULX3S_SDRAM.word_address_bits).size - 1,
                         ww=native_wdata_layout(ULX3S_SDRAM.data_bits).size - 1)
    if not top.exists() or top.read_text() != text:
        top.write_text(text)
    return [top, harness, core, MODEL, _ecp5_models(build)]


# (case, beat bits, mutant): the bridge must return every word, in 16-bit beats (the MNIST build's)
# and in 32-bit beats of two words; the mutant's off-by-one must be caught
CASES = [("bridge-16", 16, False), ("bridge-32", 32, False), ("mutant-off-by-one", 16, True)]


@pytest.mark.parametrize("case,port_bits,mutant", CASES)
def test_sdram_bridge_bursts(case, port_bits, mutant):
    from spikegate.board_targets.litedram_core import init_sequence_cycles
    build = sim_build_dir(f"sdram-bridge-{case}", "icarus")
    build.mkdir(parents=True, exist_ok=True)
    run_cocotb(_sources(build, port_bits, mutant), "bridge_tb", "spikegate.rtl_tests.tb_sdram_bridge", "icarus",
               build, config={"port_bits": port_bits, "regions": 5, "region_words": 40, "bursts": 40, "idle": 0.2,
                              "backpressure": 0.3, "init_cycles": init_sequence_cycles(DRAM_HZ),
                              "core_period_ps": CORE_PERIOD_PS, "dram_period_ps": DRAM_PERIOD_PS,
                              "expect_mismatch": mutant})


def test_bridge_rejects_a_beat_of_partial_words():
    """A beat that is not whole 16-bit words cannot be read word by word: refused at construction."""
    from spikegate.board_targets.sdram_bridge import SDRAMBridge
    from spikegate.machine.external_memory import BurstPort
    with pytest.raises(ValueError, match="not whole 16-bit SDRAM words"):
        SDRAMBridge(BurstPort(port_bits=8))
    assert SDRAMBridge(BurstPort(port_bits=64)).words_per_beat == 4


def _toy_with_burst_port(port=None):
    """``ToyCore`` with an idle burst port ``mem``: a core with SDRAM weights, for the board top."""
    from spikegate.rtl_tests.toy_core import ToyCore
    return ToyCore(num_pixels=16, num_classes=4, pixel_bits=8, logit_bits=16, burst_port=port or burst_port(16))


def test_board_top_with_sdram_elaborates_for_the_ulx3s(tmp_path):
    """The SDRAM board top against amaranth-boards' ULX3S: the PLL makes the core's 60 MHz, the
    controller's 50 and 50 at 90 degrees (ecppll's dividers and phase counts), an ODDRX1F on that
    drives the SDRAM's clock ball (F19), the LiteDRAM core for 50 MHz and the bridge are in, and a
    core whose burst port is not the ULX3S's is refused."""
    from spikegate.board_targets.boards import get_board
    from spikegate.board_targets.litedram_core import core_module_name, generate_ulx3s_sdram_core
    from spikegate.board_targets.top import BoardTop
    top = BoardTop(_toy_with_burst_port, "ulx3s-85f", num_pixels=16, num_classes=4, sdram=True, sdram_words=256)
    assert (top.clock["actual_mhz"], top.dram_clock_hz) == (60.0, DRAM_HZ)
    platform = get_board("ulx3s-85f").platform()
    core = generate_ulx3s_sdram_core(tmp_path, top.dram_clock_hz)
    platform.add_file(core.name, core.read_text())
    platform.prepare(top, name="top").extract(tmp_path / "build")
    il = (tmp_path / "build" / "top.il").read_text()
    for line in ("parameter \\CLKOP_DIV 10", "parameter \\CLKOS_DIV 12", "parameter \\CLKOS_CPHASE 4",
                 "parameter \\CLKOS2_DIV 12", "parameter \\CLKOS2_CPHASE 7", "connect \\CLKOS \\dram_clk",
                 "connect \\CLKOS2 \\dram_clk_ps", "cell \\ODDRX1F", f"cell \\{core_module_name(DRAM_HZ)}",
                 "attribute \\FREQUENCY_PIN_CLKOS \"50\""):
        assert line in il, line
    assert "sdram_bridge" in il
    assert 'LOCATE COMP "sdram_0__clk__io" SITE "F19"' in (tmp_path / "build" / "top.lpf").read_text()
    from dataclasses import replace

    from spikegate.board_targets.top import CoreWithoutBurstPort
    longer = replace(burst_port(16), max_burst=64)        # its `len` is wider than the board's
    with pytest.raises(ValueError, match="not the ULX3S's"):
        CoreWithoutBurstPort(_toy_with_burst_port(longer)).burst_port
