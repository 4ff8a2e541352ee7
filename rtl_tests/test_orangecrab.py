"""The OrangeCrab with the real accelerator (issue 28): the model `make demo` and the bench put on it
(``fpga-tiny-t2``: the default does not fit the ECP5-25F), quantised as the demo does and compiled
for the board with its defaults (4 lanes, weights in block RAM), then

* synthesised by ``spikegate synth`` (Yosys, nextpnr-ecp5, ecppack: the flow of
  ``board_targets/flow.py``) at nextpnr's seed 1: it fits, meets the board's 24 MHz, and the
  bitstream is written with its checksum;
* simulated as the board top ``synth`` builds (the 48 MHz oscillator through the EHXPLLL, here
  ``sim_pll``'s stub, to 24 MHz; the 115200-baud divisor, 208; the 100 ms inter-byte timeout), with
  the host client sending two held-out digits over the UART pins on Verilator: logits and class
  against the golden model, cycles against the ISS, after ``tb_board_uart``'s power-on and
  unknown-command cases (its corrupt-frame case waits out the 100 ms timeout, 2.4 M cycles here; it
  runs at divisor 4 in ``test_board_uart.py``).

Both share one build (one xdist group). CPU cost: the synthesis about 100 s (measured 98 s user
for Yosys, nextpnr-ecp5 and ecppack; 6,172 LUTs, 139.0 MHz at seed 1 against the 24 MHz it
requests); the quantisation, compile and simulation about 40 s together (measured 39 s user with
a fresh Verilator build; 79 ms of board time, 1.9 M clock cycles, most of them the two images'
UART sessions of 833 k cycles each).
"""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from spikegate.cli import main
from spikegate.rtl_tests.cocotb_util import run_cocotb, sim_build_dir
from spikegate.rtl_tests.test_board_uart import MODULE, quantize_and_compile, real_clock_sim

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("orangecrab")]

BOARD = "orangecrab"
CHECKPOINT = "fpga-tiny-t2"
DIGITS = [0, 1]
NAME = "board_uart_orangecrab"


@pytest.fixture(scope="module")
def orangecrab_build(tmp_path_factory):
    build = quantize_and_compile(CHECKPOINT, BOARD, tmp_path_factory.mktemp("orangecrab"))
    with open(os.path.join(build, "report.json")) as f:
        report = json.load(f)
    assert (report["target"], report["lanes"], report["weights"]["loading"]) == (BOARD, 4, "bitstream")
    return build


def test_orangecrab_synthesises_the_real_accelerator(orangecrab_build, capsys):
    from spikegate.board_targets import get_board

    rc = main(["synth", orangecrab_build, "--board", BOARD, "--json"])
    out = capsys.readouterr()
    assert rc == 0, out.err[-2000:]
    r = json.loads(out.out)
    with open(os.path.join(orangecrab_build, BOARD, "synth.json")) as f:
        assert json.load(f) == r
    b = get_board(BOARD)
    assert (r["board"], r["device"], r["compiled_for"], r["seed"]) == (BOARD, b.device, BOARD, 1)
    assert r["error"] is None and r["timing_met"] is True
    assert r["fmax_mhz"] >= r["clock_mhz"] == r["requested_mhz"] == b.clock_mhz
    assert 0 < r["luts"]["used"] <= r["luts"]["available"] == b.resources.luts
    assert 0 < r["ffs"]["used"] and 0 < r["bram"]["used"] <= r["bram"]["available"]
    assert r["dsp"]["used"] > 0          # the lanes' multipliers are the ECP5's MULT18X18D
    assert r["uart_divisor"] == round(r["clock_mhz"] * 1e6 / 115200) and r["pll"] is True
    with open(os.path.join(orangecrab_build, r["bitstream"]), "rb") as f:
        bit = f.read()
    assert hashlib.sha256(bit).hexdigest() == r["bitstream_sha256"] and len(bit) > 100_000


def test_orangecrab_board_uart_at_the_real_clock(orangecrab_build):
    from spikegate.rtl_tests.sim_pll import VERILATOR_ARGS

    sources, config = real_clock_sim(orangecrab_build, BOARD, DIGITS, NAME)
    assert config["weights"] is None and config["pll"]["clk_hz"] == 24e6
    run_cocotb(sources, MODULE, "spikegate.rtl_tests.tb_board_uart", "verilator",
               sim_build_dir(NAME, "verilator"), config=config, build_args=VERILATOR_ARGS,
               testcase=["power_on", "runtime_weights", "inferences_match_golden"])
