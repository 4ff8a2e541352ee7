"""Randomised end-to-end equivalence: random IR graphs through golden model, ISS and RTL.

``python -m spikegate.fuzz --count N [--seed S] [--rtl icarus|verilator|none]``
(``make fuzz N=...``). Each graph must agree bit for bit, layer by layer (every LIF's spike count,
then the logits). A failing case is shrunk (smaller generator settings that still fail) and saved
under ``tests/regressions/`` as ``<name>.sgir`` + ``<name>.npy``, which ``make test`` replays.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import numpy as np

from spikegate.compiler import iss
from spikegate.compiler.build import compile_ir, lower_to_program
from spikegate.compiler.irgen import GenConfig, random_graph, shrink_configs
from spikegate.quantize.golden import execute
from spikegate.quantize.irfile import save_ir
from spikegate.quantize.ranges import assign_widths

REGRESSIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "regressions")


def check_graph(g, x, lanes: int, rtl: str | None, workdir: str) -> str | None:
    """None if golden, ISS (and RTL) agree; else a description of the first difference."""
    trace: dict = {}
    gold = execute(g, x, trace=trace)
    prog = lower_to_program(g, lanes)
    for b, r in enumerate(iss.run_batch(prog, x)):
        for name, (spikes, _) in trace.items():
            if r.spike_counts[name] != int(spikes[:, b].sum()):
                return f"ISS sample {b}: {name} has {r.spike_counts[name]} spikes, golden {int(spikes[:, b].sum())}"
        if not np.array_equal(r.logits, gold[b]):
            return f"ISS sample {b}: logits {r.logits.tolist()} != golden {gold[b].tolist()}"
    if rtl:
        from spikegate.verify import verify
        sgir = os.path.join(workdir, "g.sgir")
        save_ir(g, sgir)
        np.save(os.path.join(workdir, "x.npy"), x)
        bdir = os.path.join(workdir, "build")
        compile_ir(sgir, "sim", lanes, bdir, predict_samples=0)
        v = verify(bdir, os.path.join(workdir, "x.npy"), sim=rtl)
        if not v["bit_exact"]:
            return f"RTL ({rtl}): {v['mismatches'][0]}"
    return None


WORST_SIGNS = ("positive", "mixed")


def worst_case_graph(seed: int, signs: str = "positive", max_blocks: int = 3) -> tuple[object, np.ndarray]:
    """A worst-case graph for overflow tests (``irgen``'s ``worst_case``: every weight and bias at
    its largest, thresholds 1, saturated inputs, so every neuron fires at every step and every value
    goes to the top of its analysed range).

    ``signs="mixed"`` sends the multi-bit tensors (the input, the residual stream, the depthwise
    outputs, the spatial sums, the logits) to their negative extremes in every odd channel and
    their positive ones in every even channel: the input pixels at their most negative value, and
    every weight, bias and head bias whose sign pushes an odd channel down becomes the two's
    complement mirror of the positive extreme (``~v = -v - 1``: -128 for 8-bit weights). Convolutions
    that feed a LIF stay positive, so every spike stays on and the stream convolutions after them
    reach the bottom of their analysed range; a LIF reading an odd channel of the stream never fires,
    its membrane and carried state sinking to their negative extremes. Widths come from the range
    analysis of the final parameters, as for any graph."""
    if signs not in WORST_SIGNS:
        raise ValueError(f"signs must be one of {WORST_SIGNS}, not {signs!r}")
    g, x = random_graph(seed, GenConfig(worst_case=True, max_blocks=max_blocks))
    if signs == "positive":
        return g, x
    g = g.copy()
    ops = {o.name: o for o in g.ops}

    def sign(name: str, c: np.ndarray) -> np.ndarray:
        """+1 / -1 per channel ``c`` of tensor ``name``: -1 on every channel of the input, on odd
        channels of a multi-bit tensor; +1 on spikes and attention counts (never negative)."""
        kind = ops[name].kind
        if kind == "quant_input":
            return -np.ones_like(c)
        if kind in ("lif", "attention") or (kind == "conv" and ops[name].attrs["role"] == "lif"):
            return np.ones_like(c)
        return np.where(c % 2, -1, 1)

    for o in g.ops:
        if o.kind == "conv":
            w = np.asarray(o.params["weight"])
            cout, cpg = w.shape[:2]
            opg = cout // o.attrs["groups"]
            co = np.arange(cout)
            ci = (co[:, None] // opg) * cpg + np.arange(cpg)[None, :]      # input channel of each weight
            s_out = sign(o.name, co)
            flip = (s_out[:, None] * sign(o.inputs[0], ci)) < 0
            o.params["weight"] = np.where(flip[:, :, None, None], ~w, w).astype(np.int64)
            o.params["bias"] = np.where(s_out < 0, ~np.asarray(o.params["bias"]), o.params["bias"]).astype(np.int64)
        elif o.kind == "head":
            odd = np.arange(o.shape[0]) % 2 == 1
            o.params["weight"] = np.where(odd[None, :, None], ~o.params["weight"], o.params["weight"]).astype(np.int64)
            o.params["bias"] = np.where(odd[None, :], ~o.params["bias"], o.params["bias"]).astype(np.int64)
    qi = g.ops[0]
    lim = 2 ** (int(qi.attrs["bits"]) - 1)
    x = np.full(x.shape, -lim / float(qi.attrs["scale"]), dtype=np.float32)
    return assign_widths(g), x


def run_one(seed: int, rtl: str | None, cfg: GenConfig | None = None) -> tuple[str | None, object, np.ndarray, int]:
    g, x = random_graph(seed, cfg)
    lanes = int(np.random.default_rng(seed + 7).integers(1, 9))
    with tempfile.TemporaryDirectory(prefix="sffuzz-") as wd:
        return check_graph(g, x, lanes, rtl, wd), g, x, lanes


def shrink_and_save(seed: int, rtl: str | None, cfg: GenConfig) -> str:
    best = (cfg, *run_one(seed, rtl, cfg)[1:])
    for c in shrink_configs(cfg):
        err, g, x, lanes = run_one(seed, rtl, c)
        if err:
            best = (c, g, x, lanes)
            break
    c, g, x, lanes = best
    os.makedirs(REGRESSIONS, exist_ok=True)
    name = f"fuzz_seed{seed}_lanes{lanes}"
    save_ir(g, os.path.join(REGRESSIONS, name + ".sgir"))
    np.save(os.path.join(REGRESSIONS, name + ".npy"), x)
    return name


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m spikegate.fuzz")
    p.add_argument("--count", type=int, default=30)
    p.add_argument("--seed", type=int, default=None, help="first seed (default: random, printed)")
    p.add_argument("--rtl", default="none", choices=["none", "icarus", "verilator"])
    a = p.parse_args(argv)
    seed0 = a.seed if a.seed is not None else int.from_bytes(os.urandom(3), "little")
    rtl = None if a.rtl == "none" else a.rtl
    print(f"fuzz: {a.count} random graphs from seed {seed0} (rerun: --seed {seed0}), RTL: {a.rtl}", flush=True)
    failures = 0
    t0 = time.time()
    for i in range(a.count):
        seed = seed0 + i
        err, g, x, lanes = run_one(seed, rtl)
        status = "ok" if err is None else f"FAIL: {err}"
        print(f"  seed {seed}: {len(g.ops)} ops, T={g.meta['T']}, lanes={lanes}: {status}", flush=True)
        if err:
            failures += 1
            name = shrink_and_save(seed, rtl, GenConfig())
            print(f"    saved the shrunk case as tests/regressions/{name}.sgir", flush=True)
    print(f"{a.count - failures} passed, {failures} failed ({time.time() - t0:.0f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
