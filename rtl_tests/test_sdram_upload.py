# amaranth: UnusedElaboratable=no
"""Weights into the ULX3S's SDRAM through the host link, simulated (issue 24, items 4b and 5).

The design: the SDRAM side of the board top (``board_targets/top.py``, ``sdram=True``) without
its PLL and pins: ``UARTAccelerator`` (UART, host link with its SDRAM loader) around a toy core with
a burst port, the ``SDRAMBridge`` (``host`` and ``mem`` ports, two clocks) and the
``SDRAMController`` (the LiteDRAM core generated for 50 MHz) in a ``dram`` domain, wired by a
Verilog top to the chip model (``hw/sim_models/sdram_mt48lc16m16a2.v``), whose clock is ``dram``'s
90 degrees later, as on the board. The core clock is 60 MHz (the ULX3S's), unrelated to ``dram``.

The testbench (``rtl_tests/tb_sdram_upload.py``, seed printed; ``SPIKEGATE_TB_SEED=N`` reruns it)
speaks raw frames on the UART pins (``spikegate.host.encode_frame`` / ``FrameParser``): INFO says
version 3, not verified; START is refused (WEIGHTS_NOT_VERIFIED); a random image of ``words``
16-bit words goes in with LOAD_SDRAM in random chunks (each acknowledgement checked), with refused
frames between them (past the end, half a word, a check of 0 words); CHECK_SDRAM with a wrong CRC,
then over a prefix, both leave it unverified (and START refused) while the CRC the device read back
equals the host's (``sdram_crc``) of what was written; the whole image's check verifies it and
START then runs an image (the toy's result checked). Then one word is rewritten: not verified, and
the device's CRC over the whole image now differs from the original's (it reads the SDRAM, not a
remembered verdict); the word restored and checked, it is verified again. The chip model must see
no timing violation and every word written.

Cost: about 16 CPU seconds (one Icarus build and run: 1.8 ms of simulated time, ~89,000 dram
cycles, 10,000 of them LiteDRAM's power-up wait; most of the rest is the UART's bytes). Icarus only, as test_litedram.py (the chip model times its data window
with delays).
"""

from __future__ import annotations

from pathlib import Path

from amaranth.hdl import DomainRenamer, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.rtl_tests.cocotb_util import run_cocotb, sim_build_dir, write_verilog

DRAM_HZ = 50_000_000
CORE_PERIOD_PS = 16_666      # 60 MHz (an even number of ps: cocotb halves it)
DRAM_PERIOD_PS = 20_000
DIVISOR = 6                  # UART clock cycles per bit (the board: 20, 3 Mbaud at 60 MHz)
TIMEOUT = 4_000              # inter-byte timeout, core cycles
WORDS = 300                  # the image's 16-bit words
DESIGN = dict(num_pixels=16, num_classes=4, pixel_bits=8, logit_bits=16)
MODEL = Path(__file__).resolve().parent.parent / "hw" / "sim_models" / "sdram_mt48lc16m16a2.v"

TB_TOP = """`timescale 1ns / 1ps
// The upload harness (host link + bridge + SDRAM controller) wired to the chip model.
module upload_tb (
    input wire clk, input wire rst, input wire dram_clk, input wire dram_rst, input wire sdram_clk,
    input wire rx, output wire tx, output wire init_done, output wire verified,
    output wire [31:0] violations, output wire [31:0] reads, output wire [31:0] writes
);
    wire [12:0] a; wire [1:0] ba, dm; wire ras_n, cas_n, we_n, cs_n, cke; wire [15:0] dq;
    wire [31:0] refreshes;
    upload_harness h (.clk(clk), .rst(rst), .dram_clk(dram_clk), .dram_rst(dram_rst),
        .rx(rx), .tx(tx), .init_done(init_done), .verified(verified),
        .sdram_a(a), .sdram_ba(ba), .sdram_ras_n(ras_n), .sdram_cas_n(cas_n), .sdram_we_n(we_n),
        .sdram_cs_n(cs_n), .sdram_cke(cke), .sdram_dm(dm), .sdram_dq(dq));
    sdram_mt48lc16m16a2 chip (.clk(sdram_clk), .cke(cke),
        .cs_n(cs_n), .ras_n(ras_n), .cas_n(cas_n), .we_n(we_n), .ba(ba), .a(a), .dqm(dm), .dq(dq),
        .violations(violations), .refreshes(refreshes), .reads(reads), .writes(writes));
endmodule
"""


class UploadHarness(wiring.Component):
    """The board top's SDRAM side (module docstring): UART pins, ``init_done``, ``verified``."""

    def __init__(self):
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "init_done": Out(1), "verified": Out(1)})

    def elaborate(self, platform):
        from spikegate.board_targets.litedram_core import ULX3S_SDRAM
        from spikegate.board_targets.sdram import SDRAMController
        from spikegate.board_targets.sdram_bridge import SDRAMBridge
        from spikegate.board_targets.top import CoreWithoutBurstPort
        from spikegate.hw.host_link import UARTAccelerator
        m = Module()
        from spikegate.machine.external_memory import ULX3S_PORT
        from spikegate.rtl_tests.toy_core import ToyCore
        core = CoreWithoutBurstPort(ToyCore(**DESIGN, burst_port=ULX3S_PORT))
        m.submodules.system = system = UARTAccelerator(
            core, num_pixels=DESIGN["num_pixels"], num_classes=DESIGN["num_classes"], divisor=DIVISOR,
            timeout=TIMEOUT, clk_hz=60_000_000, sdram_words=WORDS, sdram_addr_bits=ULX3S_SDRAM.word_address_bits,
            registered_start=True)
        m.submodules.ctrl = ctrl = DomainRenamer("dram")(SDRAMController(DRAM_HZ))
        m.submodules.bridge = bridge = SDRAMBridge(core.burst_port)
        wiring.connect(m, core.mem, bridge.mem)
        wiring.connect(m, system.sdram, bridge.host)
        wiring.connect(m, bridge.dram_cmd, ctrl.cmd)
        wiring.connect(m, bridge.dram_wdata, ctrl.wdata)
        wiring.connect(m, ctrl.rdata, bridge.dram_rdata)
        m.d.comb += [system.rx.eq(self.rx), self.tx.eq(system.tx), self.init_done.eq(ctrl.init_done),
                     self.verified.eq(system.link.sdram_verified)]
        return m


def test_sdram_upload_through_the_host_link():
    from spikegate.board_targets.litedram_core import generate_ulx3s_sdram_core, init_sequence_cycles
    from spikegate.rtl_tests.test_litedram import _ecp5_models
    build = sim_build_dir("sdram-upload", "icarus")
    build.mkdir(parents=True, exist_ok=True)
    core = generate_ulx3s_sdram_core(build / "core", DRAM_HZ)
    harness = write_verilog(UploadHarness(), "upload_harness", build / "upload_harness.v")
    top = build / "upload_tb.v"
    if not top.exists() or top.read_text() != TB_TOP:
        top.write_text(TB_TOP)
    run_cocotb([top, harness, core, MODEL, _ecp5_models(build)], "upload_tb", "spikegate.rtl_tests.tb_sdram_upload",
               "icarus", build,
               config={"words": WORDS, "divisor": DIVISOR, "timeout": TIMEOUT, **DESIGN,
                       "init_cycles": init_sequence_cycles(DRAM_HZ), "core_period_ps": CORE_PERIOD_PS,
                       "dram_period_ps": DRAM_PERIOD_PS})
