"""Quantisation-aware fine-tuning on the quantiser's own grid.

Post-training rounding of a deep T = 1 spiking network is chaotic: an 8-bit rounding step moves a
few membrane potentials across their thresholds in the first layers, the flipped spikes cascade
through ~35 LIF layers, and a few percent of the held-out digits change class (``python -m
bench.sensitivity``). No rounding rule fixes that; training can. This module fine-tunes a model
whose forward pass runs on its weights *as the quantiser will round them*, and leaves a checkpoint
whose weights already lie on that grid, so ``spikegate quantize`` reproduces them exactly.

The grid is never re-derived here. Every step lowers the model (BatchNorm folded with its running
statistics) and runs the quantiser's own :func:`~spikegate.quantize.quantizer.rescale` pass;
the ratio of each scaled weight to the checkpoint parameter it came from is the factor ``c`` that
takes that parameter to integer units (per element: a BatchNorm's per-row factor, the integer
input's per-channel scale for multi-bit readers, the residual stream's power-of-two shifts). The
forward pass uses ``round(w * c) / c`` and the gradient reaches ``w`` unchanged (straight-through).

What it covers: every parameter that is a single lowered op's weight (the convolutions, the
depthwise convolutions, the MLP's Conv1d, both heads). RepConv's merged 3x3 kernel is a product of
three factors (1x1, depthwise, 1x1 and two BatchNorms), which cannot in general be put on a grid
through its factors: those layers are trained as usual and rounded by the quantiser. Biases and
thresholds are not touched (the quantiser keeps ``EXTRA_BITS`` more resolution for them).

BatchNorm is frozen while fine-tuning (running statistics used, not updated; its affine parameters
still train), as in the usual BN-folding QAT recipe: the folded weights the grid is computed on are
then the ones the forward pass uses.
"""

from __future__ import annotations

import numpy as np
import torch

from spikegate.errors import SpikegateError

from .lower import lower
from .quantizer import _qmax, choose_input_scale, rescale

INPUT_BITS = 8          # the quantiser's default input width (spikegate quantize)
ON_GRID_TOL = 1e-2      # |w * c - round(w * c)| below this is on the grid (integer units; rint needs < 0.5)
PROJECT_ROUNDS = 4      # projections tried until the quantiser's grid stops moving


def check_qat_bits(bits, name: str = "qat_bits") -> None:
    """The weight bits a QAT run may target: those ``spikegate quantize --weight-bits`` accepts."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 4 <= bits <= 16:
        raise ValueError(f"{name} must be an integer in 4..16 (the quantiser's weight bits), not {bits!r}")


def _lowered_params(params: dict, op) -> list[tuple[str, int | None]]:
    """The parameters (of ``params``, a model's ``named_parameters``) behind one lowered op's
    weight: [(name, index into the op)]."""
    if op.kind == "head":
        heads = ["head.weight"] + (["head_kd.weight"] if "head_kd.weight" in params else [])
        return [(n, i) for i, n in enumerate(heads)]
    if op.kind == "conv" and f"{op.name}.weight" in params:
        return [(f"{op.name}.weight", None)]
    return []  # RepConv (q/k/v/proj): a product of factors, not one parameter


class GridQAT:
    """The quantiser's grid for a model's weights, and the fake-quantised weights on it.

    ``weight_bits`` is the ``spikegate quantize --weight-bits`` the model will be quantised with;
    ``calib`` the calibration images it will be quantised with (they set the input scale, which the
    first convolution's grid depends on).
    """

    def __init__(self, model: torch.nn.Module, weight_bits: int, calib: np.ndarray,
                 input_bits: int = INPUT_BITS):
        check_qat_bits(weight_bits, "qat weight_bits")
        self.weight_bits = int(weight_bits)
        self.input_bits = int(input_bits)
        self.qmax = _qmax(self.weight_bits)
        self.input_scale = choose_input_scale(np.asarray(calib), self.input_bits)
        params = dict(model.named_parameters())
        self.names = [n for op in self._scaled(model).ops for n, _ in _lowered_params(params, op)]
        if not self.names:
            raise SpikegateError("quantisation-aware training found no weight it can put on the grid")

    def _scaled(self, model: torch.nn.Module):
        """The quantiser's scaled (not yet rounded) graph of the model as it is now."""
        modes = {m: m.training for m in model.modules()}
        model.eval()
        try:
            g0 = lower(model)
        finally:
            for m, t in modes.items():
                m.training = t
        return rescale(g0, input_scale=self.input_scale, input_bits=self.input_bits,
                       weight_bits=self.weight_bits)

    def factors(self, model: torch.nn.Module) -> dict[str, torch.Tensor]:
        """``{parameter name: c}``: ``w * c`` is the weight in the quantiser's integer units."""
        params = dict(model.named_parameters())
        out = {}
        for op in self._scaled(model).ops:
            for name, idx in _lowered_params(params, op):
                scaled = op.params["weight"] if idx is None else op.params["weight"][idx]
                w = params[name].detach().to(torch.float64).numpy()
                scaled = np.asarray(scaled, dtype=np.float64).reshape(w.shape)
                c = np.divide(scaled, w, out=np.ones_like(w), where=w != 0)
                out[name] = torch.from_numpy(c)
        return out

    def quantized(self, model: torch.nn.Module, factors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``{name: w on the grid}`` with a straight-through gradient to ``w``."""
        params = dict(model.named_parameters())
        out = {}
        for name, c in factors.items():
            w = params[name]
            with torch.no_grad():
                c32 = c.to(w.dtype)
                q = torch.clamp(torch.round(w * c32), -self.qmax, self.qmax) / c32
            out[name] = w + (q - w).detach()
        return out

    def off_grid(self, model: torch.nn.Module) -> dict[str, int]:
        """Per parameter, how many weights the quantiser would still have to round."""
        params = dict(model.named_parameters())
        bad = {}
        for name, c in self.factors(model).items():
            v = params[name].detach().to(torch.float64) * c
            n = int(((v - torch.round(v)).abs() > ON_GRID_TOL).sum())
            if n:
                bad[name] = n
        return bad

    def project(self, model: torch.nn.Module) -> dict[str, int]:
        """Move the model's weights onto the grid in place; returns what is still off it (if any).

        Projection can move a row's largest weight and with it the quantiser's scale, so it is
        repeated until the grid the quantiser computes from the projected weights is the grid they
        were projected on.
        """
        params = dict(model.named_parameters())
        for _ in range(PROJECT_ROUNDS):
            with torch.no_grad():
                for name, q in self.quantized(model, self.factors(model)).items():
                    params[name].copy_(q.detach())
            bad = self.off_grid(model)
            if not bad:
                return {}
        return bad


def freeze_batchnorm(model: torch.nn.Module) -> None:
    """Running statistics in use and not updated (call after every ``model.train()``)."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.eval()
