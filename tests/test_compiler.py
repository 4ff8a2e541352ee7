"""Compiler passes and the instruction-level simulator against the golden model."""

import json
import os

import numpy as np
import pytest

from spikegate.board_targets import compile_target
from spikegate.compiler import iss
from spikegate.compiler.build import compile_ir, lower_to_program, read_build
from spikegate.compiler.passes.budget import BudgetError
from spikegate.compiler.passes.check_ops import UnsupportedOpError, check_ops
from spikegate.compiler.passes.fuse_fire import fuse_fire
from spikegate.compiler.passes.memory_plan import memory_plan
from spikegate.compiler.passes.schedule import schedule
from spikegate.machine.program import FIELDS, INSTR_BITS, Instr
from spikegate.errors import SpikegateError
from spikegate.quantize.golden import execute
from spikegate.quantize.irfile import save_ir
from spikegate.quantize.lower import lower
from spikegate.quantize.quantizer import quantize_graph

from conftest import fixture_path, run_cli
from small_models import calibrated_model, images, tiny_cfg


def _ir(cfg, seed=0, wb=8):
    m = calibrated_model(cfg, seed)
    x = images(cfg, 8, seed + 1)
    _, g = quantize_graph(lower(m), x, weight_bits=wb)
    return g, x


@pytest.mark.parametrize("kw,lanes", [
    (dict(), 1), (dict(), 4), (dict(T=2), 3), (dict(kd=True, T=2), 8), (dict(in_channels=2, T=3), 5),
])
def test_iss_equals_golden(kw, lanes):
    g, x = _ir(tiny_cfg(**kw))
    prog = lower_to_program(g, lanes)
    gold = execute(g, x)
    trace = {}
    execute(g, x[:1], trace=trace)
    for i, r in enumerate(iss.run_batch(prog, x)):
        np.testing.assert_array_equal(r.logits, gold[i])
        assert r.cycles > 0 and r.sops > 0
        assert sum(r.phases.values()) == r.cycles and min(r.phases.values()) >= 0   # every cycle has a phase
    # per-layer spike counts equal the golden trace
    r0 = iss.run_batch(prog, x[:1])[0]
    for name, (spikes, _) in trace.items():
        assert r0.spike_counts[name] == int(spikes.sum()), name


def test_hardware_widths_are_the_irs_declared_widths():
    """Program and MachineConfig copy the range analysis' widths; nothing is re-derived."""
    from spikegate.machine.config import MachineConfig
    from spikegate.quantize.ranges import add_operands

    g, _ = _ir(tiny_cfg(T=2))
    prog = lower_to_program(g, 3)
    by = lambda *kinds: [o for o in g.ops if o.kind in kinds]  # noqa: E731
    operands = add_operands(g)   # a residual branch's conv: fused into its add's readout, never stored
    want = dict(act_bits=max(o.widths["out"] for o in by("quant_input", "conv", "add", "attention", "spatial_sum")
                             if o.name not in operands),
                acc_bits=max(o.widths["acc"] for o in by("conv", "head")),
                membrane_bits=max(o.widths["membrane"] for o in by("lif")),
                state_bits=max(o.widths["state"] for o in by("lif")),
                kv_bits=max([o.widths["kv"] - 1 for o in by("attention")] + [1]),
                logit_bits=by("head")[0].widths["acc"], pixel_bits=g.ops[0].attrs["bits"],
                mul_x_bits=max(g.op(o.inputs[0]).widths["out"] for o in by("conv") if o.attrs["in_kind"] == "int"))
    assert by("attention")
    cfg = MachineConfig.from_program(prog)
    for k, v in want.items():
        assert getattr(prog, k) == v and getattr(cfg, k) == v, k
    for k in ("weight_bits", "bias_bits", "shift_bits", "thresh_bits"):
        assert getattr(cfg, k) == getattr(prog, k), k


def test_iss_equals_golden_on_official_fixture():
    from spikegate.quantize.checkpoint import load_model
    data = np.load(fixture_path("small_t1.npz"))
    model, _ = load_model(fixture_path("small_t1.pth"))
    _, g = quantize_graph(lower(model), data["inputs"])
    prog = lower_to_program(g, 8)
    for r, gl in zip(iss.run_batch(prog, data["inputs"][:2]), execute(g, data["inputs"][:2])):
        np.testing.assert_array_equal(r.logits, gl)


def test_cycles_grow_linearly_with_work():
    g, x = _ir(tiny_cfg())
    prog = lower_to_program(g, 4)
    xs = np.concatenate([x[:3] * f for f in (0.0, 0.3, 0.7, 1.0, 1.5)])
    runs = iss.run_batch(prog, xs)
    cyc = np.array([r.cycles for r in runs], dtype=float)
    work = np.array([r.sops + r.macs for r in runs], dtype=float)
    assert cyc.min() == runs[0].cycles  # the blank image is the cheapest
    slope, icpt = np.polyfit(work, cyc, 1)
    resid = cyc - (slope * work + icpt)
    assert slope > 0 and icpt > 0
    assert np.abs(resid).max() < 0.05 * cyc.mean()


def test_instruction_encoding_roundtrip():
    ins = Instr(opcode=2, src=5, src2=1, dst=1 << 19, T=4, cin=300, h=17, w=9, cout=48, ho=9, wo=5, k=7,
                stride=2, pad=3, in_kind=1, lane_mode=0, out_mode=1, heads=8, wbase=12345, pbase=77, tag=9)
    word = ins.encode()
    assert word < (1 << INSTR_BITS) and INSTR_BITS <= 256
    back = Instr.decode(word)
    for f, _ in FIELDS:
        assert getattr(back, f) == getattr(ins, f)
    with pytest.raises(ValueError, match="field k=16"):
        Instr(opcode=2, k=16).encode()


@pytest.mark.parametrize("T", [2, 1])   # T = 1: the fused LIFs' spikes are a CONV's second output
def test_memory_plan_never_overlaps_live_tensors(T):
    g, _ = _ir(tiny_cfg(T=T))
    s = fuse_fire(schedule(check_ops(g)))
    assert any(m.fire_dst for m in s.mops) == (T == 1)
    plan = memory_plan(s)
    live = {}
    last = {}
    for i, m in enumerate(s.mops):
        for t in m.srcs + m.dsts:
            last[t] = i
    for i, m in enumerate(s.mops):
        for d in m.dsts:
            live.setdefault(d, i)
        active = [t for t, st in live.items() if st <= i <= last[t]]
        spans = sorted((s.tensors[t]["mem"], plan.addresses[t], plan.addresses[t] + plan.sizes[t]) for t in active)
        for (m1, a1, b1), (m2, a2, b2) in zip(spans, spans[1:]):
            assert m1 != m2 or b1 <= a2, (m.name, spans)


def test_unsupported_pattern_is_named():
    g, _ = _ir(tiny_cfg())
    bad = g.copy()
    bad.ops[5].kind = "softmax"
    with pytest.raises(UnsupportedOpError, match=bad.ops[5].name):
        check_ops(bad)


@pytest.fixture(scope="module")
def trained_tiny_ir(tmp_path_factory):
    """The embedded fpga-tiny-t2 checkpoint quantised as the README does (``--calib digits``): the
    model that fits the iCEBreaker (a random fpga-tiny has wider activations, which do not)."""
    from spikegate.quantize.pipeline import quantize_checkpoint
    d = tmp_path_factory.mktemp("t")
    g, _ = quantize_checkpoint("fpga-tiny-t2", calib="digits", evaluate=False)
    p = d / "tiny-t2.sgir"
    save_ir(g, str(p))
    return str(p), g, None


@pytest.fixture(scope="module")
def tiny_ir(tmp_path_factory):
    d = tmp_path_factory.mktemp("c")
    g, x = _ir(tiny_cfg(T=2))
    p = d / "tiny.sgir"
    save_ir(g, str(p))
    np.save(d / "x.npy", x)
    return str(p), g, x


def test_compile_is_deterministic_and_report_has_keys(tiny_ir, tmp_path, capsys):
    path, g, x = tiny_ir
    outs = []
    for i in range(2):
        rc, out, err = run_cli(["compile", path, "--target", "sim", "--lanes", "4", "-o", tmp_path / f"b{i}"], capsys)
        assert rc == 0, err
        outs.append({f: (tmp_path / f"b{i}" / f).read_bytes() for f in sorted(os.listdir(tmp_path / f"b{i}"))})
    assert outs[0] == outs[1]
    rep = json.loads(outs[0]["report.json"])
    for k in ("lanes", "widths", "memories", "predicted_cycles", "op_counts", "num_pixels", "num_classes",
              "pixel_bits", "logit_bits", "target"):
        assert k in rep
    assert rep["lanes"] == 4 and rep["target"] == "sim"
    report, g2, prog = read_build(str(tmp_path / "b0"))
    assert prog.lanes == 4


def test_budget_error_has_table_and_hints(tiny_ir, tmp_path, capsys):
    path, g, x = tiny_ir
    rc, out, err = run_cli(["compile", path, "--target", "icebreaker", "--lanes", "64", "-o", tmp_path / "b"], capsys)
    assert rc == 2
    assert "multipliers (DSP)" in err and "needed" in err and "available" in err and "--lanes" in err
    assert not (tmp_path / "b").exists()


def test_paper_preset_sizes_on_large_target_and_is_refused_by_the_isa():
    """The 15M paper preset at 224x224: the ``large`` sizing target budgets it (and the ULX3S
    refuses it), but its addresses overflow the ISA's fields, so compiling it is one clear
    ProgramError naming the instruction, never a traceback from the encoder."""
    from spikegate.compiler.build import check_ops, memory_plan, pack_parameters, schedule
    from spikegate.compiler.passes.budget import check_budget, memory_bits
    from spikegate.compiler.targets import get_target
    from spikegate.machine.program import ProgramError
    from spikegate.quantize.model import build, preset
    import torch
    torch.manual_seed(0)
    m = build(preset("meta-spikeformer-15m")).eval()
    _, g = quantize_graph(lower(m), np.random.default_rng(0).random((1, 3, 224, 224)).astype(np.float32))
    with pytest.raises(ProgramError, match=r"instruction \d+ \(.*\): field \w+=\d+ does not fit the ISA's \d+ bits"):
        lower_to_program(g, 32)
    g = check_ops(g)
    s = schedule(g)
    prog = pack_parameters(g, s, memory_plan(s), 32)      # unvalidated: for sizing only
    check_budget(prog, get_target("large"), True)
    est = iss.estimate_cycles(prog, 0.15)
    assert est["cycles"] > 0 and sum(memory_bits(prog).values()) > 15_000_000 * 8
    with pytest.raises(BudgetError):
        check_budget(prog, compile_target("ulx3s-85f"), True)


def test_corrupt_build_dir(tiny_ir, tmp_path):
    path, g, x = tiny_ir
    b = tmp_path / "b"
    compile_ir(path, "sim", 2, str(b), predict_samples=0)
    (b / "model.sgir").write_bytes(b"garbage")
    with pytest.raises(SpikegateError, match="does not match report.json"):
        read_build(str(b))
    os.remove(b / "report.json")
    with pytest.raises(SpikegateError, match="not a spikegate build directory"):
        read_build(str(b))


# ------------------------------------------------------------------------------ weights in SPRAM


def test_icebreaker_puts_weights_in_spram(trained_tiny_ir, tmp_path):
    """fpga-tiny's shape (40,006 weight words at 1 lane) does not fit the UP5K's block RAM with the
    rest: WMEM goes to SPRAM, runtime-loaded; the block RAM budget covers everything else; the
    report says so, with the words, bits and the sha256 of weights.bin (the words in address
    order, little-endian, as wmem.hex has them); the Verilog has the SB_SPRAM256KA instances."""
    import hashlib

    path, g, x = trained_tiny_ir
    b = tmp_path / "ice"
    rep = compile_ir(path, compile_target("icebreaker"), None, str(b), predict_samples=0)
    w = rep["weights"]
    assert rep["lanes"] == 1
    assert w["loading"] == "runtime-loaded" and w["storage"] == "SPRAM"
    words = [int(line, 16) for line in (b / "wmem.hex").read_text().split()]
    assert w["words"] == len(words) == rep["memories"]["wmem_words"] > 30_000
    assert w["word_bits"] == rep["widths"]["weight_bits"] and w["bits"] == w["words"] * w["word_bits"]
    assert w["bytes_per_word"] == (w["word_bits"] + 7) // 8
    image = (b / "weights.bin").read_bytes()
    assert w["image"] == "weights.bin" and hashlib.sha256(image).hexdigest() == w["sha256"]
    n = w["bytes_per_word"]
    assert [int.from_bytes(image[i:i + n], "little") for i in range(0, len(image), n)] == words
    assert w["spram"]["blocks"] == (b / "accelerator.v").read_text().count("SB_SPRAM256KA")
    rows = {r["resource"]: (r["needed"], r["available"]) for r in rep["resources"]}
    # counted in SB_RAM40_4K blocks as Yosys maps the memories (30 measured on the UP5K)
    assert rows["block RAMs (all but weights)"] == (30, 30)
    assert rows["SPRAM blocks (weights, runtime-loaded)"] == (w["spram"]["blocks"], 4)
    assert "block RAMs (all memories)" not in rows
    assert rows["LUTs (estimate)"][0] <= rows["LUTs (estimate)"][1]
    # the core built from the build directory has the weight port; other targets keep the ROM
    from spikegate.compiler.build import load_core, read_weight_image
    core = load_core(str(b))
    core._MustUse__silence = True      # (inspected, not elaborated)
    assert core.weight_storage == "spram" and "weights" in core.signature.members
    assert read_weight_image(str(b), rep) == image
    rep2 = compile_ir(path, "sim", None, str(tmp_path / "sim"), predict_samples=0)
    assert rep2["weights"] == {"storage": "block RAM", "loading": "bitstream", "where": "bram",
                               "words": rep2["memories"]["wmem_words"],
                               "word_bits": rep2["lanes"] * rep2["widths"]["weight_bits"],
                               "bits": rep2["memories"]["bits"]["weights (WMEM)"],
                               "bytes_per_word": (rep2["lanes"] * rep2["widths"]["weight_bits"] + 7) // 8}
    assert not (tmp_path / "sim" / "weights.bin").exists()
    with pytest.raises(SpikegateError, match=r"its weights are in the bitstream, not loaded at run time$"):
        read_weight_image(str(tmp_path / "sim"), rep2)


def test_weights_option(trained_tiny_ir, tmp_path, capsys):
    path, g, x = trained_tiny_ir
    rc, out, err = run_cli(["compile", path, "--target", "icebreaker", "--weights", "bitstream",
                            "-o", tmp_path / "a"], capsys)
    assert rc == 2 and "block RAMs (all memories)" in err and "<-- too much" in err
    rc, out, err = run_cli(["compile", path, "--target", "ulx3s-85f", "--weights", "runtime",
                            "-o", tmp_path / "b"], capsys)
    assert rc == 2
    assert "--weights runtime: target ulx3s-85f (ULX3S: Lattice ECP5 LFE5U-85F) has no SPRAM" in err
    rc, out, err = run_cli(["compile", path, "--target", "icebreaker", "-o", tmp_path / "c"], capsys)
    assert rc == 0, err
    assert "weights: 40,006 words of 8 bits in SPRAM, runtime-loaded" in out


def test_spram_budget_errors_are_clear(trained_tiny_ir):
    """Weights too many for the SPRAM, or the rest too much for the block RAM: the table names the
    row, and only the hints that would help."""
    import dataclasses

    from spikegate.compiler.passes.budget import check_budget
    path, g, x = trained_tiny_ir
    prog = lower_to_program(g, 1)
    ice = compile_target("icebreaker")
    ok = check_budget(prog, ice, True)
    assert ok["weights"]["spram"] == {"blocks": 2, "banks": 2, "columns": 1, "words_per_row": 2,
                                      "slot_bits": 8}
    big = dataclasses.replace(prog, wmem=np.zeros((140_000, 1), dtype=np.int64))   # 5 banks
    with pytest.raises(BudgetError) as e:
        check_budget(big, ice, True)
    msg = str(e.value)
    assert "SPRAM blocks (weights, runtime-loaded)" in msg and "<-- too much" in msg
    assert "weights: 140,000 words of 8 bits in SPRAM (2 per 16-bit row, 5 of 4 blocks)" in msg
    assert "fewer weight bits" in msg
    wide = dataclasses.replace(prog, act_words=10_000)     # the rest: 230k bits of ACT alone
    with pytest.raises(BudgetError) as e:
        check_budget(wide, ice, True)
    msg = str(e.value)
    line = next(ln for ln in msg.splitlines() if ln.startswith("block RAMs (all but weights)"))
    assert line.endswith("<-- too much")
    assert "fewer weight bits" not in msg and "a smaller model" in msg


def test_block_ram_counted_in_blocks_as_synthesis_maps_them():
    """Block RAM is counted in primitives, per memory (a memory takes whole blocks), calibrated on
    what Yosys did: iCE40 SB_RAM40_4K (256x16 .. 2048x2), ECP5 DP16KD (512x36 .. 16384x1); memories
    of at most 64 bits become flip-flops; initialised tables put a short tail of rows in logic."""
    from spikegate.compiler.passes.budget import bram_blocks
    assert bram_blocks(1536, 23, "ice40") == 9          # ACT of fpga-tiny-t2 (measured 9)
    assert bram_blocks(512, 21, "ice40") == 3           # one ACC bank (3)
    assert bram_blocks(1024, 1, "ice40") == 1           # SPK (1)
    assert bram_blocks(564, 20, "ice40", rom=True) == 4  # BIAS (4)
    assert bram_blocks(564, 5, "ice40", rom=True) == 1   # SHIFT (1)
    assert bram_blocks(78, 110, "ice40", rom=True) == 7  # a program ROM (7)
    assert bram_blocks(8, 4, "ice40") == bram_blocks(64, 1, "ice40") == 0   # flip-flops
    assert bram_blocks(8, 23, "ice40") == 2 and bram_blocks(10, 12, "ice40") == 1
    assert bram_blocks(2048, 22, "ecp5") == 3
    assert bram_blocks(100, 100, "sim") == 0


def test_icebreaker_logic_budget_refuses_at_compile(tiny_ir, tmp_path, capsys):
    """A design whose logic cannot fit the UP5K is refused by compile with the needs table (not
    at synth): the LUT estimate is calibrated per family (5,030 estimated, 5,030 logic cells
    measured for fpga-tiny-t2 at 1 lane)."""
    from spikegate.compiler.passes.budget import lut_estimate
    assert lut_estimate(1, "ice40") == 5030
    assert lut_estimate(8, "ecp5") == 9262           # the default model on the ULX3S (9,262 measured)
    path, g, x = tiny_ir
    rc, out, err = run_cli(["compile", path, "--target", "icebreaker", "--lanes", "4", "-o", tmp_path / "b"],
                           capsys)
    assert rc == 2 and not (tmp_path / "b").exists()
    line = next(ln for ln in err.splitlines() if ln.startswith("LUTs (estimate)"))
    assert line.endswith("<-- too much") and "5,685" in line
    assert "--lanes 1" in err


def test_deep_wmem_block_count_is_per_bank():
    """With the deep pipeline (more than one lane) WMEM is a BankedROM (hw/banked_rom.py) and ACT a
    BankedRAM (hw/banked_ram.py): banks of one block RAM's depth, the last one padded, each mapped
    on its own, and the budget counts them so (the default model's WMEM: 10 banks of 8 DP16KD,
    where one 19,601-word memory would be 78)."""
    import dataclasses

    from spikegate.compiler.passes.budget import blocks_needed, bram_blocks
    from spikegate.machine.config import WMEM_BANK_WORDS
    g, _ = _ir(tiny_cfg())
    for lanes in (1, 4):
        p = lower_to_program(g, lanes)
        width = lanes * p.weight_bits
        rest = blocks_needed(p, "ecp5", False)
        words = 2 * WMEM_BANK_WORDS + 100
        big = dataclasses.replace(p, wmem=np.zeros((words, lanes), dtype=np.int64))
        wmem = blocks_needed(big, "ecp5", True) - rest
        if lanes == 1:
            assert wmem == bram_blocks(words, width, "ecp5", rom=True)
        else:
            assert wmem == 3 * bram_blocks(WMEM_BANK_WORDS, width, "ecp5", rom=True)
        # ACT likewise: its short last bank is padded (one 2,148 x 36 memory would be 5 DP16KD)
        acts, act_bits = WMEM_BANK_WORDS + 100, 36
        wide = dataclasses.replace(p, act_words=acts, act_bits=act_bits)
        act = blocks_needed(wide, "ecp5", False) - rest + bram_blocks(max(2, p.act_words), p.act_bits, "ecp5")
        assert act == (2 * bram_blocks(WMEM_BANK_WORDS, act_bits, "ecp5") if lanes > 1
                       else bram_blocks(acts, act_bits, "ecp5")) == (8 if lanes > 1 else 5)
    assert bram_blocks(WMEM_BANK_WORDS, 64, "ecp5", rom=True) == 8      # a bank of the default model's


def test_deep_scanner_start_values_are_the_first_output_input_zero_reaches():
    """``lo0`` (machine/program.py: derived_values, CONV with more than one lane) is the first
    output row that input row 0 reaches, by brute force over the outputs, and ``pad_s`` is
    ``pad >> (stride - 1)``; with one lane (or for another opcode) both are 0 and left out of the
    ROM word (OPTIONAL_DERIVED), so a one-lane machine's word is as it was."""
    from spikegate.machine.program import OP_CONV, OP_HEAD, derived_values, derived_widths
    for k in range(1, 8):
        for pad in range(0, k):
            for stride in (1, 2):
                ins = Instr(opcode=OP_CONV, k=k, pad=pad, stride=stride, h=9, w=9, ho=9, wo=9)
                # output o reads input rows o*stride - pad .. o*stride - pad + k - 1
                reach = [o for o in range(16) if o * stride - pad <= 0 <= o * stride - pad + k - 1]
                v = derived_values(ins, 8)
                assert v["lo0"] == min(reach), (k, pad, stride)
                assert v["pad_s"] == pad >> (stride - 1)
                assert derived_values(ins, 1)["lo0"] == derived_values(ins, 1)["pad_s"] == 0
    head = Instr(opcode=OP_HEAD, k=3, pad=1)
    assert derived_values(head, 8)["lo0"] == derived_values(head, 8)["pad_s"] == 0
    one_lane = derived_widths([Instr(opcode=OP_CONV, k=3, pad=2)], 1)
    assert "lo0" not in one_lane and "pad_s" not in one_lane and one_lane["G"] >= 1
    assert "lo0" not in derived_widths([Instr(opcode=OP_CONV, k=3, pad=1)], 8)     # lo0 0 (pad < k)
    assert derived_widths([Instr(opcode=OP_CONV, k=1, pad=2)], 8)["lo0"] == 2


def test_fused_lifs_fire_in_the_conv_readout():
    """With T = 1 every LIF that reads what the CONV just before it wrote fires in that CONV's
    readout (passes/fuse_fire.py): no LIF instruction is left for it, the ISS still equals the
    golden model (logits and every LIF's spike count), and the image takes fewer cycles by the LIF
    instructions' own cost. With T > 1 nothing is fused."""
    from spikegate.compiler import cycle_model as cm
    from spikegate.compiler.passes.pack import pack_parameters
    from spikegate.machine.program import OP_CONV, OP_LIF, validate_program
    from spikegate.quantize import intops

    g, x = _ir(tiny_cfg(T=1))
    prog = lower_to_program(g, 4)
    fired = [i for i in prog.instrs if i.fire]
    lifs = [o.name for o in g.ops if o.kind == "lif"]
    assert fired and all(i.opcode == OP_CONV and i.T == 1 for i in fired)
    assert sorted([i.fires for i in fired] + [i.name for i in prog.instrs if i.opcode == OP_LIF]) == sorted(lifs)
    px = intops.quantize_input(x, prog.input_scale, prog.pixel_bits)
    unfused = validate_program(pack_parameters(g, schedule(check_ops(g)), memory_plan(schedule(check_ops(g))), 4))
    for i, p in enumerate(px):
        a, b = iss.run(prog, p), iss.run(unfused, p)
        assert np.array_equal(a.logits, b.logits) and a.spike_counts == b.spike_counts
        assert sum(a.spikes_per_instr) == sum(b.spikes_per_instr)
        saved = sum(c for ins, c in zip(unfused.instrs, b.cycles_per_instr)
                    if ins.opcode == OP_LIF and ins.name in {f.fires for f in fired})
        assert a.cycles == b.cycles - saved and saved >= len(fired) * (cm.FETCH + cm.LIF_OVH + 1)
    assert all(not i.fire for i in lower_to_program(_ir(tiny_cfg(T=2))[0], 4).instrs)


def test_fire_only_convs_need_no_act_words():
    """A fused CONV whose words only its LIF read writes no ACT (FIRE_ONLY): the memory plan gives
    that current no space, and the ISS still equals the golden model."""
    from spikegate.compiler.passes.pack import pack_parameters
    from spikegate.machine.program import FIRE_ONLY, validate_program

    g, x = _ir(tiny_cfg(T=1))
    s = schedule(check_ops(g))
    keep, drop = fuse_fire(s, drop_dead=False), fuse_fire(s)
    prog = validate_program(pack_parameters(g, drop, memory_plan(drop), 4))
    assert any(i.fire == FIRE_ONLY for i in prog.instrs)
    assert memory_plan(drop).words["ACT"] < memory_plan(keep).words["ACT"]
    gold = execute(g, x)
    for i, r in enumerate(iss.run_batch(prog, x)):
        np.testing.assert_array_equal(r.logits, gold[i])
