"""Models bigger than the chip on the ULX3S (issue 24): compile, and RTL runs with weights in SDRAM.

    .venv/bin/python -m bench.sdram_models [--only NAME ...] [--verify NAME ...] [--out bench/sdram_models.json]

Each case goes through the CLI's own verbs, as a user would run them: ``spikegate init`` (a random
checkpoint in the official layout, also with ``--bn-stats 3`` so that its neurons fire as a trained
network's do: the plain initialisation leaves every spiking layer of the 15M preset silent; the
embedded ``mnist`` model needs none), ``quantize`` (on
seeded random calibration images, or MNIST's training split), ``compile --target ulx3s-85f``
(without ``--lanes``: the compiler's own choice). It records where the weights went
(``report.json["weights"]["where"]``), the packed image, the WLOADs, tiling, lanes, the on-chip
block RAMs and the predicted images/s at the requested clock; a compile that refuses is recorded
with its one-line reason. ``--verify NAME`` also runs ``spikegate verify --sim verilator`` on the
first held-out image (random for the presets) and records bit-exactness and the measured cycles
against the prediction (the deterministic memory model: they must be equal). Too slow for
``make test``: the 15M preset's Verilator run is about 31M cycles.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

BOARD = "ulx3s-85f"
CASES = {
    # name: (init arguments, or None for an embedded model; calibration)
    "mnist": (None, "mnist"),
    "633k": (["--preset", "fpga-small", "--embed-dim", "16,32,64,128", "--depths", "1,1", "--img-size", "32",
              "--in-channels", "3", "--classes", "10", "--bn-stats", "3"], "random"),
    # the case as it says it: randomly initialised (its spiking layers stay silent), and with
    # --bn-stats 3 (they fire; its parameter tables are wider)
    "meta-spikeformer-15m@32": (["--preset", "meta-spikeformer-15m", "--img-size", "32"], "random"),
    "meta-spikeformer-15m@32-bn": (["--preset", "meta-spikeformer-15m", "--img-size", "32", "--bn-stats", "3"],
                                   "random"),
    "meta-spikeformer-15m@224": (["--preset", "meta-spikeformer-15m", "--bn-stats", "3"], "random"),
    # the same with each attention RepConv kept as its three convolutions (quantize --repconv split):
    # 15.0M weights instead of 33.2M, so that the weights leave the SDRAM room for activations
    "meta-spikeformer-15m@32-bn-split": (["--preset", "meta-spikeformer-15m", "--img-size", "32",
                                          "--bn-stats", "3"], "random", ["--repconv", "split"]),
    "meta-spikeformer-15m@224-split": (["--preset", "meta-spikeformer-15m", "--bn-stats", "3"], "random",
                                       ["--repconv", "split"]),
}
CALIB_IMAGES = 2


def _cli(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spikegate", *map(str, argv)], capture_output=True, text=True)


def _checked(p: subprocess.CompletedProcess, what: str) -> str:
    if p.returncode != 0:
        raise RuntimeError(f"{what}: {(p.stderr or p.stdout).strip().splitlines()[-1:]}")
    return p.stdout


def _ir_weights(sgir: str) -> int:
    """How many weights the IR holds (the model's, after BatchNorm folding and RepConv merging)."""
    from spikegate.quantize.irfile import load_ir

    return int(sum(o.params["weight"].size for o in load_ir(sgir).ops if "weight" in o.params))


def measure(name: str, workdir: str, verify: bool) -> dict:
    init, calib, *more = CASES[name]
    quantize_args = more[0] if more else []
    model = "mnist"
    out: dict = {"case": name}
    if init is not None:
        model = os.path.join(workdir, "m.pth")
        out["init"] = _checked(_cli("init", *init, "-o", model), "init").strip()
    t = time.perf_counter()
    if calib == "random":
        info = json.loads(_checked(_cli("info", model, "--json"), "info"))
        shape = (CALIB_IMAGES, info["in_channels"], info["img_size"], info["img_size"])
        calib = os.path.join(workdir, "calib.npy")
        np.save(calib, np.random.RandomState(0).rand(*shape).astype(np.float32))
    sgir = os.path.join(workdir, "m.sgir")
    _checked(_cli("quantize", model, "--calib", calib, *quantize_args, "-o", sgir), "quantize")
    out["quantize_seconds"] = round(time.perf_counter() - t, 1)
    if quantize_args:
        out["quantize_args"] = quantize_args
    out["ir_weights"] = _ir_weights(sgir)
    build = os.path.join(workdir, "build")
    t = time.perf_counter()
    p = _cli("compile", sgir, "--target", BOARD, "-o", build, "--json")
    out["compile_seconds"] = round(time.perf_counter() - t, 1)
    if p.returncode != 0:
        out["compile"] = "refused: " + p.stderr.strip().replace("spikegate compile: error: ", "")
        return out
    rep = json.loads(p.stdout)
    w = rep["weights"]
    rows = {r["resource"]: r for r in rep["resources"]}
    out.update(compile="ok", where=w["where"], lanes=rep["lanes"], instructions=rep["instructions"],
               external_bits=w.get("external_bits"), wloads=w.get("wloads"), buffer_words=w.get("buffer_words"),
               acc_words=rep["memories"]["acc_words"],
               block_rams=[rows["block RAMs (all memories)"]["needed"], rows["block RAMs (all memories)"]["available"]],
               clock_mhz=rep["clock_mhz"], predicted_cycles=rep["predicted_cycles"][:1],
               predicted_images_per_s=rep["predicted_images_per_s"])
    if verify:
        x = os.path.join(workdir, "x.npy")
        if model == "mnist":
            _checked(_cli("data", "mnist", "--count", 1, "--model", sgir, "-o", x), "data")
        else:
            np.save(x, np.random.RandomState(1).rand(1, *np.load(calib).shape[1:]).astype(np.float32))
        t = time.perf_counter()
        v = json.loads(_checked(_cli("verify", build, "--inputs", x, "--sim", "verilator", "--seed", 1, "--json"),
                                "verify"))
        out["verify"] = {"bit_exact": v["bit_exact"], "cycles": v["cycles"], "predicted_cycles": v["predicted_cycles"],
                         "sops": v["sops"], "macs": v["macs"],
                         "cycles_equal": v["cycles"] == v["predicted_cycles"],
                         "seconds": round(time.perf_counter() - t, 1)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.sdram_models")
    ap.add_argument("--only", nargs="*", choices=list(CASES), help="cases to run (default: all)")
    ap.add_argument("--verify", nargs="*", default=[], choices=list(CASES), help="cases to run on Verilator too")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "sdram_models.json"))
    a = ap.parse_args(argv)
    rows = []
    for name in a.only or list(CASES):
        with tempfile.TemporaryDirectory() as d:
            try:
                r = measure(name, d, name in a.verify)
            except RuntimeError as e:
                r = {"case": name, "status": f"failed: {e}"}
        rows.append(r)
        print(json.dumps(r), flush=True)
    with open(a.out, "w") as f:
        json.dump(rows, f, indent=1)
    print(f"wrote {a.out}")
    return 0 if all("status" not in r for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
