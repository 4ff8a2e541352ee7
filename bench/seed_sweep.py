"""How much of a board's Fmax is placement luck? nextpnr over several seeds on one netlist.

`spikegate synth` places and routes once, with the seed its build script names (1). nextpnr's
placement, and with it the Fmax, moves by several percent from seed to seed on the same netlist
(on the ULX3S build a few MHz), so one number says little about whether an RTL change helped.
This sweep takes the netlist `spikegate synth` left in a board directory (``top.json`` and the
constraints file), reruns the flow's own nextpnr command (from ``build_top.sh``: same device,
package, speed grade and constraints, hence the same requested clock) with each seed, several at a
time, and reports every seed's Fmax and worst path, with the minimum, median and maximum. The
board directory is only read; nothing it holds (the bitstream, ``synth.json``) changes.

The nextpnr runs are ``spikegate sweep``'s own seed stage (``spikegate.sweep_stages.place_seed``),
so a sweep with ``--synth --seeds 1-8`` and this command place alike; this one takes a board
directory that already exists (any RTL, any build), the sweep builds its points from a model.

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
import statistics
import subprocess  # noqa: F401 -- the stage runs nextpnr through it (tests stand a fake in for it)
import sys

# One code path: this is the synthesis stage of `spikegate sweep` (nextpnr over seeds on one
# netlist) pointed at a board directory `spikegate synth` left; the sweep runs the same function
# per seed as a Ray task, this runs it on a few threads (one nextpnr each).
from spikegate.sweep_stages import (CONSTRAINTS, OUTPUTS, TOOLS, flow_command, nextpnr_result,  # noqa: F401
                                    parse_seeds, tool_path, with_extra_args)
from spikegate.sweep_stages import place_seed as run_seed


def sweep_command(board_dir: str, nextpnr_args: str = "") -> tuple[str, list[str]]:
    """The flow's nextpnr command (``flow_command``) with ``nextpnr_args`` (one string, shell-quoted)
    after its own options: a placer or router setting to judge over seeds."""
    return with_extra_args(flow_command(board_dir), nextpnr_args)


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
