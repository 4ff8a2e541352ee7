"""Learned post-training rounding: each weight up or down (AdaRound, Nagel et al. 2020).

Round-to-nearest minimises each weight's own error, but a deep T = 1 spiking network does not care
about each weight: a rounding step that moves a membrane potential across its threshold in an
early layer flips spikes that cascade through ~35 LIF layers (``python -m bench.sensitivity``).
AdaRound keeps every weight within one step of the grid it will be rounded on (each goes to the
floor or the ceiling of its scaled value, never further) and *learns* which of the two, so that the
rounded network keeps the float network's outputs on unlabelled calibration images. Weights,
BatchNorm, biases and thresholds stay frozen; nothing is trained but the up/down choices.

The grid is the quantiser's own: :class:`~spikegate.quantize.qat.GridQAT` gives, per weight, the
factor ``c`` that takes it to integer units. Each weight is ``(floor(w c) + h) / c`` with ``h`` in
{0, 1} the learned choice, relaxed by AdaRound's rectified sigmoid ``h(V)`` of a latent ``V`` (the
only trainable tensor, started so that ``h(V)`` is the weight's fractional part: the first choice
is round-to-nearest).

Choices, and what they give (``python -m bench.ptq --rounding nearest,adaround``; bench/README.md):

* The forward pass runs the *rounded* network (``h`` thresholded) and the gradient reaches ``V``
  through the rectified sigmoid (straight-through), rather than AdaRound's soft weights with its
  annealed regulariser ``sum(1 - |2h - 1|**beta)``: the soft network is a float network with
  continuous membranes, and the choices it converged to flipped spikes once thresholded (measured
  while developing this module, fpga-tiny-t2 at 4 bits: nearest 93.78 %, soft-annealed 92.22 %,
  straight-through 94.44 %; at 8 bits neither beat nearest's 98.00 %).
* End to end, not layer by layer: the error that matters is the cascade of flipped spikes through
  many layers, which a per-layer reconstruction loss does not see.
* The loss: KL divergence from the float model's logits (distillation, no labels) plus a hinge on
  every LIF's membrane, ``relu(margin - (2 s - 1) (h - v_th))`` with ``s`` the float model's
  spike: it gives a gradient to every neuron near or across its threshold, where the logits alone
  give almost none.

What it does not do: reach 99 % agreement at 8 bits. On fpga-tiny-t2 (450 held-out digits) it
gains a little at 4 and 6 bits (93.78 -> 94.00 %, 96.44 -> 96.67 %) and loses a little at 8 (98.00
-> 97.56 %); on default-float it keeps 97.56 % at 8 bits and loses at 6 and 4. A surrogate gradient through a thresholded network is a poor guide to which of ~20,000
one-step moves keeps which spike, and what it learns on 1347 calibration digits barely carries
over to held-out ones (the summary's ``calib_agreement`` compares learned and nearest rounding on
the calibration images). QAT (``spikegate train --qat-bits``) does reach 99 %.

What it covers is what :mod:`~spikegate.quantize.qat` covers: every weight that is one lowered
op's weight. RepConv's merged kernels (q/k/v/proj) are not on a per-parameter grid and stay
rounded to nearest by the quantiser. The learned model's covered weights lie exactly on the grid,
so ``spikegate quantize`` (round to nearest) reproduces them.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from .qat import INPUT_BITS, GridQAT, freeze_batchnorm

ZETA, GAMMA = 1.1, -0.1          # AdaRound's rectified-sigmoid stretch
DEFAULT_ITERS = 400              # steps (module attributes, read at call time)
DEFAULT_BATCH = 128
DEFAULT_LR = 1e-3                # Adam, on V
MARGIN = 0.1                     # of the membrane hinge, in units of the threshold's (v_th = 1)
MARGIN_WEIGHT = 1.0              # the hinge's weight beside the KL term
SURROGATE_ALPHA = 2.0            # the LIF surrogate's steepness while learning (as spikegate train)


def _h(v: torch.Tensor) -> torch.Tensor:
    """AdaRound's rectified sigmoid: 0..1, reaching both ends with a finite ``v``."""
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def _v_init(rest: torch.Tensor) -> torch.Tensor:
    """``v`` with ``h(v) == rest`` (the fractional part): ``v >= 0`` exactly where nearest rounds up."""
    p = ((rest - GAMMA) / (ZETA - GAMMA)).clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p))


def _logits(out):
    return (out[0] + out[1]) / 2 if isinstance(out, tuple) else out


def _membranes(lif, x_seq: torch.Tensor, spikes: torch.Tensor) -> torch.Tensor:
    """``h - v_th`` of a MultiStepLIF at every step (its own dynamics, reset detached)."""
    v = torch.zeros_like(x_seq[0])
    out = []
    for t in range(x_seq.shape[0]):
        h = v + (x_seq[t] - (v - lif.v_reset)) / lif.tau
        out.append(h - lif.v_threshold)
        s = spikes[t].detach()
        v = lif.v_reset * s + (1.0 - s) * h
    return torch.stack(out)


class _Recorder:
    """Every LIF's (membrane - threshold, spikes) of one forward pass of a model, in call order."""

    def __init__(self, model: torch.nn.Module):
        from .model import lif_modules

        self.rows: list = []
        self.hooks = [m.register_forward_hook(self._hook) for _, m in lif_modules(model)]

    def _hook(self, lif, inputs, spikes):
        self.rows.append((_membranes(lif, inputs[0], spikes), spikes))

    def take(self) -> list:
        rows, self.rows = self.rows, []
        return rows

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()


class _Rounding:
    """The learned up/down choice of every covered weight (``GridQAT``'s parameters)."""

    def __init__(self, model: torch.nn.Module, calib: np.ndarray, weight_bits: int, input_bits: int):
        self.grid = GridQAT(model, weight_bits, calib, input_bits)
        params = dict(model.named_parameters())
        self.c = {n: f.to(torch.float32) for n, f in self.grid.factors(model).items()}
        scaled = {n: params[n].detach() * c for n, c in self.c.items()}
        self.base = {n: torch.floor(s) for n, s in scaled.items()}
        self.nearest = {n: torch.round(s) for n, s in scaled.items()}
        self.V = {n: _v_init(scaled[n] - self.base[n]).requires_grad_(True) for n in self.c}

    def weights(self) -> dict[str, torch.Tensor]:
        """The rounded weights, with AdaRound's relaxation as their gradient (straight-through)."""
        out = {}
        for n, v in self.V.items():
            soft = _h(v)
            h = (v >= 0).to(soft.dtype) + soft - soft.detach()
            out[n] = torch.clamp(self.base[n] + h, -self.grid.qmax, self.grid.qmax) / self.c[n]
        return out

    def flipped(self) -> int:
        """How many weights are rounded the other way than round-to-nearest would."""
        return sum(int(((self.base[n] + (v >= 0).float()) != self.nearest[n]).sum()) for n, v in self.V.items())


def _loss(out, target, rec_s: list, rec_t: list, margin: float, margin_weight: float):
    kl = F.kl_div(F.log_softmax(out, 1), F.log_softmax(target, 1), log_target=True, reduction="batchmean")
    hinge = sum(F.relu(margin - (2 * t[1] - 1) * s[0]).mean() for s, t in zip(rec_s, rec_t)) / max(1, len(rec_t))
    return kl + margin_weight * hinge, float(kl.detach())


def adaround(model: torch.nn.Module, calib: np.ndarray, weight_bits: int, *, input_bits: int = INPUT_BITS,
             iters: int | None = None, batch: int | None = None, lr: float | None = None, seed: int = 0,
             margin: float = MARGIN, margin_weight: float = MARGIN_WEIGHT,
             progress=None) -> tuple[torch.nn.Module, dict]:
    """A copy of ``model`` whose covered weights are rounded up or down as learned on ``calib``
    (unlabelled images: the ones it will be quantised with), and a summary dict (``flipped_vs_nearest``:
    weights rounded the other way than nearest; ``calib_agreement``: float-vs-rounded argmax
    agreement on ``calib``, torch forward, nearest and learned).

    Deterministic for a ``seed`` (on one CPU's torch kernels). ``progress(step, iters, kl)`` is
    called every 50 steps. ``model`` is not modified.
    """
    iters = DEFAULT_ITERS if iters is None else int(iters)
    batch = DEFAULT_BATCH if batch is None else int(batch)
    t0 = time.time()
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)
    teacher = copy.deepcopy(model).eval()
    student = copy.deepcopy(model)
    for p in student.parameters():
        p.requires_grad_(False)
    r = _Rounding(student, calib, weight_bits, input_bits)
    x = torch.from_numpy(np.ascontiguousarray(calib, dtype=np.float32))
    agree0 = _agreement(teacher, student, r.weights(), x)
    opt = torch.optim.Adam(list(r.V.values()), lr=DEFAULT_LR if lr is None else float(lr))
    student.train()
    freeze_batchnorm(student)
    from .model import lif_modules

    for _, lif in lif_modules(student):
        lif.surrogate_alpha = SURROGATE_ALPHA
    rec_s, rec_t = _Recorder(student), _Recorder(teacher)
    kl = float("nan")
    try:
        for step in range(iters):
            xb = x[torch.from_numpy(rng.choice(len(x), size=min(batch, len(x)), replace=False))]
            with torch.no_grad():
                target = _logits(teacher(xb))
            out = _logits(torch.func.functional_call(student, r.weights(), (xb,)))
            loss, kl = _loss(out, target, rec_s.take(), rec_t.take(), margin, margin_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if progress and (step % 50 == 0 or step == iters - 1):
                progress(step, iters, kl)
    finally:
        rec_s.remove()
        rec_t.remove()
    student.eval()
    with torch.no_grad():
        params = dict(student.named_parameters())
        for n, w in r.weights().items():
            params[n].copy_(w)
    # A row whose largest weight moved can move the quantiser's scale a little: put it back on the
    # grid the quantiser computes from the new weights (GridQAT.project rounds to nearest there).
    regrid = r.grid.off_grid(student)
    left = r.grid.project(student) if regrid else {}
    return student, {"method": "adaround", "weights": sum(v.numel() for v in r.V.values()),
                     "flipped_vs_nearest": r.flipped(), "regridded": sum(regrid.values()),
                     "off_grid": sum(left.values()), "iters": iters, "batch": batch,
                     "calib_samples": int(len(x)), "seed": seed, "kl_end": kl,
                     "calib_agreement": {"nearest": agree0, "adaround": _agreement(teacher, student, None, x)},
                     "seconds": time.time() - t0}


def _agreement(teacher, student, weights, x: torch.Tensor) -> float:
    """% argmax agreement of ``student`` (with ``weights`` if given) with ``teacher`` on ``x``."""
    student.eval()
    with torch.no_grad():
        pt, ps = [], []
        for i in range(0, len(x), 256):
            pt.append(_logits(teacher(x[i:i + 256])).argmax(1))
            xs = (x[i:i + 256],)
            out = student(*xs) if weights is None else torch.func.functional_call(student, weights, xs)
            ps.append(_logits(out).argmax(1))
    return 100.0 * float((torch.cat(pt) == torch.cat(ps)).float().mean())
