"""spikegate init: random checkpoints of any preset, in the official layout, loadable by every verb."""

import numpy as np
import pytest
import torch

from conftest import run_cli
from spikegate.quantize.checkpoint import infer_config, load_checkpoint, load_model


def test_paper_preset_at_32_loads_in_info(tmp_path, capsys):
    """The 15M paper preset, sized at 32x32 (issue 24: sizing any preset for a board)."""
    ck = tmp_path / "m15.pth"
    rc, out, err = run_cli(["init", "--preset", "meta-spikeformer-15m", "--img-size", "32", "--classes", "10",
                            "-o", ck], capsys)
    assert rc == 0 and err == "", err
    assert "(14,754,818 parameters)" in out and "3x32x32 input, 10 classes" in out
    rc, out, err = run_cli(["info", ck, "--json"], capsys)
    assert rc == 0, err
    import json

    info = json.loads(out)
    cfg = infer_config(load_checkpoint(str(ck)))
    assert cfg.embed_dim == (64, 128, 256, 360) and cfg.depths == (6, 2) and cfg.img_size == 32
    assert cfg.num_classes == 10 and cfg.num_heads == 8
    assert info["params"] == 14_754_818 and info["img_size"] == 32, info


def test_custom_shape_with_bn_stats_quantizes_and_evaluates(tmp_path, capsys):
    """Every shape option lands in the checkpoint; --bn-stats makes it look briefly trained (like
    the official fixtures), and the file goes through quantize and the golden model."""
    ck = tmp_path / "c.pth"
    argv = ["init", "--preset", "fpga-tiny", "--embed-dim", "8,16,32,48", "--depths", "2,1", "--T", "2",
            "--kd", "--classes", "7", "--img-size", "16", "--in-channels", "3", "--heads", "4",
            "--bn-stats", "3", "--seed", "5", "-o", ck]
    rc, out, err = run_cli(argv, capsys)
    assert rc == 0, err
    model, lc = load_model(str(ck))
    cfg = model.cfg
    assert (cfg.embed_dim, cfg.depths, cfg.T, cfg.kd, cfg.num_classes, cfg.img_size, cfg.in_channels,
            cfg.num_heads) == ((8, 16, 32, 48), (2, 1), 2, True, 7, 16, 3, 4)
    sd = lc.state_dict
    assert int(sd["downsample1_1.encode_bn.num_batches_tracked"]) == 3
    w = torch.cat([v for k, v in sd.items() if k.endswith("bn.weight") or k.endswith("bn1.weight")])
    assert 1.3 < float(w.mean()) < 1.7 and float(w.min()) >= 0.1
    assert float(sd["downsample1_1.encode_bn.running_var"].sub(1).abs().max()) > 1e-3  # statistics moved
    # Deterministic: the same arguments write the same tensors.
    rc, _, err = run_cli(argv[:-1] + [tmp_path / "c2.pth"], capsys)
    sd2 = load_checkpoint(str(tmp_path / "c2.pth")).state_dict
    assert all(torch.equal(sd[k], sd2[k]) for k in sd)
    x = np.random.default_rng(0).random((3, 3, 16, 16), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    rc, out, err = run_cli(["quantize", ck, "--calib", tmp_path / "x.npy", "-o", tmp_path / "c.sgir"], capsys)
    assert rc == 0, err
    rc, out, err = run_cli(["golden", tmp_path / "c.sgir", "--inputs", tmp_path / "x.npy",
                            "--out", tmp_path / "y.npy"], capsys)
    assert rc == 0, err
    assert np.load(tmp_path / "y.npy").shape == (3, 7)


def test_plain_init_is_the_default(tmp_path):
    from spikegate import api

    m = api.init_checkpoint("fpga-tiny", str(tmp_path / "p.pth"), classes=3, seed=1)
    sd = load_checkpoint(str(tmp_path / "p.pth")).state_dict
    assert int(sd["downsample1_1.encode_bn.num_batches_tracked"]) == 0
    assert torch.equal(sd["head.bias"], m.state_dict()["head.bias"]) and sd["head.weight"].shape == (3, 16)
    with pytest.raises(Exception, match=r"^init_checkpoint\('fpga-tiny'\): num_classes"):
        api.init_checkpoint("fpga-tiny", str(tmp_path / "q.pth"), classes=0)


@pytest.mark.parametrize("argv, message", [
    (["--preset", "nope"], "unknown preset 'nope'; known presets: meta-spikeformer-15m"),
    (["--preset", "fpga-tiny", "--img-size", "4"], "--img-size must be in 8..512, not 4"),
    (["--preset", "fpga-tiny", "--classes", "0"], "--classes must be in >= 1, not 0"),
    (["--preset", "fpga-tiny", "--embed-dim", "8,16"], "--embed-dim must be 4 positive integers"),
    (["--preset", "fpga-tiny", "--heads", "3"], "must be divisible by num_heads=3"),
    (["--preset", "fpga-tiny", "--bn-stats", "-1"], "--bn-stats must be in 0..100, not -1"),
])
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "bad.pth"
    rc, _, err = run_cli(["init", *argv, "-o", out], capsys)
    assert rc == 2 and err.count("\n") == 1 and message in err, err
    assert err.startswith("spikegate init: error: ")
    assert not out.exists()
