"""Training a small Meta-SpikeFormer on the 8x8 scikit-learn digits (CPU, deterministic).

Recipe (defaults): AdamW (peak lr 4e-3, weight decay 0.1 on conv/linear weights only, not on
BatchNorm or biases), linear warm-up for 2 epochs then per-step cosine decay to 0, batch 32 (the
last partial batch of each epoch is dropped), cross entropy with label smoothing 0.1, gradient-norm
clipping at 1, 30 epochs, no augmentation (random shifts are available and did not help here).
BatchNorm biases are initialised so that every spiking layer fires from the first step
(``init_for_spikes``); the LIF neurons train through their sigmoid surrogate gradient
(``spikeforge.quantize.lif``) widened from alpha = 4 to alpha = 2. With ``cfg.kd`` both heads are
trained (the loss is the sum over ``head`` and ``head_kd``), as the official code's distillation
setup leaves two heads.

Runs are reproducible: the same configuration, seed and thread count give bit-identical weights.
Only the training split of ``spikeforge.quantize.data.load_digits_split`` is used for training;
the held-out split is evaluated once, at the end (no model selection on it).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import save_checkpoint
from .data import evaluate_float, load_digits_split
from .model import MetaSpikeFormer, ModelConfig, lif_modules

DEFAULT_EPOCHS = 30
DEFAULT_LR = 4e-3
DEFAULT_BATCH = 32
DEFAULT_WEIGHT_DECAY = 0.1
DEFAULT_SEED = 0
# One intra-op thread: the layers are so small that per-op overhead dominates, and on a shared
# 2-core machine two spinning threads made epochs 3-6x slower (8 s/epoch with 1 thread against
# 24-52 s with 2, fpga-digits, same load). Use `threads=2` on an idle machine if you like; results
# are bit-identical only for the same thread count.
DEFAULT_THREADS = 1


def _shift_batch(x: np.ndarray, rng: np.random.RandomState, max_shift: int) -> np.ndarray:
    """Shift each image by up to ``max_shift`` pixels in x and y, filling with zeros."""
    if max_shift <= 0:
        return x
    B, C, H, W = x.shape
    out = np.zeros_like(x)
    dy = rng.randint(-max_shift, max_shift + 1, size=B)
    dx = rng.randint(-max_shift, max_shift + 1, size=B)
    for i in range(B):
        sy, sx = int(dy[i]), int(dx[i])
        ys, yd = (slice(0, H - sy), slice(sy, H)) if sy >= 0 else (slice(-sy, H), slice(0, H + sy))
        xs, xd = (slice(0, W - sx), slice(sx, W)) if sx >= 0 else (slice(-sx, W), slice(0, W + sx))
        out[i, :, yd, xd] = x[i, :, ys, xs]
    return out


def init_for_spikes(model: MetaSpikeFormer, qkv_bias: float = 2.0, branch_bias: float = 1.0) -> None:
    """Initialise BatchNorm biases so that every spiking layer fires from the first step.

    With BatchNorm's default init (bias 0) and T = 1 a LIF neuron (``H = X/2``, fires at ``H >= 1``)
    sees ``X ~ N(0, 1)`` and fires about 2 % of the time:

    * the attention: on the few tokens of a small model ``Q K^T V / 8`` then almost never reaches
      the attention neuron's threshold, ``attn_lif`` is silent, the projection's BatchNorms see a
      constant input and their ``1/sqrt(eps)`` gain blows the surrogate gradients up by ~1e7 per
      block. ``qkv_bias`` on the BatchNorm after each of ``q_conv``, ``k_conv``, ``v_conv`` makes
      Q, K and V fire at about half their positions, and the attention fires from step one;
    * inside each branch (``Conv.bn1``, the conv block's ``bn1``, the MLP's ``fc1_bn``, each
      followed by a LIF) ``branch_bias`` raises the rate to ~16 %, where surrogate gradients flow.

    The residual branches' last BatchNorms keep bias 0, so the residual stream starts centred.
    """
    for blk in list(model.block3) + list(model.block4):
        for conv in (blk.attn.q_conv, blk.attn.k_conv, blk.attn.v_conv):
            torch.nn.init.constant_(conv[1].bias, qkv_bias)
        torch.nn.init.constant_(blk.mlp.fc1_bn.bias, branch_bias)
    for blocks in (model.ConvBlock1_1, model.ConvBlock1_2, model.ConvBlock2_1, model.ConvBlock2_2):
        for blk in blocks:
            torch.nn.init.constant_(blk.Conv.bn1.bias, branch_bias)
            torch.nn.init.constant_(blk.bn1.bias, branch_bias)


def _param_groups(model: torch.nn.Module, weight_decay: float):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        # Conv and linear weights (>= 2 dims) decay; BatchNorm affine parameters and biases do not.
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def train(cfg: ModelConfig, epochs: int = DEFAULT_EPOCHS, seed: int = DEFAULT_SEED, lr: float = DEFAULT_LR,
          batch: int = DEFAULT_BATCH, out_path: str | None = None, progress: bool = True, *,
          weight_decay: float = DEFAULT_WEIGHT_DECAY, shift: int = 0,
          label_smoothing: float = 0.1, warmup_epochs: int = 2, n_train: int | None = None,
          qkv_bias: float = 2.0, branch_bias: float = 1.0, surrogate_alpha: float = 2.0,
          clip_grad: float | None = 1.0, threads: int = DEFAULT_THREADS) -> dict:
    """Train ``cfg`` on the digits, evaluate on the held-out split, optionally save a checkpoint.

    ``shift`` is the maximum random shift in input pixels (0, the default, disables this
    augmentation: on these 1347 images it slowed learning more than it helped). ``n_train`` limits
    training to the first ``n_train`` training images (for quick tests). Each epoch is a fresh
    permutation cut into full batches (the remainder is dropped: a batch of 3 would give
    BatchNorm useless statistics). ``threads`` is the torch CPU thread count while training
    (results are bit-identical only for the same count). Returns a dict with ``top1``,
    ``samples``, ``correct`` (held out), ``train_top1``, ``loss`` (last epoch), ``epochs``,
    ``seconds``, ``path`` and ``model`` (the trained module, in eval mode).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, not {epochs!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, not {batch!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, not {lr!r}")
    if cfg.in_channels != 1:
        raise ValueError(f"the digits are grey images: in_channels must be 1, not {cfg.in_channels}")
    if cfg.num_classes != 10:
        raise ValueError(f"the digits have 10 classes: num_classes must be 10, not {cfg.num_classes}")

    t0 = time.time()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(cfg, epochs, seed, lr, batch, out_path, progress, weight_decay, shift,
                      label_smoothing, warmup_epochs, n_train, qkv_bias, branch_bias, surrogate_alpha,
                      clip_grad, threads, t0)
    finally:
        torch.set_num_threads(old_threads)


def _train(cfg, epochs, seed, lr, batch, out_path, progress, weight_decay, shift, label_smoothing,
           warmup_epochs, n_train, qkv_bias, branch_bias, surrogate_alpha, clip_grad, threads, t0):
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)

    x_tr, y_tr, x_te, y_te = load_digits_split(cfg.img_size)
    if n_train is not None:
        x_tr, y_tr = x_tr[:n_train], y_tr[:n_train]

    model = MetaSpikeFormer(cfg)
    init_for_spikes(model, qkv_bias, branch_bias)
    for _, lif in lif_modules(model):
        # A training-only setting (not in state dicts); wider than spikingjelly's default alpha = 4,
        # which starves the deep, sparsely firing T = 1 network of gradient.
        lif.surrogate_alpha = surrogate_alpha
    opt = torch.optim.AdamW(_param_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999))
    n = len(x_tr)
    batch = min(batch, n)
    steps_per_epoch = n // batch
    total = epochs * steps_per_epoch
    warm = min(warmup_epochs * steps_per_epoch, total // 2)

    def lr_factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        p = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * p))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)

    from tqdm import tqdm

    bar = tqdm(range(epochs), desc=f"train T={cfg.T}", unit="epoch", disable=not progress,
               dynamic_ncols=True, leave=True)
    loss_avg = float("nan")
    train_acc = float("nan")
    for ep in bar:
        model.train()
        order = rng.permutation(n)
        tot_loss, tot_correct, seen = 0.0, 0, 0
        for i in range(0, steps_per_epoch * batch, batch):
            idx = order[i:i + batch]
            xb = torch.from_numpy(_shift_batch(x_tr[idx], rng, shift))
            yb = torch.from_numpy(y_tr[idx])
            out = model(xb)
            if isinstance(out, tuple):  # kd: (head, head_kd)
                loss = sum(F.cross_entropy(o, yb, label_smoothing=label_smoothing) for o in out)
                logits = (out[0] + out[1]) / 2
            else:
                loss = F.cross_entropy(out, yb, label_smoothing=label_smoothing)
                logits = out
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if clip_grad:
                torch.nn.utils.clip_grad_norm_(model.parameters(), clip_grad)
            opt.step()
            sched.step()
            tot_loss += float(loss.detach()) * len(idx)
            tot_correct += int((logits.detach().argmax(1) == yb).sum())
            seen += len(idx)
        loss_avg = tot_loss / seen
        train_acc = 100.0 * tot_correct / seen
        bar.set_postfix(loss=f"{loss_avg:.3f}", train=f"{train_acc:.1f}%")
    bar.close()

    model.eval()
    res = evaluate_float(model, x_te, y_te)
    seconds = time.time() - t0
    result = dict(res, train_top1=train_acc, loss=loss_avg, epochs=epochs, seconds=seconds,
                  path=out_path, T=cfg.T, img_size=cfg.img_size)
    if out_path:
        save_checkpoint(model, out_path, epoch=epochs - 1, extra_args=dict(
            data="digits", epochs=epochs, seed=seed, lr=lr, batch_size=batch, weight_decay=weight_decay,
            shift=shift, label_smoothing=label_smoothing, n_train=n, threads=threads,
            qkv_bias=qkv_bias, branch_bias=branch_bias, surrogate_alpha=surrogate_alpha,
            held_out_top1=round(res["top1"], 4), held_out_samples=res["samples"]))
    result["model"] = model
    return result
