"""``spikegate synth`` and the board targets.

The slow tests run the real flow (Yosys, nextpnr, pack; yowasp builds) on the toy core of
``spikegate.rtl_tests.toy_core`` wrapped for each board, and check ``synth.json``. The first
yowasp call on a machine compiles WebAssembly (about 30 s per tool, cached in ~/.cache/yowasp).
The rest are cheap: board data, PLL settings, and every user error before synthesis starts.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os

import pytest

from spikegate.board_targets import (BOARDS, compile_target, compile_targets, demo_boards, get_board,
                                     known_boards)
from spikegate.board_targets.pll import ecp5_pll, ice40_pll
from spikegate.board_targets.top import clock_plan
from spikegate.cli import main
from spikegate.errors import SpikegateError
from spikegate.rtl_tests.toy_core import ToyCore, write_toy_build


def synth(capsys, *argv) -> tuple[int, str, str]:
    rc = main(["synth", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


# ------------------------------------------------------------------------------ the real flow


@pytest.mark.slow
@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f", "orangecrab"])
def test_synth_toy_core(board, tmp_path, capsys):
    build = write_toy_build(str(tmp_path / "build"), target=board)
    rc, out, err = synth(capsys, build, "--board", board, "--json", "--seed", "3")
    assert rc == 0, err
    printed = json.loads(out)
    with open(os.path.join(build, board, "synth.json")) as f:
        r = json.load(f)
    assert r == printed
    b = get_board(board)
    assert (r["board"], r["device"], r["family"]) == (board, b.device, b.family)
    assert 0 < r["luts"]["used"] <= r["luts"]["available"]
    assert r["luts"]["available"] == b.resources.luts or board == "icebreaker"  # iCE40: logic cells
    assert 0 < r["ffs"]["used"] <= r["ffs"]["available"]
    for key in ("bram", "spram", "dsp"):
        assert 0 <= r[key]["used"] <= r[key]["available"]
    assert r["fmax_mhz"] > 0 and r["requested_mhz"] == b.clock_mhz
    assert r["timing_met"] is True and r["fmax_mhz"] >= r["clock_mhz"]
    assert r["seed"] == 3 and r["error"] is None and r["seconds"] > 0
    bit = os.path.join(build, r["bitstream"])
    with open(bit, "rb") as f:
        data = f.read()
    assert len(data) > 10_000
    assert hashlib.sha256(data).hexdigest() == r["bitstream_sha256"]
    assert r["uart_divisor"] == round(r["clock_mhz"] * 1e6 / b.baud)


@pytest.mark.slow
def test_timing_failure_withholds_the_bitstream(tmp_path, capsys):
    build = write_toy_build(str(tmp_path / "build"), target="icebreaker")
    rc, out, err = synth(capsys, build, "--board", "icebreaker", "--clock-mhz", "96")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1
    assert "icebreaker: timing not met: Fmax " in err and "< 96 MHz; bitstream withheld as" in err
    d = os.path.join(build, "icebreaker")
    assert not os.path.exists(os.path.join(d, "top.bin"))
    assert os.path.exists(os.path.join(d, "top.bin.timing-failed"))
    with open(os.path.join(d, "synth.json")) as f:
        r = json.load(f)
    assert r["timing_met"] is False and r["bitstream"] is None and 0 < r["fmax_mhz"] < 96
    assert r["error"].startswith("icebreaker: timing not met")


@pytest.mark.slow
def test_design_that_does_not_fit(tmp_path, capsys):
    # 20000 8-bit pixels need 40 block RAMs; the UP5K has 30
    build = write_toy_build(str(tmp_path / "build"), target="icebreaker", num_pixels=20000)
    rc, out, err = synth(capsys, build, "--board", "icebreaker")
    assert rc == 2
    assert err.startswith("spikegate synth: error: icebreaker: the design does not fit: needs ")
    assert "of 30 ICESTORM_RAM" in err
    d = os.path.join(build, "icebreaker")
    assert not [f for f in os.listdir(d) if f.endswith((".bin", ".bit"))]
    with open(os.path.join(d, "synth.json")) as f:
        r = json.load(f)
    assert r["timing_met"] is False and r["bitstream"] is None and "does not fit" in r["error"]
    assert r["bram"]["used"] > r["bram"]["available"] == 30     # what it needs, from nextpnr's log
    assert r["luts"]["available"] == 5280 and r["spram"] == {"used": 0, "available": 4,
                                                             "cell": "ICESTORM_SPRAM"}
    assert r["weights"] == "bitstream"


# ------------------------------------------------------------------------------ user errors


def test_unknown_board(tmp_path, capsys):
    build = write_toy_build(str(tmp_path / "b"))
    rc, _, err = synth(capsys, build, "--board", "de0-nano")
    assert rc == 2
    assert err == ("spikegate synth: error: unknown board 'de0-nano'; known boards: "
                   "icebreaker, ulx3s-85f, orangecrab\n")


def test_missing_report(tmp_path, capsys):
    rc, _, err = synth(capsys, str(tmp_path), "--board", "icebreaker")
    assert rc == 2
    assert err == (f"spikegate synth: error: {tmp_path}: no report.json: not a spikegate build "
                   f"directory (run `spikegate compile` first)\n")
    rc, _, err = synth(capsys, str(tmp_path / "nope"), "--board", "icebreaker")
    assert "not a directory" in err and rc == 2


@pytest.mark.parametrize("report, message", [
    ({"target": "ulx3s-85f"}, "was compiled for ulx3s-85f (ecp5), not for icebreaker (ice40); "
                              "recompile it with --target icebreaker"),
    ({"target": "sim", "board": None}, "was compiled for target 'sim', which is not a board; "
                                       "recompile it with --target icebreaker"),
    ({"num_classes": 0}, "num_classes must be a positive integer, not 0"),
    ({"core": "no_such_module:f"}, "core 'no_such_module:f' cannot be imported"),
    ({"core": "nonsense"}, "core must be 'module:callable', not 'nonsense'"),
])
def test_bad_build_dirs(tmp_path, capsys, report, message):
    build = write_toy_build(str(tmp_path / "b"), target="icebreaker", extra=report)
    rc, _, err = synth(capsys, build, "--board", "icebreaker")
    assert rc == 2 and err.count("\n") == 1
    assert message in err, err


def test_missing_keys_and_corrupt_report(tmp_path, capsys):
    build = write_toy_build(str(tmp_path / "b"))
    with open(os.path.join(build, "report.json")) as f:
        r = json.load(f)
    del r["pixel_bits"]
    with open(os.path.join(build, "report.json"), "w") as f:
        json.dump(r, f)
    assert "missing pixel_bits; recompile" in synth(capsys, build, "--board", "icebreaker")[2]
    with open(os.path.join(build, "report.json"), "w") as f:
        f.write("{not json")
    assert "report.json: corrupt" in synth(capsys, build, "--board", "icebreaker")[2]


def wrong_width_core(build_dir):
    return ToyCore(num_pixels=16, num_classes=4, pixel_bits=10, logit_bits=16)


def test_core_must_match_the_report(tmp_path, capsys):
    build = write_toy_build(str(tmp_path / "b"), extra={"core": f"{__name__}:wrong_width_core"})
    rc, _, err = synth(capsys, build, "--board", "icebreaker")
    assert rc == 2
    assert "the core has pixel/logit widths (10, 16), report.json says (8, 16); recompile" in err


@pytest.mark.parametrize("args, message", [
    (["--seed", "0"], "--seed must be in 1..2147483647, not 0"),
    (["--clock-mhz", "fast"], "--clock-mhz must be a number, not 'fast'"),
    (["--clock-mhz", "10"], "icebreaker: iCE40 PLL output must be 16..275 MHz, not 10.0"),
    (["--baud", "12"], "--baud must be in 300..12000000, not 12"),
])
def test_bad_options(tmp_path, capsys, args, message):
    build = write_toy_build(str(tmp_path / "b"))
    rc, _, err = synth(capsys, build, "--board", "icebreaker", *args)
    assert rc == 2 and message in err, err


def test_foreign_output_folder_is_not_clobbered(tmp_path, capsys):
    build = write_toy_build(str(tmp_path / "b"))
    os.makedirs(os.path.join(build, "icebreaker"))
    with open(os.path.join(build, "icebreaker", "notes.txt"), "w") as f:
        f.write("mine")
    rc, _, err = synth(capsys, build, "--board", "icebreaker")
    assert rc == 2 and "was not written by `spikegate synth`; move it away" in err


# ------------------------------------------------------------------------------ board data, PLLs


def test_boards_match_amaranth_boards():
    assert known_boards() == ["icebreaker", "ulx3s-85f", "orangecrab"]
    for b in BOARDS.values():
        mod, cls = b.platform_class.split(":")
        plat_cls = getattr(importlib.import_module(mod), cls)
        assert (plat_cls.device, plat_cls.package) == (b.device, b.package)
        plat = b.platform()
        assert plat.default_clk_frequency == b.oscillator_mhz * 1e6
        plat.lookup(*b.uart)      # the UART resource exists (OrangeCrab: added by us)
        for res, num in b.leds:
            plat.lookup(res, num)
    with pytest.raises(SpikegateError, match="^unknown board 'x'; known boards: icebreaker, "):
        get_board("x")


def test_each_board_makes_its_compile_target():
    """One record per board: its compile target is derived from it (budgets, clock, lanes), the
    compiler's own targets are not boards, and the PLL can make each board's clock."""
    from spikegate.compiler.targets import TARGETS

    assert list(TARGETS) == ["sim", "large"] and all(t.board is None for t in TARGETS.values())
    assert not set(TARGETS) & set(BOARDS)
    assert list(compile_targets()) == known_boards()
    for b in BOARDS.values():
        t = compile_target(b.name)
        assert t == b.target and (t.name, t.board, t.family) == (b.name, b.name, b.family)
        r = b.resources
        assert (t.luts, t.ffs, t.bram_blocks, t.bram_bits, t.dsps) == (r.luts, r.ffs, r.bram_blocks,
                                                                       r.bram_bits, r.dsps)
        assert (t.spram_blocks, t.spram_bits) == (r.spram_blocks, r.spram_bits)
        assert (t.clock_mhz, t.default_lanes, t.description) == (b.clock_mhz, b.default_lanes,
                                                                 b.description)
        assert t.bigger in set(BOARDS) | set(TARGETS)
        clock_plan(b, t.clock_mhz)   # the PLL can make the compiler's clock
    with pytest.raises(SpikegateError, match="^unknown board 'x'; known boards: icebreaker, "):
        compile_target("x")
    assert demo_boards() == ["ulx3s-85f", "icebreaker"]


def test_compile_resolves_target_names(tmp_path, capsys):
    """``--target NAME``: a board's record or the compiler's own; anything else one line that lists
    them; the Python API takes a Target (or a name it knows itself)."""
    from spikegate.commands.compile import lookup_target
    from spikegate.compiler.targets import get_target, resolve_target

    assert lookup_target("icebreaker") == get_board("icebreaker").target
    assert lookup_target("sim") is get_target("sim")
    ice = compile_target("icebreaker")
    assert resolve_target(ice) is ice and resolve_target("large").name == "large"
    with pytest.raises(SpikegateError, match="the compiler's own targets are sim, large"):
        resolve_target("icebreaker")
    sgir = tmp_path / "m.sgir"
    sgir.write_bytes(b"x")
    rc = main(["compile", str(sgir), "--target", "notaboard", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert rc == 2 and not (tmp_path / "x").exists()
    # (a ResourceWarning of an earlier test's garbage may land in the same capture: not ours)
    ours = [line for line in err.splitlines() if "Elaboratable" not in line and "tracemalloc" not in line
            and not line.startswith(" ")]
    assert ours == ["spikegate compile: error: unknown target 'notaboard'; known targets: sim, large, "
                    "icebreaker, ulx3s-85f, orangecrab"], err


def test_flow_needs_a_core(tmp_path):
    """A build whose report names no core factory needs the caller's ``load_core``."""
    from spikegate.board_targets.flow import board_top, read_report

    build = write_toy_build(str(tmp_path / "b"))
    report = read_report(build)
    del report["core"]
    with pytest.raises(SpikegateError, match="names no core factory and none was given"):
        board_top(build, get_board("icebreaker"), report)
    def toy(build_dir):
        return ToyCore(num_pixels=16, num_classes=4, pixel_bits=8, logit_bits=16)

    top, compiled_for, requested = board_top(build, get_board("icebreaker"), report, load_core=toy)
    assert (compiled_for, requested, top.clock["actual_mhz"]) == ("icebreaker", 21.0, 21.0)


@pytest.mark.parametrize("fin, fout, expect", [   # values from yowasp-icepll
    (12, 24, (0, 63, 5, 1)), (12, 30, (0, 79, 5, 1)), (12, 33, (0, 87, 5, 1)),
])
def test_ice40_pll(fin, fout, expect):
    p = ice40_pll(fin, fout)
    assert (p.divr, p.divf, p.divq, p.filter_range) == expect and p.fout_mhz == fout


@pytest.mark.parametrize("fin, fout, expect", [   # values from yowasp-ecppll
    (25, 50, (1, 2, 12, 5)), (48, 60, (4, 5, 10, 4)), (25, 100, (1, 4, 6, 2)),
    (48, 100, (12, 25, 6, 2)), (25, 73, (8, 23, 8, 3)),
])
def test_ecp5_pll(fin, fout, expect):
    p = ecp5_pll(fin, fout)
    assert (p.clki_div, p.clkfb_div, p.clkop_div, p.clkop_cphase) == expect
    assert 400 <= p.fvco_mhz <= 800


def test_clock_plan():
    ice = get_board("icebreaker")
    assert clock_plan(ice, 12)["pll"] is None
    assert clock_plan(ice, 30)["actual_mhz"] == 30
    with pytest.raises(ValueError, match="cannot make 73.3 MHz from its 25 MHz oscillator"):
        clock_plan(get_board("ulx3s-85f"), 73.3)


def test_yosys_ff_count_takes_primitives_of_the_last_table(tmp_path):
    """With synth_ice40 -dff, Yosys' report also tables ABC9's temporary flop boxes; only the
    final primitives count (the earlier parse counted both, about twice the real number)."""
    from spikegate.board_targets.utilisation import yosys_ff_count as _yosys_ff_count

    (tmp_path / "top.rpt").write_text(
        "   Number of cells:   9\n"
        "      425 SB_DFFSR_$abc9_flop\n"
        "     1367 SB_DFFESR_$abc9_flop\n"
        "        2 SB_DFFR_$abc9_byp\n"
        "   Number of cells:   9\n"
        "       83   SB_DFF\n"
        "     1328   SB_DFFESR\n"
        "        2   SB_DFFR\n"
        "      404   SB_DFFSR\n"
        "     4234   SB_LUT4\n")
    assert _yosys_ff_count(str(tmp_path), "ice40") == 83 + 1328 + 2 + 404
    (tmp_path / "top.rpt").write_text("     2580   TRELLIS_FF\n     9103   TRELLIS_COMB\n")
    assert _yosys_ff_count(str(tmp_path), "ecp5") == 2580
    assert _yosys_ff_count(str(tmp_path / "nothing"), "ice40") is None
