"""An un-merged RepConv on the accelerator: a 1x1 convolution with padding 1 (padding >= kernel)
on spikes, a depthwise 3x3 on its multi-bit output (LANES_TAP in INT mode) and a 1x1 on that.
The ISS against the golden model here; the RTL against both in
``rtl_tests/test_accelerator.py`` (the ``repconv-*`` cases, same graph)."""

import numpy as np
import pytest

from spikegate.compiler.build import lower_to_program
from spikegate.compiler.passes.check_ops import UnsupportedOpError, check_ops
from spikegate.fuzz import check_graph
from spikegate.machine.program import IN_INT, LANES_TAP, OP_CONV, Instr, derived_values
from spikegate.quantize.golden import execute
from spikegate.rtl_tests.sfa_programs import repconv_graph


@pytest.mark.parametrize("T,lanes", [(1, 1), (2, 3), (2, 8)])
def test_iss_equals_golden_on_an_unmerged_repconv(T, lanes):
    """Logits and every LIF's spike count; the graph's integer paths carry values of both signs and
    the program really has the instructions under test."""
    g, x = repconv_graph(2, T=T)
    assert check_graph(g, x, lanes, rtl=None, workdir="") is None
    trace: dict = {}
    execute(g, x, trace=trace, keep={"rep_a", "rep_d", "rep_p"})
    for name in ("rep_a", "rep_d", "rep_p"):
        assert trace[name].min() < -50 and trace[name].max() > 50, name
    prog = lower_to_program(g, lanes)
    ins = {i.name: i for i in prog.instrs}
    a, d = ins["rep_a"], ins["rep_d"]
    assert (a.k, a.pad, a.ho, a.wo) == (1, 1, 8, 8)
    assert (d.lane_mode, d.in_kind, d.k, d.pad) == (LANES_TAP, IN_INT, 3, 0)


def test_multiplier_operand_covers_the_depthwise_input():
    """``mul_x_bits`` is the widest tensor an INT conv reads: here the depthwise conv's input (A's
    output), wider than the pixels and than the depthwise output the 1x1 after it reads, so a
    width taken from the dense INT convs alone would truncate it."""
    g, _ = repconv_graph(2)
    w = {o.name: o.widths["out"] for o in g.ops if "out" in o.widths}
    assert w["rep_a"] > max(w["input"], w["rep_d"])
    assert lower_to_program(g, 8).mul_x_bits == w["rep_a"]


def test_grouped_convs_that_are_not_depthwise_are_still_refused():
    g, _ = repconv_graph(2)
    assert check_ops(g) is g          # the depthwise conv on multi-bit inputs is accepted
    bad = g.copy()
    d = bad.op("rep_d")
    c = d.shape[0]
    d.attrs["groups"] = c // 2
    d.params["weight"] = np.ones((c, 2, 3, 3), dtype=np.int64)
    with pytest.raises(UnsupportedOpError, match="rep_d .grouped convolution that is not depthwise"):
        check_ops(bad)


def test_first_output_reached_with_padding_at_least_the_kernel():
    """``lo0`` (the deep scanner's start, ``derived_values``) is the first output row input row 0
    reaches, by brute force, also where the padding is as large as the kernel or larger (a 1x1
    with padding 1: input row 0 lands on output row 1)."""
    for k in (1, 2, 3):
        for pad in range(k, 8):
            for stride in (1, 2):
                ins = Instr(opcode=OP_CONV, k=k, pad=pad, stride=stride, h=9, w=9, ho=9, wo=9)
                reach = [o for o in range(32) if o * stride - pad <= 0 <= o * stride - pad + k - 1]
                v = derived_values(ins, 8)
                assert v["pad_s"] == pad >> (stride - 1)
                if reach:
                    assert v["lo0"] == min(reach), (k, pad, stride)
                else:               # (stride 2) it reaches none: the range lo0 .. pad_s is empty
                    assert v["lo0"] > v["pad_s"], (k, pad, stride)


def test_quantize_repconv_split_end_to_end(tmp_path, capsys):
    """``spikegate quantize --repconv split`` on a trained model: the IR has each attention
    RepConv as three convs (fewer weights), the held-out agreement it prints stays high, and the
    compiled program equals the golden model in the ISS on held-out digits."""
    from conftest import run_cli

    from spikegate.compiler import iss
    from spikegate.quantize.data import digits_split_xy
    from spikegate.quantize.irfile import load_ir

    paths = {m: str(tmp_path / f"{m}.sgir") for m in ("merge", "split")}
    for mode, path in paths.items():
        rc, out, err = run_cli(["quantize", "fpga-tiny-t2", "--calib", "digits", "--repconv", mode, "-o", path], capsys)
        assert rc == 0, err
    assert "argmax agreement 98.00%" in out      # the split model's, as the merged one's
    gm, gs = (load_ir(paths[m]) for m in ("merge", "split"))
    n = {k: sum(o.params["weight"].size for o in g.ops if "weight" in o.params) for k, g in (("m", gm), ("s", gs))}
    assert n["s"] < 0.7 * n["m"] and gs.meta["repconv"] == "split" and "repconv" not in gm.meta
    dws = [o for o in gs.ops if o.name.endswith(".dw")]
    assert dws and all(o.attrs["in_kind"] == "int" for o in dws)
    x, _ = digits_split_xy("test", 16)
    prog = lower_to_program(gs, 8)
    for r, logits in zip(iss.run_batch(prog, x[:3]), execute(gs, x[:3])):
        assert np.array_equal(r.logits, logits)
    rc, _, err = run_cli(["quantize", "fpga-tiny-t2", "--repconv", "dense", "-o", str(tmp_path / "x.sgir")], capsys)
    assert rc == 2 and "repconv" in err and not (tmp_path / "x.sgir").exists()
