"""How much of a board's Fmax is placement luck? nextpnr over several seeds on one netlist.

`spikegate synth` places and routes once, with the seed its build script names (1). nextpnr's
placement, and with it the Fmax, moves by several percent from seed to seed on the same netlist
(on the ULX3S build a few MHz), so one number says little about whether an RTL change helped.
This sweep takes the netlist `spikegate synth` left in a board directory (``top.json`` and the
constraints file), reruns the flow's own nextpnr command (from ``build_top.sh``: same device,
package, speed grade and constraints, hence the same requested clock) with each seed, several at a
time, and reports every seed's Fmax and worst path, with the minimum, median and maximum. The
board directory is only read; nothing it holds (the bitstream, ``synth.json``) changes.

    .venv/bin/python -m bench.seed_sweep demo_out/ulx3s-85f/ulx3s-85f --seeds 1-4
    .venv/bin/python -m bench.seed_sweep demo_out/icebreaker/icebreaker --seeds 1,2,3 --out sweep.json

It prints a table and writes JSON (``bench/seed_sweep.json`` unless ``--out``). ``--nextpnr-args``
adds placer or router options after the flow's own, to judge a setting over seeds, not one run:

    .venv/bin/python -m bench.seed_sweep demo_out/ulx3s-85f/ulx3s-85f --nextpnr-args="--tmg-ripup"
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile

from spikegate.board_targets.flow import TOOL_ENV

# the placers of the flow's build script: its environment variable -> the yowasp tool `synth` sets
TOOLS = {var: TOOL_ENV[var] for var in ("NEXTPNR_ECP5", "NEXTPNR_ICE40")}
CONSTRAINTS = ("--lpf", "--pcf")
# the flow's nextpnr options that name its outputs; the caller of flow_command sets its own
OUTPUTS = ("--report", "--log", "--json", "--asc", "--textcfg")


def flow_command(board_dir: str, keep_seed: bool = False) -> tuple[str, list[str]]:
    """(the yowasp nextpnr tool, its options) from the flow's build_top.sh, without the outputs and
    the netlist (the caller sets those) and, unless ``keep_seed``, without the seed."""
    script = os.path.join(board_dir, "build_top.sh")
    try:
        with open(script) as f:
            lines = f.readlines()
    except OSError as e:
        raise ValueError(f"{script}: cannot read it ({e.strerror}); run `spikegate synth` first") from None
    for line in lines:
        for var, tool in TOOLS.items():
            if f'"${var}"' in line and "--json" in line:
                args, keep = iter(line.split()[1:]), []
                for a in args:
                    if a in OUTPUTS or (a == "--seed" and not keep_seed):
                        next(args, None)
                    elif a != "--quiet":
                        keep.append(a)
                return tool, keep
    raise ValueError(f"{script}: no nextpnr-ecp5 or nextpnr-ice40 command in it")


def sweep_command(board_dir: str, nextpnr_args: str = "") -> tuple[str, list[str]]:
    """The flow's nextpnr command (``flow_command``) with ``nextpnr_args`` (one string, shell-quoted)
    after its own options: a placer or router setting to judge over seeds. The sweep sets the seed,
    the netlist and the outputs itself, so options naming those are refused."""
    tool, opts = flow_command(board_dir)
    try:
        extra = shlex.split(nextpnr_args)
    except ValueError as e:
        raise ValueError(f"--nextpnr-args: {nextpnr_args!r}: {e}") from None
    own = sorted({a for a in extra if a in OUTPUTS or a == "--seed"})
    if own:
        raise ValueError(f"--nextpnr-args: the sweep sets {', '.join(own)} itself; leave {'it' if len(own) == 1 else 'them'} out")
    return tool, opts + extra


def parse_seeds(text: str) -> list[int]:
    """``"1-4"``, ``"1,3,7"`` or a mix, each seed a positive integer."""
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise ValueError(f"--seeds: {part!r} is not a seed or a range like 1-4") from None
        if a < 1 or b < a:
            raise ValueError(f"--seeds: {part!r}: seeds are positive, ranges run upwards")
        seeds.extend(range(a, b + 1))
    return sorted(set(seeds))


def tool_path(tool: str) -> str:
    """A yowasp tool on PATH, or beside this Python (the project's .venv)."""
    return shutil.which(tool) or os.path.join(os.path.dirname(sys.executable), tool)


def nextpnr_result(work: str) -> dict:
    """Fmax (the last estimate nextpnr logged, after routing) and the worst path within one clock
    domain (the design's clock, not the host pins') of a run that wrote ``top.log`` and
    ``report.json`` in ``work``."""
    with open(os.path.join(work, "top.log")) as f:
        fmax = re.findall(r"Max frequency for clock '[^']*': ([0-9.]+) MHz", f.read())
    with open(os.path.join(work, "report.json")) as f:
        report = json.load(f)
    paths = [cp["path"] for cp in report.get("critical_paths", []) if cp["from"] == cp["to"]]
    path = max(paths, key=lambda p: sum(s["delay"] for s in p), default=[])
    row = {"fmax_mhz": float(fmax[-1]) if fmax else None}
    if path:
        row.update(worst_path_ns=round(sum(s["delay"] for s in path), 2),
                   worst_from=path[0]["from"]["cell"], worst_to=path[-1]["to"]["cell"])
    return row


def run_seed(tool: str, opts: list[str], board_dir: str, seed: int, keep: str | None = None) -> dict:
    """One nextpnr run in a scratch directory (the yowasp tools see only their working directory);
    with ``keep``, its report is copied there as ``seed<N>-report.json`` (the worst path's every
    step, for reading beside the table)."""
    work = tempfile.mkdtemp(prefix=f"seed{seed}-")
    try:
        shutil.copy(os.path.join(board_dir, "top.json"), work)
        for flag in CONSTRAINTS:
            if flag in opts:
                shutil.copy(os.path.join(board_dir, opts[opts.index(flag) + 1]), work)
        cmd = [tool_path(tool), "--quiet", "--seed", str(seed), *opts, "--json", "top.json", "--report", "report.json",
               "--log", "top.log"]
        proc = subprocess.run(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if proc.returncode != 0:
            return {"seed": seed, "error": f"nextpnr exited with {proc.returncode}"}
        if keep:
            shutil.copy(os.path.join(work, "report.json"), os.path.join(keep, f"seed{seed}-report.json"))
        return {"seed": seed, **nextpnr_result(work)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("board_dir", help="a board directory of `spikegate synth` (top.json, build_top.sh, constraints)")
    ap.add_argument("--seeds", default="1-4", help="seeds: a range 1-4, a list 1,3,7 or both (default 1-4)")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="nextpnr runs at a time (default: CPUs)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "seed_sweep.json"),
                    help="the JSON to write (default bench/seed_sweep.json)")
    ap.add_argument("--nextpnr-args", default="", metavar="ARGS",
                    help="more nextpnr options after the flow's own, quoted as one argument, to try a placer or "
                         "router setting over seeds (write it with =, e.g. --nextpnr-args=\"--tmg-ripup\")")
    ap.add_argument("--keep-reports", metavar="DIR",
                    help="copy each seed's nextpnr report (JSON, with the worst path step by step) into DIR")
    args = ap.parse_args(argv)
    try:
        seeds = parse_seeds(args.seeds)
        tool, opts = sweep_command(args.board_dir, args.nextpnr_args)
        if not os.path.isfile(os.path.join(args.board_dir, "top.json")):
            raise ValueError(f"{args.board_dir}: no top.json (run `spikegate synth` for this board first)")
        if args.keep_reports:
            os.makedirs(args.keep_reports, exist_ok=True)
    except (ValueError, OSError) as e:
        print(f"seed_sweep: {e}", file=sys.stderr)
        return 2
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        rows = list(pool.map(lambda s: run_seed(tool, opts, args.board_dir, s, args.keep_reports), seeds))
    fmax = [r["fmax_mhz"] for r in rows if r.get("fmax_mhz") is not None]
    summary = {"board_dir": os.path.abspath(args.board_dir), "nextpnr": [tool, *opts], "runs": rows,
               "fmax_mhz": ({"min": min(fmax), "median": statistics.median(fmax), "max": max(fmax)}
                            if fmax else None)}
    print(f"{'seed':>5} {'Fmax MHz':>9} {'worst ns':>9}  worst path")
    for r in rows:
        if "error" in r:
            print(f"{r['seed']:>5} {'-':>9} {'-':>9}  {r['error']}")
        else:
            print(f"{r['seed']:>5} {r['fmax_mhz'] or 0:>9.2f} {r.get('worst_path_ns', 0):>9.2f}  "
                  f"{r.get('worst_from', '?')} -> {r.get('worst_to', '?')}")
    if fmax:
        s = summary["fmax_mhz"]
        print(f"Fmax over {len(fmax)} seeds: min {s['min']:.2f}, median {s['median']:.2f}, max {s['max']:.2f} MHz "
              f"({tool} {' '.join(opts)})")
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
    print(f"wrote {args.out}")
    return 0 if fmax and len(fmax) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
