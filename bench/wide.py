"""The default model on the ULX3S at many lanes: issue 25's "32 lanes at >= 100 MHz, >= 2.2 GOPS".

    .venv/bin/python -m bench.wide [--lanes 32] [--board ulx3s-85f] [--images 16] [--json FILE]

``make bench`` runs it after ``bench.run`` (not with ``QUICK=1``): it quantizes the embedded
default model, compiles it for the board at ``--lanes`` lanes and synthesises it with the open flow
(``spikegate compile`` / ``spikegate synth``, the CLI's own verbs), then runs the build's program
in the ISS on the first held-out digits (its cycles equal the RTL's counter). It records where the
compiler put the weights (block RAM, or SDRAM when the on-chip memories do not fit: then every layer
waits for its WLOAD), the block RAMs and LUTs, Fmax, cycles per image, utilisation, images/s and
G(SOPs + MACs)/s at Fmax, beside issue 25's goals. The synthesis of a 32-lane build takes tens of
minutes on this machine; the row says how long. Writes ``bench/wide_ulx3s.json`` by default.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "bench", "wide_ulx3s.json")
GOALS = {"lanes": 32, "fmax_mhz": 100.0, "gops": 2.2, "images_per_s": 6000, "utilisation": 0.70}


def _cli(*argv: str) -> tuple[float, dict]:
    """Run ``spikegate ARGV --json``; (wall seconds, its JSON). A failure is a SystemExit naming it."""
    t0 = time.time()
    p = subprocess.run([sys.executable, "-m", "spikegate", *argv, "--json"], cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise SystemExit(f"bench.wide: spikegate {' '.join(argv)} failed: {last}")
    return time.time() - t0, json.loads(p.stdout)


def _built(build: str, board: str) -> tuple[float | None, dict, float | None, dict]:
    """An existing build of ``spikegate compile`` + ``synth`` (``--build``): its report and synth.json."""
    with open(os.path.join(build, "report.json")) as f:
        rep = json.load(f)
    with open(os.path.join(build, board, "synth.json")) as f:
        syn = json.load(f)
    return None, rep, syn.get("seconds"), syn


def measure(lanes: int, board: str, images: int, workdir: str, build: str | None = None) -> dict:
    sys.path.insert(0, REPO)
    from bench.run import _used, iss_of_build

    if build is None:
        sgir, build = os.path.join(workdir, "default.sgir"), os.path.join(workdir, f"build-l{lanes}")
        _cli("quantize", "default", "--calib", "digits", "-o", sgir)
        t_compile, rep = _cli("compile", sgir, "--target", board, "--lanes", str(lanes), "-o", build)
        t_synth, syn = _cli("synth", build, "--board", board)
    else:
        t_compile, rep, t_synth, syn = _built(build, board)
        if int(rep["lanes"]) != lanes:
            raise SystemExit(f"bench.wide: {build} was compiled for {rep['lanes']} lanes, not --lanes {lanes}")
    m = iss_of_build(build, images)
    fmax = syn.get("fmax_mhz")
    ips = fmax * 1e6 / m["cycles"] if fmax else None
    used = {k: _used(syn, k) for k in ("luts", "bram", "dsp")}
    weights = rep.get("weights") or {}
    return {
        "board": board, "lanes": lanes, "model": "default", "images": m["images"],
        "weights_where": weights.get("where", "bram"), "weights_note": weights.get("why"),
        "block_rams_needed": next((r["needed"] for r in rep.get("resources", [])
                                   if r["resource"].startswith("block RAMs")), None),
        "block_rams_available": next((r["available"] for r in rep.get("resources", [])
                                      if r["resource"].startswith("block RAMs")), None),
        "luts": used["luts"], "bram": used["bram"], "dsp": used["dsp"],
        "fmax_mhz": fmax, "timing_met": syn.get("timing_met"), "clock_mhz": syn.get("clock_mhz"),
        "cycles_per_image": m["cycles"], "ops_per_image": m["ops"],
        "utilisation": m["ops"] / (lanes * m["cycles"]),
        "images_per_s_at_fmax": ips, "gops_at_fmax": m["ops"] * ips / 1e9 if ips else None,
        "compile_seconds": None if t_compile is None else round(t_compile, 1),
        "synth_seconds": None if t_synth is None else round(t_synth, 1),
        "goals": GOALS,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.wide", description=__doc__.split("\n\n")[0])
    p.add_argument("--lanes", type=int, default=32)
    p.add_argument("--board", default="ulx3s-85f")
    p.add_argument("--images", type=int, default=16, help="held-out digits through the ISS (default 16)")
    p.add_argument("--json", default=OUT, help="where to write the row (default %(default)s)")
    p.add_argument("--build", help="measure this existing build (spikegate compile + synth of the default model "
                                   "at --lanes) instead of building one")
    a = p.parse_args(argv)
    if not 1 <= a.lanes <= 256:
        p.error(f"--lanes must be in 1..256, not {a.lanes}")
    with tempfile.TemporaryDirectory(prefix="sfbench-wide-") as tmp:
        row = measure(a.lanes, a.board, a.images, tmp, a.build)
    with open(a.json, "w") as f:
        json.dump(row, f, indent=1)
        f.write("\n")
    g = row["goals"]
    print(f"{row['board']} at {row['lanes']} lanes: weights in {row['weights_where']} "
          f"({row['block_rams_needed']} of {row['block_rams_available']} block RAMs needed on chip), "
          f"{row['luts']:,} LUTs, Fmax {row['fmax_mhz']} MHz (goal {g['fmax_mhz']:.0f}), "
          f"{row['cycles_per_image']:,.0f} cycles/image, utilisation {row['utilisation']:.3f} "
          f"(goal {g['utilisation']}), {row['images_per_s_at_fmax'] or 0:,.0f} images/s "
          f"(goal {g['images_per_s']:,}), {row['gops_at_fmax'] or 0:.3f} GOPS at Fmax (goal {g['gops']})")
    print(f"wrote {os.path.relpath(a.json)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
