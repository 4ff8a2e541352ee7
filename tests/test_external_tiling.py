"""Output-channel tiling (issue 24): a layer whose weights exceed the on-chip WMEM buffer streams
in tiles, each an ordinary CONV of a run of output channels (one time step each) after its own
WLOAD (``compiler/passes/external_weights.py``).

The ISS reads the weights only from the buffer the WLOADs fill, so equality with the golden model
checks the tiles' weight slices, addresses and parameter offsets together. The cycles are checked
against an independent account of what tiling adds (every tile rescans its input and pays the
per-time-step overheads again), not against the ISS itself.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

import numpy as np
import pytest
import torch

from spikegate.compiler import cycle_model as cm
from spikegate.compiler import iss
from spikegate.compiler.build import compile_ir, lower_to_program, place_weights, read_build
from spikegate.compiler.passes.budget import BudgetError, blocks_needed, check_budget
from spikegate.compiler.passes.external_weights import external_weights, tiled_layers
from spikegate.compiler.iss import _valid_taps
from spikegate.machine import external_memory as em
from spikegate.machine.program import (IN_INT, LANES_CO, LANES_TAP, OP_CONV, OP_HEAD, OP_WLOAD, OUT_ACCUM,
                                       ProgramError, validate_program, wmem_reads)
from spikegate.machine.target import Target
from spikegate.quantize.golden import execute
from spikegate.quantize.intops import quantize_input
from spikegate.quantize.lower import lower
from spikegate.quantize.quantizer import quantize_graph

from small_models import calibrated_model, images, tiny_cfg

BUFFER = 300      # words: the tiny model's 864-word layers tile, its 288-word lane groups still fit


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one torch thread avoids OpenMP spin-waits (the
    module's CPU time drops from about 40 s to 10 s under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny():
    """fpga-tiny IRs whose neurons fire, at T = 1 and T = 2, and two images each."""
    out = {}
    for T in (1, 2):
        cfg = tiny_cfg(T=T)
        x = images(cfg, 2, 1)
        _, g = quantize_graph(lower(calibrated_model(cfg, 0)), x)
        out[T] = (g, x)
    return out


def _unit(ins, lanes: int) -> int:
    """Words of the smallest tile of a CONV: one lane group (LANES_CO) or one channel (LANES_TAP)."""
    return ins.cin * ins.k * ins.k if ins.lane_mode == LANES_CO else -(-ins.k * ins.k // lanes)


def _wload_cycles(prog) -> int:
    """Every WLOAD's cycles from the memory model, the refresh phase carried across the image."""
    port = em.BurstPort(port_bits=prog.port_bits, max_burst=em.ULX3S_PORT.max_burst)
    total = beats = 0
    wb = prog.lanes * prog.weight_bits
    for ins in prog.instrs:
        if ins.opcode == OP_WLOAD:
            total += cm.FETCH + cm.WLOAD_DONE + em.wload_cycles(ins.n_words, wb, port, em.ULX3S_TIMING, beats)
            beats += em.beats_for(ins.n_words, wb, prog.port_bits)
    return total


def _tiling_cost_at_rate_0(prog, ext) -> int:
    """What tiling adds to the rate-0 cycle estimate, from the instruction list's shape alone: a layer
    in ``n`` tiles over T steps runs ``n*T`` instructions instead of one (``FETCH`` each), and per
    step ``n - 1`` more readout/step overheads and input scans (LANES_CO: every tile scans the
    whole input, an int input's events included; LANES_TAP: the tiles split the input)."""
    P, extra = prog.lanes, 0
    for ins in prog.instrs:
        if ins.opcode != OP_CONV or ins.name not in tiled_layers(ext):
            continue
        n = sum(1 for i in ext.instrs if i.opcode == OP_CONV and i.name == ins.name) // ins.T
        step = cm.readout_ovh(P) + cm.tstep_ovh(P)
        if ins.lane_mode == LANES_CO:
            reach = int((np.outer(_valid_taps(ins.h, ins.ho, ins.k, ins.stride, ins.pad),
                                  _valid_taps(ins.w, ins.wo, ins.k, ins.stride, ins.pad)) > 0).sum()) * ins.cin
            ev = reach if ins.in_kind == IN_INT else 0
            step += (ins.cin * ins.h * ins.w - ev) * cm.SCAN + ev * cm.EVENT_OVH
        extra += (n * ins.T - 1) * cm.FETCH + (n - 1) * ins.T * step
    return extra


@pytest.mark.parametrize("T,lanes", [(1, 3), (2, 2)])
def test_tiled_program_equals_golden(tiny, T, lanes):
    g, x = tiny[T]
    prog = lower_to_program(g, lanes)
    ext = external_weights(prog, 16, BUFFER)
    tiled = set(tiled_layers(ext))
    convs = {i.name: i for i in prog.instrs if i.opcode == OP_CONV}
    assert len(ext.wmem) <= BUFFER and tiled == {n for n, i in convs.items() if wmem_reads(prog, i) > BUFFER}
    assert any(convs[n].out_mode == OUT_ACCUM for n in tiled) and any(convs[n].lane_mode == LANES_CO for n in tiled)
    assert any(convs[n].lane_mode == LANES_TAP for n in tiled) == (lanes == 2)     # 16 channels x 25 words
    tiles = [i for i in ext.instrs if i.opcode == OP_CONV and i.name in tiled]
    assert all(i.T == 1 for i in tiles) and any(convs[i.name].cout % i.cout for i in tiles)
    assert any(i.cout % lanes for i in tiles) == (lanes == 3)  # a tile ending inside a lane group (16 % 3)
    x = x[:1]
    gold = execute(g, x)
    for i, (on, off) in enumerate(zip(iss.run_batch(prog, x), iss.run_batch(ext, x))):
        np.testing.assert_array_equal(off.logits, gold[i])
        assert off.spike_counts == on.spike_counts and (off.sops, off.macs) == (on.sops, on.macs)
        assert off.cycles == sum(off.cycles_per_instr) > on.cycles + _wload_cycles(ext)
        untiled = [c for c, ins in zip(off.cycles_per_instr, ext.instrs)
                   if ins.opcode != OP_WLOAD and ins.name not in tiled]
        assert untiled == [c for c, ins in zip(on.cycles_per_instr, prog.instrs) if ins.name not in tiled]
    assert iss.estimate_cycles(ext, 0.0)["cycles"] == (iss.estimate_cycles(prog, 0.0)["cycles"] + _wload_cycles(ext)
                                                       + _tiling_cost_at_rate_0(prog, ext))
    # the buffer's depth gives the tiling back (how read_build rebuilds it from report.json)
    assert external_weights(prog, 16, len(ext.wmem)).instrs == ext.instrs
    # a tile without its own WLOAD reads the previous tile's words: validate_program refuses it
    second = [pc for pc, ins in enumerate(ext.instrs) if ins.opcode == OP_WLOAD and ins.name in tiled][1]
    with pytest.raises(ProgramError, match="which no WLOAD since the previous CONV/HEAD filled"):
        validate_program(dataclasses.replace(ext, instrs=ext.instrs[:second] + ext.instrs[second + 1:]))


@pytest.mark.parametrize("lanes", [3, 1])
def test_every_layer_in_tiles_equals_the_layer(tiny, lanes):
    """Each CONV of the T = 2 model (dense, depthwise, OUT_ACCUM; at one lane also the input layer,
    whose 2 channels are one group of 3 lanes, reading its broadcast input) cut into tiles of about
    2/5 of its weights: run on the state the on-chip program leaves before it, the tiles write
    exactly what the whole layer writes."""
    g, x = tiny[2]
    prog = lower_to_program(g, lanes)
    px = quantize_input(x[:1], prog.input_scale, prog.pixel_bits)[0]
    state = iss.MachineState.zeros(prog)
    seen = set()
    for ins in prog.instrs:
        if ins.opcode == OP_CONV:
            unit = _unit(ins, lanes)
            whole = state.copy()
            iss.execute(prog, ins, whole)
            words = max(unit, wmem_reads(prog, ins) * 2 // 5)      # two tiles or more
            if words < wmem_reads(prog, ins):
                sub = external_weights(dataclasses.replace(prog, instrs=[prog.instrs[0], ins, prog.instrs[-1]]),
                                       16, words)
                tiles = sub.instrs[1:-1]
                assert len(tiles) == 2 * ins.T * math.ceil(ins.cout / (words // unit * (lanes if ins.lane_mode
                                                                                      == LANES_CO else 1)))
                st = dataclasses.replace(state.copy(), wmem=np.zeros_like(sub.wmem))
                for t in tiles:
                    iss.execute(sub, t, st)
                np.testing.assert_array_equal(st.act, whole.act)
                seen.add((ins.lane_mode, ins.out_mode, ins.src2))
        iss.execute(prog, ins, state, px)
    assert {(LANES_CO, 0, 0), (LANES_CO, OUT_ACCUM, 0), (LANES_TAP, 0, 0)} <= seen
    assert ((LANES_CO, 0, 1) in seen) == (lanes == 1)


@pytest.mark.parametrize("T", [1, 2])
def test_a_head_bigger_than_the_buffer_runs_in_input_channel_tiles(tiny, T):
    """A HEAD whose weights exceed the buffer: tiles of input channels, one per time step, all
    adding into the same logits, the class biases once per step (the other tiles read a block of
    zero biases). Run on the state the on-chip program leaves before the head, the tiles leave
    the ACC banks exactly as the whole head does, and OUTPUT then gives the golden logits."""
    g, x = tiny[T]
    lanes = 3
    prog = lower_to_program(g, lanes)
    head = next(i for i in prog.instrs if i.opcode == OP_HEAD)
    G = math.ceil(head.cout / lanes)
    words = wmem_reads(prog, head) * 2 // 5
    sub = external_weights(dataclasses.replace(prog, instrs=[prog.instrs[0], head, prog.instrs[-1]]), 16, words)
    tiles = [i for i in sub.instrs[1:-1] if i.opcode == OP_HEAD]
    assert len(tiles) == T * math.ceil(head.cin / (words // G)) and {i.T for i in tiles} == {1}
    assert sum(i.cin for i in tiles) == T * head.cin and len(sub.bias) == len(prog.bias) + G * lanes
    assert sum(i.pbase == head.pbase for i in tiles) == T and not sub.bias[len(prog.bias):].any()
    px = quantize_input(x[:1], prog.input_scale, prog.pixel_bits)[0]
    state = iss.MachineState.zeros(prog)
    for ins in prog.instrs:
        if ins is head:
            st = dataclasses.replace(state.copy(), wmem=np.zeros_like(sub.wmem))
            for t in sub.instrs[1:-1]:
                iss.execute(sub, t, st)
            iss.execute(prog, ins, state)
            np.testing.assert_array_equal(st.acc, state.acc)
            continue
        iss.execute(prog, ins, state, px)
    np.testing.assert_array_equal(state.logits, execute(g, x[:1])[0])
    with pytest.raises(BudgetError, match=rf"^layer {head.name}: one input channel of the classifier head needs {G} "
                                          r"words of weights, the on-chip buffer the target leaves holds 1: [^\n]*$"):
        external_weights(dataclasses.replace(prog, instrs=[prog.instrs[0], head, prog.instrs[-1]]), 16, 1)


def test_compile_sizes_the_buffer_to_the_free_block_ram(tiny):
    """An ECP5-like target with one block RAM fewer than the whole-layer buffer needs: compile
    tiles the largest layers into a buffer that fits, and the budget passes."""
    g, _ = tiny[1]
    prog = lower_to_program(g, 3, validate=False)
    ext = external_weights(prog, 16)
    blocks = blocks_needed(ext, "ecp5", True) - 1
    t = Target("tiny-ext", "test target", "ecp5", 50.0, 10**6, 10**6, blocks * 18432, blocks, 0, 100,
               external_bits=2**20, default_lanes=3)
    placed, why = place_weights(prog, t, "auto")
    assert len(placed.wmem) < len(ext.wmem) and blocks_needed(placed, "ecp5", True) <= blocks
    assert tiled_layers(placed) and f"layer(s) in output-channel tiles: {tiled_layers(placed)[0]}" in why
    assert check_budget(placed, t, True)["weights"]["buffer_words"] == len(placed.wmem)
    assert external_weights(prog, 16, len(placed.wmem)).instrs == placed.instrs


def test_mnist_model_compiles_for_the_ulx3s_with_tiles(tmp_path, monkeypatch):
    """The shipped MNIST model (block4's 41,472-word layers do not fit the LFE5U-85F beside the
    other memories) compiles for ulx3s-85f with its weights in SDRAM, and the ISS of the build
    equals the golden model on two held-out images. Cheaper than the CLI's: calibrated on 8
    training images (the CLI's 4,000 cost 100 s of exact convolutions; the widths differ, the layers
    do not), and without the Verilog emission (slow, and the RTL tests' business)."""
    from spikegate.board_targets import compile_target
    from spikegate.quantize.data import mnist_split_xy
    from spikegate.quantize.irfile import save_ir
    from spikegate.quantize.pipeline import quantize_checkpoint

    np.save(tmp_path / "calib.npy", mnist_split_xy("train", n=8)[0])
    g, _ = quantize_checkpoint("mnist", calib=str(tmp_path / "calib.npy"), evaluate=False)
    ir = str(tmp_path / "m.sgir")
    save_ir(g, ir)
    monkeypatch.setattr("spikegate.compiler.build._emit_verilog", lambda prog, path, weights: open(path, "w").close())
    compile_ir(ir, compile_target("ulx3s-85f"), None, str(tmp_path / "b"), predict_samples=0)
    rep = json.load(open(tmp_path / "b" / "report.json"))
    w = rep["weights"]
    assert w["where"] == "sdram" and "block4.0.attn.q_conv" in w["why"].split("output-channel tiles: ")[1]
    assert os.path.getsize(tmp_path / "b" / w["external_image"]) * 8 == w["external_bits"]
    rows = {r["resource"]: (r["needed"], r["available"]) for r in rep["resources"]}
    assert rows["block RAMs (all memories)"][0] <= rows["block RAMs (all memories)"][1] == 208
    # make demo's report says where its memories live (spikegate/demo.py: memory_summary)
    from spikegate.demo import memory_summary
    from spikegate.report import memory_section
    summary = memory_summary(rep)
    assert summary["weights"] == "sdram" and summary["wloads"] == w["wloads"] > 0
    md = memory_section({"memories": {"ulx3s-85f (mnist, SDRAM)": summary}}).md
    assert "**sdram** (SDRAM, streamed)" in md and f"{w['external_bits']:,}" in md
    _, g2, prog = read_build(str(tmp_path / "b"))
    assert prog.external and len(prog.wmem) == w["buffer_words"] < 41_472
    assert rep["cycle_estimates"][0]["cycles"] == iss.estimate_cycles(prog, 0.0)["cycles"]
    # no images predicted here (predict_samples=0): images/s from the cycle model at a 10 % rate
    est = iss.estimate_cycles(prog, 0.1)["cycles"]
    assert rep["predicted_images_per_s"] == round(rep["clock_mhz"] * 1e6 / est, 2)
    assert rep["images_per_s_from"].startswith("the cycle estimate at firing rate 0.1")
    x, _ = mnist_split_xy("test", n=2)
    gold = execute(g2, x)
    for i, r in enumerate(iss.run_batch(prog, x)):
        np.testing.assert_array_equal(r.logits, gold[i])
        assert r.cycles == sum(r.cycles_per_instr)
