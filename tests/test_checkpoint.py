"""Checkpoint import: layouts, inference, and every kind of bad input."""

import argparse
import os
import pickle

import numpy as np
import pytest
import torch

from spikegate.errors import CheckpointError
from spikegate.quantize import model as M
from spikegate.quantize.checkpoint import infer_config, load_checkpoint, load_model

from conftest import fixture_path, run_cli


@pytest.fixture(scope="module")
def tiny_sd():
    torch.manual_seed(0)
    return M.build(M.preset("fpga-tiny").replace(kd=True)).state_dict()


def test_bare_state_dict_with_module_prefix_and_kd(tmp_path, tiny_sd):
    p = tmp_path / "bare.pth"
    torch.save({"module." + k: v for k, v in tiny_sd.items()}, p)
    model, ck = load_model(str(p), heads=2)
    assert model.cfg.kd and model.cfg.embed_dim == (4, 8, 16, 16) and model.cfg.in_channels == 1
    assert model.cfg.depths == (1, 1) and model.cfg.num_classes == 10 and model.cfg.T == 1


def test_official_layout_T_from_args(tmp_path, tiny_sd):
    p = tmp_path / "ck.pth"
    torch.save({"model": tiny_sd, "optimizer": {}, "epoch": 3,
                "args": argparse.Namespace(time_steps=4, input_size=16)}, p)
    ck = load_checkpoint(str(p))
    cfg = infer_config(ck, heads=2)
    assert cfg.T == 4 and cfg.img_size == 16 and ck.epoch == 3


def test_heads_default_to_eight_and_override():
    ck = load_checkpoint(fixture_path("small_t1.pth"))
    assert infer_config(ck).num_heads == 8
    assert infer_config(ck, heads=4).num_heads == 4


def test_malicious_pickle_is_refused_and_not_executed(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    p = tmp_path / "evil.pth"
    torch.save({"model": {"x": torch.zeros(1)}, "payload": Evil()}, p)
    rc, out, err = run_cli(["info", p], capsys)
    assert rc == 2
    assert "refused" in err and ("os.system" in err or "posix.system" in err)
    assert len(err.strip().splitlines()) == 1
    assert not marker.exists()


def test_plain_pickle_with_code_is_refused(tmp_path):
    marker = tmp_path / "pwned2"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    p = tmp_path / "evil.pkl"
    with open(p, "wb") as f:
        pickle.dump(Evil(), f)
    with pytest.raises(CheckpointError):
        load_checkpoint(str(p))
    assert not marker.exists()


def _one_line_error(capsys, argv, *needles):
    rc, out, err = run_cli(argv, capsys)
    assert rc == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], lines[0]
    return lines[0]


def test_missing_file(capsys, tmp_path):
    _one_line_error(capsys, ["info", tmp_path / "nope.pth"], "no such file")


def test_not_a_checkpoint(capsys, tmp_path):
    p = tmp_path / "junk.pth"
    p.write_bytes(b"this is not a checkpoint at all")
    _one_line_error(capsys, ["info", p], "not a PyTorch checkpoint")


def test_missing_and_unexpected_keys_are_listed(capsys, tmp_path, tiny_sd):
    sd = dict(tiny_sd)
    sd.pop("block3.0.attn.q_conv.1.weight")
    sd["block3.0.attn.extra.weight"] = torch.zeros(3)
    p = tmp_path / "keys.pth"
    torch.save(sd, p)
    line = _one_line_error(capsys, ["info", p, "--heads", "2"], "missing keys", "unexpected keys")
    assert "block3.0.attn.q_conv.1.weight" in line and "block3.0.attn.extra.weight" in line


def test_shape_mismatch_names_layer_and_shapes(capsys, tmp_path, tiny_sd):
    sd = dict(tiny_sd)
    sd["block4.0.mlp.fc1_conv.weight"] = torch.zeros(63, 16, 1)
    p = tmp_path / "shape.pth"
    torch.save(sd, p)
    _one_line_error(capsys, ["info", p, "--heads", "2"], "block4.0.mlp.fc1_conv.weight", "(63, 16, 1)",
                    "(64, 16, 1)")


def test_not_meta_spikeformer(capsys, tmp_path):
    p = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, p)
    _one_line_error(capsys, ["info", p], "downsample1_1.encode_conv.weight")


@pytest.mark.parametrize("shape,needle", [((3, 32, 32), "rank 3"), ((2, 1, 32, 32), "1 channels")])
def test_infer_rejects_bad_inputs(capsys, tmp_path, shape, needle):
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(shape, np.float32))
    _one_line_error(capsys, ["infer", fixture_path("small_t1.pth"), "--inputs", x, "--out", tmp_path / "y.npy"],
                    needle)
    assert not (tmp_path / "y.npy").exists()


def test_infer_nan_and_wrong_dtype(capsys, tmp_path):
    x = tmp_path / "x.npy"
    a = np.zeros((1, 3, 32, 32), np.float32)
    a[0, 0, 0, 0] = np.nan
    np.save(x, a)
    _one_line_error(capsys, ["infer", fixture_path("small_t1.pth"), "--inputs", x, "--out", tmp_path / "y.npy"],
                    "NaN")
    np.save(x, np.array([["a"]]))
    _one_line_error(capsys, ["infer", fixture_path("small_t1.pth"), "--inputs", x, "--out", tmp_path / "y.npy"],
                    "dtype")


def test_infer_cli_writes_logits(capsys, tmp_path):
    data = np.load(fixture_path("small_t4.npz"))
    x = tmp_path / "x.npy"
    np.save(x, data["inputs"])
    rc, out, err = run_cli(["infer", fixture_path("small_t4.pth"), "--inputs", x, "--out", tmp_path / "y.npy"],
                           capsys)
    assert rc == 0, err
    y = np.load(tmp_path / "y.npy")
    # README: the official fixtures reproduce their logits exactly (max error 0.0)
    assert y.shape == (4, 10)
    np.testing.assert_array_equal(y, data["logits"])


def test_info_json_keys(capsys):
    import json
    rc, out, err = run_cli(["info", fixture_path("small_t4.pth"), "--json"], capsys)
    d = json.loads(out)
    assert rc == 0 and d["params"] == 901674 and d["embed_dim"] == [16, 32, 64, 80]
    assert d["num_classes"] == 10 and d["T"] == 4 and d["kd"] is False
    rc, out, err = run_cli(["info", "--preset", "meta-spikeformer-55m", "--json"], capsys)
    assert json.loads(out)["params"] == 55_350_248


def test_cli_help_lists_every_verb(capsys):
    rc, out, err = run_cli(["--help"], capsys)
    for verb in ("info", "infer", "quantize", "ir", "golden"):
        assert f"    {verb}" in out
