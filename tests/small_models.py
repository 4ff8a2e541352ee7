"""Small random Meta-SpikeFormers whose neurons actually fire, for fast tests."""

from __future__ import annotations

import numpy as np
import torch

from spikegate.quantize.model import MetaSpikeFormer, ModelConfig, preset


def calibrated_model(cfg: ModelConfig, seed: int = 0, batches: int = 3) -> MetaSpikeFormer:
    """Random weights; BatchNorm statistics from a few random batches (as training would set them)."""
    torch.manual_seed(seed)
    m = MetaSpikeFormer(cfg)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = None  # cumulative average
    m.train()
    with torch.no_grad():
        for _ in range(batches):
            m(torch.rand(16, cfg.in_channels, cfg.img_size, cfg.img_size))
    return m.eval()


def tiny_cfg(**kw) -> ModelConfig:
    return preset("fpga-tiny").replace(**kw)


def images(cfg: ModelConfig, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random((n, cfg.in_channels, cfg.img_size, cfg.img_size)).astype(np.float32)
