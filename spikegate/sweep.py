"""Design-space sweeps on Ray: models x targets x lanes x weight bits (x nextpnr seeds).

The stages (``spikegate.sweep_stages``) are Ray tasks chained by their object references, so a
stage is run once and shared by every point that needs it: quantisation per (model, bits),
compilation per (model, bits, target, lanes), Yosys per build and board, nextpnr per seed. Ray runs
embedded on this machine (``ray.init(num_cpus=...)``) unless ``address`` names a running cluster,
where the same tasks go (its workers need spikegate installed and the sweep folder at the same path:
one machine, or a shared file system).

Results: ``DIR/points.jsonl``, one JSON line per finished point, appended as each point finishes
(written whole, flushed and fsynced, so an interrupted sweep keeps every finished point and never a
half line; a trailing partial line, from a machine that died mid-write, is dropped on the next run).
Rerunning skips the points already there. ``DIR/stages/`` holds the stages' files (IRs, build
directories, board directories), each with its ``stage.json`` once finished, so a resumed sweep
reuses them too. ``DIR/report.html`` (``spikegate.sweep_report``) is rewritten at the end.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass

from spikegate import progress
from spikegate.errors import SpikegateError

from . import sweep_stages as st

POINTS = "points.jsonl"
STAGES = "stages"
REPORT = "report.html"
ENGINE = "ray"
PARAMS = ("model", "data", "target", "board", "lanes", "weight_bits", "seed", "synth")


@dataclass(frozen=True)
class Spec:
    """What to sweep. ``targets``: name -> (compile Target, board name or None)."""

    models: tuple[str, ...]
    targets: dict
    lanes: tuple[int, ...]
    weight_bits: tuple[int, ...]
    seeds: tuple[int, ...] = (1,)
    synth: bool = False
    data: str = "digits"
    cycle_images: int = 8

    def points(self) -> list[dict]:
        seeds = self.seeds if self.synth else (None,)
        return [{"model": m, "data": self.data, "target": t, "board": self.targets[t][1], "lanes": n,
                 "weight_bits": b, "seed": s, "synth": self.synth}
                for m, b, t, n, s in itertools.product(self.models, self.weight_bits, self.targets, self.lanes, seeds)]


def point_key(p: dict) -> tuple:
    return tuple(p.get(k) for k in PARAMS)


# ------------------------------------------------------------------------------- points.jsonl


def read_points(path: str) -> list[dict]:
    """The complete lines of ``points.jsonl``; a trailing partial line (an interrupted write) is
    cut off the file so the next append starts on a line of its own."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    good = data[:data.rfind(b"\n") + 1]
    if len(good) != len(data):
        with open(path, "r+b") as f:
            f.truncate(len(good))
            os.fsync(f.fileno())
    rows = []
    for n, line in enumerate(good.decode().splitlines(), 1):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise SpikegateError(f"{path}:{n}: not a JSON line; it was not written by `spikegate sweep` "
                                 f"(move it away or choose another --out)") from None
    return rows


def append_point(path: str, row: dict) -> None:
    """One whole line, flushed and fsynced before the next point is told done."""
    line = (json.dumps(row, sort_keys=False) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def point_row(p: dict, r: dict) -> dict:
    """A finished point's line: its parameters, status and the measured columns."""
    fmax = r.get("fmax_mhz") if p["synth"] else None
    clock = fmax or r.get("clock_mhz")
    cycles = r.get("mean_cycles")
    ok = r.get("status") == "ok"
    luts = r.get("luts") if p["synth"] else r.get("luts_estimate")
    return {**p, "status": r.get("status", "failed"), "error": r.get("error"),
            "top1": r.get("top1"), "mean_cycles": cycles, "cycle_images": r.get("cycle_images"),
            "images_per_s": round(clock * 1e6 / cycles, 2) if ok and clock and cycles else None,
            "clock_mhz": r.get("clock_mhz"), "luts": luts,
            "luts_from": (None if luts is None else "synthesis" if p["synth"] else "estimate"),
            "ffs": r.get("ffs"), "bram": r.get("bram"), "dsp": r.get("dsp"),
            "fmax_mhz": fmax, "timing_met": r.get("timing_met") if p["synth"] else None,
            "seconds": round(sum((r.get("stage_seconds") or {}).values()), 1),
            "stage_seconds": r.get("stage_seconds")}


# ------------------------------------------------------------------------------------ the engine


def start_ray(address: str | None, jobs: int | None):
    """Ray embedded with ``jobs`` CPUs (default: this machine's), or a running cluster's."""
    try:
        import ray
    except ImportError as e:
        raise SpikegateError(f"Ray is not installed ({e}); reinstall spikegate (it depends on ray)") from None
    opts = dict(log_to_driver=False, configure_logging=True, logging_level="ERROR")
    host = (address or "127.0.0.1").rpartition(":")[0] or address
    if host in ("127.0.0.1", "localhost"):
        # this machine: the driver, and an embedded Ray's processes, talk over the loopback
        # address only (Ray's default is the first interface's)
        opts["_node_ip_address"] = "127.0.0.1"
    if address:
        _check_reachable(address)
    try:
        if address:
            ray.init(address=address, **opts)
        else:
            # "local": always a new instance of our own, never a cluster some earlier `ray start` left
            ray.init(address="local", num_cpus=jobs or os.cpu_count() or 1, include_dashboard=False,
                     object_store_memory=128 * 2**20, **opts)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise SpikegateError(f"--address {address}: cannot connect to a Ray cluster there "
                             f"({str(e).splitlines()[0] if str(e) else type(e).__name__})"
                             if address else f"cannot start Ray here: {e}") from None
    return ray


def _check_reachable(address: str) -> None:
    """One line now, where ``ray.init`` would retry a dead address for minutes."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=10).close()
    except ValueError:
        raise SpikegateError(f"--address {address}: give the head node as HOST:PORT") from None
    except OSError as e:
        raise SpikegateError(f"--address {address}: no Ray head node answers there ({e.strerror or e}); "
                             f"start one with `ray start --head --port {port}`") from None


def _stage_graph(ray, spec: Spec, todo: list[dict], stages: str) -> dict:
    """Every missing point's final stage as an object reference; shared stages are submitted once."""
    q, c, n, s = {}, {}, {}, {}
    quantize = ray.remote(num_cpus=1)(st.quantize_stage)
    compile_ = ray.remote(num_cpus=1)(st.compile_stage)
    netlist = ray.remote(num_cpus=1, max_retries=1)(st.netlist_stage)
    seed_run = ray.remote(num_cpus=1, max_retries=1)(st.seed_stage)
    refs = {}
    for p in todo:
        qk = (p["model"], p["weight_bits"])
        qdir = os.path.join(stages, f"{st.model_key(p['model'])}-{p['data']}-w{p['weight_bits']}")
        if qk not in q:
            q[qk] = quantize.remote(os.path.abspath(p["model"]) if os.path.exists(p["model"]) else p["model"],
                                    p["data"], p["weight_bits"], qdir)
        ck = qk + (p["target"], p["lanes"])
        if ck not in c:
            c[ck] = compile_.remote(q[qk], spec.targets[p["target"]][0], p["lanes"],
                                    os.path.join(qdir, f"{p['target']}-l{p['lanes']}"), spec.cycle_images)
        ref = c[ck]
        if p["synth"]:
            first = spec.seeds[0]
            if ck not in n:
                n[ck] = netlist.remote(c[ck], p["board"], first)
            ref = n[ck]
            if p["seed"] != first:
                sk = ck + (p["seed"],)
                if sk not in s:
                    s[sk] = seed_run.remote(n[ck], p["board"], p["seed"])
                ref = s[sk]
        refs[ref] = p
    return refs


def run_sweep(spec: Spec, out_dir: str, *, address: str | None = None, jobs: int | None = None,
              retry_failed: bool = False) -> dict:
    """Run the points of ``spec`` missing from ``out_dir/points.jsonl``; ``{"engine", "points",
    "skipped"}`` with every point of ``spec`` (those run now and those found)."""
    out_dir = os.path.abspath(out_dir)
    try:
        os.makedirs(os.path.join(out_dir, STAGES), exist_ok=True)
    except OSError as e:
        raise SpikegateError(f"--out {out_dir}: cannot create it ({e.strerror or e})") from None
    path = os.path.join(out_dir, POINTS)
    found = {}
    for row in read_points(path):
        if retry_failed and row.get("status") == "failed":
            continue
        found[point_key(row)] = row
    wanted = spec.points()
    todo = [p for p in wanted if point_key(p) not in found]
    skipped = len(wanted) - len(todo)
    if todo:
        _run(spec, todo, path, found, address, jobs, out_dir)
    from spikegate.sweep_report import write_report
    write_report(os.path.join(out_dir, REPORT), read_points(path))
    return {"engine": ENGINE, "points": [found[point_key(p)] for p in wanted if point_key(p) in found],
            "skipped": skipped}


def _run(spec, todo, path, found, address, jobs, out_dir) -> None:
    ray = start_ray(address, jobs)
    bar = progress.bar(len(todo), "sweep", unit="point")   # stderr, on a terminal only
    try:
        pending = _stage_graph(ray, spec, todo, os.path.join(out_dir, STAGES))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            p = pending.pop(ready[0])
            try:
                r = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 -- a crashed worker fails its point only
                r = {"status": "failed", "error": st.one_line(f"{type(e).__name__}: {e}")}
            row = point_row(p, r)
            append_point(path, row)
            found[point_key(p)] = row
            bar.update(1)
            bar.set_postfix_str(f"{row['target']} l{row['lanes']} w{row['weight_bits']}: {row['status']}")
    finally:
        bar.close()
        ray.shutdown()
