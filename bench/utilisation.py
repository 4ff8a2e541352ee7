"""Datapath utilisation vs lanes, before and after issue 25's work (the right panel of results.png).

    python -m bench.utilisation [--save-before] [--images N] [--png bench/results.png]

Runs only the bench's ``datapath`` section (the default model on the first held-out digits, every
lane count 1..32, ISS cycles, which equal the RTL's counter) and plots it; ``make bench`` draws the
same panel from its full run. ``--save-before`` writes that section's curve to
``bench/utilisation_before.json``, the committed "before" curve: it was saved once from the design
as it was when issue 25 was filed, and every later plot shows it beside "this run", so the effect of
the architecture work is read off one figure. Utilisation is ``sum(ops) / (lanes x sum(cycles))``
over the inputs, ops being the SOPs + MACs the golden model processes
(``quantize.stats.event_ops``, the count ``spikegate verify --json`` reports too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from types import SimpleNamespace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEFORE = os.path.join(REPO, "bench", "utilisation_before.json")
LANES = (1, 2, 4, 8, 16, 32)
GOALS = {8: 0.90, 32: 0.70}     # issue 25: utilisation at 8 and at 32 lanes on the default model


def curve(dp: dict) -> dict:
    """The utilisation curve of a bench ``datapath`` section: per lane count, utilisation, mean
    cycles and ops per image, and where the cycles came from."""
    rows = sorted(dp["per_lanes"].values(), key=lambda r: r["lanes"])
    return {"lanes": [r["lanes"] for r in rows], "utilisation": [r["utilisation"] for r in rows],
            "mean_cycles": [r["mean_cycles"] for r in rows], "mean_ops": [r["mean_ops"] for r in rows],
            "cycles_source": [r["cycles_source"] for r in rows]}


def instruction_kind(ins) -> str:
    """What an instruction is, as the cycle breakdown groups it: the opcode, and for CONV its input
    (spikes or integers) and lane mode (dense or depthwise)."""
    from spikegate.machine.program import IN_SPIKE, LANES_TAP, OP_CONV, OPCODES

    if ins.opcode != OP_CONV:
        return OPCODES[ins.opcode]
    return "CONV " + ("spikes" if ins.in_kind == IN_SPIKE else "integers") + \
        (" depthwise" if ins.lane_mode == LANES_TAP else "")


def cycles_by_kind(prog, results) -> dict[str, float]:
    """Mean cycles per image spent in each kind of instruction (:func:`instruction_kind`), largest
    first, from the ISS's per-instruction cycles (which equal the RTL's): what limits utilisation."""
    total: dict[str, float] = {}
    for r in results:
        for ins, c in zip(prog.instrs, r.cycles_per_instr):
            k = instruction_kind(ins)
            total[k] = total.get(k, 0.0) + c
    return {k: round(v / max(1, len(results)), 1) for k, v in sorted(total.items(), key=lambda kv: -kv[1])}


def cycles_by_phase(results) -> dict[str, float]:
    """Mean cycles per image by phase (the ISS's ``RunResult.phases``: CONV's scan, taps and
    readout, every other opcode's own cycles, and the fixed fetch/fill/drain), largest first: only
    "CONV taps" (and ATTN's rows) shrink with more lanes."""
    total: dict[str, float] = {}
    for r in results:
        for k, v in r.phases.items():
            total[k] = total.get(k, 0.0) + v
    return {k: round(v / max(1, len(results)), 1) for k, v in sorted(total.items(), key=lambda kv: -kv[1])}


def taps_bound(ops: float, lanes: int, phases: dict[str, float]) -> float:
    """The utilisation if every cycle but the lanes' own (``CONV taps``) were hidden: the bound the
    lane mapping itself sets (output channels over lanes, depthwise taps over lanes: a layer with
    fewer output channels than lanes, or a 7x7 kernel's 49 taps in groups of 8, leaves lanes idle)."""
    taps = phases.get("CONV taps", 0.0)
    return ops / (lanes * taps) if taps else 0.0


def projections(ops: float, lanes: int, cycles: float, phases: dict[str, float]) -> dict[str, float]:
    """What limits utilisation, as arithmetic on the measured phases (not a simulation of any
    design): the utilisation if the readout ran ``lanes`` elements per cycle (``readout/lanes``
    cycles instead of one per output element), if the scan's cycles on non-events were free, both,
    and if only the taps were left (:func:`taps_bound`). Each is an upper bound on what that
    technique alone could give in today's lane mapping; the last says that no technique that leaves
    the mapping (output channels over lanes, depthwise taps over lanes) can pass it."""
    ro, sc = phases.get("CONV readout", 0.0), phases.get("CONV scan", 0.0)

    def util(c: float) -> float:
        return ops / (lanes * c) if c > 0 else 0.0
    return {"readout_lane_parallel": util(cycles - ro + ro / lanes), "scan_free": util(cycles - sc),
            "readout_lane_parallel_and_scan_free": util(cycles - sc - ro + ro / lanes),
            "taps_only": taps_bound(ops, lanes, phases)}


def lane_shares(prog, pixels) -> tuple[dict[str, dict], dict]:
    """Per kind of CONV (:func:`instruction_kind`, kernel and output channels), mean per image over
    ``pixels`` (ISS): its ops, its tap cycles and the lanes' share of useful work in them
    (``ops / (lanes x tap cycles)``): where the lane mapping leaves lanes idle. And, beside it, a
    model of the hybrid mapping (not built): a dense CONV with fewer output channels than lanes
    lending its idle lanes, ``R = lanes / channels`` per channel rounded to a power of two, to R
    taps of the same spike at once (``ceil(k*k / R)`` cycles per spike, like a depthwise conv's tap
    groups, instead of one cycle per valid tap): ``{"cycles", "saved", "ops"}`` per image."""
    from collections import defaultdict

    from spikegate.compiler import iss
    from spikegate.machine.program import IN_SPIKE, LANES_CO, OP_CONV

    P, n = prog.lanes, len(pixels)
    agg: dict = defaultdict(lambda: {"ops": 0.0, "tap_cycles": 0.0})
    total = saved = ops = 0
    for px in pixels:
        st = iss.MachineState.zeros(prog)
        for ins in prog.instrs:
            taps0, ops0 = st.phases.get("CONV taps", 0), st.sops + st.macs
            if ins.opcode == OP_CONV and ins.lane_mode == LANES_CO and ins.cout < P:
                saved += _hybrid_saving(ins, st.spk if ins.in_kind == IN_SPIKE else st.act, P)
            total += iss.execute(prog, ins, st, px)
            if ins.opcode == OP_CONV:
                a = agg[f"{instruction_kind(ins)} k{ins.k} cout {ins.cout}"]
                a["ops"] += (st.sops + st.macs - ops0) / n
                a["tap_cycles"] += (st.phases.get("CONV taps", 0) - taps0) / n
        ops += st.sops + st.macs
    rows = {k: {**v, "lane_share": v["ops"] / (P * v["tap_cycles"]) if v["tap_cycles"] else None}
            for k, v in sorted(agg.items(), key=lambda kv: -kv[1]["tap_cycles"])}
    return rows, {"cycles": total / n, "saved": saved / n, "ops": ops / n}


def _hybrid_saving(ins, mem, P: int) -> int:
    """Tap cycles the hybrid mapping (:func:`lane_shares`) would save on one LANES_CO CONV."""
    import math

    import numpy as np

    from spikegate.compiler import iss

    n_in = ins.cin * ins.h * ins.w
    taps = np.outer(iss._valid_taps(ins.h, ins.ho, ins.k, ins.stride, ins.pad),
                    iss._valid_taps(ins.w, ins.wo, ins.k, ins.stride, ins.pad))
    R = P // (1 << (ins.cout - 1).bit_length())
    out = 0
    for t in range(ins.T):
        x = mem[ins.src + (0 if ins.src2 else t) * n_in:][:n_in].reshape(ins.cin, ins.h, ins.w)
        ev = (x != 0) & (taps[None] > 0)
        out += max(0, int((ev * taps[None]).sum()) - int(ev.sum()) * math.ceil(ins.k * ins.k / R))
    return out


def load_before(path: str = BEFORE) -> dict | None:
    """The saved "before" curve, or None when there is none (or it cannot be read: the plot then
    shows this run alone rather than failing the bench)."""
    try:
        with open(path) as f:
            before = json.load(f)
        return before if len(before["lanes"]) == len(before["utilisation"]) else None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "-C", REPO, "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip() or None
    except (OSError, subprocess.CalledProcessError):
        return None


def save_before(dp: dict, model_source: str, path: str = BEFORE, commit: str | None = None) -> dict:
    """Write ``dp``'s curve as the "before" curve, with what it was measured on."""
    before = {"what": "datapath utilisation per lane count before issue 25's architecture work",
              "commit": commit or _commit(), "model_source": model_source, "images": dp["images"],
              "data": dp["data"], "ops": dp["ops"], "utilisation_def": dp["utilisation_def"], **curve(dp)}
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(before, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
    return before


def draw(ax, dp: dict, before: dict | None) -> None:
    """Utilisation vs lanes on ``ax``: the saved "before" curve (when there is one) and this run."""
    now = curve(dp)
    if before:
        label = f"before (commit {str(before.get('commit'))[:7]}, {before.get('images')} digits)"
        ax.plot(before["lanes"], before["utilisation"], "s--", color="0.55", label=label)
        for x, y in zip(before["lanes"], before["utilisation"]):
            ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, -12), ha="center",
                        fontsize=7, color="0.45")
    ax.plot(now["lanes"], now["utilisation"], "o-", color="C0", label=f"this run ({dp['images']} digits)")
    for x, y in zip(now["lanes"], now["utilisation"]):
        ax.annotate(f"{y:.2f}", (x, y), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    ax.plot(list(GOALS), list(GOALS.values()), "r*", ms=9, label="goal (issue 25)")
    ticks = sorted(set(now["lanes"]) | set(before["lanes"] if before else []))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [str(v) for v in ticks])
    ax.set_ylim(0, 1.05)
    ax.axhline(1.0, color="0.8", lw=0.8)
    ax.set_xlabel("lanes")
    ax.set_ylabel("utilisation = ops / (lanes x cycles)")
    ax.set_title("datapath utilisation, before and after")
    ax.legend(fontsize=7, loc="lower left")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.utilisation", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=16, help="held-out digits through the ISS (default 16, "
                                                          "as make bench's datapath section)")
    p.add_argument("--png", default=os.path.join(REPO, "bench", "results.png"),
                   help="plot path (default bench/results.png; make bench overwrites it with its full run)")
    p.add_argument("--save-before", action="store_true",
                   help=f"also write this run's curve as the saved before curve ({os.path.relpath(BEFORE, REPO)})")
    p.add_argument("--before", default=BEFORE, help="the before curve's path (default %(default)s)")
    p.add_argument("--commit", help="commit to record in the before curve (default: git rev-parse HEAD)")
    p.add_argument("--by-layer", default="", metavar="LANES",
                   help="also print, at these lane counts (e.g. 8,32), each kind of CONV's share of lane work "
                        "and what a hybrid lane mapping would save (lane_shares)")
    a = p.parse_args(argv)
    if a.images < 1:
        p.error(f"--images must be >= 1, not {a.images}")
    sys.path.insert(0, REPO)
    from bench import run

    s = SimpleNamespace(lanes=LANES)
    with tempfile.TemporaryDirectory(prefix="sfbench-util-") as tmp:
        dm = run.DefaultModel(s, tmp)
        runs = run.IssRuns(dm, dm.heldout(a.images)[0])
        dp = run.datapath(s, dm, runs, {})
    if a.save_before:
        save_before(dp, dm.source, a.before, a.commit)
        print(f"wrote {os.path.relpath(a.before)}")
    run.plot({"datapath": dp, "model_source": dm.source}, a.png, before_path=a.before)
    for lanes, u, c in zip(*(curve(dp)[k] for k in ("lanes", "utilisation", "mean_cycles"))):
        row = dp["per_lanes"][str(lanes)]
        print(f"{lanes:>2} lanes: utilisation {u:.3f}, {c:,.0f} cycles per image: "
              + ", ".join(f"{k} {v:,.0f}" for k, v in row["cycles_by_kind"].items()))
        print("   by phase: " + ", ".join(f"{k} {v:,.0f}" for k, v in row["cycles_by_phase"].items())
              + f"; bound of the lane mapping (taps only): {row['taps_bound_utilisation']:.3f}")
        if "utilisation_if" in row:
            print("   upper bounds if: " + ", ".join(f"{k.replace('_', ' ')} {v:.3f}"
                                                     for k, v in row["utilisation_if"].items()))
    print(f"wrote {os.path.relpath(a.png)}")
    if a.by_layer:
        from spikegate.compiler.build import lower_to_program
        from spikegate.quantize import intops

        for lanes in (int(v) for v in a.by_layer.split(",")):
            prog = lower_to_program(dm.g, lanes)
            x = intops.quantize_input(dm.heldout(a.images)[0], prog.input_scale, prog.pixel_bits)
            rows, hyb = lane_shares(prog, x)
            print(f"{lanes} lanes, per kind of CONV (mean per image): ops, tap cycles, lanes' share")
            for k, r in rows.items():
                share = "-" if r["lane_share"] is None else f"{r['lane_share']:.2f}"
                print(f"   {k:<42} {r['ops']:>9,.0f} {r['tap_cycles']:>8,.0f}  {share}")
            print(f"   hybrid mapping (model): saves {hyb['saved']:,.0f} of {hyb['cycles']:,.0f} cycles; utilisation "
                  f"{hyb['ops'] / (lanes * hyb['cycles']):.3f} -> {hyb['ops'] / (lanes * (hyb['cycles'] - hyb['saved'])):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
