"""`spikegate verify`: the emitted Verilog against the golden model, image by image.

A flow above the compiler and the testbenches: it reads a build directory (``compiler/build.py``),
runs the golden model (``quantize/``) and the ISS (``compiler/iss.py``), and simulates the RTL
through the testbenches' one cocotb runner (``rtl_tests/cocotb_util.py``). The CLI verb, the demo,
the bench and the fuzzer's ``--rtl`` use it.

For each input: the golden model gives the integer logits and, per LIF, the spikes; the ISS gives
the predicted cycles; the RTL (under cocotb, on Verilator or Icarus) gives logits, measured cycles,
each LIF instruction's spike count (its debug port) and every spike the LIF engine writes (its
spike-memory write port, read through VPI), from which each LIF layer's spike map (every time step,
every neuron) is rebuilt. An image is bit-exact when its logits and every LIF layer's spike map and
spike count equal the golden model's; otherwise the first layer (in program order) that differs is
reported, with the first time step and neuron whose spike differs.
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


# Verilator exposes only the top's ports to the testbench (fast); the spike monitor also reads the LIF
# engine's spike-memory write port.
SPIKE_PORT_VLT = '`verilator_config\npublic_flat_rw -module "*" -var "spk_w__*"\n'


def _simulate(build_dir: str, prog, pixels: np.ndarray, sim: str, backpressure: float = 0.0) -> list[dict]:
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
           "capture_spikes": True, "backpressure": backpressure}
    weights = report.get("weights") or {}
    if weights.get("loading") == "runtime-loaded":   # written through the weight port first
        read_weight_image(build_dir, report)            # (checked against report.json)
        cfg.update(weights=os.path.abspath(os.path.join(build_dir, weights.get("image") or WEIGHT_IMAGE)),
                   weight_bytes_per_word=int(weights["bytes_per_word"]))
    cfg["progress"] = os.path.join(work, "progress.txt")
    progress.remove(cfg["progress"])
    build_args = []
    if sim == "verilator":
        vlt = os.path.join(work, "spike-port.vlt")
        with open(vlt, "w") as f:
            f.write(SPIKE_PORT_VLT)
        build_args = [vlt]
    with progress.bar(len(pixels), f"{sim} (build, then images)", unit="img") as bar:
        def done(text):
            bar.n = text.count("\n")
            bar.refresh()
        with progress.poll(lambda: progress.read_text(cfg["progress"]), done):
            try:
                run_cocotb(sources, "sfa_top", "spikegate.rtl_tests.tb_verify", sim, work, config=cfg,
                           build_args=build_args)
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
        first = _first_spike_difference(prog, lif_by_tag, obs, trace, b)
        if logits_ok and first is None:
            continue
        m = {"sample": b, "logits_rtl": obs["logits"], "logits_golden": gold[b].tolist()}
        if first:
            m.update(first)
        mismatches.append(m)
    return {"samples": len(observed), "bit_exact": not mismatches, "sim": sim,
            "cycles": [o["cycles"] for o in observed], "predicted_cycles": [r.cycles for r in predicted],
            "mismatches": mismatches, "target": report["target"], "lanes": report["lanes"]}


def _rtl_spike_maps(prog, lif_by_tag: dict, obs: dict) -> dict[str, tuple[np.ndarray, int]]:
    """{LIF layer: (its spikes as written by the RTL, flat ``[steps * neurons]``, -1 where nothing
    was written; its spike count from the debug port)}, from one image's observation. Each write is
    tagged with the instruction (in completion order) that made it; regions of the spike memory are
    reused by later layers, so a write belongs to its instruction, not to an address range."""
    maps = {}
    writes: dict[int, list] = {}
    for i, addr, val in obs["spk_writes"]:
        writes.setdefault(i, []).append((addr, val))
    for i, (tag, count) in enumerate(obs["instr"]):
        name = lif_by_tag.get(tag)
        if name is None:
            continue
        t_info = prog.tensors[name]
        base, size = t_info["base"], t_info["steps"] * int(np.prod(t_info["shape"]))
        rtl = np.full(size, -1, dtype=np.int64)
        for addr, val in writes.get(i, []):
            if not base <= addr < base + size:
                raise SpikegateError(f"RTL: layer {name} wrote a spike at address {addr}, outside its region "
                                     f"[{base}, {base + size})")
            rtl[addr - base] = val
        maps[name] = (rtl, count)
    return maps


def _first_spike_difference(prog, lif_by_tag: dict, obs: dict, trace: dict, b: int) -> dict | None:
    """The first LIF layer (program order) whose spike map or spike count differs from the golden one."""
    maps = _rtl_spike_maps(prog, lif_by_tag, obs)
    for tag, name in sorted(lif_by_tag.items()):
        spikes, membranes = trace[name]
        want = spikes[:, b].reshape(-1).astype(np.int64)
        if name not in maps:
            return {"layer": name, "rtl_spikes": None, "golden_spikes": int(want.sum()),
                    "detail": "the RTL never ran this LIF instruction"}
        rtl, count = maps[name]
        diff = np.nonzero(rtl != want)[0]
        if len(diff) == 0 and count == int(want.sum()):
            continue
        m = {"layer": name, "rtl_spikes": count, "golden_spikes": int(want.sum())}
        if len(diff):
            n = int(np.prod(prog.tensors[name]["shape"]))
            i = int(diff[0])
            t, neuron = divmod(i, n)
            m.update(time_step=t, neuron=[int(v) for v in np.unravel_index(neuron, spikes.shape[2:])],
                     rtl_spike=int(rtl[i]), golden_spike=int(want[i]),
                     golden_membrane=int(membranes[:, b].reshape(-1)[i]), differing_spikes=len(diff))
        else:
            m["detail"] = "every spike written agrees; the debug port's spike count differs"
        return m
    return None
