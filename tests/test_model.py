"""Float model: official fixtures reproduce, presets have the paper's parameter counts."""

import numpy as np
import pytest
import torch

from spikegate.quantize import model as M
from spikegate.quantize.checkpoint import load_model


@pytest.mark.parametrize("name,params", [
    ("meta-spikeformer-15m", 15_112_208),
    ("meta-spikeformer-31m", 31_333_864),
    ("meta-spikeformer-55m", 55_350_248),
])
def test_paper_preset_parameter_counts(name, params):
    assert M.count_parameters(M.build(M.preset(name))) == params


def test_official_fixtures_reproduce_logits_and_rates(official):
    ck, data = official
    model, loaded = load_model(ck)
    assert model.cfg.T == loaded.raw_T  # T taken from args.time_steps
    rates = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: rates.__setitem__(n, float(o.mean())))
             for n, m in M.lif_modules(model)]
    with torch.no_grad():
        y = model(torch.from_numpy(data["inputs"])).numpy()
    for h in hooks:
        h.remove()
    assert np.abs(y - data["logits"]).max() == 0.0     # the README: "max error 0.0"
    assert list(rates) == list(data["lif_names"])
    np.testing.assert_allclose([rates[n] for n in data["lif_names"]], data["lif_rates"], atol=1e-6)


def test_small_presets_keep_every_block_type_and_run():
    for name in ("fpga-digits", "fpga-tiny", "fpga-events"):
        cfg = M.preset(name)
        m = M.build(cfg).eval()
        kinds = {type(x).__name__ for x in m.modules()}
        assert {"MS_ConvBlock", "SepConv", "MS_Block", "MS_Attention_RepConv_qkv_id", "RepConv", "MS_MLP",
                "MS_DownSampling"} <= kinds
        x = torch.rand(2, cfg.in_channels, cfg.img_size, cfg.img_size)
        with torch.no_grad():
            assert m(x).shape == (2, cfg.num_classes)
            assert m(x, T=3).shape == (2, cfg.num_classes)  # T is a runtime setting


def test_kd_head_averages_both_heads():
    cfg = M.preset("fpga-tiny").replace(kd=True)
    m = M.build(cfg).eval()
    x = torch.rand(3, 1, cfg.img_size, cfg.img_size)
    with torch.no_grad():
        y = m(x)
        m.kd = False
        y_head = m(x)
        m.head, m.head_kd = m.head_kd, m.head
        y_kd = m(x)
    torch.testing.assert_close(y, (y_head + y_kd) / 2)


def test_event_input_five_dims():
    cfg = M.preset("fpga-events")
    m = M.build(cfg).eval()
    x = torch.rand(2, cfg.T, 2, cfg.img_size, cfg.img_size)
    with torch.no_grad():
        assert m(x).shape == (2, 10)


@pytest.mark.parametrize("bad,match", [
    (dict(embed_dim=(8, 16, 30, 32), num_heads=4), "divisible by num_heads"),
    (dict(embed_dim=(7, 16, 32, 32)), "even"),
    (dict(depths=(0, 1)), "depths"),
    (dict(in_channels=4), "in_channels"),
])
def test_bad_configs(bad, match):
    with pytest.raises(ValueError, match=match):
        M.ModelConfig(**bad)
