"""A ULX3S top that exercises the SDRAM controller alone: for synthesis (does the LiteDRAM core meet
timing at its clock on the LFE5U-85F?) and for bring-up on a real board (two LEDs).

It writes ``words`` words (word ``i`` holds a hash of ``i``), reads them back, compares, and loops;
``led[0]`` toggles after every pass, ``led[1]`` latches any mismatch, ``led[2]`` is ``init_done``.
The traffic keeps the whole controller alive in synthesis (a port tied to constants would let
Yosys drop most of it).

Clocks: the 25 MHz oscillator through the ECP5 PLL (:mod:`.pll`) makes ``sync`` at ``sys_clk_hz``.
The SDRAM clock pin is driven by an ``ODDRX1F`` from ``sync``, inverted (180 degrees): enough for
timing analysis of the core, NOT for a working board, which needs the PLL's second output at
90 degrees (docs/sdram.md, "Clocks"; the simulation shows 180 degrees reads X).

Rerun: ``.venv/bin/python -m spikegate.board_targets.sdram_selftest OUT_DIR [MHz]`` (one nextpnr
job; prints nextpnr's Fmax of ``sync`` against the requested clock).
"""

from __future__ import annotations

import json
import os
import sys

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib.cdc import ResetSynchronizer

from .litedram_core import generate_ulx3s_sdram_core
from .pll import pll_instance, pll_params
from .sdram import SDRAMController, board_pins

__all__ = ["SDRAMSelfTestTop", "synth_selftest"]


def _pattern(i):
    return (i[:16] ^ i[8:24] ^ 0x5A5A)[:16]


class SDRAMSelfTestTop(Elaboratable):
    def __init__(self, sys_clk_hz: int, words: int = 4096):
        self.sys_clk_hz = int(sys_clk_hz)
        self.words = words

    def elaborate(self, platform):
        m = Module()
        osc = platform.request("clk25", dir="-")
        params = pll_params("ecp5", 25.0, self.sys_clk_hz / 1e6)
        clk, locked = Signal(), Signal()
        m.domains.sync = ClockDomain()
        m.submodules.pll = pll_instance(params, clk_in=osc.io, clk_out=clk, locked=locked)
        m.d.comb += ClockSignal("sync").eq(clk)
        platform.add_clock_constraint(clk, params.fout_mhz * 1e6)
        m.submodules.rst = ResetSynchronizer(~locked, domain="sync")

        sdram = platform.request("sdram", 0, dir="-")
        m.submodules.ctrl = ctrl = SDRAMController(self.sys_clk_hz, pins=board_pins(sdram))
        m.submodules.sdram_clk = Instance("ODDRX1F", i_SCLK=ClockSignal("sync"), i_RST=0,
                                          i_D0=0, i_D1=1, o_Q=sdram.clk.io)

        n = self.words
        wr, cmd_i, data_i, chk_i = Signal(init=1), Signal(24), Signal(24), Signal(24)
        passes, error = Signal(), Signal()
        m.d.comb += [
            ctrl.cmd.valid.eq(ctrl.init_done & (cmd_i < n)),
            ctrl.cmd.payload.we.eq(wr), ctrl.cmd.payload.addr.eq(cmd_i),
            ctrl.wdata.valid.eq(wr & (data_i < n)),
            ctrl.wdata.payload.data.eq(_pattern(data_i)), ctrl.wdata.payload.we.eq(0b11),
            ctrl.rdata.ready.eq(1),
        ]
        with m.If(ctrl.cmd.valid & ctrl.cmd.ready):
            m.d.sync += cmd_i.eq(cmd_i + 1)
        with m.If(ctrl.wdata.valid & ctrl.wdata.ready):
            m.d.sync += data_i.eq(data_i + 1)
        with m.If(ctrl.rdata.valid):
            m.d.sync += chk_i.eq(chk_i + 1)
            with m.If(ctrl.rdata.payload != _pattern(chk_i)):
                m.d.sync += error.eq(1)
        with m.If(wr & (cmd_i == n) & (data_i == n)):          # all written: read back
            m.d.sync += [wr.eq(0), cmd_i.eq(0)]
        with m.If(~wr & (chk_i == n)):                         # all checked: again
            m.d.sync += [wr.eq(1), cmd_i.eq(0), data_i.eq(0), chk_i.eq(0), passes.eq(~passes)]

        leds = [platform.request("led", i, dir="-") for i in range(3)]
        for led, sig in zip(leds, (passes, error, ctrl.init_done)):
            m.submodules[f"led{led.io.name}"] = Instance("OB", i_I=sig, o_O=led.io)
        return m


def synth_selftest(out_dir: str, sys_clk_hz: int = 100_000_000, seed: int = 1) -> dict:
    """Build the self-test for the ULX3S-85F with the flow's tool options and build script;
    returns nextpnr's clocks (``flow.clock_timing``) and the utilisation it reports."""
    from .boards import get_board
    from .flow import NEXTPNR_REPORT, _run_build_script, _tool_options, clock_timing, tool_env

    board = get_board("ulx3s-85f")
    env = tool_env()
    platform = board.platform()
    core = generate_ulx3s_sdram_core(os.path.join(out_dir, "core"), sys_clk_hz)
    platform.add_file(core.name, core.read_text())
    plan = platform.prepare(SDRAMSelfTestTop(sys_clk_hz), name="top", **_tool_options(board, seed))
    plan.extract(out_dir)
    rc = _run_build_script(out_dir, board, env)
    path = os.path.join(out_dir, NEXTPNR_REPORT)
    nextpnr = json.load(open(path)) if os.path.exists(path) else {}
    return {"exit": rc, "requested_mhz": sys_clk_hz / 1e6, "timing": clock_timing(nextpnr),
            "utilization": {k: v.get("used") for k, v in nextpnr.get("utilization", {}).items()
                            if v.get("used")}}


if __name__ == "__main__":
    mhz = float(sys.argv[2]) if len(sys.argv) > 2 else 100.0
    print(json.dumps(synth_selftest(sys.argv[1], int(mhz * 1e6)), indent=1))
