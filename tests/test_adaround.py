"""Learned rounding (AdaRound): weights up or down on the quantiser's grid, reproduced by quantize."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spikegate.cli import main
from spikegate.quantize import adaround as ada
from spikegate.quantize.checkpoint import load_model, save_checkpoint
from spikegate.quantize.data import digits_split_xy
from spikegate.quantize.pipeline import quantize_checkpoint
from spikegate.quantize.qat import GridQAT

MODEL, BITS, N_CALIB = "fpga-tiny-t2", 6, 128
FAST = dict(iters=20, batch=32)     # a few steps: enough to flip some choices, ~2 CPU-s


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """torch's thread pool on a loaded 2-core machine made the ~4 s of this module take minutes."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def learned(one_thread):
    model, _ = load_model(MODEL)
    calib, _ = digits_split_xy("train", model.cfg.img_size, n=N_CALIB)
    student, rep = ada.adaround(model, calib, BITS, seed=0, **FAST)
    return model, calib, student, rep


def test_learned_weights_are_on_the_grid_within_one_step_of_nearest(learned):
    model, calib, student, rep = learned
    grid = GridQAT(model, BITS, calib)
    c = grid.factors(model)
    before, after = dict(model.named_parameters()), dict(student.named_parameters())
    assert GridQAT(student, BITS, calib).off_grid(student) == {} and rep["off_grid"] == 0
    flipped = 0
    for n, p in before.items():
        if n not in c:  # uncovered (RepConv factors, BatchNorm, biases): untouched
            assert torch.equal(p, after[n]), n
            continue
        w0 = p.detach().double() * c[n]
        w1 = after[n].detach().double() * c[n]
        assert float((w1 - w0).abs().max()) < 1.0 + 1e-4, n          # floor or ceil, never further
        assert float((w1 - torch.round(w0)).abs().max()) <= 1.0 + 1e-4, n
        flipped += int(((w1 - torch.round(w0)).abs() > 0.5).sum())
    assert flipped > 0 and rep["flipped_vs_nearest"] > 0   # it learned something other than nearest
    # The model handed in is not modified, and the same seed learns the same rounding.
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), load_model(MODEL)[0].parameters()))
    again, _ = ada.adaround(model, calib, BITS, seed=0, **FAST)
    assert all(torch.equal(p, q) for p, q in zip(student.parameters(), again.parameters()))


def test_quantize_reproduces_the_learned_rounding_exactly(learned, tmp_path, monkeypatch):
    """``--rounding adaround`` equals quantising the learned checkpoint with round-to-nearest."""
    model, calib, student, rep = learned
    np.save(tmp_path / "calib.npy", calib)
    save_checkpoint(student, str(tmp_path / "learned.pth"))
    monkeypatch.setattr(ada, "DEFAULT_ITERS", FAST["iters"])
    monkeypatch.setattr(ada, "DEFAULT_BATCH", FAST["batch"])
    kw = dict(calib=str(tmp_path / "calib.npy"), weight_bits=BITS, evaluate=False)
    g_a, r_a = quantize_checkpoint(MODEL, rounding="adaround", **kw)
    g_n, _ = quantize_checkpoint(str(tmp_path / "learned.pth"), **kw)
    g_0, _ = quantize_checkpoint(MODEL, **kw)
    assert r_a["rounding"]["flipped_vs_nearest"] == rep["flipped_vs_nearest"]
    assert g_a.meta["source"]["rounding"] == "adaround" and "rounding" not in g_0.meta["source"]
    differ = 0
    for a, n, z in zip(g_a.ops, g_n.ops, g_0.ops):
        assert a.name == n.name == z.name
        for k in a.params:
            assert np.array_equal(a.params[k], n.params[k]), (a.name, k)
            differ += int((np.asarray(a.params[k]) != np.asarray(z.params[k])).sum()) if k == "weight" else 0
    assert differ > 0   # and it is not the nearest-rounded IR


def test_learned_rounding_keeps_the_float_decisions_on_its_calibration_images(learned):
    """On the images it learned from, the rounded network agrees with the float model at least as
    often as round-to-nearest (torch forward; the held-out numbers are bench.ptq's)."""
    _, _, _, rep = learned
    a = rep["calib_agreement"]
    print(a)
    assert a["adaround"] >= a["nearest"]


def test_cli_rounding_option_is_checked(tmp_path, capsys):
    rc = main(["quantize", MODEL, "--rounding", "up", "-o", str(tmp_path / "m.sgir")])
    err = capsys.readouterr().err
    assert rc == 2 and "rounding" in err and "adaround" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
