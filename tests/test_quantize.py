"""Quantizer and IR: exact conversion before rounding, range analysis, .sgir validation, bad input."""

import json
import os
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from spikegate.errors import SpikegateError
from spikegate.quantize import intops
from spikegate.quantize.checkpoint import load_model
from spikegate.quantize.golden import WidthError, execute
from spikegate.quantize.irfile import IRFileError, load_ir, save_ir, to_bytes
from spikegate.quantize.lower import check_supported, lower
from spikegate.quantize.quantizer import quantize_graph
from spikegate.quantize.ranges import RangeError, analyse, check_widths

from conftest import fixture_path, run_cli


# README: "the rescaled graph reproduces the fixtures to 3.2e-7 before rounding" (measured: 3.13e-7 on
# small_t1, 1.64e-7 on small_t4, the same for the lowered graph before rescaling; the fixtures' logits
# are float32, the graphs run in float64).
FLOAT_GRAPH_TOL = 3.2e-7

# The integer golden model's logits on the fixtures' inputs at 8-bit weights (deterministic; measured
# with execute(quantize_graph(lower(model), inputs, weight_bits=8)[1], inputs)). The official models
# have random weights: rounding them flips spikes that cascade through every layer, so these logits
# are not close to the float ones; they pin the quantiser and golden model against any change. Their
# range analysis would need 47-bit membranes: 17 residual adds saturate at 31 bits (issue 23), and
# these inputs hit the clamps (12,605 values on small_t1, 50,620 on small_t4).
FIXTURE_INT_LOGITS = {
    "small_t1": [[-115, 309, -70, -12, 31, 81, 123, -92, 79, -74],
                 [-92, -24, -185, -112, -99, -84, 173, -114, -243, -84],
                 [-102, -22, -507, -57, 272, 0, -111, 77, -187, -130],
                 [12, 177, -163, -182, 144, 75, 367, 73, -195, -10]],
    "small_t4": [[-935, 117, -688, 744, -61, 29, 73, 83, 85, -1030],
                 [-727, 651, -112, 689, 435, 186, 95, 147, -74, -1381],
                 [-453, 272, -434, 410, 336, 436, 321, -485, -110, -823],
                 [-163, -88, -134, 1010, 51, -128, -59, -283, 497, -1083]],
}


def test_lowered_and_rescaled_graphs_reproduce_official_logits(official):
    ck, data = official
    model, _ = load_model(ck)
    g0 = lower(model)
    assert np.abs(execute(g0, data["inputs"], mode="float") - data["logits"]).max() <= FLOAT_GRAPH_TOL
    g1, g2 = quantize_graph(g0, data["inputs"], weight_bits=8)
    # rescaled (thresholds integer, attention x8, shifts), nothing rounded yet
    assert np.abs(execute(g1, data["inputs"], mode="float") - data["logits"]).max() <= FLOAT_GRAPH_TOL
    for o in g1.lif_ops():
        th = np.asarray(o.params["threshold"])
        assert np.array_equal(th, np.round(th))
    logits = execute(g2, data["inputs"])
    name = os.path.basename(ck)[:-len(".pth")]
    assert logits.dtype == np.int64
    np.testing.assert_array_equal(logits, np.array(FIXTURE_INT_LOGITS[name], np.int64))
    assert max(v for o in g2.ops for k, v in o.widths.items() if k != "wide" and o.kind != "conv") <= 32


def test_split_repconv_is_exact_and_smaller(official):
    """``--repconv split`` keeps each attention RepConv as its 1x1 (padding 1: the BN's value at
    the border), depthwise 3x3 and 1x1 convolutions: the lowered and the rescaled graphs still
    reproduce the official logits, with fewer weights, every width within the cap, and each
    integer that another conv multiplies within INT_OUTPUT_BITS on the calibration data."""
    from spikegate.quantize.quantizer import INT_OUTPUT_BITS

    ck, data = official
    model, _ = load_model(ck)
    x = data["inputs"]
    g0m, g0 = lower(model), lower(model, repconv="split")
    assert np.abs(execute(g0, x, mode="float") - data["logits"]).max() <= FLOAT_GRAPH_TOL
    n = {k: sum(o.params["weight"].size for o in g.ops if "weight" in o.params) for k, g in (("m", g0m), ("s", g0))}
    assert n["s"] < 0.5 * n["m"]
    split = [o for o in g0.ops if o.name.endswith(".dw")]
    assert split and all(o.attrs["in_kind"] == "int" and o.attrs["groups"] == o.shape[0] for o in split)
    g1, g2 = quantize_graph(g0, x, weight_bits=8)
    assert np.abs(execute(g1, x, mode="float") - data["logits"]).max() <= FLOAT_GRAPH_TOL
    assert max(v for o in g2.ops for k, v in o.widths.items() if k != "wide" and o.kind != "conv") <= 32
    # the integers another conv multiplies are proven within INT_OUTPUT_BITS (no clamp), and a
    # channel shifted right needs its last bit (one bit less would have done: shifted too far)
    shifted = 0
    for o in g2.ops:
        if o.kind == "conv" and o.attrs["role"] == "int":
            assert o.widths["out"] <= INT_OUTPUT_BITS and not o.attrs.get("saturate"), o.name
            shifted += int((np.asarray(o.params["shift"]) < 0).sum())
    assert shifted
    with pytest.raises(SpikegateError, match="repconv"):
        lower(model, repconv="dense")


@pytest.fixture(scope="module")
def t1_ir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ir")
    data = np.load(fixture_path("small_t1.npz"))
    np.save(d / "x.npy", data["inputs"])
    model, _ = load_model(fixture_path("small_t1.pth"))
    _, g = quantize_graph(lower(model), data["inputs"], weight_bits=8)
    path = d / "t1.sgir"
    save_ir(g, str(path))
    return str(path), g, data["inputs"]


def test_ir_roundtrip_is_exact_and_deterministic(t1_ir):
    path, g, x = t1_ir
    g2 = load_ir(path)
    assert to_bytes(g2) == open(path, "rb").read()
    np.testing.assert_array_equal(execute(g, x), execute(g2, x))


def test_quantize_is_deterministic(tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.load(fixture_path("small_t1.npz"))["inputs"])
    outs = []
    for i in range(2):
        rc, out, err = run_cli(["quantize", fixture_path("small_t1.pth"), "--calib", x, "-o", tmp_path / f"{i}.sgir",
                                "--verbose"], capsys)
        assert rc == 0, err
        outs.append((tmp_path / f"{i}.sgir").read_bytes())
    assert outs[0] == outs[1]
    assert "downsample1_1.encode_conv" in out and "argmax agreement" in out


def _rewrite(src, dst, edit_json=None, edit_member=None):
    with zipfile.ZipFile(src) as zi, zipfile.ZipFile(dst, "w") as zo:
        for info in zi.infolist():
            data = zi.read(info.filename)
            if info.filename == "ir.json" and edit_json:
                h = json.loads(data)
                edit_json(h)
                data = json.dumps(h).encode()
            if edit_member and info.filename == edit_member[0]:
                data = edit_member[1](data)
            zo.writestr(info, data)


def test_truncated_and_tampered_ir_are_rejected(t1_ir, tmp_path, capsys):
    path, g, _ = t1_ir
    raw = open(path, "rb").read()
    cases = {}
    (tmp_path / "trunc.sgir").write_bytes(raw[: len(raw) // 2])
    cases["trunc.sgir"] = "truncated"

    def bump_version(h):
        h["version"] = 99
    _rewrite(path, tmp_path / "ver.sgir", edit_json=bump_version)
    cases["ver.sgir"] = "newer spikegate"

    def shrink_width(h):
        op = next(o for o in h["ops"] if o["name"] == "block3.0.attn.q_lif")
        op["widths"]["membrane"] = 4
    _rewrite(path, tmp_path / "width.sgir", edit_json=shrink_width)
    cases["width.sgir"] = "block3.0.attn.q_lif"

    member = next(n for n in zipfile.ZipFile(path).namelist() if n.endswith("_threshold.npy"))
    _rewrite(path, tmp_path / "tensor.sgir", edit_member=(member, lambda b: b[:-8] + (7).to_bytes(8, "little")))
    cases["tensor.sgir"] = "sha256"

    def drop_param(h):
        h["ops"][1]["params"].pop("bias")
    _rewrite(path, tmp_path / "param.sgir", edit_json=drop_param)
    cases["param.sgir"] = "missing parameters"

    def unknown_kind(h):
        h["ops"][3]["kind"] = "softmax"
    _rewrite(path, tmp_path / "kind.sgir", edit_json=unknown_kind)
    cases["kind.sgir"] = "unknown op kind 'softmax'"

    (tmp_path / "notzip.sgir").write_bytes(b"hello")
    cases["notzip.sgir"] = "not an .sgir"
    for name, needle in cases.items():
        rc, out, err = run_cli(["ir", "show", tmp_path / name], capsys)
        assert rc == 2, name
        assert needle in err and len(err.strip().splitlines()) == 1, (name, err)


def test_width_too_small_is_refused_and_caught_at_run_time(t1_ir):
    _, g, x = t1_ir
    bad = g.copy()
    op = next(o for o in bad.ops if o.name == "ConvBlock1_1.0.conv1")
    op.widths["out"] -= 3
    with pytest.raises(RangeError, match="ConvBlock1_1.0.conv1.*range analysis needs"):
        check_widths(bad)
    with pytest.raises(WidthError, match="ConvBlock1_1.0.conv1"):
        execute(bad, x)


def _lif_stays_within_widths_on_extreme_inputs(o, src, steps: int = 64, seed: int = 0) -> None:
    """Drive a LIF ``steps`` times with its input's range bounds (per channel, from the range
    analysis): all at the low bound, all at the high bound, and a random mix of both every step;
    its membrane and carried state must stay within their declared widths at every step."""
    lo = np.asarray(src["lo"], np.int64).reshape(-1, *([1] * (len(o.shape) - 1)))
    hi = np.asarray(src["hi"], np.int64).reshape(lo.shape)
    th = np.asarray(o.params["threshold"], np.int64).reshape(lo.shape)
    rng = np.random.default_rng(seed)
    for pattern in ("low", "high", "mixed"):
        v = np.zeros(o.shape, np.int64)
        for _ in range(steps):
            x = {"low": lo, "high": hi}.get(pattern)
            if x is None:
                x = np.where(rng.random(o.shape) < 0.5, lo, hi)
            _, v, h2 = intops.lif_step(v, np.broadcast_to(x, o.shape), th)
            assert intops.fits(h2, o.widths["membrane"]), (o.name, pattern, int(h2.min()), int(h2.max()))
            assert intops.fits(v, o.widths["state"]), (o.name, pattern, int(v.min()), int(v.max()))


def test_all_ones_spikes_and_extreme_pixels_stay_within_widths(t1_ir):
    _, g, _ = t1_ir
    bounds = analyse(g)
    assert sum(o.kind == "lif" for o in g.ops) > 0
    for o in g.ops:
        if o.kind == "conv" and o.attrs["in_kind"] == "spike":
            C = o.params["weight"].shape[1] * o.attrs["groups"]
            src = next(p for p in g.ops if p.name == o.inputs[0])
            for fill in (0, 1):
                x = np.full((1, 1, C) + tuple(src.shape[1:]), fill)
                y = intops.conv(x, o.params["weight"], o.params["bias"], stride=o.attrs["stride"],
                                padding=o.attrs["padding"], groups=o.attrs["groups"], shift=o.params["shift"])
                assert intops.fits(y, o.widths["out"]), o.name
        if o.kind == "lif":  # worst-case input every step, long run
            _lif_stays_within_widths_on_extreme_inputs(o, bounds[o.inputs[0]])
    # and a whole-network run at the extremes of the input width never leaves a declared width
    for v in (-10.0, 10.0):
        execute(g, np.full((2, 3, 32, 32), v, np.float32))


def test_weight_bits_table_runs_for_4_6_8(t1_ir):
    data = np.load(fixture_path("small_t1.npz"))
    model, _ = load_model(fixture_path("small_t1.pth"))
    g0 = lower(model)
    for wb in (4, 6, 8):
        _, g = quantize_graph(g0, data["inputs"], weight_bits=wb)
        for o in g.ops:
            if "weight" in o.params:
                assert np.abs(o.params["weight"]).max() <= 2 ** (wb - 1) - 1


def test_unsupported_layers_are_listed_by_name():
    model, _ = load_model(fixture_path("small_t1.pth"))
    model.block3[0].extra = nn.GELU()
    model.block4[1].mlp.drop = nn.Dropout(0.1)
    with pytest.raises(SpikegateError) as e:
        check_supported(model)
    assert "block3.0.extra (GELU)" in str(e.value) and "block4.1.mlp.drop (Dropout)" in str(e.value)


@pytest.mark.parametrize("argv_extra,needle", [
    (["--weight-bits", "3"], "--weight-bits must be in 4..16"),
    (["--weight-bits", "17"], "--weight-bits must be in 4..16"),
])
def test_quantize_bad_options(tmp_path, capsys, argv_extra, needle):
    rc, out, err = run_cli(["quantize", fixture_path("small_t1.pth"), "-o", tmp_path / "m.sgir"] + argv_extra, capsys)
    assert rc == 2 and needle in err and not (tmp_path / "m.sgir").exists()


def test_quantize_bad_calibration(tmp_path, capsys):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((4, 1, 32, 32), np.float32))
    rc, out, err = run_cli(["quantize", fixture_path("small_t1.pth"), "--calib", x, "-o", tmp_path / "m.sgir"], capsys)
    assert rc == 2 and "--calib" in err and "1 channels" in err
    assert not (tmp_path / "m.sgir").exists()
    rc, out, err = run_cli(["quantize", fixture_path("small_t1.pth"), "-o", tmp_path / "m.sgir"], capsys)
    assert rc == 2 and "--calib X.npy" in err


def test_golden_cli_trace_layout(t1_ir, tmp_path, capsys):
    path, g, x = t1_ir
    np.save(tmp_path / "x.npy", x)
    rc, out, err = run_cli(["golden", path, "--inputs", tmp_path / "x.npy", "--out", tmp_path / "y.npy",
                            "--trace", tmp_path / "tr"], capsys)
    assert rc == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), execute(g, x))
    assert np.load(tmp_path / "tr" / "ConvBlock1_1.0.Conv.lif1.npy").shape == (1, 4, 8, 16, 16)
    assert np.load(tmp_path / "tr" / "block3.0.attn.attn_lif.npy").shape == (1, 4, 64, 4)
    assert np.load(tmp_path / "tr" / "block3.0.mlp.fc1_lif.npy").shape == (1, 4, 64, 4)
    assert np.load(tmp_path / "tr" / "lif.npy").shape == (1, 4, 80)
    assert np.load(tmp_path / "tr" / "lif.v.npy").dtype == np.int64
    assert np.load(tmp_path / "tr" / "lif.npy").dtype == np.uint8
    # spikes in the trace agree with the float model where it matters: same module names
    names = {f[:-4] for f in os.listdir(tmp_path / "tr") if f.endswith(".npy") and not f.endswith(".v.npy")}
    assert names == set(np.load(fixture_path("small_t1.npz"))["lif_names"])
