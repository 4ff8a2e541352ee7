"""Randomly initialised Meta-SpikeFormers in the official checkpoint layout (``spikegate init``).

Sizing a model for a board needs no training: the compiler's memory plan, the cycle model and the
RTL depend on the shapes only, and a random checkpoint exercises every verb. Two flavours:

* the plain initialisation (``bn_stats=0``): PyTorch's default init, seeded. BatchNorm is the
  identity (weight 1, bias 0, running mean 0, var 1), so the spiking layers fire rarely.
* ``bn_stats=N``: a checkpoint that looks briefly trained, like the official fixtures
  (``shared/fixtures/official``: BatchNorm weight ~1.5 +- 0.3, bias ~0.5 +- 0.5,
  ``num_batches_tracked`` 3). The BatchNorm affine parameters are drawn from those distributions
  (seeded; weights clipped to >= 0.1), then N forward passes in train mode on seeded uniform
  [0, 1) images (batch 4, the configured T) update the running statistics (momentum 0.1), so
  ``num_batches_tracked == N`` and the running mean/var are those of real activations. The
  positive biases make the LIF layers fire, which is what a hardware test wants to see.

Everything is a function of the configuration and the seed: the same arguments write the same
tensors (on the same torch build and thread count).
"""

from __future__ import annotations

import torch

from .checkpoint import save_checkpoint
from .model import MetaSpikeFormer, ModelConfig

BN_WEIGHT = (1.5, 0.3)   # mean, std of the BatchNorm weights with bn_stats (the fixtures' values)
BN_BIAS = (0.5, 0.5)
BN_WEIGHT_MIN = 0.1
BN_STATS_BATCH = 4
MAX_BN_STATS = 100


def random_model(cfg: ModelConfig, seed: int = 0, bn_stats: int = 0) -> MetaSpikeFormer:
    """A seeded random :class:`MetaSpikeFormer` of ``cfg`` (eval mode); see the module docstring."""
    if not isinstance(bn_stats, int) or not 0 <= bn_stats <= MAX_BN_STATS:
        raise ValueError(f"bn_stats must be an integer in 0..{MAX_BN_STATS}, not {bn_stats!r}")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = MetaSpikeFormer(cfg)
    if bn_stats:
        bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        with torch.no_grad():
            for bn in bns:
                w = torch.randn(bn.weight.shape, generator=gen) * BN_WEIGHT[1] + BN_WEIGHT[0]
                bn.weight.copy_(w.clamp_min(BN_WEIGHT_MIN))
                bn.bias.copy_(torch.randn(bn.bias.shape, generator=gen) * BN_BIAS[1] + BN_BIAS[0])
            model.train()
            s = cfg.img_size
            for _ in range(bn_stats):
                model(torch.rand((BN_STATS_BATCH, cfg.in_channels, s, s), generator=gen))
    model.eval()
    return model


def write_random_checkpoint(cfg: ModelConfig, path: str, seed: int = 0, bn_stats: int = 0,
                            extra_args: dict | None = None) -> MetaSpikeFormer:
    """Write :func:`random_model` to ``path`` in the official layout; returns the model."""
    model = random_model(cfg, seed, bn_stats)
    save_checkpoint(model, path, epoch=0, extra_args=dict(
        init="random", seed=int(seed), bn_stats=int(bn_stats), depths=list(cfg.depths),
        in_channels=cfg.in_channels, **(extra_args or {})))
    return model
