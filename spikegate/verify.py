"""`spikegate verify`: the emitted Verilog against the golden model, image by image.

A flow above the compiler and the testbenches: it reads a build directory (``compiler/build.py``),
runs the golden model (``quantize/``) and the ISS (``compiler/iss.py``), and simulates the RTL
through the testbenches' one cocotb runner (``rtl_tests/cocotb_util.py``). The CLI verb, the demo,
the bench and the fuzzer's ``--rtl`` use it.

For each input: the golden model gives the integer logits and, per LIF, the spikes; the ISS gives
the predicted cycles; the RTL (under cocotb, on Verilator or Icarus) gives logits, measured cycles
and each LIF instruction's spike count. Any difference is reported at the first layer (in program
order) whose spikes differ; the image is then re-simulated recording every spike the RTL writes, to
name the time step and neuron.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np

from spikegate import progress
from spikegate.compiler import iss
from spikegate.compiler.build import REPORT, WEIGHT_IMAGE, read_build, read_weight_image
from spikegate.errors import SpikegateError
from spikegate.io import check_images, load_array
from spikegate.machine.program import OP_LIF
from spikegate.quantize import intops
from spikegate.quantize.golden import execute

SIMS = ("verilator", "icarus")


def _simulate(build_dir: str, prog, pixels: np.ndarray, sim: str, capture: list[int] | None = None,
              backpressure: float = 0.0) -> list[dict]:
    from spikegate.hw.spram import sim_sources          # (Amaranth: imported when simulating)
    from spikegate.rtl_tests.cocotb_util import run_cocotb

    verilog = os.path.abspath(os.path.join(build_dir, "accelerator.v"))
    if not os.path.isfile(verilog):
        raise SpikegateError(f"{build_dir}: accelerator.v is missing; recompile with `spikegate compile`")
    with open(verilog) as f:
        sources = [verilog] + [str(p) for p in sim_sources(f.read())]   # vendor primitive models
    with open(os.path.join(build_dir, REPORT)) as f:     # (read_build checked it already)
        report = json.load(f)
    if sim == "icarus" and shutil.which("iverilog") is None:
        raise SpikegateError("--sim icarus: iverilog is not installed (apt-get install iverilog)")
    work = os.path.abspath(os.path.join(build_dir, f"sim-{sim}"))  # cocotb runs in another directory
    os.makedirs(work, exist_ok=True)
    px_path = os.path.join(work, "pixels.npy")
    out_path = os.path.join(work, "observed.json")
    np.save(px_path, pixels)
    if os.path.exists(out_path):
        os.remove(out_path)
    per_image = max(iss.estimate_cycles(prog, 1.0)["cycles"], 1000)
    cfg = {"pixels": px_path, "out": out_path, "num_classes": prog.num_classes, "pixel_bits": prog.pixel_bits,
           "logit_bits": prog.logit_bits, "timeout_cycles": 4 * per_image + 10000,
           "capture_spikes": bool(capture), "capture_images": list(capture or []), "backpressure": backpressure}
    weights = report.get("weights") or {}
    if weights.get("loading") == "runtime-loaded":   # written through the weight port first
        read_weight_image(build_dir, report)            # (checked against report.json)
        cfg.update(weights=os.path.abspath(os.path.join(build_dir, weights.get("image") or WEIGHT_IMAGE)),
                   weight_bytes_per_word=int(weights["bytes_per_word"]))
    cfg["progress"] = os.path.join(work, "progress.txt")
    progress.remove(cfg["progress"])
    with progress.bar(len(pixels), f"{sim} (build, then images)", unit="img") as bar:
        def done(text):
            bar.n = text.count("\n")
            bar.refresh()
        with progress.poll(lambda: progress.read_text(cfg["progress"]), done):
            try:
                run_cocotb(sources, "sfa_top", "spikegate.rtl_tests.tb_verify", sim, work, config=cfg)
            except AssertionError as e:
                raise SpikegateError(f"RTL simulation failed: {str(e).splitlines()[0]}") from None
    with open(out_path) as f:
        return json.load(f)


def verify(build_dir: str, inputs_path: str, sim: str = "verilator", backpressure: float = 0.0) -> dict:
    if sim not in SIMS:
        raise SpikegateError(f"--sim must be one of {', '.join(SIMS)}, not {sim!r}")
    report, g, prog = read_build(build_dir)
    qi = g.ops[0].attrs
    x = check_images(load_array(inputs_path), qi["channels"], inputs_path, size=qi["size"])
    pixels = intops.quantize_input(x, prog.input_scale, prog.pixel_bits).reshape(len(x), -1)
    trace: dict = {}
    gold = execute(g, x, trace=trace)
    predicted = iss.run_batch(prog, x)
    observed = _simulate(build_dir, prog, pixels, sim, backpressure=backpressure)
    lif_by_tag = {i: ins.name for i, ins in enumerate(prog.instrs) if ins.opcode == OP_LIF}
    mismatches = []
    for b, obs in enumerate(observed):
        logits_ok = np.array_equal(np.asarray(obs["logits"], dtype=np.int64), gold[b])
        counts = {lif_by_tag[t]: s for t, s in obs["instr"] if t in lif_by_tag}
        first = None
        for tag, name in sorted(lif_by_tag.items()):
            want = int(trace[name][0][:, b].sum())
            if counts.get(name) != want:
                first = {"layer": name, "rtl_spikes": counts.get(name), "golden_spikes": want}
                break
        if logits_ok and first is None:
            continue
        m = {"sample": b, "logits_rtl": obs["logits"], "logits_golden": gold[b].tolist()}
        if first:
            m.update(first)
            m.update(_localise(build_dir, prog, pixels[b:b + 1], sim, trace, b, first["layer"]))
        mismatches.append(m)
    return {"samples": len(observed), "bit_exact": not mismatches, "sim": sim,
            "cycles": [o["cycles"] for o in observed], "predicted_cycles": [r.cycles for r in predicted],
            "mismatches": mismatches, "target": report["target"], "lanes": report["lanes"]}


def _localise(build_dir, prog, pixels, sim, trace, b, layer) -> dict:
    """Re-run one image recording SPK writes; find the first (t, neuron) of ``layer`` that differs."""
    obs = _simulate(build_dir, prog, pixels, sim, capture=[0])[0]
    if not obs["spk_writes"]:
        return {"detail": "the RTL exposes no spike-write debug port; only the layer is known"}
    t_info = prog.tensors[layer]
    base, shape, steps = t_info["base"], t_info["shape"], t_info["steps"]
    n = int(np.prod(shape))
    rtl = np.full(steps * n, -1, dtype=np.int64)
    for addr, val in obs["spk_writes"]:
        if base <= addr < base + steps * n:
            rtl[addr - base] = val  # the last write of this layer's region wins
    want = trace[layer][0][:, b].reshape(-1)
    diff = np.nonzero(rtl != want)[0]
    if len(diff) == 0:
        return {"detail": "spike writes agree; the difference is in a spike count"}
    i = int(diff[0])
    t, neuron = divmod(i, n)
    idx = np.unravel_index(neuron, shape)
    return {"time_step": t, "neuron": [int(v) for v in idx], "rtl_spike": int(rtl[i]), "golden_spike": int(want[i]),
            "golden_membrane": int(trace[layer][1][:, b].reshape(-1)[i])}
