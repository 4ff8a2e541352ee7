"""ONNX export of the float model: onnxruntime must reproduce PyTorch (and the official logits)."""

from __future__ import annotations

import os
import sys
import types

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from conftest import fixture_path
from spikegate.cli import main
from spikegate.quantize.checkpoint import load_model, save_checkpoint
from spikegate.quantize.model import PRESETS, build, lif_modules
from spikegate.quantize.onnx_float import export_float_onnx

# README: "onnxruntime within 4e-7 of PyTorch" (measured on the official fixtures: 3.6e-7 for small_t1,
# 1.8e-7 for small_t4, the same against their stored logits; a single-sample batch equals its row of
# the full batch exactly).
TOL = 4e-7


@pytest.fixture(autouse=True)
def _one_thread():
    """The models here are tiny: one thread avoids OpenMP spin-waits on a shared 2-core machine
    (this halves the file's run time under load)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _ort(path: str, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["images"]
    assert [o.name for o in sess.get_outputs()] == ["logits"]
    return sess.run(["logits"], {"images": x.astype(np.float32)})[0]


def _torch(model, x: np.ndarray, T: int | None = None) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x), T=T).numpy()


def _random_model(cfg, seed: int):
    """A random model whose BatchNorms (eval, random running stats) make the LIFs fire."""
    torch.manual_seed(seed)
    m = build(cfg)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.3, 2.0)
                mod.weight.uniform_(0.6, 1.6)
                mod.bias.uniform_(0.0, 1.2)
    return m.eval()


def _fires(model, x: np.ndarray, T: int | None = None) -> dict[str, float]:
    rates = {}
    hooks = [mod.register_forward_hook(lambda _m, _i, out, n=name: rates.__setitem__(n, out.mean().item()))
             for name, mod in lif_modules(model)]
    try:
        _torch(model, x, T)
    finally:
        for h in hooks:
            h.remove()
    return rates


def _lif_ops(path: str) -> int:
    return sum(n.op_type == "GreaterOrEqual" for n in onnx.load(path).graph.node)


@pytest.mark.parametrize("name", ["small_t1", "small_t4"])
def test_official_fixtures(tmp_path, name):
    model, _ = load_model(fixture_path(f"{name}.pth"))
    ref = np.load(fixture_path(f"{name}.npz"))
    x, want = ref["inputs"], ref["logits"]
    rates = _fires(model, x)  # the comparison covers real spikes, attention included
    assert all(r > 0 for n, r in rates.items() if n.endswith("attn_lif"))
    out = str(tmp_path / f"{name}.onnx")
    info = export_float_onnx(model, out)
    assert info["T"] == model.cfg.T == (1 if name == "small_t1" else 4)
    assert os.listdir(tmp_path) == [f"{name}.onnx"]  # atomic write leaves no temporary behind
    # One GreaterOrEqual per LIF per time step: the loop is unrolled.
    assert _lif_ops(out) == model.cfg.T * len(lif_modules(model))
    got = _ort(out, x)
    assert got.shape == want.shape
    assert np.abs(got - _torch(model, x)).max() <= TOL
    assert np.abs(got - want).max() <= TOL
    # Dynamic batch: a single sample gives the same row.
    assert np.array_equal(_ort(out, x[1:2]), got[1:2])


def test_head_kd(tmp_path):
    cfg = PRESETS["fpga-tiny"].replace(kd=True, T=2, img_size=32)
    model = _random_model(cfg, seed=5)
    x = np.random.default_rng(0).normal(0, 3, (5, 1, 32, 32)).astype(np.float32)
    rates = _fires(model, x)
    assert rates["lif"] > 0 and sum(r > 0 for r in rates.values()) >= 0.9 * len(rates)
    out = str(tmp_path / "kd.onnx")
    export_float_onnx(model, out)
    want = _torch(model, x)
    assert np.ptp(want, axis=0).max() > 1e-2  # the logits depend on the input
    assert np.abs(_ort(out, x) - want).max() <= TOL


def test_two_channels_T3(tmp_path):
    cfg = PRESETS["fpga-tiny"].replace(in_channels=2, T=1, img_size=32)
    model = _random_model(cfg, seed=3)
    x = np.random.default_rng(0).normal(0, 3, (5, 2, 32, 32)).astype(np.float32)
    rates = _fires(model, x, T=3)
    assert rates["lif"] > 0 and sum(r > 0 for r in rates.values()) >= 0.9 * len(rates)
    out = str(tmp_path / "ev.onnx")
    info = export_float_onnx(model, out, T=3)  # T given at export, not the model's
    assert info["T"] == 3 and info["input"] == ["batch", 2, 32, 32]
    assert _lif_ops(out) == 3 * len(lif_modules(model))
    assert model.cfg.T == 1 and not model.training
    want = _torch(model, x, T=3)
    assert np.ptp(want, axis=0).max() > 1e-2
    assert np.abs(_ort(out, x) - want).max() <= TOL


def test_fixed_batch(tmp_path):
    model = _random_model(PRESETS["fpga-tiny"], seed=7)
    out = str(tmp_path / "b1.onnx")
    export_float_onnx(model, out, batch_dynamic=False)
    dims = onnx.load(out).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 1, 16, 16]


def test_cli_export(tmp_path, capsys):
    model = _random_model(PRESETS["fpga-tiny"].replace(T=2), seed=11)
    ckpt = str(tmp_path / "tiny.pth")
    save_checkpoint(model, ckpt)
    out = str(tmp_path / "tiny.onnx")
    assert main(["export-onnx", ckpt, "-o", out]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"wrote {out}") and "T=2" in lines[0]
    x = np.random.default_rng(2).uniform(0, 1, (2, 1, 16, 16)).astype(np.float32)
    assert np.abs(_ort(out, x) - _torch(model, x)).max() <= TOL

    assert main(["export-onnx", ckpt, "-o", out, "--T", "3"]) == 0
    assert "T=3" in capsys.readouterr().out
    assert _lif_ops(out) == 3 * len(lif_modules(model))
    assert np.abs(_ort(out, x) - _torch(model, x, T=3)).max() <= TOL


def test_cli_missing_checkpoint(tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["export-onnx", str(tmp_path / "nope.pth"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "nope.pth" in err and "no such file" in err
    assert not out.exists() and os.listdir(tmp_path) == []


def test_cli_bad_options(tmp_path, capsys):
    assert main(["export-onnx", "x.pth", "-o", str(tmp_path / "x.onnx"), "--T", "0"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    sgir = _ir_shaped_file(tmp_path / "m.model")   # recognised by content, whatever its name
    assert main(["export-onnx", str(sgir), "-o", str(tmp_path / "x.onnx"), "--heads", "2"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--heads" in err
    assert main(["export-onnx", str(tmp_path / "none.sgir"), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "none.sgir: no such file" in err


def _ir_shaped_file(path):
    """A file that ``is_ir_file`` recognises (a ZIP with an ir.json header); not a loadable IR."""
    import zipfile
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ir.json", "{}")
    return path


def test_cli_ir_dispatch(tmp_path, monkeypatch):
    calls = []
    fake = types.ModuleType("spikegate.quantize.onnx_int")
    fake.export_int_onnx = lambda path, out, **kw: calls.append((path, out, kw))
    monkeypatch.setitem(sys.modules, "spikegate.quantize.onnx_int", fake)
    sgir = _ir_shaped_file(tmp_path / "m.model")   # recognised by content, whatever its name
    out = str(tmp_path / "m.onnx")
    assert main(["export-onnx", str(sgir), "-o", out]) == 0
    assert main(["export-onnx", str(sgir), "-o", out, "--T", "2"]) == 0
    assert calls == [(str(sgir), out, {}), (str(sgir), out, {"T": 2})]
