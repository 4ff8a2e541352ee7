"""pytest wrapper: the whole accelerator on Icarus and Verilator (cocotb half: ``tb_accelerator.py``).

Each case builds a Program here (not inside cocotb): random hand-made programs
(``sfa_programs.random_program``: every instruction, odd shapes, stride-2 depthwise, padding larger
than the kernel) and programs compiled from small random Meta-SpikeFormers (BatchNorms calibrated
so that neurons fire): lanes 1, 3 (dividing no channel count), 4; T = 1, 2, 3; a model with
``head_kd``; 2 input channels; an un-merged RepConv IR (``sfa_programs.repconv_graph``: a
depthwise conv on multi-bit inputs, a 1x1 with padding 1) at 1 and 8 lanes. The trained checkpoint ``quantize/data/default.pth``, when present,
runs on held-out digits. The Program, the pixels and the golden model's logits go to the
testbench in a pickle. One simulator build per case (``build/sim/accel-<case>-<sim>``), reused
across its images and between runs.

Icarus is slow: it runs the two smallest cases with 1-2 images; Verilator runs everything.
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spikegate.compiler import iss
from spikegate.hw.accelerator import Accelerator, emit_verilog
from spikegate.rtl_tests.cocotb_util import run_cocotb, sim_build_dir
from spikegate.rtl_tests.sfa_programs import model_program, random_program, repconv_graph

REPO = Path(__file__).resolve().parent.parent
CHECKPOINT = REPO / "quantize" / "data" / "default.pth"

# name -> how to build it; "images": back-to-back images per simulator; "stall": images run again
# with idle pixels and logit back-pressure.
CASES = {
    "rand-l1-t3": dict(kind="random", seed=11, lanes=1, T=3, cin=2, size=6, dw_stride=2, classes=6),
    "rand-l4-t2": dict(kind="random", seed=12, lanes=4, T=2, cin=1, size=7, dw_stride=1, classes=10, c2=6),
    "tiny-l4-t1": dict(kind="model", preset="fpga-tiny", lanes=4, T=1, n_images=4),
    "tiny-l3-t2-kd-2ch": dict(kind="model", preset="fpga-tiny", lanes=3, T=2, kd=True, in_channels=2, n_images=2),
    "tiny-l1-t1": dict(kind="model", preset="fpga-tiny", lanes=1, T=1, n_images=2),
    "digits-l4": dict(kind="checkpoint", lanes=4, n_images=4),
    # HEAD with one lane group (G = 1): back-to-back spikes add into the same ACC word in
    # consecutive cycles (the lanes' first forward); with G = 2 two cycles apart (the second one)
    # (and WMEM in banks of 16 and 4 words, hw/banked_rom.py, instead of one block RAM's depth: the
    # taps cross bank boundaries all the time; tiny-l4-t1's and digits-l4's WMEM spans 5 and 19
    # banks of the default depth; ACT likewise in banks of 16 and 8 words, hw/banked_ram.py: every
    # engine's reads and writes cross them)
    "rand-l4-t2-g1": dict(kind="random", seed=13, lanes=4, T=2, cin=1, size=6, dw_stride=1, classes=4,
                          wmem_bank_words=16, act_bank_words=16),
    "rand-l3-t3-g2": dict(kind="random", seed=14, lanes=3, T=3, cin=1, size=6, dw_stride=2, classes=6,
                          wmem_bank_words=4, act_bank_words=8),
    # ATTN with d = C / heads = 1 (a set bit's row is its first cycle alone, then REP) and d = 3
    "rand-l2-t2-d1": dict(kind="random", seed=15, lanes=2, T=2, cin=1, size=6, dw_stride=1, classes=5, ca=4, heads=4),
    "rand-l3-t2-d3": dict(kind="random", seed=16, lanes=3, T=2, cin=1, size=7, dw_stride=2, classes=5, ca=6, heads=2),
    # an un-merged RepConv from an IR (sfa_programs.repconv_graph): a 1x1 convolution with padding
    # 1 on spikes, a depthwise 3x3 on its multi-bit output (LANES_TAP in INT mode: the lanes
    # multiply) and a 1x1 on that, against the golden model; 8 lanes split the 9 taps in two groups
    "repconv-l1-t1": dict(kind="repconv", seed=2, lanes=1, T=1),
    "repconv-l8-t2": dict(kind="repconv", seed=2, lanes=8, T=2),
}
# a case's Accelerator arguments, not the program's
BANK_DEPTHS = ("wmem_bank_words", "act_bank_words")
RUNS = [
    # (case, simulator, back-to-back images, stall images): every run has a stall run (idle pixels
    # and logit back-pressure drawn from the printed seed, at least one of each)
    ("rand-l1-t3", "icarus", 2, 1),
    ("tiny-l4-t1", "icarus", 1, 1),
    ("rand-l1-t3", "verilator", 2, 1),
    ("tiny-l4-t1", "verilator", 4, 1),
    ("tiny-l3-t2-kd-2ch", "verilator", 2, 1),
    ("digits-l4", "verilator", 4, 1),
    ("rand-l4-t2-g1", "verilator", 2, 1),
    ("rand-l3-t3-g2", "verilator", 2, 1),
    ("rand-l2-t2-d1", "verilator", 2, 1),
    ("rand-l3-t2-d3", "verilator", 2, 1),
    ("repconv-l1-t1", "icarus", 1, 1),
    ("repconv-l8-t2", "icarus", 1, 1),
    # more of the same kinds, for a longer run (-m slow)
    pytest.param("rand-l4-t2", "verilator", 2, 1, marks=pytest.mark.slow),
    pytest.param("tiny-l1-t1", "verilator", 2, 1, marks=pytest.mark.slow),
]


@functools.lru_cache(maxsize=None)
def build_case(name: str):
    """(program, pixels [B, C, H, W], golden logits [B, K] or None) of a case."""
    spec = dict(CASES[name])
    kind = spec.pop("kind")
    for key in BANK_DEPTHS:
        spec.pop(key, None)
    if kind == "random":
        prog, pixels = random_program(spec.pop("seed"), **spec)
        return prog, pixels, None
    from spikegate.quantize import golden, intops
    if kind == "repconv":
        from spikegate.compiler.build import lower_to_program
        g, images = repconv_graph(spec.pop("seed"), T=spec["T"])
        prog = lower_to_program(g, spec["lanes"])
        pixels = intops.quantize_input(images, prog.input_scale, prog.pixel_bits)
    elif kind == "model":
        prog, g, images, pixels = model_program(spec.pop("preset"), **spec)
    else:
        if not CHECKPOINT.exists():
            pytest.skip(f"no trained checkpoint at {CHECKPOINT}")
        from spikegate.compiler.build import lower_to_program
        from spikegate.quantize.data import digits_split_xy
        from spikegate.quantize.pipeline import quantize_checkpoint
        g, _ = quantize_checkpoint("default", calib="digits")
        prog = lower_to_program(g, spec["lanes"])
        img_size = int(g.ops[0].shape[-1])
        images, _ = digits_split_xy("test", img_size, n=spec["n_images"])
        pixels = intops.quantize_input(images, prog.input_scale, prog.pixel_bits)
    gold = golden.execute(g, images)
    return prog, np.asarray(pixels, dtype=np.int64), np.asarray(gold, dtype=np.int64)


@functools.lru_cache(maxsize=None)
def iss_result(case: str, i: int):
    prog, pixels, _ = build_case(case)
    return iss.run(prog, pixels[i])


def _id(run):
    c, s = (run.values if hasattr(run, "values") else run)[:2]
    return f"{c}-{s}"


@pytest.mark.parametrize("case,sim,images,stall", RUNS, ids=[_id(r) for r in RUNS])
def test_accelerator(case, sim, images, stall):
    prog, pixels, gold = build_case(case)
    name = f"accel-{case}"
    build = sim_build_dir(name, sim)
    build.mkdir(parents=True, exist_ok=True)
    path = build / "case.pkl"
    n = max(images, stall)
    cache = {px.reshape(-1).tobytes(): iss_result(case, i) for i, px in enumerate(pixels[:n])}
    with open(path, "wb") as f:
        pickle.dump({"program": prog, "pixels": pixels[:n], "golden": None if gold is None else gold[:n],
                     "iss": cache}, f)
    banks = {k: CASES[case][k] for k in BANK_DEPTHS if k in CASES[case]}
    # the reset test peeks at the ACC banks, inside the memories' module (hw/accel_memories.py)
    vlt = build / "acc-banks.vlt"
    vlt.write_text('`verilator_config\npublic_flat_rw -module "sfa_top.mems" -var "acc*"\n')
    run_cocotb(Accelerator(prog, **banks), "sfa_top", "spikegate.rtl_tests.tb_accelerator", sim, build,
               config={"case": str(path), "images": images, "stall_images": stall,
                       "reset_test": CASES[case]["kind"] == "random",
                       # a budget below the prediction must fail at the budget (small programs: cheap)
                       "timeout_test": CASES[case]["kind"] == "random"},
               build_args=[str(vlt)] if sim == "verilator" else [])


def test_emit_verilog_is_deterministic(tmp_path):
    """Same program, same bytes: also from another process with another hash seed."""
    prog, _, _ = build_case("rand-l4-t2")
    a, b = tmp_path / "a.v", tmp_path / "b.v"
    emit_verilog(prog, a)
    with open(tmp_path / "p.pkl", "wb") as f:
        pickle.dump(prog, f)
    code = ("import pickle, sys; from spikegate.hw.accelerator import emit_verilog; "
            "emit_verilog(pickle.load(open(sys.argv[1], 'rb')), sys.argv[2], name='sfa_top')")
    env = dict(os.environ, PYTHONHASHSEED="12345")
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.pkl"), str(b)], check=True, env=env)
    assert a.read_bytes() == b.read_bytes()
    assert "module sfa_top" in a.read_text()
    assert not list(tmp_path.glob("*.tmp*"))


def test_accelerator_rejects_bad_programs():
    prog, _, _ = build_case("rand-l1-t3")
    with pytest.raises(TypeError, match="program must be"):
        Accelerator("not a program")
    bad = __import__("dataclasses").replace(prog, instrs=prog.instrs[1:])
    with pytest.raises(ValueError, match="must start with INPUT"):
        Accelerator(bad)
