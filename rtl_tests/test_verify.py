"""Whole-network RTL verification: compile, emit Verilog, simulate, compare with the golden model.

These are the end-to-end proofs of issue 5: emitted Verilog == golden model, bit for bit, for whole
networks; every LIF layer's spike map equals the golden trace; the measured cycles equal the cycle
model's exactly, with the testbench's random idle pixels and back-pressure on (issue 28: the
counter's span holds exactly the stall cycles the bench added, and nothing else). And when the
hardware disagrees (issue 26), verify names the first differing instruction: proven on a build whose
Verilog carries one flipped weight bit, against the first difference the ISS finds independently.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from spikegate.compiler.build import compile_ir  # noqa: E402
from spikegate.verify import verify  # noqa: E402
from spikegate.errors import SpikegateError  # noqa: E402
from spikegate.quantize.irfile import save_ir  # noqa: E402
from spikegate.quantize.lower import lower  # noqa: E402
from spikegate.quantize.quantizer import quantize_graph  # noqa: E402

from small_models import calibrated_model, images, tiny_cfg  # noqa: E402

FIXTURES = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "fixtures", "official"))


def _build(tmp_path, g, target, lanes, name):
    sgir = tmp_path / f"{name}.sgir"
    save_ir(g, str(sgir))
    out = tmp_path / f"{name}-{target}-{lanes}"
    compile_ir(str(sgir), target, lanes, str(out), predict_samples=0)
    return str(out)


STALLS = {"idle": 0.2, "backpressure": 0.3}      # the testbench's idle pixels and back-pressure


def _check(r, n, stalls: bool = True):
    assert r["samples"] == n
    assert r["bit_exact"], r["mismatches"]
    assert r["cycles"] == r["predicted_cycles"], "measured cycles (RTL) != the cycle model's"
    # the raw counter holds the model's cycles plus exactly the stall cycles the bench added
    assert r["cycles_counted"] == [p + i + b for p, i, b in zip(r["predicted_cycles"], r["idle_cycles"],
                                                                r["backpressure_cycles"])]
    if stalls:   # (the first idle stretch and the first refusal are forced: both always happen)
        assert sum(r["idle_cycles"]) > 0 and sum(r["backpressure_cycles"]) > 0, r


def _ops_counted_output_by_output(g, x) -> list[int]:
    """SOPs + MACs per sample from the golden model's trace, counted independently of
    ``stats.event_ops`` (which goes input by input): for each convolution output, the non-zero
    inputs under its kernel window (a convolution of the non-zero mask with a kernel of ones);
    attention: ``d`` additions per set Q or K bit; the head: one per class per spike."""
    import torch
    import torch.nn.functional as F

    from spikegate.quantize.golden import execute

    prod = {o.name: o for o in g.ops}
    trace: dict = {}
    execute(g, x, trace=trace, keep={n for o in g.ops for n in o.inputs if prod[n].kind != "lif"})

    def tensor(n):                 # [T, B, ...]
        return trace[n][0] if prod[n].kind == "lif" else trace[n]

    def per_sample(n):             # [T, B, elements]
        v = tensor(n)
        return v.reshape(v.shape[0], v.shape[1], -1).astype(np.int64)

    total = np.zeros(len(x), dtype=np.int64)
    for o in g.ops:
        if o.kind == "conv":
            a, v = o.attrs, tensor(o.inputs[0])
            mask = torch.from_numpy((v != 0).reshape((-1,) + v.shape[2:]).astype(np.float64))
            ones = torch.ones((o.shape[0], v.shape[2] // a["groups"], a["kernel"], a["kernel"]), dtype=torch.float64)
            y = F.conv2d(mask, ones, stride=a["stride"], padding=a["padding"], groups=a["groups"]).numpy()
            total += np.rint(y.reshape(v.shape[0], v.shape[1], -1).sum(axis=(0, 2))).astype(np.int64)
        elif o.kind == "attention":
            d = o.shape[0] // o.attrs["heads"]
            total += (per_sample(o.inputs[0]).sum(axis=(0, 2)) + per_sample(o.inputs[1]).sum(axis=(0, 2))) * d
        elif o.kind == "head":
            total += per_sample(o.inputs[0]).sum(axis=(0, 2)) * o.shape[0]
    return total.tolist()


def _check_utilisation(r, lanes: int, want_ops: list[int]):
    """The run's ops, lanes and utilisation (issue 25's keys of `verify --json`)."""
    assert r["lanes"] == lanes
    assert all(isinstance(v, int) and v > 0 for v in r["ops"]), r["ops"]
    assert r["ops"] == want_ops and r["ops"] == [s + m for s, m in zip(r["sops"], r["macs"])]
    assert r["utilisation"] == pytest.approx(sum(r["ops"]) / (r["lanes"] * sum(r["cycles"])), rel=1e-12)
    assert 0 < r["utilisation"] <= 1, r["utilisation"]


@pytest.mark.parametrize("sim", ["verilator", "icarus"])
def test_tiny_model_bit_exact(tmp_path, sim):
    cfg = tiny_cfg(T=2, kd=True)
    m = calibrated_model(cfg, seed=3)
    x = images(cfg, 6, seed=4)
    _, g = quantize_graph(lower(m), x)
    b = _build(tmp_path, g, "sim", 4, "tiny")
    n = 3 if sim == "verilator" else 1
    np.save(tmp_path / "x.npy", x[:n])
    r = verify(b, str(tmp_path / "x.npy"), sim=sim, **STALLS)
    _check(r, n)
    _check_utilisation(r, 4, _ops_counted_output_by_output(g, np.load(tmp_path / "x.npy")))


def test_default_model_20_digits_verilator(tmp_path):
    from spikegate.quantize.data import digits_split_xy
    from spikegate.quantize.pipeline import quantize_checkpoint
    from spikegate.quantize.checkpoint import resolve_checkpoint
    if not os.path.exists(resolve_checkpoint("default")):
        pytest.fail(f"embedded checkpoint 'default' is missing: {resolve_checkpoint('default')} (it ships in quantize/data/)")
    g, _ = quantize_checkpoint("default", calib="digits")
    x, _ = digits_split_xy("test", img_size=g.ops[0].attrs["size"], n=20)
    np.save(tmp_path / "x.npy", x)
    # (the ulx3s-85f build of the default model is verified by tests/test_demo.py, which runs
    # `make demo`'s steps, and driven over the UART by rtl_tests/test_board_uart.py)
    b = _build(tmp_path, g, "sim", 8, "default")
    # (issue 28: verify with idle pixels and back-pressure on a trained model)
    _check(verify(b, str(tmp_path / "x.npy"), sim="verilator", **STALLS), 20)


@pytest.mark.parametrize("fixture", ["small_t1", "small_t4"])
def test_official_fixtures_verilator(tmp_path, fixture):
    from spikegate.quantize.checkpoint import load_model
    ck = os.path.join(FIXTURES, fixture + ".pth")
    if not os.path.exists(ck):
        pytest.skip(f"official fixture {ck} is missing (shared/ must sit beside the checkout)")
    data = np.load(os.path.join(FIXTURES, fixture + ".npz"))
    model, _ = load_model(ck)
    _, g = quantize_graph(lower(model), data["inputs"])
    b = _build(tmp_path, g, "sim", 8, fixture)
    np.save(tmp_path / "x.npy", data["inputs"][:1])  # one input: T=4 runs ~2.5M cycles per image
    _check(verify(b, str(tmp_path / "x.npy"), sim="verilator", **STALLS), 1)


def test_spike_maps_are_compared_spike_by_spike():
    """The comparison behind verify, on an observation made from the golden trace: equal maps pass;
    one flipped spike (leaving the count equal: another one flipped the other way) is found at its
    time step and neuron; a count from the debug port that disagrees is found too."""
    from spikegate.compiler.build import lower_to_program
    from spikegate.machine.program import OP_LIF
    from spikegate.quantize.golden import execute
    from spikegate.verify import _first_spike_difference

    cfg = tiny_cfg(T=2)
    m = calibrated_model(cfg, seed=3)
    x = images(cfg, 2, seed=4)
    _, g = quantize_graph(lower(m), x)
    prog = lower_to_program(g, 4)
    trace: dict = {}
    execute(g, x, trace=trace)
    lif_by_tag = {i: ins.name for i, ins in enumerate(prog.instrs) if ins.opcode == OP_LIF}
    b = 1

    def observation():
        instr, writes = [], []
        for tag in range(len(prog.instrs)):
            name = lif_by_tag.get(tag)
            if name:
                flat = trace[name][0][:, b].reshape(-1)
                writes += [(len(instr), prog.tensors[name]["base"] + i, int(v)) for i, v in enumerate(flat)]
            instr.append((tag, int(trace[name][0][:, b].sum()) if name else 0))
        return {"instr": instr, "spk_writes": writes}

    assert _first_spike_difference(prog, lif_by_tag, observation(), trace, b) is None
    tag, name = sorted(lif_by_tag.items())[2]
    flat = trace[name][0][:, b].reshape(-1)
    on, off = int(np.nonzero(flat)[0][-1]), int(np.nonzero(flat == 0)[0][-1])
    obs = observation()
    base = prog.tensors[name]["base"]
    obs["spk_writes"] = [(i, a, 1 - v if a - base in (on, off) and obs["instr"][i][0] == tag else v)
                         for i, a, v in obs["spk_writes"]]
    d = _first_spike_difference(prog, lif_by_tag, obs, trace, b)
    n = flat.size // cfg.T
    first = min(on, off)
    assert d["layer"] == name and d["differing_spikes"] == 2 and d["rtl_spikes"] == d["golden_spikes"]
    assert d["time_step"] == first // n and d["golden_spike"] == int(flat[first]) == 1 - d["rtl_spike"]
    obs = observation()
    obs["instr"] = [(t, c + (t == tag)) for t, c in obs["instr"]]
    d = _first_spike_difference(prog, lif_by_tag, obs, trace, b)
    assert d["layer"] == name and d["rtl_spikes"] == d["golden_spikes"] + 1 and "count differs" in d["detail"]


def test_spike_maps_of_a_tiled_fused_layer():
    """A layer fired by a CONV in output-channel tiles (weights in SDRAM: a WLOAD before each tile,
    sharing its tag) is one spike map: the tiles' writes together, their counts summed; the count
    the debug port still shows after a WLOAD is not the WLOAD's (make demo's MNIST build found it:
    the stale counts were added)."""
    from types import SimpleNamespace

    from spikegate.machine.program import OP_CONV, OP_WLOAD, Instr
    from spikegate.verify import _rtl_spike_maps

    tile = dict(opcode=OP_CONV, fire=1, fires="L", tag=5)
    prog = SimpleNamespace(instrs=[Instr(OP_WLOAD, tag=5), Instr(**tile), Instr(OP_WLOAD, tag=5), Instr(**tile)],
                           tensors={"L": {"base": 100, "shape": [2, 1, 2], "steps": 1}})
    obs = {"instr": [(5, 0), (5, 1), (5, 1), (5, 2)],
           "spk_writes": [(1, 100, 1), (1, 101, 0), (3, 102, 1), (3, 103, 1)]}
    rtl, count = _rtl_spike_maps(prog, {5: "L"}, obs)["L"]
    assert rtl.tolist() == [1, 0, 1, 1] and count == 3


def _iss_states(prog, px):
    """The ISS's memories (ACT, SPK, ACC, logits) after every instruction of one image."""
    from spikegate.compiler import iss

    state, out = iss.MachineState.zeros(prog), []
    for ins in prog.instrs:
        iss.execute(prog, ins, state, px)
        out.append(state.copy())
    return out


def _corrupt_one_weight(prog, px):
    """A copy of ``prog`` with one bit of one weight flipped, in the first spike-input CONV whose
    flip changes a spike or a logit of the image (so that verify's comparison sees it), and the
    ISS's states of the clean and the corrupted program."""
    import copy

    from spikegate.machine.program import IN_SPIKE, OP_CONV

    clean = _iss_states(prog, px)
    for ins in prog.instrs:
        if ins.opcode != OP_CONV or ins.in_kind != IN_SPIKE:
            continue
        bad = copy.deepcopy(prog)
        bad.wmem = prog.wmem.copy()
        bad.wmem[ins.wbase, 0] ^= 1 << (prog.weight_bits - 2)        # stays in the signed range
        states = _iss_states(bad, px)
        if not (np.array_equal(states[-1].logits, clean[-1].logits) and
                all(np.array_equal(a.spk, b.spk) for a, b in zip(states, clean))):
            return bad, clean, states
    raise AssertionError("no single weight flip changes this image's spikes or logits")


def _expected_first_difference(prog, clean, states) -> dict:
    """Computed from the two ISS runs alone (no RTL, none of verify's code): the first instruction
    after which any memory differs, its first differing word, decoded by hand."""
    from spikegate.machine.program import OPCODES

    for j, (a, b) in enumerate(zip(clean, states)):
        for mem in ("act", "spk"):
            diff = np.nonzero(getattr(a, mem) != getattr(b, mem))[0]
            if len(diff):
                ins, addr = prog.instrs[j], int(diff[0])
                t, rest = divmod(addr - ins.dst, ins.cout * ins.ho * ins.wo)
                c, rest = divmod(rest, ins.ho * ins.wo)
                return {"instruction": j, "op": OPCODES[ins.opcode], "layer": ins.name, "memory": mem,
                        "address": addr, "time_step": t, "channel": c, "position": list(divmod(rest, ins.wo)),
                        "rtl": int(getattr(b, mem)[addr]), "golden": int(getattr(a, mem)[addr]),
                        "differing_values": len(diff)}
        assert np.array_equal(a.acc, b.acc), "a flipped CONV weight first shows in ACT or SPK"
    raise AssertionError("the ISS runs never differ")


def test_corrupted_build_names_the_first_differing_instruction(tmp_path, capsys):
    """One flipped weight bit in a build's Verilog (its WMEM image): verify fails with exit 1 and
    names the first differing instruction, its op, time step, channel, position and both values,
    exactly where the ISS run on the corrupted program first departs from the clean one."""
    from spikegate.cli import main
    from spikegate.commands.verify import summary
    from spikegate.compiler.build import read_build
    from spikegate.hw.accelerator import emit_verilog
    from spikegate.quantize import intops

    cfg = tiny_cfg(T=2, kd=True)
    m = calibrated_model(cfg, seed=3)
    x = images(cfg, 4, seed=4)
    _, g = quantize_graph(lower(m), x)
    b = _build(tmp_path, g, "sim", 4, "corrupt")
    _, _, prog = read_build(b)
    px = intops.quantize_input(x[:1], prog.input_scale, prog.pixel_bits)[0]
    bad, clean, states = _corrupt_one_weight(prog, px)
    emit_verilog(bad, os.path.join(b, "accelerator.v"))     # the build's memory image, one bit off
    want = _expected_first_difference(prog, clean, states)
    assert want["op"] == "CONV" and want["instruction"] > 2      # (earlier instructions must agree)
    np.save(tmp_path / "x.npy", x[:1])
    rc = main(["verify", b, "--inputs", str(tmp_path / "x.npy"), "--json"])
    r = json.loads(capsys.readouterr().out)
    assert rc == 1 and not r["bit_exact"] and r["mismatches"][0]["sample"] == 0
    d = r["first_difference"]
    print("verify's first difference:", d, "\nthe ISS's:", want)
    assert {k: d[k] for k in want} == want, (d, want)
    assert d["sample"] == 0 and r["mismatches"][0]["first_difference"] == d
    assert r["cycles_counted"] == [c + i + p for c, i, p in zip(r["cycles"], r["idle_cycles"],
                                                                r["backpressure_cycles"])]
    lines = summary(r)      # what the verb prints without --json: one fact per line
    s = "  sample 0:"
    for fact in (f"first differing instruction: #{want['instruction']} CONV {want['layer']}",
                 f"time step: {want['time_step']}", f"channel: {want['channel']}",
                 f"position (y, x): {want['position']}", f"RTL value: {want['rtl']}",
                 f"golden value: {want['golden']}"):
        assert f"{s} {fact}" in lines, (fact, lines)


def test_waves(tmp_path, capsys):
    """--waves FILE writes the run's VCD there (named in the JSON), with the core's signals over
    the whole image, and leaves no copy in the build's simulation folder."""
    from spikegate.cli import main

    cfg = tiny_cfg(T=1)
    m = calibrated_model(cfg, seed=5)
    x = images(cfg, 2, seed=6)
    _, g = quantize_graph(lower(m), x)
    b = _build(tmp_path, g, "sim", 2, "waves")
    np.save(tmp_path / "x.npy", x[:1])
    vcd = tmp_path / "run.vcd"
    assert main(["verify", b, "--inputs", str(tmp_path / "x.npy"), "--waves", str(vcd), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["bit_exact"] and r["waves"] == str(vcd) and r["cycles"] == r["predicted_cycles"]
    _check_utilisation(r, 2, _ops_counted_output_by_output(g, x[:1]))      # (the keys reach the JSON)
    with open(vcd) as f:
        head = f.read(1 << 20)
    assert "$timescale" in head and "dbg_instr_done" in head and "$enddefinitions" in head
    assert vcd.stat().st_size > 100 * r["cycles_counted"][0]      # (every cycle is in it)
    assert not os.path.exists(os.path.join(b, "sim-verilator-waves", "dump.vcd"))


def test_verify_arguments():
    """verify's own arguments: help on each, an example, choices for --sim, checks that end in one
    line (exit 2) before any simulation."""
    import argparse

    from spikegate.cli import build_parser, main

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    p = sub.choices["verify"]
    assert p.epilog and "spikegate verify " in p.epilog
    for a in p._actions:
        assert a.help, f"verify {'/'.join(a.option_strings) or a.dest}: no help text"
    assert list(next(a for a in p._actions if a.dest == "sim").choices) == ["verilator", "icarus"]
    assert main(["verify", "b", "--inputs", "x.npy", "--sim", "modelsim"]) == 2
    assert main(["verify", "b", "--inputs", "x.npy", "--waves", "/proc/w.vcd"]) == 2
    assert main(["verify", "b", "--inputs", "x.npy", "--idle", "1.5"]) == 2


def test_verify_bad_inputs(tmp_path):
    cfg = tiny_cfg()
    m = calibrated_model(cfg)
    x = images(cfg, 2)
    _, g = quantize_graph(lower(m), x)
    b = _build(tmp_path, g, "sim", 2, "bad")
    np.save(tmp_path / "wrong.npy", np.zeros((2, 3, 16, 16), np.float32))
    with pytest.raises(SpikegateError, match="channels"):
        verify(b, str(tmp_path / "wrong.npy"))
    with pytest.raises(SpikegateError, match="--sim"):
        np.save(tmp_path / "x.npy", x)
        verify(b, str(tmp_path / "x.npy"), sim="modelsim")
    with pytest.raises(SpikegateError, match="--waves needs --sim verilator"):
        verify(b, str(tmp_path / "x.npy"), sim="icarus", waves=str(tmp_path / "w.vcd"))
    with pytest.raises(SpikegateError, match="--waves .*is a directory"):
        verify(b, str(tmp_path / "x.npy"), waves=str(tmp_path))
    with pytest.raises(SpikegateError, match="--backpressure must be a probability"):
        verify(b, str(tmp_path / "x.npy"), backpressure=1.0)
    os.remove(os.path.join(b, "accelerator.v"))
    with pytest.raises(SpikegateError, match="accelerator.v is missing"):
        verify(b, str(tmp_path / "x.npy"))
    with pytest.raises(SpikegateError, match="not a spikegate build directory"):
        verify(str(tmp_path), str(tmp_path / "x.npy"))
