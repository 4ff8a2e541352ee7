"""Multi-step LIF neuron with the exact arithmetic of the public Meta-SpikeFormer code.

The public code uses spikingjelly's ``MultiStepLIFNode(tau=2., detach_reset=True)``: decay_input,
hard reset to 0, ties fire. We cannot depend on spikingjelly (it pulls a CUDA torch), so this is our
own implementation. The forward pass evaluates *the same floating-point expression* as spikingjelly,
``h = v + (x - (v - v_reset)) / tau``, ``spike = (h >= v_threshold)``, ``v = (1 - spike) * h``, so
official checkpoints reproduce their logits to the last bits, not just approximately. Training uses a
sigmoid surrogate gradient (spikingjelly's default for this neuron, alpha = 4).
"""

from __future__ import annotations

import torch
from torch import nn


class _SpikeFn(torch.autograd.Function):
    """Heaviside forward (ties fire), sigmoid-derivative surrogate backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: float) -> torch.Tensor:
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        (x,) = ctx.saved_tensors
        sg = torch.sigmoid(ctx.alpha * x)
        return grad_out * ctx.alpha * sg * (1.0 - sg), None


class MultiStepLIF(nn.Module):
    """LIF over the leading time dimension of ``x`` (``[T, ...]``); state is reset per call.

    tau and v_threshold are fixed by the architecture (tau = 2; 1.0, or 0.5 for the attention
    neuron); they are not parameters and are not in state dicts, matching the official checkpoints.
    """

    def __init__(self, v_threshold: float = 1.0, tau: float = 2.0, surrogate_alpha: float = 4.0):
        super().__init__()
        self.v_threshold = float(v_threshold)
        self.tau = float(tau)
        self.v_reset = 0.0
        self.surrogate_alpha = float(surrogate_alpha)

    def extra_repr(self) -> str:
        return f"tau={self.tau}, v_threshold={self.v_threshold}, v_reset={self.v_reset}"

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        v = torch.zeros_like(x_seq[0])
        spikes = []
        for t in range(x_seq.shape[0]):
            h = v + (x_seq[t] - (v - self.v_reset)) / self.tau
            if self.training and torch.is_grad_enabled():
                spike = _SpikeFn.apply(h - self.v_threshold, self.surrogate_alpha)
                spike_d = spike.detach()  # detach_reset=True
            else:
                spike = (h >= self.v_threshold).to(h.dtype)
                spike_d = spike
            v = self.v_reset * spike_d + (1.0 - spike_d) * h
            spikes.append(spike)
        return torch.stack(spikes)
