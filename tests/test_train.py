"""Training on the digits: checkpoint layout, strict reload, determinism, and the train/eval verbs."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from spikegate.cli import main
from spikegate.quantize.checkpoint import load_model
from spikegate.quantize.data import DIGITS_SIDE, digits_inputs, encode, load_digits_split
from spikegate.quantize.model import lif_modules, preset
from spikegate.quantize.train import train

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
    from spikegate.quantize.model import MetaSpikeFormer

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
    with pytest.raises(ValueError, match="weight_noise_bits must be an integer in 4..16"):
        train(preset("fpga-tiny"), epochs=1, progress=False, weight_noise_bits=3)
    with pytest.raises(ValueError, match="weight_noise_scale must be in"):
        train(preset("fpga-tiny"), epochs=1, progress=False, weight_noise_bits=8, weight_noise_scale=0)
    with pytest.raises(ValueError, match="spike_margin must be in"):
        train(preset("fpga-tiny"), epochs=1, progress=False, spike_margin=1.5)


# -- quantisation-robust training (weight noise) ---------------------------------------------------

def test_weight_noise_is_one_rounding_step_per_row_and_reaches_the_clean_weights():
    from spikegate.quantize.model import MetaSpikeFormer
    from spikegate.quantize.quantizer import _qmax
    from spikegate.quantize.train import WeightNoise

    torch.manual_seed(0)
    model = MetaSpikeFormer(preset("fpga-tiny"))
    wn = WeightNoise(model, bits=4, scale=2.0, seed=0)
    names = {n for n, _ in wn.rows}
    # Every conv and linear weight, and nothing else (no BatchNorm, no bias).
    assert names == {n for n, p in model.named_parameters() if p.dim() >= 2}
    params = dict(model.named_parameters())
    pert = wn.perturbed(model)
    for name, per_row in wn.rows:
        w, d = params[name], (pert[name] - params[name]).detach()
        if per_row:
            rowmax = w.detach().abs().reshape(w.shape[0], -1).amax(1)
            step = rowmax.view(-1, *([1] * (w.dim() - 1))) / _qmax(4)
        else:  # the head: one scale for the tensor, as in the quantiser
            step = w.detach().abs().max() / _qmax(4)
        assert bool((d.abs() <= step + 1e-7).all()), name  # 2 steps wide: +-1 step
        assert float(d.abs().max()) > 0.5 * float(step.max()), name  # not vanishingly small
    # Fresh noise on every draw; gradients reach the clean parameters unchanged.
    again = wn.perturbed(model)
    assert not torch.equal(again["head.weight"], pert["head.weight"])
    pert["head.weight"].sum().backward()
    assert torch.equal(model.head.weight.grad, torch.ones_like(model.head.weight))


def test_weight_noise_training_is_deterministic_and_on_in_training_only(tmp_path):
    kw = dict(epochs=1, seed=0, batch=32, progress=False, n_train=64, threads=1)
    r1 = train(preset("fpga-tiny"), weight_noise_bits=6, weight_noise_scale=2.0, spike_margin=0.05,
               out_path=str(tmp_path / "n.pth"), **kw)
    r2 = train(preset("fpga-tiny"), weight_noise_bits=6, weight_noise_scale=2.0, spike_margin=0.05, **kw)
    r0 = train(preset("fpga-tiny"), **kw)
    s1, s2, s0 = (r["model"].state_dict() for r in (r1, r2, r0))
    assert all(torch.equal(s1[k], s2[k]) for k in s1)  # same seed, same weights
    assert not all(torch.equal(s1[k], s0[k]) for k in s1)  # the noise changed the training
    m = r1["model"]
    assert not m.training  # returned in eval mode: evaluation uses the clean weights
    x = torch.from_numpy(load_digits_split(16)[2][:8])
    with torch.no_grad():
        assert torch.equal(m(x), m(x))  # no noise outside training
    model, ck = load_model(str(tmp_path / "n.pth"), heads=2)
    assert ck.args["weight_noise_bits"] == 6 and ck.args["weight_noise_scale"] == 2.0
    assert ck.args["spike_margin"] == 0.05 and ck.args["spike_margin_weight"] == 1.0
    assert all(torch.equal(model.state_dict()[k], s1[k]) for k in s1)
    assert not any(lif._forward_hooks for _, lif in lif_modules(m))  # the regulariser's hooks are gone


def test_spike_margin_scores_membranes_near_threshold_in_training_only():
    from spikegate.quantize.lif import MultiStepLIF
    from spikegate.quantize.train import SpikeMargin

    net = torch.nn.Sequential(MultiStepLIF())
    sm = SpikeMargin(net, 0.1)
    # T = 1: h = x / 2 against v_threshold 1. h = 1 (on the threshold) scores 1, h = 0.95 scores 0.5,
    # h = 0.5 and h = 1.2 (outside the 10 % band) score 0.
    x = torch.tensor([[2.0, 1.9, 1.0, 2.4]], requires_grad=True)
    net.train()
    net(x)
    score = sm.take()
    assert float(score.detach()) == pytest.approx((1 + 0.5) / 4)
    score.backward()  # differentiable: a descent step moves h = 0.95 further below the threshold
    assert x.grad[0, 1] > 0 and x.grad[0, 2] == 0 and x.grad[0, 3] == 0
    net.eval()
    with torch.no_grad():
        net(x)
    assert sm.scores == []  # nothing recorded outside training
    sm.remove()
    assert not net[0]._forward_hooks
    with pytest.raises(ValueError, match="spike_margin must be in"):
        SpikeMargin(net, 0)


def test_init_from_checkpoint_fine_tunes_it(tmp_path):
    out, r0 = _tiny_run(tmp_path, "base", n_train=64)
    kw = dict(epochs=1, seed=0, batch=32, progress=False, n_train=64, threads=1, lr=1e-9)
    r1 = train(preset("fpga-tiny"), init_from=str(out), weight_noise_bits=8, **kw)
    s0, s1 = r0["model"].state_dict(), r1["model"].state_dict()
    # A negligible learning rate leaves the weights where the checkpoint had them.
    w = "downsample1_1.encode_conv.weight"
    assert torch.allclose(s0[w], s1[w], atol=1e-6)
    with pytest.raises(Exception, match="shape mismatch|missing keys"):
        train(preset("fpga-digits"), init_from=str(out), **kw)


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


def test_cli_weight_noise_fine_tuning(tmp_path, capsys):
    base, _ = _tiny_run(tmp_path, "base", n_train=64)
    out = tmp_path / "ft.pth"
    rc = main(["train", "--preset", "fpga-tiny", "--epochs", "1", "--train-samples", "64",
               "--init", str(base), "--weight-noise-bits", "8", "--weight-noise-scale", "2",
               "-o", str(out), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "weight noise 2 step(s) at 8 bits" in text and f"from {base}" in text
    _, ck = load_model(str(out), heads=2)
    assert ck.args["weight_noise_bits"] == 8 and ck.args["init_from"] == str(base)


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
    (["train", "--weight-noise-bits", "3", "-o", "{tmp}/x.pth"], "--weight-noise-bits must be in 4..16"),
    (["train", "--weight-noise-bits", "17", "-o", "{tmp}/x.pth"], "--weight-noise-bits must be in 4..16"),
    (["train", "--weight-noise-scale", "2", "-o", "{tmp}/x.pth"], "needs --weight-noise-bits"),
    (["train", "--weight-noise-bits", "8", "--weight-noise-scale", "0", "-o", "{tmp}/x.pth"],
     "--weight-noise-scale must be in (0, 16]"),
    (["train", "--weight-noise-bits", "8", "--weight-noise-scale", "nan", "-o", "{tmp}/x.pth"],
     "--weight-noise-scale must be in (0, 16]"),
    (["train", "--init", "{tmp}/nothing.pth", "-o", "{tmp}/x.pth"], "no such file"),
    (["train", "--spike-margin", "0", "-o", "{tmp}/x.pth"], "--spike-margin must be in (0, 1]"),
    (["train", "--spike-margin", "inf", "-o", "{tmp}/x.pth"], "--spike-margin must be in (0, 1]"),
    (["train", "--spike-margin-weight", "2", "-o", "{tmp}/x.pth"], "needs --spike-margin"),
    (["train", "--spike-margin", "0.05", "--spike-margin-weight", "-1", "-o", "{tmp}/x.pth"],
     "--spike-margin-weight must be in 0..1000"),
    (["train", "--preset", "fpga-tiny", "--init", "default", "-o", "{tmp}/x.pth"], "shape mismatch"),
    (["train", "--qat-bits", "8", "-o", "{tmp}/x.pth"], "--qat-bits needs --init CKPT"),
    (["train", "--qat-bits", "3", "--init", "default", "-o", "{tmp}/x.pth"], "--qat-bits must be in 4..16"),
    (["train", "--qat-bits", "8", "--weight-noise-bits", "8", "--init", "default", "-o", "{tmp}/x.pth"],
     "exclude each other"),
    (["eval", "{tmp}/nothing.pth"], "no such file"),
    (["eval", "default", "--data", "cifar"], "--data must be one of digits"),
    (["eval", "default", "--T", "0"], "--T must be in 1..16"),
    (["eval", "{tmp}/x.sgir", "--T", "2"], "x.sgir: no such file"),   # an IR is known by content
])
def test_cli_bad_options_fail_with_one_line(tmp_path, capsys, argv, fragment):
    _one_line_error(capsys, [a.replace("{tmp}", str(tmp_path)) for a in argv], fragment)


def test_cli_missing_output_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--epochs", "1"])
    assert e.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) >= 1
