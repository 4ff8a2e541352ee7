"""Integer ONNX export: onnxruntime must reproduce the golden model's int64 logits exactly."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from spikegate.errors import SpikegateError
from spikegate.quantize.checkpoint import load_model, resolve_checkpoint
from spikegate.quantize.golden import execute
from spikegate.quantize.graph import Graph, Op
from spikegate.quantize.irfile import save_ir
from spikegate.quantize.lower import lower
from spikegate.quantize.model import PRESETS, build
from spikegate.quantize.onnx_int import build_int_onnx, export_int_onnx
from spikegate.quantize.quantizer import quantize_graph

from conftest import fixture_path, run_cli


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models on a shared 2-core machine: one thread avoids OpenMP spin-waits."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ort(path: str, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["images"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    y = sess.run(["logits"], {"images": np.asarray(x, dtype=np.float32)})[0]
    assert y.dtype == np.int64
    return y


def _assert_exact(path: str, g: Graph, x: np.ndarray, T: int | None = None, what: str = "") -> None:
    got = _ort(path, x)
    want = execute(g, x, T=T, check_widths=T is None)  # the head's declared width is for the IR's T
    assert got.shape == want.shape, what
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{what}: {len(bad)} logits differ, first at {bad[0]}: {got[tuple(bad[0])]} vs " \
                          f"{want[tuple(bad[0])]}"


def _assert_every_op_exact(g: Graph, x: np.ndarray, T: int | None = None, what: str = "") -> None:
    """Every op's tensor (not only the logits, which few off-by-ones reach) equals the golden one."""
    names = [o.name for o in g.ops if o.kind != "head"]
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(build_int_onnx(g, T, debug_outputs=names).SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"images": x.astype(np.float32)})))
    tr: dict = {}
    want = execute(g, x, T=T, trace=tr, keep=set(names), check_widths=T is None)
    assert np.array_equal(got["logits"], want), what
    for n in names:
        assert got[f"debug/{n}"].shape == tr[n].shape, (what, n)
        assert np.array_equal(got[f"debug/{n}"], tr[n]), f"{what}: op {n} differs"


def _hard_inputs(g: Graph, n: int, seed: int) -> np.ndarray:
    """Random images plus the cases that break a careless export: pixels that clip (+-10 and
    beyond), and pixels exactly on a rounding tie of the input quantiser (half up, also negative)."""
    print(f"random inputs: seed {seed}")
    rng = np.random.default_rng(seed)
    C, H, W = g.ops[0].shape
    scale = float(g.ops[0].attrs["scale"])
    x = rng.normal(0.0, 1.5, (n, C, H, W)).astype(np.float32)
    x[0] = rng.choice(np.array([-10.0, 10.0, -1e6, 1e6, 0.0], np.float32), size=(C, H, W))
    ties = (rng.integers(-140, 140, (C, H, W)) + 0.5) / scale  # exact in float32: scale is 2**k
    x[1] = ties.astype(np.float32)
    assert np.array_equal(x[1].astype(np.float64), ties)
    x[2] = np.where(rng.random((C, H, W)) < 0.5, 10.0, -10.0)
    return x


# ---------------------------------------------------------------------------------------------
# The official fixtures
# ---------------------------------------------------------------------------------------------

_IRS: dict = {}


def _fixture_ir(name: str):
    if name not in _IRS:
        data = np.load(fixture_path(name + ".npz"))
        model, _ = load_model(fixture_path(name + ".pth"))
        _, g = quantize_graph(lower(model), data["inputs"], weight_bits=8)
        _IRS[name] = (g, data["inputs"])
    return _IRS[name]


@pytest.mark.parametrize("name,seed", [("small_t1", 11), ("small_t4", 12)])
def test_official_fixtures_are_exact(tmp_path, name, seed):
    g, x = _fixture_ir(name)
    sgir = tmp_path / "m.sgir"
    save_ir(g, str(sgir))
    out = tmp_path / "int.onnx"
    export_int_onnx(str(sgir), str(out))  # from the file, as the CLI does
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto, full_check=True)
    ops = {n.op_type for n in proto.graph.node}
    assert "Conv" not in ops and "ConvInteger" not in ops and "MatMul" in ops
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
    T = int(g.meta["T"])
    assert sum(n.op_type == "GreaterOrEqual" for n in proto.graph.node) == T * len(g.lif_ops())
    _assert_exact(str(out), g, x, what=f"{name} fixture inputs")
    _assert_exact(str(out), g, _hard_inputs(g, 5, seed), what=f"{name} random inputs (seed {seed})")
    _assert_exact(str(out), g, x[:1], what=f"{name} batch of 1")
    _assert_every_op_exact(g, _hard_inputs(g, 3, seed + 100), what=f"{name} every op (seed {seed + 100})")


def test_export_is_deterministic_atomic_and_takes_T(tmp_path):
    g, x = _fixture_ir("small_t1")
    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    export_int_onnx(g, str(a))
    export_int_onnx(g.copy(), str(b))
    assert a.read_bytes() == b.read_bytes()
    assert [f for f in os.listdir(tmp_path) if f.startswith(".tmp")] == []
    # another T: the unrolled loop carries the LIF state (T = 1 never exercises the leak)
    t3 = tmp_path / "t3.onnx"
    export_int_onnx(g, str(t3), T=3)
    assert {p.key: p.value for p in onnx.load(str(t3)).metadata_props}["spikegate.T"] == "3"
    _assert_exact(str(t3), g, _hard_inputs(g, 4, 13), T=3, what="small_t1 at T=3")
    # failures leave nothing behind
    with pytest.raises(SpikegateError, match="T must be >= 1"):
        export_int_onnx(g, str(tmp_path / "bad.onnx"), T=0)
    with pytest.raises(SpikegateError, match="does not exist"):
        export_int_onnx(g, str(tmp_path / "nodir" / "x.onnx"))
    assert sorted(os.listdir(tmp_path)) == ["a.onnx", "b.onnx", "t3.onnx"]


def test_cli_export_onnx_of_ir(tmp_path, capsys):
    g, x = _fixture_ir("small_t1")
    sgir = tmp_path / "model.sgir"
    save_ir(g, str(sgir))
    out = tmp_path / "int.onnx"
    rc, _, err = run_cli(["export-onnx", sgir, "-o", out], capsys)
    assert rc == 0, err
    export_int_onnx(g, str(tmp_path / "direct.onnx"))
    assert out.read_bytes() == (tmp_path / "direct.onnx").read_bytes()
    _assert_exact(str(out), g, x, what="CLI export")
    rc, _, err = run_cli(["export-onnx", sgir, "-o", tmp_path / "t2.onnx", "--T", "2"], capsys)
    assert rc == 0, err
    _assert_exact(str(tmp_path / "t2.onnx"), g, x, T=2, what="CLI export --T 2")


# ---------------------------------------------------------------------------------------------
# A hand-made IR with the op variants the official models do not use
# ---------------------------------------------------------------------------------------------

def _synthetic_graph(seed: int = 5) -> Graph:
    """quant_input -> grouped conv (mixed left/right shifts) -> LIF on a t-independent input ->
    depthwise conv with a channel multiplier, stride 2 -> LIF -> dense conv; + a 5x5/s2 conv of the
    image (t-independent, so the add tiles it) -> LIF -> q/k/v -> attention -> LIF -> spatial sum ->
    LIF -> two heads. No declared widths: multi-bit MatMuls take the int64 path."""
    rng = np.random.default_rng(seed)

    def w(*shape, lim=60):
        return rng.integers(-lim, lim + 1, shape).astype(np.int64)

    def conv(name, src, shape, cin, k, s, p, groups, in_kind, role, shift=None):
        cout = shape[0]
        return Op(name, "conv", [src], shape,
                  {"kernel": k, "stride": s, "padding": p, "groups": groups, "in_kind": in_kind, "role": role},
                  {"weight": w(cout, cin // groups, k, k), "bias": w(cout, lim=200),
                   "shift": np.zeros(cout, np.int64) if shift is None else np.asarray(shift, np.int64)})

    def lif(name, src, shape):
        return Op(name, "lif", [src], shape, {"public_shape": "CHW"}, {"threshold": np.ones(shape[0], np.int64)})

    ops = [
        Op("input", "quant_input", [], (4, 8, 8), {"scale": 16.0, "bits": 8, "channels": 4, "size": 8}),
        conv("c1", "input", (6, 8, 8), 4, 3, 1, 1, 2, "int", "stream", shift=[-3, -1, 0, 2, -2, 1]),
        lif("l1", "c1", (6, 8, 8)),
        conv("c2", "l1", (12, 4, 4), 6, 3, 2, 1, 6, "spike", "lif", shift=[0, 1] * 6),
        lif("l2", "c2", (12, 4, 4)),
        conv("c3", "l2", (6, 4, 4), 12, 3, 1, 1, 1, "spike", "stream", shift=[3] * 6),
        conv("c4", "input", (6, 4, 4), 4, 5, 2, 2, 1, "int", "stream", shift=[-6, -5, -4, -6, -5, -7]),
        Op("a1", "add", ["c4", "c3"], (6, 4, 4)),
        lif("l3", "a1", (6, 4, 4)),
        conv("q", "l3", (6, 4, 4), 6, 1, 1, 0, 1, "spike", "lif"),
        lif("ql", "q", (6, 4, 4)),
        conv("k", "l3", (6, 4, 4), 6, 1, 1, 0, 1, "spike", "lif"),
        lif("kl", "k", (6, 4, 4)),
        conv("v", "l3", (6, 4, 4), 6, 3, 1, 1, 1, "spike", "lif"),
        lif("vl", "v", (6, 4, 4)),
        Op("att", "attention", ["ql", "kl", "vl"], (6, 4, 4), {"heads": 2}),
        lif("al", "att", (6, 4, 4)),
        Op("ss", "spatial_sum", ["al"], (6,)),
        lif("lif", "ss", (6,)),
        Op("head", "head", ["lif"], (5,), {"num_heads_out": 2}, {"weight": w(2, 5, 6), "bias": w(2, 5)}),
    ]
    g = Graph(ops, meta={"T": 3, "logit_scale": 1.0})
    # thresholds from the data, layer by layer, so every LIF fires sometimes and not always
    x = rng.normal(0, 1, (16, 4, 8, 8))
    for o in g.lif_ops():
        tr: dict = {}
        execute(g, x, trace=tr, keep={o.inputs[0]}, check_widths=False)
        cur = tr[o.inputs[0]]
        cur = np.moveaxis(cur, 2, 0).reshape(cur.shape[2], -1)
        o.params["threshold"] = np.maximum(1, np.quantile(cur, 0.7, axis=1) // 2).astype(np.int64)
    return g


def test_synthetic_graph_with_groups_multiplier_and_mixed_shifts(tmp_path):
    g = _synthetic_graph()
    out = tmp_path / "syn.onnx"
    export_int_onnx(g, str(out))
    x = _hard_inputs(g, 12, 14)
    tr: dict = {}
    want = execute(g, x, trace=tr)
    rates = {n: float(s.mean()) for n, (s, _) in tr.items()}
    assert all(0.0 < r < 1.0 for r in rates.values()), rates  # the test means something
    assert np.array_equal(_ort(str(out), x), want)
    _assert_every_op_exact(g, x, what="synthetic, every op")
    _assert_every_op_exact(g, x, T=1, what="synthetic at T=1, every op")
    export_int_onnx(g, str(tmp_path / "t1.onnx"), T=1)
    _assert_exact(str(tmp_path / "t1.onnx"), g, x, T=1, what="synthetic at T=1")


# ---------------------------------------------------------------------------------------------
# The digits models (the embedded default, when present; a random model of its preset always)
# ---------------------------------------------------------------------------------------------

def test_random_digits_preset_model_at_T2_and_16_bit_weights(tmp_path):
    from spikegate.quantize.data import digits_split_xy

    torch.manual_seed(3)
    model = build(PRESETS["fpga-digits"].replace(T=2))
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.3, 2.0)
                mod.weight.uniform_(0.6, 1.6)
                mod.bias.uniform_(0.0, 1.2)
    model.eval()
    size = model.cfg.img_size
    x_cal, _ = digits_split_xy("train", size, n=64)
    x_te, _ = digits_split_xy("test", size, n=24)
    for wb in (8, 16):
        _, g = quantize_graph(lower(model), x_cal, weight_bits=wb)
        out = tmp_path / f"w{wb}.onnx"
        export_int_onnx(g, str(out))
        _assert_exact(str(out), g, x_te, what=f"random fpga-digits, {wb}-bit weights")
        _assert_exact(str(out), g, _hard_inputs(g, 4, 15 + wb), what=f"random fpga-digits, {wb}-bit, hard")
        _assert_every_op_exact(g, x_te[:8], what=f"random fpga-digits, {wb}-bit, every op")


@pytest.mark.parametrize("name", ["default", "fpga-tiny-t2"])
def test_embedded_checkpoint_on_held_out_digits(tmp_path, name):
    if not os.path.exists(resolve_checkpoint(name)):
        pytest.fail(f"embedded checkpoint {name!r} is missing: {resolve_checkpoint(name)} (it ships in quantize/data/)")
    from spikegate.quantize.data import digits_split_xy
    from spikegate.quantize.pipeline import quantize_checkpoint

    g, _ = quantize_checkpoint(name, calib="digits")
    out = tmp_path / f"{name}.onnx"
    export_int_onnx(g, str(out))
    x, _ = digits_split_xy("test", g.ops[0].attrs["size"], n=32)
    _assert_exact(str(out), g, x, what=f"{name} on 32 held-out digits")
