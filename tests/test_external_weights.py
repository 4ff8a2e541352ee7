"""Weights in external memory (issue 24, first step): WLOAD, the pass that streams every layer's
weights from the packed external image, its budget and report, and the ISS executing it.

The ISS reads the weights only from the on-chip buffer the WLOADs fill, so equality with the golden
model checks the packing, the addresses and the validation together; its cycles must be the
on-chip program's plus each WLOAD's cost from the memory model (``machine/external_memory.py``),
computed here independently with the refresh phase carried across the image.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import numpy as np
import pytest

from spikegate.compiler import iss
from spikegate.compiler import cycle_model as cm
from spikegate.compiler.build import compile_ir, load_core, lower_to_program, read_build, sample_inputs
from spikegate.compiler.passes.budget import BudgetError, blocks_needed, check_budget
from spikegate.compiler.passes.external_weights import external_weights
from spikegate.machine.external_memory import pack_rows, unpack_rows, word_ints
from spikegate.compiler.targets import get_target
from spikegate.machine import external_memory as em
from spikegate.machine.program import OP_CONV, OP_HEAD, OP_WLOAD, Instr, ProgramError, validate_program
from spikegate.quantize.golden import execute
from spikegate.quantize.intops import quantize_input
from spikegate.quantize.irfile import save_ir
from spikegate.quantize.lower import lower
from spikegate.quantize.quantizer import quantize_graph

from conftest import run_cli
from small_models import calibrated_model, external_target as _small_target, images, tiny_cfg


@pytest.fixture(scope="module")
def tiny():
    """A two-step fpga-tiny IR whose neurons fire, and its images."""
    cfg = tiny_cfg(T=2)
    x = images(cfg, 3, 1)
    _, g = quantize_graph(lower(calibrated_model(cfg, 0)), x)
    return g, x


def _wload_total(prog) -> int:
    """Every WLOAD's cycles from the memory model, the refresh phase carried across the image."""
    port = em.BurstPort(port_bits=prog.port_bits, max_burst=em.ULX3S_PORT.max_burst)
    total = beats = 0
    for ins in prog.instrs:
        if ins.opcode == OP_WLOAD:
            wb = prog.lanes * prog.weight_bits
            total += cm.FETCH + cm.WLOAD_DONE + em.wload_cycles(ins.n_words, wb, port, em.ULX3S_TIMING, beats)
            beats += em.beats_for(ins.n_words, wb, prog.port_bits)
    return total


@pytest.mark.parametrize("lanes,port_bits", [(1, 16), (3, 16), (8, 16), (8, 32)])
def test_iss_streams_weights_bit_exact_with_exact_cycles(tiny, lanes, port_bits):
    g, x = tiny
    prog = lower_to_program(g, lanes)
    ext = external_weights(prog, port_bits)
    assert ext.external and not prog.external and len(ext.wmem) < len(prog.wmem)
    loads = [i for i, ins in enumerate(ext.instrs) if ins.opcode == OP_WLOAD]
    assert [ext.instrs[i + 1].opcode for i in loads] == [ins.opcode for ins in prog.instrs
                                                         if ins.opcode in (OP_CONV, OP_HEAD)]
    assert len(ext.instrs) == len(prog.instrs) + len(loads)
    gold = execute(g, x)
    assert _wload_total(ext) > 0 and em.refreshes(0, len(ext.wmem_external), em.ULX3S_TIMING) > 0
    for i, (on, off) in enumerate(zip(iss.run_batch(prog, x), iss.run_batch(ext, x))):
        np.testing.assert_array_equal(off.logits, gold[i])
        assert off.spike_counts == on.spike_counts and off.sops == on.sops
        assert off.cycles == on.cycles + _wload_total(ext)
        assert [c for c, ins in zip(off.cycles_per_instr, ext.instrs) if ins.opcode != OP_WLOAD] == on.cycles_per_instr
    for rate in (0.0, 0.2):
        assert iss.estimate_cycles(ext, rate)["cycles"] == iss.estimate_cycles(prog, rate)["cycles"] + _wload_total(ext)


def test_iss_reads_the_buffer_not_the_program(tiny):
    """Corrupting one beat of the external image changes the logits: the ISS streams the weights."""
    g, x = tiny
    ext = external_weights(lower_to_program(g, 3), 16)
    bad = ext.wmem_external.copy()
    bad[: len(bad) // 2] ^= np.uint64(0x5555)
    bad_prog = dataclasses.replace(ext, wmem_external=bad)
    px = quantize_input(x[:1], ext.input_scale, ext.pixel_bits)[0]
    assert not np.array_equal(iss.run(bad_prog, px).logits, iss.run(ext, px).logits)


def test_packing_is_external_memorys():
    rng = np.random.default_rng(0)
    for lanes, wb, pb in [(1, 8, 16), (3, 5, 16), (8, 8, 16), (2, 7, 32), (5, 4, 64), (1, 3, 16)]:
        rows = rng.integers(-(1 << (wb - 1)), 1 << (wb - 1), (23, lanes))
        beats = pack_rows(rows, wb, pb)
        assert [int(b) for b in beats] == em.pack_words(word_ints(rows, wb), lanes * wb, pb)
        np.testing.assert_array_equal(unpack_rows(beats, 23, lanes, wb, pb), rows)


def test_validation_refuses_what_the_engine_cannot_run(tiny):
    g, _ = tiny
    prog = lower_to_program(g, 3)
    ext = external_weights(prog, 16)
    first = next(i for i, ins in enumerate(ext.instrs) if ins.opcode == OP_WLOAD)
    conv = ext.instrs[first + 1]

    def with_instrs(instrs, p=ext):
        return dataclasses.replace(p, instrs=instrs)

    with pytest.raises(ProgramError, match=rf"instruction {first} \({conv.name}\): reads WMEM\[0\], which no WLOAD"):
        validate_program(with_instrs(ext.instrs[:first] + ext.instrs[first + 1:]))
    short = dataclasses.replace(ext.instrs[first], dst=ext.instrs[first].n_words - 1)
    with pytest.raises(ProgramError, match="which no WLOAD"):
        validate_program(with_instrs(ext.instrs[:first] + [short] + ext.instrs[first + 1:]))
    cases = {"at least one word": dataclasses.replace(ext.instrs[first], dst=0),
             "outside the on-chip buffer": dataclasses.replace(ext.instrs[first], wbase=len(ext.wmem)),
             "outside the image": Instr.wload(len(ext.wmem_external), 1, 0, name=conv.name)}
    for msg, bad in cases.items():
        with pytest.raises(ProgramError, match=msg):
            validate_program(with_instrs(ext.instrs[:first] + [bad] + ext.instrs[first:]))
    with pytest.raises(ProgramError, match="without an external weight image"):
        validate_program(with_instrs(prog.instrs[:1] + [Instr.wload(0, 1, 0)] + prog.instrs[1:], prog))
    with pytest.raises(ProgramError, match="port_bits"):
        validate_program(dataclasses.replace(ext, port_bits=24))


def test_compile_puts_weights_in_sdram_and_says_so(tiny, tmp_path, capsys, monkeypatch):
    g, x = tiny
    ir = str(tmp_path / "m.sgir")
    save_ir(g, ir)
    prog = lower_to_program(g, 3)
    assert check_budget(prog, get_target("sim"), True)["weights"]["where"] == "bram"
    from spikegate.board_targets import compile_target
    ice = check_budget(lower_to_program(g, 1), compile_target("icebreaker"), True, "runtime")["weights"]
    assert (ice["where"], ice["loading"]) == ("spram", "runtime-loaded")
    t = _small_target(g)
    assert blocks_needed(prog, "ecp5", True) > t.bram_blocks      # on chip it would not fit
    monkeypatch.setattr("spikegate.commands.compile.lookup_target", lambda name: t)
    rc, out, err = run_cli(["compile", ir, "--target", "sim", "-o", tmp_path / "b"], capsys)
    assert rc == 0, err
    assert "weights go to SDRAM: all memories need" in out and "block RAMs, the target has" in out
    rep = json.load(open(tmp_path / "b" / "report.json"))
    w = rep["weights"]
    assert (w["where"], w["storage"], w["loading"]) == ("sdram", "SDRAM", "streamed")
    assert rep["verilog"] == "accelerator.v" and "mem__cmd__valid" in open(tmp_path / "b" / "accelerator.v").read()
    image = open(tmp_path / "b" / w["external_image"], "rb").read()
    assert hashlib.sha256(image).hexdigest() == w["external_sha256"] and len(image) * 8 == w["external_bits"]
    ext = external_weights(prog, 16)
    assert image == b"".join(int(b).to_bytes(2, "little") for b in ext.wmem_external)
    digits, _ = sample_inputs(g, 4)
    assert rep["predicted_cycles"] == [r.cycles for r in iss.run_batch(ext, digits)]
    assert rep["cycle_estimates"][0]["cycles"] == iss.estimate_cycles(ext, 0.0)["cycles"]
    _, _, back = read_build(str(tmp_path / "b"))
    assert back.external and back.instrs == ext.instrs
    core = load_core(str(tmp_path / "b"))
    assert core.weight_storage == "sdram" and "mem" in core.signature.members
    # verify refuses a modified or short image in one line, before any simulation
    from spikegate.errors import SpikegateError
    from spikegate.verify import external_config
    for bad in (image[:-2], bytes([image[0] ^ 1]) + image[1:]):
        (tmp_path / "b" / w["external_image"]).write_bytes(bad)
        with pytest.raises(SpikegateError, match="sdram.bin: .*recompile") as e:
            external_config(str(tmp_path / "b"), rep, back, "deterministic")
        assert "\n" not in str(e.value)


def test_a_layer_bigger_than_the_buffer_is_one_line(tiny, tmp_path):
    g, _ = tiny
    ir = str(tmp_path / "m.sgir")
    save_ir(g, ir)
    with pytest.raises(BudgetError, match=r"^layer [\w.]+: one output-channel tile \(3 channel\(s\)\) needs [\d,]+ "
                                          r"words of weights, the on-chip buffer the target leaves holds 2: [^\n]*$"):
        compile_ir(ir, _small_target(g, buffer=False), 3, str(tmp_path / "b"), predict_samples=0)
    assert not os.path.exists(tmp_path / "b")


def test_activations_bigger_than_the_chip_are_one_line(tiny, tmp_path):
    """Only weights go to external memory: a target whose on-chip memory cannot hold the
    activations refuses in one line with their size (the 15M preset at 224x224 on the ULX3S)."""
    g, _ = tiny
    ir = str(tmp_path / "m.sgir")
    save_ir(g, ir)
    prog = lower_to_program(g, 3, validate=False)
    t = dataclasses.replace(_small_target(g), bram_bits=prog.act_words * prog.act_bits - 1, spram_bits=0)
    with pytest.raises(BudgetError, match=rf"^the activations need {prog.act_words:,} words of {prog.act_bits} bits "
                                          r"\([\d,]+ bits\) on chip, more than [\w-]+ has \([\d,]+ bits\): only "
                                          r"weights can live in external memory so far[^\n]*$"):
        compile_ir(ir, t, 3, str(tmp_path / "b"), predict_samples=0)
    assert not os.path.exists(tmp_path / "b")


def test_ulx3s_has_its_sdram_and_large_models_external_memory():
    from spikegate.board_targets import compile_target
    assert compile_target("ulx3s-85f").external_bits == 32 * 2**20 * 8
    assert compile_target("icebreaker").external_bits == 0
    assert get_target("large").external_bits > 0


def test_sim_family_targets_count_bits(tiny):
    """Targets without block RAM primitives (``large``, and this one) budget on-chip bits: the
    buffer beside the rest on chip, the packed image against the external memory."""
    from spikegate.compiler.build import place_weights
    from spikegate.compiler.passes.budget import memory_bits
    g, _ = tiny
    prog = lower_to_program(g, 4, validate=False)
    ext = external_weights(prog, 16)
    onchip = sum(memory_bits(ext).values())
    t = dataclasses.replace(get_target("large"), name="small-large", bram_bits=onchip, external_bits=2**20)
    placed, why = place_weights(prog, t, "auto")
    assert placed.instrs == ext.instrs and why.startswith(f"all memories need {sum(memory_bits(prog).values()):,} bits")
    rows = {r["resource"]: (r["needed"], r["available"]) for r in check_budget(placed, t, True)["resources"]}
    assert rows["on-chip memory bits"] == (onchip, onchip)
    assert rows["external memory bits (weights, packed)"] == (len(ext.wmem_external) * 16, 2**20)
    # one bit less: the accumulators of the widest layers go to output-channel tiles
    # (tests/test_external_tiling.py), a shallower ACC makes room
    tiled, _ = place_weights(prog, dataclasses.replace(t, bram_bits=onchip - 1), "auto")
    assert tiled.acc_words < ext.acc_words and sum(memory_bits(tiled).values()) <= onchip - 1
    # a fifth less: even a tile of one lane group's weights does not fit beside the rest
    with pytest.raises(BudgetError, match=r"^layer [\w.]+: one output-channel tile .* the on-chip buffer the target "
                                          r"leaves holds [\d,]+: [^\n]*$"):
        place_weights(prog, dataclasses.replace(t, bram_bits=onchip * 4 // 5), "auto")
    with pytest.raises(BudgetError, match="external memory bits"):
        check_budget(placed, dataclasses.replace(t, external_bits=1000), True)


def test_compile_without_lanes_falls_back_to_fewer(tiny, tmp_path):
    """A target whose block RAM holds the external-weight program at 2 lanes but not at its
    default 4: compile without --lanes halves the lanes until the buffers fit and says so; with
    --lanes 4 it refuses; when no lane count fits, the default's reason names the others tried."""
    g, _ = tiny
    ir = str(tmp_path / "m.sgir")
    save_ir(g, ir)
    t = dataclasses.replace(_small_target(g, lanes=2), default_lanes=4)
    rep = compile_ir(ir, t, None, str(tmp_path / "b"), predict_samples=0)
    assert rep["lanes"] == 2 and rep["weights"]["where"] == "sdram"
    assert rep["weights"]["why"].endswith("2 lanes: with the target's default 4, the on-chip weight buffer and "
                                          "accumulators do not fit beside the other memories")
    with pytest.raises(BudgetError):
        compile_ir(ir, t, 4, str(tmp_path / "b4"), predict_samples=0)
    small = dataclasses.replace(t, bram_blocks=t.bram_blocks // 4, bram_bits=t.bram_bits // 4)
    with pytest.raises(BudgetError, match=r"\(at 4 lanes; 2, 1 do not fit either\)$"):
        compile_ir(ir, small, None, str(tmp_path / "b1"), predict_samples=0)
