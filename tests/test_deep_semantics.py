"""Issue 23: deep official-layout models quantize within the width cap, and saturation is exact.

The models are official-layout Meta-SpikeFormers (6 + 2 transformer blocks, ``head_kd``, 100
classes, 64x64 RGB input; T = 1, 2, 4) made by ``spikegate init --bn-stats 3``, which gives them the
BatchNorm statistics of a briefly trained checkpoint like the official fixtures. Their widths are
small, so every op runs fast; ``--max-bits 23`` makes their activations saturate, and both the
calibration data and other random images hit the clamps. (The random IR fuzz, ``compiler/irgen.py``,
makes convolutions and residual adds saturate too.) On them:

* ``quantize`` at 8-bit weights declares no width above the cap (23 bits, and the default 32);
* golden model = ISS = integer ONNX exactly, with saturated values among the results;
* the Verilog of one of them (T = 2) equals the golden model on Verilator, bit for bit, with the
  measured cycles equal to the cycle model's.
"""

from __future__ import annotations

import numpy as np
import pytest

from spikegate import api
from spikegate.compiler import iss
from spikegate.compiler.build import lower_to_program
from spikegate.quantize.golden import execute
from spikegate.quantize.pipeline import quantize_checkpoint
from spikegate.quantize.ranges import widest_word

pytestmark = pytest.mark.xdist_group("deep_semantics")   # one worker: the models are shared

SHAPE = dict(embed_dim=(4, 8, 16, 16), num_heads=2, depths=(6, 2), kd=True, in_channels=3)
MAX_BITS = 23      # the narrowest these models' thresholds allow: their spatial sums saturate


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.RandomState(seed).rand(n, 3, 64, 64).astype(np.float32)


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    """``{T: (checkpoint, calibration .npy, saturating IR)}``."""
    d = tmp_path_factory.mktemp("deep")
    calib = d / "calib.npy"
    np.save(calib, _images(4, 0))
    out = {}
    for T in (1, 2, 4):
        ck = str(d / f"official_t{T}.pth")
        api.init_checkpoint("fpga-small", ck, img_size=64, classes=100, T=T, seed=T, bn_stats=3, **SHAPE)
        g, rep = quantize_checkpoint(ck, calib=str(calib), max_bits=MAX_BITS, evaluate=False)
        out[T] = (ck, str(calib), g, rep)
    return out


@pytest.mark.parametrize("T", [1, 2, 4])
def test_official_layout_quantizes_at_8_bits_within_the_cap(deep, T):
    ck, calib, g, rep = deep[T]
    assert g.meta["T"] == T and g.ops[-1].params["weight"].shape[0] == 2       # head and head_kd
    assert sum(o.kind == "attention" for o in g.ops) == 8                          # 6 + 2 blocks
    assert widest_word(g) <= MAX_BITS and rep["widths"]["max_declared"] <= MAX_BITS
    sat = [o for o in g.ops if o.attrs.get("saturate")]
    assert sat and rep["widths"]["saturating_ops"]
    assert all(o.widths["out"] < o.widths["wide"] for o in sat)
    if T == 1:   # at the default cap (32 bits) too
        g32, _ = quantize_checkpoint(ck, calib=calib, evaluate=False)
        assert widest_word(g32) <= 32


def test_golden_iss_and_onnx_agree_with_saturation(deep):
    import onnxruntime as ort

    from spikegate.quantize.onnx_int import build_int_onnx

    hits = 0
    for T, n in ((1, 2), (2, 1), (4, 1)):
        _, _, g, _ = deep[T]
        x = _images(n, 10 + T)
        saturations: dict = {}
        gold = execute(g, x, saturations=saturations)
        hits += sum(v["count"] for v in saturations.values())
        prog = lower_to_program(g, 4)
        assert 0 < prog.sat_bits <= MAX_BITS     # the machine clamps (hw/datapath.Saturate)
        for b, r in enumerate(iss.run_batch(prog, x)):
            np.testing.assert_array_equal(r.logits, gold[b], err_msg=f"ISS, T={T}, sample {b}")
        sess = ort.InferenceSession(build_int_onnx(g).SerializeToString())
        np.testing.assert_array_equal(sess.run(["logits"], {"images": x})[0], gold, err_msg=f"ONNX, T={T}")
    assert hits > 0, "no value saturated: the test would not see a clamp"


def test_verilator_is_bit_exact_on_a_saturating_official_model(deep, tmp_path):
    from spikegate.compiler.build import compile_ir
    from spikegate.quantize.irfile import save_ir
    from spikegate.verify import verify

    _, _, g, _ = deep[2]
    ir = tmp_path / "m.sgir"
    save_ir(g, str(ir))
    x = _images(1, 0)     # a calibration image: its spatial sum saturates
    saturations: dict = {}
    execute(g, x, saturations=saturations)
    assert sum(v["count"] for v in saturations.values()) > 0
    np.save(tmp_path / "x.npy", x)
    compile_ir(str(ir), "sim", 4, str(tmp_path / "build"), predict_samples=0)
    v = verify(str(tmp_path / "build"), str(tmp_path / "x.npy"), sim="verilator")
    assert v["bit_exact"], v["mismatches"][:1]
    assert v["cycles"] == v["predicted_cycles"]


def test_cli_shows_and_counts_the_saturations(deep, tmp_path, capsys):
    """quantize warns with numbers (not a refusal), ``ir show`` marks the saturating ops and
    ``golden --trace`` counts the clamped values per op."""
    from conftest import run_cli

    ck, calib, _, _ = deep[1]
    ir = tmp_path / "m.sgir"
    rc, out, err = run_cli(["quantize", ck, "--calib", calib, "--max-bits", MAX_BITS, "-o", ir], capsys)
    assert rc == 0, err
    assert f"limit --max-bits {MAX_BITS}" in out and "saturate at" in out
    assert "warning: the calibration data saturated" in out
    rc, out, err = run_cli(["ir", "show", ir], capsys)
    assert rc == 0 and "saturates" in out, err
    rc, out, err = run_cli(["golden", ir, "--inputs", calib, "--out", tmp_path / "y.npy", "--trace",
                            tmp_path / "tr"], capsys)
    assert rc == 0 and "value(s) clamped at spatial_sum" in out, out + err
    import json
    sat = json.loads((tmp_path / "tr" / "saturation.json").read_text())
    assert sat["spatial_sum"]["count"] > 0
    rc, out, err = run_cli(["quantize", ck, "--calib", calib, "--max-bits", 12, "-o", tmp_path / "n.sgir"], capsys)
    assert rc == 2 and err.count("\n") == 1 and "more than the 12 allowed" in err, err
    assert not (tmp_path / "n.sgir").exists()
