"""The embedded trained checkpoints: held-out float accuracy through `spikegate eval`."""

from __future__ import annotations

import json
import os

import pytest

from spikegate.cli import main
from spikegate.quantize.checkpoint import load_checkpoint, resolve_checkpoint
from spikegate.quantize.data import load_digits_split
from spikegate.quantize.model import preset

# name -> (preset, T, correct answers of the float model on the 450 held-out digits). Evaluation is
# deterministic, so the counts are pinned exactly (measured with `spikegate eval NAME --data digits
# --json`: 441 = 98.00 %, 439 = 97.56 %, 428 = 95.11 %, the README's table).
EMBEDDED = {
    "default": ("fpga-digits", 1, 441),
    "default-float": ("fpga-digits", 1, 439),
    "fpga-tiny-t2": ("fpga-tiny", 2, 428),
}


@pytest.fixture(scope="module")
def held_out_size():
    return len(load_digits_split(8)[3])


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_checkpoint_accuracy(name, held_out_size, capsys):
    preset_name, T, correct = EMBEDDED[name]
    assert main(["eval", name, "--data", "digits", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["samples"] == held_out_size == 450
    assert rep["correct"] == correct, rep
    assert rep["top1"] == pytest.approx(100.0 * rep["correct"] / rep["samples"])
    assert rep["kind"] == "float" and rep["model"] == name
    assert rep["T"] == T
    cfg = preset(preset_name)
    assert rep["img_size"] == cfg.img_size and rep["heads"] == cfg.num_heads


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_checkpoint_is_small_and_self_describing(name):
    preset_name, T, _ = EMBEDDED[name]
    path = resolve_checkpoint(name)
    assert os.path.getsize(path) < 2 * 1024 * 1024
    ck = load_checkpoint(path)
    cfg = preset(preset_name)
    assert ck.raw_T == T
    assert ck.args["input_size"] == cfg.img_size and ck.args["num_heads"] == cfg.num_heads
    assert ck.args["embed_dim"] == list(cfg.embed_dim) and ck.args["data"] == "digits"
