"""Compiler passes and the instruction-level simulator against the golden model."""

import json
import os

import numpy as np
import pytest

from spikeforge.compiler import iss
from spikeforge.compiler.build import compile_ir, lower_to_program, read_build
from spikeforge.compiler.passes.budget import BudgetError
from spikeforge.compiler.passes.check_ops import UnsupportedOpError, check_ops
from spikeforge.compiler.passes.memory_plan import memory_plan
from spikeforge.compiler.passes.schedule import schedule
from spikeforge.compiler.program import FIELDS, INSTR_BITS, Instr
from spikeforge.errors import SpikeforgeError
from spikeforge.quantize.golden import execute
from spikeforge.quantize.irfile import save_ir
from spikeforge.quantize.lower import lower
from spikeforge.quantize.quantizer import quantize_graph

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
    # per-layer spike counts equal the golden trace
    r0 = iss.run_batch(prog, x[:1])[0]
    for name, (spikes, _) in trace.items():
        assert r0.spike_counts[name] == int(spikes.sum()), name


def test_iss_equals_golden_on_official_fixture():
    from spikeforge.quantize.checkpoint import load_model
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


def test_memory_plan_never_overlaps_live_tensors():
    g, _ = _ir(tiny_cfg(T=2))
    s = schedule(check_ops(g))
    plan = memory_plan(s)
    live = {}
    last = {}
    for i, m in enumerate(s.mops):
        for t in m.srcs + ([m.dst] if m.dst else []):
            last[t] = i
    for i, m in enumerate(s.mops):
        if m.dst and m.dst not in live:
            live[m.dst] = i
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
def tiny_sfq(tmp_path_factory):
    d = tmp_path_factory.mktemp("c")
    g, x = _ir(tiny_cfg(T=2))
    p = d / "tiny.sfq"
    save_ir(g, str(p))
    np.save(d / "x.npy", x)
    return str(p), g, x


def test_compile_is_deterministic_and_report_has_keys(tiny_sfq, tmp_path, capsys):
    path, g, x = tiny_sfq
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


def test_budget_error_has_table_and_hints(tiny_sfq, tmp_path, capsys):
    path, g, x = tiny_sfq
    rc, out, err = run_cli(["compile", path, "--target", "icebreaker", "--lanes", "64", "-o", tmp_path / "b"], capsys)
    assert rc == 2
    assert "multipliers (DSP)" in err and "needed" in err and "available" in err and "--lanes" in err
    assert not (tmp_path / "b").exists()


def test_paper_preset_compiles_for_large_target():
    from spikeforge.compiler.passes.budget import check_budget, memory_bits
    from spikeforge.compiler.targets import get_target
    from spikeforge.quantize.model import build, preset
    import torch
    torch.manual_seed(0)
    m = build(preset("meta-spikeformer-15m")).eval()
    _, g = quantize_graph(lower(m), np.random.default_rng(0).random((1, 3, 224, 224)).astype(np.float32))
    prog = lower_to_program(g, 32)
    check_budget(prog, get_target("large"), True)
    est = iss.estimate_cycles(prog, 0.15)
    assert est["cycles"] > 0 and sum(memory_bits(prog).values()) > 15_000_000 * 8
    with pytest.raises(BudgetError):
        check_budget(prog, get_target("ulx3s-85f"), True)


def test_corrupt_build_dir(tiny_sfq, tmp_path):
    path, g, x = tiny_sfq
    b = tmp_path / "b"
    compile_ir(path, "sim", 2, str(b), predict_samples=0)
    (b / "model.sfq").write_bytes(b"garbage")
    with pytest.raises(SpikeforgeError, match="does not match report.json"):
        read_build(str(b))
    os.remove(b / "report.json")
    with pytest.raises(SpikeforgeError, match="not a spikeforge build directory"):
        read_build(str(b))
