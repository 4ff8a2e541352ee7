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


def external_target(g, lanes: int = 3, buffer: bool = True):
    """An ECP5-like target with 1 Mbit of external memory whose block RAM holds exactly what the
    program of IR ``g`` with external weights needs (``buffer=False``: all but its weight buffer),
    so that compiling ``g`` for it puts the weights in external memory (issue 24's tests:
    tests/test_external_weights.py, rtl_tests/test_external_rtl.py)."""
    from spikegate.compiler.build import lower_to_program
    from spikegate.compiler.passes.budget import blocks_needed
    from spikegate.compiler.passes.external_weights import external_weights
    from spikegate.machine.target import Target

    ext = external_weights(lower_to_program(g, lanes), 16)
    blocks = blocks_needed(ext, "ecp5", buffer)
    return Target("tiny-ext", "test target: little block RAM, external memory", "ecp5", 50.0, 10**6, 10**6,
                  blocks * 18432, blocks, 0, 100, external_bits=2**20, default_lanes=lanes)
