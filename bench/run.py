"""`make bench`: what spikegate measures, beside the paper's numbers, in one run.

    python -m bench.run [--quick] [--out bench/results.json]

Writes ``results.json`` (seven sections, each real numbers or ``{"status": "not available: why"}``),
``results.png`` beside it, and prints one table. See ``bench/README.md`` for what each number means.

"not available" is only for what this run was asked not to do or has no input for (``--quick``,
``--no-rtl``, a board nobody synthesised, a design that does not fit its board). Anything that was run
and failed (the RTL not bit-exact or not cycle-exact, a verify or board build that raised, the ONNX
export not exact, a dependency that does not import) is ``{"status": "failed: why"}``; the results are
still written, then the run exits 1 naming every failure.

Rules: wall times are ``time.perf_counter`` after one warm-up call; the engines compared with each
other run in alternation (A, B, A, B, ...; medians reported) on the same batch, in one process, with
the same thread count; nothing is estimated where it could be measured, and nothing that is not built
yet is given a number.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from spikegate.board_targets import known_boards

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SECTIONS = ("golden_vs_float", "onnx_int_vs_golden", "rtl_sim", "datapath", "boards", "paper", "toolchain")
PAPER_PARAMS = {"meta-spikeformer-15m": 15_112_208, "meta-spikeformer-31m": 31_333_864,
                "meta-spikeformer-55m": 55_350_248}
BOARDS = tuple(known_boards())
STATED_RATE = 0.15
PUBLISHED_UP5K = {
    "name": "published open-flow spiking transformer on the iCE40 UP5K",
    "device": "iCE40 UP5K", "fmax_mhz": 21.13, "logic_cells": 4279, "logic_cells_available": 5280,
    "ebr": 30, "ebr_available": 30, "gops": 0.192,
    "gops_per_klc": round(0.192 / 4.279, 4),  # derived here from the two published figures
    "source": "issue text: \"published open-flow spiking transformer on the UP5K: 21.13 MHz, "
              "4279/5280 logic cells, 30/30 EBR, 0.192 GOPS\" (reference, not measured here)",
}


def not_available(why: str) -> dict:
    return {"status": f"not available: {why}"}


def failed(why: str) -> dict:
    return {"status": f"failed: {why}"}


def failures(obj, path: str = "$") -> list[str]:
    """``"where: why"`` of every ``failed`` status anywhere in the results."""
    if isinstance(obj, dict):
        st = obj.get("status")
        here = [f"{path}: {st.removeprefix('failed: ')}"] if isinstance(st, str) and st.startswith("failed: ") else []
        return here + [f for k, v in obj.items() if k != "status" for f in failures(v, f"{path}.{k}")]
    if isinstance(obj, list):
        return [f for i, v in enumerate(obj) for f in failures(v, f"{path}[{i}]")]
    return []


class Settings:
    def __init__(self, a):
        self.quick = a.quick
        self.threads = a.threads
        self.images = a.images or (8 if a.quick else 64)
        self.rounds = a.rounds or (3 if a.quick else 7)
        self.dp_images = a.datapath_images or (4 if a.quick else 16)
        self.lanes = (1, 8) if a.quick else (1, 2, 4, 8, 16, 32)
        self.stats_images = 16 if a.quick else None  # None: the whole held-out split
        self.lowered = ("meta-spikeformer-15m",) if a.quick else tuple(PAPER_PARAMS)
        self.icarus_images = a.icarus_images
        self.rtl_all_lanes = a.rtl_all_lanes
        self.no_rtl = a.no_rtl
        self.no_synth = a.no_synth
        self.demo_dir = a.demo_dir
        self.synth_dirs = [a.demo_dir, os.path.join(REPO, "build")] + list(a.synth_dir or [])


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def alternate(fns: dict, rounds: int) -> dict[str, list[float]]:
    """Warm each callable up once, then time them in alternation for ``rounds`` rounds."""
    for f in fns.values():
        f()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            times[k].append(_timed(f)[1])
    return times


def _rate_block(times: list[float], n: int) -> dict:
    med = statistics.median(times)
    return {"images_per_s": n / med, "median_s": med, "min_s": min(times), "max_s": max(times),
            "rounds_s": [round(t, 5) for t in times]}


def fit_line(x, y) -> dict:
    """Least-squares ``y = slope * x + intercept`` and r^2 (None when x or y does not vary)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(x) < 2 or np.ptp(x) == 0:
        return {"slope": None, "intercept": None, "r2": None, "points": int(len(x))}
    slope, intercept = np.polyfit(x, y, 1)
    ss_tot = float(((y - y.mean()) ** 2).sum())
    ss_res = float(((y - (slope * x + intercept)) ** 2).sum())
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else None
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2, "points": int(len(x))}


# --------------------------------------------------------------------------------------------
# The default model
# --------------------------------------------------------------------------------------------

class DefaultModel:
    """The embedded float model, its integer IR (through the real quantize step), and its file."""

    def __init__(self, s: Settings, tmp: str):
        from spikegate.quantize.checkpoint import load_model, resolve_checkpoint
        from spikegate.quantize.irfile import save_ir
        from spikegate.quantize.pipeline import quantize_checkpoint

        ckpt = "default"
        self.source = f"embedded checkpoint 'default' ({os.path.relpath(resolve_checkpoint(ckpt), REPO)})"
        (self.g, rep), self.quantize_seconds = _timed(lambda: quantize_checkpoint(ckpt, calib="digits"))
        self.summary = rep["summary"]
        self.model, _ = load_model(ckpt)
        self.cfg = self.model.cfg
        self.sgir = os.path.join(tmp, "default.sgir")
        save_ir(self.g, self.sgir)

    def heldout(self, n: int | None):
        from spikegate.quantize.data import digits_split_xy

        return digits_split_xy("test", img_size=self.cfg.img_size, n=n)


# --------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------

def golden_vs_float(s: Settings, dm: DefaultModel) -> dict:
    import torch

    from spikegate.quantize import intops
    from spikegate.quantize.golden import execute

    x, _ = dm.heldout(s.images)
    xt = torch.from_numpy(x)
    out = {}

    def run_float():
        with torch.no_grad():
            out["float"] = dm.model(xt).numpy()

    def run_golden():
        out["golden"] = execute(dm.g, x)

    t = alternate({"float": run_float, "golden": run_golden}, s.rounds)
    f, g = _rate_block(t["float"], len(x)), _rate_block(t["golden"], len(x))
    return {"images": len(x), "data": "first held-out digits", "rounds": s.rounds, "torch_threads": s.threads,
            "order": "warm-up each, then float, golden, float, golden, ...; medians",
            "float": f, "golden": g, "golden_over_float": g["images_per_s"] / f["images_per_s"],
            "argmax_agreement": float((out["float"].argmax(1) == intops.argmax(out["golden"])).mean())}


def onnx_int_vs_golden(s: Settings, dm: DefaultModel) -> dict:
    try:
        import onnxruntime as ort
    except ImportError as e:
        return failed(f"onnxruntime does not import ({e})")
    from spikegate.quantize.golden import execute
    from spikegate.quantize.onnx_int import build_int_onnx

    x, _ = dm.heldout(s.images)
    model, build_s = _timed(lambda: build_int_onnx(dm.g))
    so = ort.SessionOptions()
    so.intra_op_num_threads = s.threads
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out = {}

    def run_onnx():
        out["onnx"] = sess.run(["logits"], {"images": x})[0]

    def run_golden():
        out["golden"] = execute(dm.g, x)

    t = alternate({"onnx": run_onnx, "golden": run_golden}, s.rounds)
    o, g = _rate_block(t["onnx"], len(x)), _rate_block(t["golden"], len(x))
    exact = bool(out["onnx"].dtype == np.int64 and np.array_equal(out["onnx"], out["golden"]))
    return {**({} if exact else failed("onnxruntime's integer logits differ from the golden model's")),
            "images": len(x), "rounds": s.rounds, "threads": s.threads,
            "order": "warm-up each, then onnx, golden, onnx, golden, ...; medians",
            "onnxruntime": ort.__version__, "build_seconds": build_s,
            "onnx_int": o, "golden": g, "onnx_over_golden": o["images_per_s"] / g["images_per_s"],
            "exact": exact}


def rtl_available() -> str | None:
    """None when the RTL and the verify flow exist, else why not."""
    if importlib.util.find_spec("spikegate.hw.accelerator") is None:
        return "hw/accelerator.py missing"
    try:
        importlib.import_module("spikegate.hw.accelerator")
    except ImportError as e:
        return f"spikegate.hw.accelerator does not import ({e})"
    if importlib.util.find_spec("spikegate.verify") is None:
        return "hw/accelerator.py exists but the verify flow (spikegate.verify) does not"
    return None


def _cocotb_seconds(results_xml: str, since: float) -> float | None:
    """Real seconds of the cocotb tests (simulation proper, no build) from a fresh ``results.xml``."""
    import xml.etree.ElementTree as ET

    if not os.path.isfile(results_xml) or os.path.getmtime(results_xml) < since:
        return None
    times = [float(c.get("time")) for c in ET.parse(results_xml).getroot().iter("testcase") if c.get("time")]
    return sum(times) if times else None


def run_rtl(build_dir: str, x: np.ndarray, sim: str, tmp: str) -> dict:
    """``verify`` (cocotb on ``sim``) on ``x``: RTL cycles per image, wall times, bit-exactness."""
    from spikegate.errors import SpikegateError
    from spikegate.verify import verify

    inputs = os.path.join(tmp, f"rtl-{sim}-{len(x)}.npy")
    np.save(inputs, x)
    t0 = time.time()
    p0 = time.perf_counter()
    try:
        r = verify(build_dir, inputs, sim=sim)
    except (SpikegateError, AssertionError, RuntimeError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return failed(f"`spikegate verify --sim {sim}` raised: {first[:240]}")
    wall = time.perf_counter() - p0
    cycles = [int(c) for c in r["cycles"]]
    sim_s = _cocotb_seconds(os.path.join(build_dir, f"sim-{sim}", "results.xml"), t0)
    exact = cycles == [int(c) for c in r["predicted_cycles"]]
    why = [w for w, bad in ((f"{len(r['mismatches'])} of {len(cycles)} images not bit-exact (first: "
                             f"{str(r['mismatches'][:1])[:200]})", not r["bit_exact"]),
                            ("measured cycles differ from the cycle model's", not exact)) if bad]
    return {**(failed(f"`spikegate verify --sim {sim}`: " + "; ".join(why)) if why else {}),
            "images": len(cycles), "lanes": r["lanes"], "bit_exact": bool(r["bit_exact"]),
            "mismatches": len(r["mismatches"]), "cycles": cycles, "iss_cycles": list(r["predicted_cycles"]),
            "rtl_equals_iss": exact,
            "total_cycles": sum(cycles),
            "sim_seconds": sim_s, "wall_seconds_incl_build": wall,
            "cycles_per_wall_second": sum(cycles) / sim_s if sim_s else None,
            "cycles_per_wall_second_incl_build": sum(cycles) / wall}


def rtl_sim(s: Settings, dm: DefaultModel, build: dict | None, tmp: str, rtl_cycles: dict) -> dict:
    """Simulated cycles per wall second on both simulators; RTL cycle counts for ``datapath``."""
    if s.quick or s.no_rtl:
        return not_available(f"skipped by {'--quick' if s.quick else '--no-rtl'} (the whole accelerator on "
                             "Icarus/Verilator takes minutes, a cold Verilator build up to 15)")
    why = rtl_available()
    if why:
        return failed(why)
    out = {"flow": "spikegate.verify (cocotb testbench rtl_tests/tb_verify.py)",
           "build": "compile_ir(target 'sim', 8 lanes)", "data": "first held-out digits",
           "cycles_per_wall_second_def": "RTL clock cycles / real seconds of the cocotb test (simulation with "
                                         "its Python testbench, after the build); *_incl_build adds the "
                                         "simulator build (Verilator C++ compile, iverilog)"}
    x_dp = dm.heldout(s.dp_images)[0]
    for sim, n in (("verilator", s.dp_images), ("icarus", s.icarus_images)):
        r = run_rtl(build["dir"], x_dp[:n], sim, tmp)
        out[sim] = r
        if "status" not in r and r["bit_exact"]:
            have = rtl_cycles.get(build["lanes"])
            if have is None or len(r["cycles"]) > len(have["cycles"]):
                rtl_cycles[build["lanes"]] = {"sim": sim, "cycles": r["cycles"]}
    if s.rtl_all_lanes:
        from spikegate.compiler.build import compile_ir

        per = {}
        for lanes in s.lanes:
            if lanes in rtl_cycles and len(rtl_cycles[lanes]["cycles"]) == len(x_dp):
                continue
            d = os.path.join(tmp, f"build-l{lanes}")
            compile_ir(dm.sgir, "sim", lanes, d)
            r = run_rtl(d, x_dp, "verilator", tmp)
            per[str(lanes)] = {k: r[k] for k in ("status", "bit_exact", "rtl_equals_iss", "sim_seconds",
                                                 "cycles_per_wall_second") if k in r}
            if "status" not in r and r["bit_exact"]:
                rtl_cycles[lanes] = {"sim": "verilator", "cycles": r["cycles"]}
        out["all_lanes_verilator"] = per
    return out


class IssRuns:
    """ISS results per lane count on the datapath inputs, run once per lane count."""

    def __init__(self, dm: DefaultModel, x: np.ndarray):
        self.dm, self.x, self.cache = dm, x, {}

    def get(self, lanes: int):
        if lanes not in self.cache:
            from spikegate.compiler import iss
            from spikegate.compiler.build import lower_to_program

            prog = lower_to_program(self.dm.g, lanes)
            runs, secs = _timed(lambda: iss.run_batch(prog, self.x))
            self.cache[lanes] = (prog, runs, secs)
        return self.cache[lanes]


def datapath(s: Settings, dm: DefaultModel, runs: IssRuns, rtl_cycles: dict) -> dict:
    """Ops, cycles, bound and utilisation per lane count; RTL cycles where the RTL ran every input."""
    from bench.utilisation import cycles_by_kind, cycles_by_phase, projections, taps_bound
    from spikegate.compiler import iss
    from spikegate.quantize.golden import execute
    from spikegate.quantize.stats import event_ops, ops_keep

    trace: dict = {}
    golden = execute(dm.g, runs.x, trace=trace, keep=ops_keep(dm.g))
    ops = event_ops(dm.g, trace)      # the one count of ops (spikegate verify --json's too)
    sops, macs = ops["sops"].astype(np.float64), ops["macs"].astype(np.float64)
    work = sops + macs
    per_lanes = {}
    for lanes in s.lanes:
        prog, rr, secs = runs.get(lanes)
        iss_cycles = np.array([r.cycles for r in rr], dtype=np.float64)
        meas = rtl_cycles.get(lanes)
        if meas and len(meas["cycles"]) == len(rr):
            cycles, source = np.array(meas["cycles"], dtype=np.float64), "rtl"
        else:
            cycles, source = iss_cycles, "iss"
        row = {
            "lanes": lanes,
            "cycles_source": source if source == "iss" else f"rtl ({meas['sim']})",
            "per_input": [{"cycles": int(c), "sops": int(a), "macs": int(m)} for c, a, m in zip(cycles, sops, macs)],
            "mean_cycles": float(cycles.mean()), "mean_sops": float(sops.mean()), "mean_macs": float(macs.mean()),
            "mean_ops": float(work.mean()),
            "lower_bound_cycles": float(work.mean() / lanes),
            "utilisation": float(work.sum() / (lanes * cycles.sum())),
            "utilisation_min": float((work / (lanes * cycles)).min()),
            "utilisation_max": float((work / (lanes * cycles)).max()),
            "fit_cycles_vs_ops": fit_line(work, cycles),
            "cycles_at_rate_0": iss.estimate_cycles(prog, 0.0)["cycles"],
            # mean ISS cycles per image by kind of instruction: where the cycles that do not
            # scale with lanes are (bench/utilisation.py: cycles_by_kind)
            "cycles_by_kind": cycles_by_kind(prog, rr),
            # and by phase (scan, taps, readout, ...), with the utilisation the lane mapping allows
            # if every phase but the taps were hidden (bench/utilisation.py: taps_bound)
            "cycles_by_phase": cycles_by_phase(rr),
            "taps_bound_utilisation": taps_bound(float(work.mean()), lanes, cycles_by_phase(rr)),
            # what each remaining technique could give at most (bench/utilisation.py: projections)
            "utilisation_if": projections(float(work.mean()), lanes, float(iss_cycles.mean()),
                                          cycles_by_phase(rr)),
            "iss_equals_golden": bool(all(np.array_equal(r.logits, gl) for r, gl in zip(rr, golden))),
            # the ISS's own tally of the work it simulated, beside the golden model's count
            "iss_ops_equal_golden": [r.sops for r in rr] == ops["sops"].tolist() and
                                    [r.macs for r in rr] == ops["macs"].tolist(),
            "iss_wall_seconds": secs,
        }
        if meas:
            k = len(meas["cycles"])
            row["rtl_check"] = {"sim": meas["sim"], "images": k,
                                "rtl_cycles_equal_iss": [int(c) for c in meas["cycles"]] == [int(c) for c in iss_cycles[:k]]}
        per_lanes[str(lanes)] = row
    sources = sorted({r["cycles_source"] for r in per_lanes.values()})
    return {"images": len(runs.x), "data": "first held-out digits",
            "cycles_source": sources[0] if len(sources) == 1 else "mixed: " + ", ".join(sources),
            "cycles_note": "iss: compiler/iss.py with compiler/cycle_model.py, the cycle model of the RTL; "
                           "rtl: the accelerator's cycle counter under `verify` (cocotb), where the RTL ran "
                           "every input of that lane count",
            "ops": "SOPs + MACs per inference, counted from the golden model's events "
                   "(quantize.stats.event_ops, as spikegate verify --json)",
            "utilisation_def": "ops / (lanes x cycles), summed over the inputs",
            "per_lanes": per_lanes}


def find_synth(s: Settings, board: str) -> str | None:
    """The newest ``<board>/synth.json`` in a searched folder or one level below it, written by
    ``spikegate synth`` into a build directory (``BUILD_DIR/<board>/synth.json`` with
    a build's ``BUILD_DIR/report.json``; ``make demo``'s copy at ``demo_out/<board>/synth.json`` is
    not one)."""
    found = []
    for d in s.synth_dirs:
        found += glob.glob(os.path.join(d, board, "synth.json"))
        found += glob.glob(os.path.join(d, "*", board, "synth.json"))
    found = [f for f in found if _is_build_dir(os.path.dirname(os.path.dirname(f)))]
    return max(found, key=os.path.getmtime) if found else None


def _is_build_dir(d: str) -> bool:
    """A ``spikegate compile`` output: its report.json names the lanes (``demo_out/report.json``,
    the demo's own report, does not)."""
    try:
        with open(os.path.join(d, "report.json")) as f:
            return "lanes" in json.load(f)
    except (OSError, ValueError, TypeError):
        return False


def _used(rep: dict, key: str):
    v = rep.get(key)
    if isinstance(v, dict):
        v = v.get("used")
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def iss_of_build(build_dir: str, images: int) -> dict:
    """The board's own build, run by the ISS on the first held-out digits at its input size.

    The ISS's cycles equal the RTL's cycle counter (``verify`` and the tests check it), so the
    board rows need no RTL simulation; a board running the smaller model is measured on it.
    """
    from spikegate.compiler import iss
    from spikegate.compiler.build import read_build, sample_inputs
    from spikegate.errors import SpikegateError
    from spikegate.quantize.golden import execute
    from spikegate.quantize.stats import event_ops, formula_ops, ops_keep

    report, g, prog = read_build(build_dir)
    # the held-out images of the data set the model takes (digits, or MNIST for make demo's SDRAM
    # build); a model no data set fits has no board row to measure
    x, _ = sample_inputs(g, images)
    if x is None:
        raise SpikegateError(f"{build_dir}: no data set fits its model's input")
    rr = iss.run_batch(prog, x)
    trace: dict = {}
    execute(g, x, trace=trace, keep=ops_keep(g))
    ops = event_ops(g, trace)
    return {"ir_sha256": report["ir_sha256"], "lanes": int(report["lanes"]), "images": len(rr),
            "cycles": float(np.mean([r.cycles for r in rr])),
            "ops": float(np.mean(ops["sops"] + ops["macs"])),
            # the published UP5K design's way of counting (sparsity-weighted dense formula)
            "ops_formula": formula_ops(g, trace)}


def boards(s: Settings, default_sha: str | None, builds: "BoardBuilds", measure=iss_of_build) -> dict:
    """Per board, from ``spikegate synth``'s ``BUILD_DIR/<board>/synth.json``; never estimated.

    Cycles and ops per image: ``measure(build dir, images)`` (the ISS of that build). The row names
    the model: ``default`` when the build's IR is the default model's (``default_sha``).
    """
    from spikegate.errors import SpikegateError

    builds.wait()
    out = {}
    for board in BOARDS:
        path = find_synth(s, board)
        if path is None:
            where = ", ".join(os.path.relpath(d, REPO) for d in s.synth_dirs)
            why = builds.failures.get(board) or (
                f"no {board}/synth.json under {where} (`spikegate synth BUILD_DIR --board {board} --json` "
                "has not been run there" + ("; --quick builds none)" if s.quick else ")"))
            out[board] = failed(f"building it here failed: {builds.failures[board]}") \
                if board in builds.failures else not_available(why)
            continue
        rel = os.path.relpath(path, REPO)
        with open(path) as f:
            rep = json.load(f)
        got = {k: _used(rep, k) for k in ("luts", "ffs", "bram", "spram", "dsp")}
        got["fmax_mhz"] = rep.get("fmax_mhz") if isinstance(rep.get("fmax_mhz"), (int, float)) else None

        def avail(key):
            v = rep.get(key)
            return v.get("available") if isinstance(v, dict) else None

        row = {"source": rel, "luts": got["luts"], "luts_available": avail("luts"),
               "luts_cell": rep["luts"].get("cell") if isinstance(rep.get("luts"), dict) else None,
               "ffs": got["ffs"], "rams": got["bram"], "rams_available": avail("bram"),
               "spram": got["spram"], "dsps": got["dsp"], "fmax_mhz": got["fmax_mhz"],
               "timing_met": rep.get("timing_met"), "clock_mhz": rep.get("clock_mhz"),
               "synth_seconds": rep.get("seconds"), "error": rep.get("error")}
        if rep.get("error"):
            # a failed fit still says what it needed: keep the numbers, flag the row
            row["status"] = f"not available: {rel}: {str(rep['error']).split(' (log:')[0][:200]}"
            out[board] = row
            continue
        missing = [k for k in ("luts", "ffs", "bram", "dsp", "fmax_mhz") if got[k] is None]
        if missing:
            out[board] = not_available(f"{rel} lacks {', '.join(missing)}")
            continue
        try:
            m = measure(os.path.dirname(os.path.dirname(path)), s.dp_images)
        except SpikegateError as e:
            out[board] = failed(f"{rel}: its build directory does not load: {str(e)[:200]}")
            continue
        ips = got["fmax_mhz"] * 1e6 / m["cycles"]
        row.update({"model": "default" if m["ir_sha256"] == default_sha else
                    builds.models.get(board) or f"another model (IR sha256 {m['ir_sha256'][:12]})",
                    "lanes": m["lanes"], "cycles_per_image": m["cycles"],
                    "cycles_source": f"iss of this build ({m['images']} held-out digits)",
                    "ops_per_image": m["ops"], "images_per_s_at_fmax": ips, "gops_at_fmax": m["ops"] * ips / 1e9,
                    "sops_per_s_per_klut": m["ops"] * ips / (got["luts"] / 1000.0) if got["luts"] else None,
                    # the same rate counted the published design's way (firing rate x dense FLOPs),
                    # and per thousand LUTs (logic cells on the iCE40) beside its gops_per_klc
                    "ops_formula_per_image": m.get("ops_formula"),
                    "gops_formula_at_fmax": m["ops_formula"] * ips / 1e9 if m.get("ops_formula") else None,
                    "gops_per_klut": m["ops"] * ips / 1e9 / (got["luts"] / 1000.0) if got["luts"] else None,
                    "gops_formula_per_klut": (m["ops_formula"] * ips / 1e9 / (got["luts"] / 1000.0)
                                              if got["luts"] and m.get("ops_formula") else None)})
        out[board] = row
    out["reference_up5k_published"] = dict(PUBLISHED_UP5K)
    return out


# --------------------------------------------------------------------------------------------
# Bitstreams the bench builds itself (when no `make demo` or earlier synth left a synth.json)
# --------------------------------------------------------------------------------------------

def _cli(argv: list[str], log) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "spikegate", *map(str, argv)], capture_output=True, text=True)
    log.write(f"$ spikegate {' '.join(map(str, argv))}\n{p.stdout}{p.stderr}\n")
    log.flush()
    return p


class BoardBuilds:
    """Compiles and synthesises, in a background thread, every board that has no ``synth.json``.

    Each board gets the default model, or the smaller embedded model where ``spikegate compile``
    refuses the default for that target (the row says which): ``spikegate.board_build``, the demo's
    code path. The steps are the CLI's own verbs, in child processes, one board at a time (one
    core), so that the RTL simulations can use the other. Wall seconds per step go to ``toolchain``.
    """

    def __init__(self, s: Settings, dm: DefaultModel, tmp: str):
        self.s, self.dm, self.tmp = s, dm, tmp
        self.root = os.path.join(REPO, "build", "bench-boards")   # kept: the rows name their files
        self.todo = [b for b in BOARDS if find_synth(s, b) is None] if not (s.quick or s.no_synth) else []
        if self.todo:
            shutil.rmtree(self.root, ignore_errors=True)
            os.makedirs(self.root)
        self.seconds: dict[str, float] = {}
        self.models: dict[str, str] = {}
        self.failures: dict[str, str] = {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        if self.todo:
            print(f"==> synthesising in the background: {', '.join(self.todo)}", file=sys.stderr, flush=True)
            self.thread.start()
        return self

    def wait(self):
        if self.thread.ident is not None:
            self.thread.join()
        if self.todo and self.root not in self.s.synth_dirs:
            self.s.synth_dirs.append(self.root)

    def _timed_cli(self, key, argv, log):
        t0 = time.perf_counter()
        p = _cli(argv, log)
        # Accumulated: a board whose compile of the default is refused compiles twice under one key.
        self.seconds[key] = round(self.seconds.get(key, 0.0) + time.perf_counter() - t0, 2)
        return p

    def _run(self):
        from spikegate.board_build import SMALL_CHECKPOINT, compile_for_board, synth_board

        small_sgir = os.path.join(self.root, f"{SMALL_CHECKPOINT}.sgir")
        with open(os.path.join(self.root, "log.txt"), "w") as log:
            for board in self.todo:
                def run(step, argv, board=board):
                    key = f"quantize-{SMALL_CHECKPOINT}" if step == "quantize small" else f"compile-{board}"
                    p = self._timed_cli(key, argv, log)
                    return p.returncode, p.stdout, p.stderr

                built = compile_for_board(run, self.dm.sgir, board, os.path.join(self.root, board),
                                          small_sgir=small_sgir)
                if built.report is None:
                    self.failures[board] = built.error[:240]
                    continue
                self.models[board] = SMALL_CHECKPOINT if built.fell_back else "default"
                rc, _, err, secs = synth_board(board, built.build_dir, os.path.join(self.root, f"synth-{board}.log"))
                self.seconds[f"synth-{board}"] = secs
                log.write(f"$ spikegate synth {built.build_dir} --board {board} --json: exit {rc} {err}\n")
                log.flush()


def flops_by_kind(g) -> dict:
    from spikegate.quantize.stats import dense_flops

    fl = dense_flops(g)
    first = g.ops[1].name
    split = {"first_conv_macs": 0, "spike_convs": 0, "multibit_pwconv2": 0, "attention": 0, "head": 0}
    for o in g.ops:
        if o.name not in fl:
            continue
        if o.name == first:
            split["first_conv_macs"] += fl[o.name]
        elif o.kind == "conv" and o.attrs["in_kind"] == "spike":
            split["spike_convs"] += fl[o.name]
        elif o.kind == "conv":
            assert o.name.endswith("pwconv2"), f"unexpected multi-bit conv {o.name}"
            split["multibit_pwconv2"] += fl[o.name]
        else:
            split[o.kind] += fl[o.name]
    split["total"] = int(sum(fl.values()))
    assert split["total"] == sum(v for k, v in split.items() if k != "total")
    return split


def paper_energy_mj(split: dict, rate: float, T: int) -> dict:
    """E = 4.6 pJ x first-layer FLOPs + 0.9 pJ x rate x T x other FLOPs (and pwconv2 as MACs beside it)."""
    from spikegate.quantize.stats import E_AC_PJ, E_MAC_PJ

    other = split["total"] - split["first_conv_macs"]
    paper = E_MAC_PJ * split["first_conv_macs"] + E_AC_PJ * rate * T * other
    pw = split["multibit_pwconv2"]
    honest = E_MAC_PJ * (split["first_conv_macs"] + T * pw) + E_AC_PJ * rate * T * (other - pw)
    return {"rate": rate, "T": T, "energy_mj": paper * 1e-9, "energy_mj_pwconv2_as_mac": honest * 1e-9}


def paper(s: Settings, dm: DefaultModel) -> dict:
    import torch

    from spikegate.quantize.lower import lower
    from spikegate.quantize.model import MetaSpikeFormer, count_parameters, preset
    from spikegate.quantize.stats import E_AC_PJ, E_MAC_PJ, layer_stats

    # The default model's measured rates: SOP-weighted over every spike-fed layer.
    x, _ = dm.heldout(s.stats_images)
    st = layer_stats(dm.g, x, mode="int")
    spike_rows = [r for r in st["layers"] if r["input_kind"] == "spike"]
    spike_flops = sum(r["dense_flops"] for r in spike_rows)
    measured_rate = st["total_sops"] / (st["T"] * spike_flops) if spike_flops else 0.0
    lif_rates = list(st["lif_firing_rates"].values())
    measured = {"model": dm.source, "samples": st["samples"], "T": st["T"],
                "mean_rate_sop_weighted": measured_rate,
                "lif_rate_min": min(lif_rates), "lif_rate_median": statistics.median(lif_rates),
                "lif_rate_max": max(lif_rates),
                "sops_per_sample": st["total_sops"], "first_layer_macs": st["first_layer_macs"],
                "energy_uj_paper": st["energy_uj_paper"], "energy_uj_pwconv2_as_mac": st["energy_uj_pwconv2_as_mac"],
                "lif_firing_rates": st["lif_firing_rates"]}
    presets = {}
    for name, expected in PAPER_PARAMS.items():
        cfg = preset(name)
        with torch.device("meta"):
            n = count_parameters(MetaSpikeFormer(cfg))
        assert n == expected, f"{name}: {n:,} parameters, the paper has {expected:,}"
        row = {"params": n, "params_expected": expected, "params_match": n == expected, "img_size": cfg.img_size}
        if name in s.lowered:
            torch.manual_seed(0)
            m = MetaSpikeFormer(cfg).eval()
            assert count_parameters(m) == expected
            g, secs = _timed(lambda: lower(m))
            del m
            split = flops_by_kind(g)
            del g
            row.update(lower_seconds=secs, dense_flops_per_step=split,
                       energy_stated_rate=[paper_energy_mj(split, STATED_RATE, T) for T in (1, 4)],
                       energy_measured_rate=[paper_energy_mj(split, measured_rate, T) for T in (1, 4)])
        else:
            row["dense_flops_per_step"] = not_available("lowering skipped (--quick)")
        presets[name] = row
    return {"energy_model": f"E = {E_MAC_PJ} pJ x first-layer FLOPs + {E_AC_PJ} pJ x rate x T x other FLOPs "
                            "(per image; the first layer once, direct encoding); energy_mj_pwconv2_as_mac "
                            "charges the multi-bit pwconv2 at 4.6 pJ per MAC per step instead",
            "stated_rate": STATED_RATE,
            "flops_source": "spikegate.quantize.lower.lower of a random model (eval mode), "
                            "then quantize.stats.dense_flops; per image and time step",
            "presets": presets, "default_model_measured": measured}


def _demo_timings(demo_dir: str) -> tuple[dict | None, str | None]:
    tj = os.path.join(demo_dir, "timings.json")
    if os.path.isfile(tj):
        with open(tj) as f:
            return {k: float(v) for k, v in json.load(f).items()}, os.path.relpath(tj, REPO)
    rj = os.path.join(demo_dir, "report.json")
    if os.path.isfile(rj):
        with open(rj) as f:
            t = json.load(f).get("timings")
        if isinstance(t, dict):
            return {k: float(v) for k, v in t.items()}, os.path.relpath(rj, REPO)
    md = os.path.join(demo_dir, "report.md")
    if os.path.isfile(md):
        text = open(md).read()
        part = text.split("## Step timings", 1)
        if len(part) == 2:
            rows = re.findall(r"^\|\s*([^|]+?)\s*\|\s*([0-9.]+)\s*\|\s*$", part[1], re.M)
            if rows:
                return {k: float(v) for k, v in rows}, os.path.relpath(md, REPO)
    return None, None


def toolchain(s: Settings, dm: DefaultModel, build: dict | None, rtl: dict, builds: "BoardBuilds") -> dict:
    """Wall seconds per pipeline stage: measured in this run where it ran here, else read from files."""
    stages: dict = {"quantize": {"seconds": dm.quantize_seconds,
                                 "source": "measured here: quantize_checkpoint(calib='digits')"}}
    if build is not None:
        stages["compile"] = {"seconds": build["seconds"],
                             "source": "measured here: compile_ir(target 'sim', 8 lanes), Verilog included"}
    else:
        stages["compile"] = not_available("skipped by --quick (emitting the accelerator's Verilog takes ~30 s)")
    for sim in ("verilator", "icarus"):
        r = rtl.get(sim) if "status" not in rtl else rtl
        if r and "status" not in r:
            stages[f"verify-{sim}"] = {"seconds": r["wall_seconds_incl_build"], "images": r["images"],
                                       "source": "measured here: spikegate.verify.verify, simulator build included"}
        else:
            st = (r or {}).get("status", "not run")     # (a failure is counted once, in rtl_sim)
            stages[f"verify-{sim}"] = not_available("it failed (see rtl_sim)" if st.startswith("failed: ")
                                                    else st.removeprefix("not available: "))
    for board in BOARDS:
        path = find_synth(s, board)
        secs = None
        if path:
            with open(path) as f:
                secs = json.load(f).get("seconds")
        if isinstance(secs, (int, float)):
            stages[f"synth-{board}"] = {"seconds": secs, "source": f"{os.path.relpath(path, REPO)} (seconds)"}
        else:
            stages[f"synth-{board}"] = not_available(f"no {board}/synth.json with 'seconds' (synth not run)")
    for k, v in builds.seconds.items():
        if not k.startswith("synth-"):
            stages[k] = {"seconds": v, "source": f"measured here: `spikegate {k.split('-')[0]}` for the boards"}
    demo, src = _demo_timings(s.demo_dir)
    if demo is not None:
        demo_block = {"source": src, "stages_s": demo}
    else:
        demo_block = not_available(f"no demo run found ({os.path.relpath(s.demo_dir, REPO)}/timings.json, "
                                   "report.json or report.md)")
    return {"stages": stages, "demo": demo_block}


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------

def plot(res: dict, path: str, before_path: str | None = None) -> None:
    """Cycles vs ops per lane count, and utilisation vs lanes beside the saved "before" curve
    (``bench/utilisation.py``)."""
    import matplotlib

    from bench import utilisation

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dp = res["datapath"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, row in dp["per_lanes"].items():
        ops = [p["sops"] + p["macs"] for p in row["per_input"]]
        cyc = [p["cycles"] for p in row["per_input"]]
        pts = a1.scatter(ops, cyc, s=14, label=f"{key} lane{'s' if key != '1' else ''} ({row['cycles_source']})")
        fit = row["fit_cycles_vs_ops"]
        if fit["slope"] is not None:
            xs = np.array([min(ops), max(ops)])
            a1.plot(xs, fit["slope"] * xs + fit["intercept"], color=pts.get_facecolor()[0], lw=1)
    a1.set_xlabel("SOPs + MACs per inference")
    a1.set_ylabel("cycles per inference")
    a1.set_title("cycles vs operations (lines: least squares)")
    a1.legend(fontsize=7)
    utilisation.draw(a2, dp, utilisation.load_before(before_path or utilisation.BEFORE))
    short = res["model_source"].split(":")[0].split(" (")[0]
    fig.suptitle(f"spikegate bench, {dp['images']} held-out digits, model: {short}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    if isinstance(v, int) and not isinstance(v, bool):
        return f"{v:,}"
    return str(v)


def table(res: dict) -> str:
    rows: list[tuple[str, str, str]] = []

    def add(sec, what, val):
        rows.append((sec, what, _fmt(val)))

    def status(sec, d):
        if "status" in d:
            add(sec, "", d["status"])
            return True
        return False

    gf = res["golden_vs_float"]
    if not status("golden_vs_float", gf):
        n, th = gf["images"], gf["torch_threads"]
        add("golden_vs_float", f"float PyTorch images/s ({n} imgs, {th} thread)", gf["float"]["images_per_s"])
        add("golden_vs_float", "golden (integer) images/s", gf["golden"]["images_per_s"])
        add("golden_vs_float", "golden / float", gf["golden_over_float"])
    oi = res["onnx_int_vs_golden"]
    if not status("onnx_int_vs_golden", oi):
        add("onnx_int_vs_golden", "integer ONNX (onnxruntime) images/s", oi["onnx_int"]["images_per_s"])
        add("onnx_int_vs_golden", "golden images/s", oi["golden"]["images_per_s"])
        add("onnx_int_vs_golden", "onnx / golden", oi["onnx_over_golden"])
        add("onnx_int_vs_golden", "logits exactly equal", oi["exact"])
    rs = res["rtl_sim"]
    if not status("rtl_sim", rs):
        for sim in ("verilator", "icarus"):
            d = rs[sim]
            if "status" in d:
                add("rtl_sim", sim, d["status"])
                continue
            cps = d["cycles_per_wall_second"]
            add("rtl_sim", f"{sim}: cycles / wall s (sim; incl. build)",
                f"{'-' if cps is None else f'{cps:,.0f}'}; {d['cycles_per_wall_second_incl_build']:,.0f}  "
                f"({d['images']} imgs, {d['total_cycles']:,} cycles, bit-exact {d['bit_exact']}, "
                f"= ISS {d['rtl_equals_iss']})")
    dp = res["datapath"]
    from bench import utilisation

    before = utilisation.load_before() or {"lanes": [], "utilisation": []}
    was = dict(zip(before["lanes"], before["utilisation"]))
    for key, r in dp["per_lanes"].items():
        fit = r["fit_cycles_vs_ops"]
        slope = "-" if fit["slope"] is None else f"{fit['slope']:.4g}"
        icpt = "-" if fit["intercept"] is None else f"{fit['intercept']:,.0f}"
        r2 = "-" if fit["r2"] is None else f"{fit['r2']:.4f}"
        add("datapath", f"{key:>2} lanes ({r['cycles_source']}): cycles / bound / util / fit",
            f"{r['mean_cycles']:,.0f} / {r['lower_bound_cycles']:,.0f} / {r['utilisation']:.3f} / "
            f"slope {slope}, icpt {icpt}, r2 {r2}"
            + (f"  (util before: {was[r['lanes']]:.3f})" if r["lanes"] in was else ""))
        if r.get("cycles_by_kind"):
            add("datapath", f"{key:>2} lanes: mean cycles by instruction kind",
                ", ".join(f"{k} {v:,.0f}" for k, v in r["cycles_by_kind"].items()))
        if r.get("cycles_by_phase"):
            add("datapath", f"{key:>2} lanes: mean cycles by phase",
                ", ".join(f"{k} {v:,.0f}" for k, v in r["cycles_by_phase"].items())
                + f" (taps alone would allow utilisation {r['taps_bound_utilisation']:.3f})")
        if r.get("utilisation_if"):
            add("datapath", f"{key:>2} lanes: utilisation at most, if",
                ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in r["utilisation_if"].items()))
    if dp["per_lanes"]:
        first = next(iter(dp["per_lanes"].values()))
        add("datapath", f"mean SOPs + MACs ({dp['images']} imgs, cycles: {dp['cycles_source']})",
            f"{first['mean_sops']:,.0f} + {first['mean_macs']:,.0f}")
    for b, d in res["boards"].items():
        if b == "reference_up5k_published":
            add("boards", "published UP5K (reference)",
                f"{d['fmax_mhz']} MHz, {d['logic_cells']}/{d['logic_cells_available']} LC, "
                f"{d['ebr']}/{d['ebr_available']} EBR, {d['gops']} GOPS")
        elif "status" in d:
            need = (f" (needs {d['luts']}/{d['luts_available']} LUT, {d['rams']}/{d['rams_available']} RAM)"
                    if d.get("luts") else "")
            add("boards", b, d["status"] + need)
        else:
            add("boards", f"{b} ({d['model']}, {d['lanes']} lanes)",
                f"{d['luts']}/{d['luts_available']} LUT, {d['ffs']} FF, {d['rams']} RAM, {d['spram'] or 0} SPRAM, "
                f"{d['dsps']} DSP, {d['fmax_mhz']:.2f} MHz, {d['images_per_s_at_fmax']:,.1f} img/s, "
                f"{d['gops_at_fmax']:.3f} GOPS, {d['sops_per_s_per_klut']:,.0f} ops/s/kLUT"
                + (f"; counted the published design's way (rate x dense FLOPs) {d['gops_formula_at_fmax']:.3f} GOPS, "
                   f"{d['gops_formula_per_klut']:.4f} GOPS/kLUT (published: {PUBLISHED_UP5K['gops_per_klc']})"
                   if d.get("gops_formula_at_fmax") else ""))
    pp = res["paper"]
    for name, r in pp["presets"].items():
        add("paper", f"{name} parameters", f"{r['params']:,} ({'matches' if r['params_match'] else 'DIFFERS'})")
        sp = r["dense_flops_per_step"]
        if "status" in sp:
            add("paper", f"{name} dense FLOPs", sp["status"])
            continue
        add("paper", f"{name} GFLOPs/step first/spike/pw2/attn/head",
            " / ".join(f"{sp[k] / 1e9:.3f}" for k in ("first_conv_macs", "spike_convs", "multibit_pwconv2",
                                                       "attention", "head")) + f" (total {sp['total'] / 1e9:.3f})")
        for e in r["energy_stated_rate"]:
            add("paper", f"{name} energy, rate {e['rate']}, T={e['T']}",
                f"{e['energy_mj']:.3f} mJ (pwconv2 as MAC: {e['energy_mj_pwconv2_as_mac']:.3f} mJ)")
        for e in r["energy_measured_rate"]:
            add("paper", f"{name} energy, measured rate {e['rate']:.3f}, T={e['T']}", f"{e['energy_mj']:.3f} mJ")
    m = pp["default_model_measured"]
    add("paper", f"default model measured ({m['samples']} digits)",
        f"rate {m['mean_rate_sop_weighted']:.3f} (LIF {m['lif_rate_min']:.3f}..{m['lif_rate_max']:.3f}), "
        f"{m['sops_per_sample']:,.0f} SOPs, {m['energy_uj_paper']:.4f} uJ")
    tc = res["toolchain"]
    for k, v in tc["stages"].items():
        if "status" in v:
            add("toolchain", f"{k}", v["status"])
        else:
            add("toolchain", f"{k} s", f"{v['seconds']:.1f}  ({v['source']})")
    if "status" in tc["demo"]:
        add("toolchain", "make demo steps", tc["demo"]["status"])
    else:
        add("toolchain", f"make demo steps ({tc['demo']['source']})",
            ", ".join(f"{k} {v:g} s" for k, v in tc["demo"]["stages_s"].items()))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{'section':<{w0}}  {'measure':<{w1}}  value", "-" * (w0 + w1 + 40)]
    prev = None
    for sec, what, val in rows:
        lines.append(f"{sec if sec != prev else '':<{w0}}  {what:<{w1}}  {val}")
        prev = sec
    return "\n".join(lines)


def _write_json(path: str, res: dict) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds, for tests)")
    p.add_argument("--out", default=os.path.join(REPO, "bench", "results.json"), help="results JSON path")
    p.add_argument("--png", help="plot path (default: the --out path with .png)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch and onnxruntime intra-op threads, the same for every engine (default 1)")
    p.add_argument("--images", type=int, help="batch for the throughput comparisons (default 64; quick 8)")
    p.add_argument("--rounds", type=int, help="alternation rounds (default 7; quick 3)")
    p.add_argument("--datapath-images", type=int, help="held-out digits through the ISS (default 16; quick 4)")
    p.add_argument("--icarus-images", type=int, default=2,
                   help="held-out digits simulated on Icarus (default 2: about a minute; Verilator runs all "
                        "--datapath-images)")
    p.add_argument("--no-rtl", action="store_true", help="skip the RTL simulations (rtl_sim: not available)")
    p.add_argument("--rtl-all-lanes", action="store_true",
                   help="also compile and simulate (Verilator) every lane count, so the datapath table is "
                        "all RTL cycles (several minutes per lane count)")
    p.add_argument("--no-synth", action="store_true",
                   help="do not compile and synthesise boards that have no synth.json yet (about 10 minutes)")
    p.add_argument("--demo-dir", default=os.path.join(REPO, "demo_out"), help="where `make demo` wrote")
    p.add_argument("--synth-dir", action="append", help="extra folder holding <board>/synth.json (repeatable)")
    a = p.parse_args(argv)
    for name in ("threads", "images", "rounds", "datapath_images", "icarus_images"):
        v = getattr(a, name)
        if v is not None and v < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, not {v}")
    out_dir = os.path.dirname(os.path.abspath(a.out))
    if not os.path.isdir(out_dir):
        p.error(f"--out {a.out}: folder {out_dir} does not exist")
    png = a.png or os.path.splitext(a.out)[0] + ".png"
    s = Settings(a)

    import torch

    torch.set_num_threads(s.threads)
    t_start = time.perf_counter()
    load0 = os.getloadavg()
    res: dict = {}
    with tempfile.TemporaryDirectory(prefix="sfbench-") as tmp:
        def section(name, fn):
            print(f"==> {name}", file=sys.stderr, flush=True)
            res[name], secs = _timed(fn)
            res["meta"]["section_seconds"][name] = round(secs, 2)

        res["model_source"] = None
        res["meta"] = {"quick": s.quick, "threads": s.threads,
                       "threads_note": "torch.set_num_threads and onnxruntime intra_op_num_threads both "
                                       f"{s.threads}; inter-op 1",
                       "machine": {"platform": platform.platform(), "python": platform.python_version(),
                                   "cpus": os.cpu_count(), "loadavg_at_start": [round(v, 2) for v in load0]},
                       "versions": {"torch": torch.__version__, "numpy": np.__version__},
                       "section_seconds": {}}
        print("==> default model (quantize)", file=sys.stderr, flush=True)
        dm, secs = _timed(lambda: DefaultModel(s, tmp))
        res["model_source"] = dm.source
        res["meta"]["section_seconds"]["default_model"] = round(secs, 2)
        res["meta"]["default_model"] = {"config": dm.cfg.to_json(), "quantize_summary": dm.summary}
        section("golden_vs_float", lambda: golden_vs_float(s, dm))
        section("onnx_int_vs_golden", lambda: onnx_int_vs_golden(s, dm))
        builds = BoardBuilds(s, dm, tmp).start()   # after the timed comparisons: it loads one core
        build = None
        if not s.quick:
            print("==> compile", file=sys.stderr, flush=True)
            from spikegate.compiler.build import compile_ir

            bdir = os.path.join(tmp, "build-sim")
            _, secs = _timed(lambda: compile_ir(dm.sgir, "sim", 8, bdir))
            build = {"dir": bdir, "lanes": 8, "seconds": secs}
        rtl_cycles: dict = {}
        section("rtl_sim", lambda: rtl_sim(s, dm, build, tmp, rtl_cycles))
        runs = IssRuns(dm, dm.heldout(s.dp_images)[0])
        section("datapath", lambda: datapath(s, dm, runs, rtl_cycles))
        default_sha = hashlib.sha256(open(dm.sgir, "rb").read()).hexdigest()
        section("boards", lambda: boards(s, default_sha, builds))
        section("paper", lambda: paper(s, dm))
        section("toolchain", lambda: toolchain(s, dm, build, res["rtl_sim"], builds))
    res["meta"]["wall_seconds"] = round(time.perf_counter() - t_start, 2)
    res["meta"]["loadavg_at_end"] = [round(v, 2) for v in os.getloadavg()]
    assert all(k in res for k in SECTIONS)
    _write_json(a.out, res)
    plot(res, png)
    print(f"spikegate bench{' (--quick)' if s.quick else ''}: model: {res['model_source']}")
    print(table(res))
    print(f"wrote {os.path.relpath(a.out)} and {os.path.relpath(png)} in {res['meta']['wall_seconds']} s")
    bad = failures({k: res[k] for k in SECTIONS})
    for f in bad:
        print(f"bench: FAILED {f}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
