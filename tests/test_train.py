"""Training on the digits: checkpoint layout, strict reload, determinism, and the train/eval verbs."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from spikeforge.cli import main
from spikeforge.quantize.checkpoint import load_model
from spikeforge.quantize.data import DIGITS_SIDE, digits_inputs, encode, load_digits_split
from spikeforge.quantize.model import preset
from spikeforge.quantize.train import train

HELD_OUT = 450  # 25 % of the 1797 digits


def _tiny_run(tmp_path, name, seed=0, n_train=96):
    out = tmp_path / f"{name}.pth"
    res = train(preset("fpga-tiny"), epochs=1, seed=seed, batch=32, out_path=str(out), progress=False,
                n_train=n_train, threads=1)
    return out, res


def _one_line_error(capsys, argv, fragment):
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc != 0
    assert len(err.splitlines()) == 1, err
    assert fragment in err, err


# Tests train with one thread: under `pytest -n 2` two workers already fill the two cores.

# -- data -------------------------------------------------------------------------------------

def test_split_is_fixed_stratified_and_exactly_encoded():
    x_tr, y_tr, x_te, y_te = load_digits_split(32)
    assert x_tr.shape == (1347, 1, 32, 32) and x_te.shape == (HELD_OUT, 1, 32, 32)
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int64 and y_te.dtype == np.int64
    assert np.bincount(y_te, minlength=10).min() >= 43  # stratified: every class 43..46 times
    k = x_te * 16
    assert np.array_equal(k, np.round(k)) and k.min() == 0 and k.max() == 16  # values k/16
    # Nearest-neighbour upscaling: every 4x4 block is one original pixel.
    assert np.array_equal(x_te[:, :, ::4, ::4].repeat(4, 2).repeat(4, 3), x_te)
    x16 = digits_inputs("test", img_size=16)
    assert np.array_equal(x16, x_te[:, :, ::2, ::2])
    _, _, x_te2, y_te2 = load_digits_split(32)
    assert np.array_equal(x_te, x_te2) and np.array_equal(y_te, y_te2)
    assert digits_inputs("train", 16, n=5).shape == (5, 1, 16, 16)
    with pytest.raises(ValueError, match="multiple of 8"):
        encode(np.zeros((1, DIGITS_SIDE, DIGITS_SIDE)), 20)


# -- training API -------------------------------------------------------------------------------

def test_checkpoint_has_official_layout_and_loads_strictly(tmp_path):
    out, res = _tiny_run(tmp_path, "a")
    with torch.serialization.safe_globals([argparse.Namespace]):
        raw = torch.load(out, map_location="cpu", weights_only=True)
    assert {"model", "optimizer", "epoch", "args"} <= set(raw)
    assert isinstance(raw["args"], argparse.Namespace)
    a = vars(raw["args"])
    assert a["time_steps"] == 1 and a["input_size"] == preset("fpga-tiny").img_size
    assert a["num_heads"] == preset("fpga-tiny").num_heads and a["data"] == "digits"
    model, ck = load_model(str(out), heads=a["num_heads"])  # strict
    assert model.cfg == preset("fpga-tiny")
    assert ck.epoch == 0
    sd = res["model"].state_dict()
    assert set(sd) == set(model.state_dict())
    assert all(torch.equal(sd[k], v) for k, v in model.state_dict().items())
    assert res["samples"] == HELD_OUT and 0 <= res["correct"] <= HELD_OUT
    assert res["top1"] == pytest.approx(100.0 * res["correct"] / HELD_OUT)


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    _, r1 = _tiny_run(tmp_path, "s0a", seed=0)
    _, r2 = _tiny_run(tmp_path, "s0b", seed=0)
    _, r3 = _tiny_run(tmp_path, "s1", seed=1)
    s1, s2, s3 = (r["model"].state_dict() for r in (r1, r2, r3))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert r1["correct"] == r2["correct"]
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_kd_trains_both_heads(tmp_path):
    from spikeforge.quantize.model import MetaSpikeFormer

    cfg = preset("fpga-tiny").replace(kd=True)
    out = tmp_path / "kd.pth"
    res = train(cfg, epochs=1, seed=5, batch=32, out_path=str(out), progress=False, n_train=64, threads=1)
    model, _ = load_model(str(out), heads=cfg.num_heads)
    assert model.kd and "head_kd.weight" in model.state_dict()
    torch.manual_seed(5)
    init = MetaSpikeFormer(cfg)  # train() draws its initial weights the same way
    m = res["model"]
    # Biases are not weight-decayed: they move only if the loss reaches both heads.
    assert not torch.equal(m.head.bias, init.head.bias)
    assert not torch.equal(m.head_kd.bias, init.head_kd.bias)


def test_bad_api_arguments():
    with pytest.raises(ValueError, match="epochs"):
        train(preset("fpga-tiny"), epochs=0, progress=False)
    with pytest.raises(ValueError, match="in_channels"):
        train(preset("fpga-events"), epochs=1, progress=False)


# -- CLI --------------------------------------------------------------------------------------

def test_cli_train_then_eval(tmp_path, capsys):
    out = tmp_path / "cli.pth"
    rc = main(["train", "--preset", "fpga-tiny", "--T", "2", "--epochs", "1", "--seed", "3",
               "--train-samples", "128", "--threads", "1", "-o", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert out.exists() and "held-out top-1" in text
    model, ck = load_model(str(out), heads=2)
    assert model.cfg.T == 2 and ck.args["seed"] == 3 and ck.args["epochs"] == 1
    assert ck.args["n_train"] == 128

    assert main(["eval", str(out), "--data", "digits", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["kind"] == "float" and rep["samples"] == HELD_OUT and rep["T"] == 2
    assert rep["heads"] == 2 and rep["img_size"] == preset("fpga-tiny").img_size
    assert rep["top1"] == pytest.approx(100.0 * rep["correct"] / HELD_OUT)
    assert main(["eval", str(out), "--T", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["T"] == 1


@pytest.mark.parametrize("argv, fragment", [
    (["train", "--epochs", "0", "-o", "{tmp}/x.pth"], "--epochs must be in 1.."),
    (["train", "--preset", "no-such-preset", "-o", "{tmp}/x.pth"], "unknown preset 'no-such-preset'"),
    (["train", "--T", "0", "-o", "{tmp}/x.pth"], "--T must be in 1..16"),
    (["train", "--T", "17", "-o", "{tmp}/x.pth"], "--T must be in 1..16"),
    (["train", "--lr", "-1", "-o", "{tmp}/x.pth"], "--lr must be in (0, 1]"),
    (["train", "--lr", "nan", "-o", "{tmp}/x.pth"], "--lr must be in (0, 1]"),
    (["train", "--heads", "3", "-o", "{tmp}/x.pth"], "divisible by num_heads=3"),
    (["train", "--preset", "fpga-events", "-o", "{tmp}/x.pth"], "the digits need 1 channel"),
    (["train", "-o", "{tmp}/missing/x.pth"], "does not exist"),
    (["train", "-o", "{tmp}"], "is a directory"),
    (["train", "--weight-decay", "-0.5", "-o", "{tmp}/x.pth"], "--weight-decay must be in 0..1"),
    (["train", "--threads", "0", "-o", "{tmp}/x.pth"], "--threads must be in 1..64"),
    (["train", "--train-samples", "0", "-o", "{tmp}/x.pth"], "--train-samples must be in >= 1"),
    (["eval", "{tmp}/nothing.pth"], "no such file"),
    (["eval", "default", "--data", "cifar"], "--data must be one of digits"),
    (["eval", "default", "--T", "0"], "--T must be in 1..16"),
    (["eval", "x.sfq", "--T", "2"], "apply to float checkpoints only"),
])
def test_cli_bad_options_fail_with_one_line(tmp_path, capsys, argv, fragment):
    _one_line_error(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv], fragment)


def test_cli_missing_output_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epochs", "1"])
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) >= 1
