"""Training a small Meta-SpikeFormer on the 8x8 scikit-learn digits (CPU, deterministic).

Recipe (defaults): AdamW (peak lr 4e-3, weight decay 0.1 on conv/linear weights only, not on
BatchNorm or biases), linear warm-up for 2 epochs then per-step cosine decay to 0, batch 32 (the
last partial batch of each epoch is dropped), cross entropy with label smoothing 0.1, gradient-norm
clipping at 1, 30 epochs, no augmentation (random shifts are available and did not help here).
BatchNorm biases are initialised so that every spiking layer fires from the first step
(``init_for_spikes``); the LIF neurons train through their sigmoid surrogate gradient
(``spikegate.quantize.lif``) widened from alpha = 4 to alpha = 2. With ``cfg.kd`` both heads are
trained (the loss is the sum over ``head`` and ``head_kd``), as the official code's distillation
setup leaves two heads.

Quantisation-robust training (``weight_noise_bits``, ``spikegate train --weight-noise-bits N``):
at every training step each conv and linear weight is perturbed, per output row, by uniform noise
of ``weight_noise_scale`` rounding steps of an N-bit quantiser (step = the row's max |w| / qmax,
qmax = 2**(N-1) - 1 as in ``spikegate.quantize.quantizer``; the heads share one scale in the
quantiser, so their step is the whole tensor's max). BatchNorm scales each output row by one
factor, so relative noise on a raw row is the same relative noise on the folded row the quantiser
rounds. The forward pass runs on the perturbed weights and the gradients reach the clean ones
(``torch.func.functional_call``); evaluation and the saved checkpoint use the clean weights. The
network learns to keep its decisions when its weights move by a rounding step. Measured on the
fpga-digits preset (450 held-out digits, 8 bits): float-vs-integer argmax agreement stayed within
97-98.3 % for scales 1..16, about what plain training gives: the deep T = 1 network is chaotic
under any weight change (a few spike flips in the first layers cascade), and the samples that
flip are the ones the model is unsure of anyway.

Spike margins (``spike_margin``, ``spikegate train --spike-margin M``): the integer model flips a
spike wherever rounding moves a membrane potential across its threshold, and in a network of ~35
LIF layers a few early flips cascade. This regulariser adds
``spike_margin_weight * mean_layers(mean(relu(1 - |h / v_th - 1| / M)))`` to the loss (``h``: each
LIF's membrane potential before it fires), which pushes potentials out of the band of relative
width ``M`` around the threshold, where a weight change of a rounding step would flip them. It
empties the band behind the branch convolutions but barely moves the residual-stream readers
(whose inputs are near-continuous sums); weights above ~2 cost accuracy when training from scratch.

Quantisation-aware fine-tuning (``qat_bits``, ``spikegate train --qat-bits N --init CKPT``): the
forward pass runs on the weights as the quantiser rounds them and the checkpoint keeps them on that
grid (``spikegate.quantize.qat``). Unlike the two options above it closes the gap: the embedded
default is ``default-float`` fine-tuned so (8-bit argmax agreement 97.56 -> 100 %).

Runs are reproducible: the same configuration, seed and thread count give bit-identical weights.
Only the training split of ``spikegate.quantize.data.load_digits_split`` is used for training;
the held-out split is evaluated once, at the end (no model selection on it).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import save_checkpoint
from .data import dataset, evaluate_float
from .model import MetaSpikeFormer, ModelConfig, lif_modules
from .qat import GridQAT, check_qat_bits, freeze_batchnorm
from .quantizer import _qmax

# Weight-noise (quantisation-robust) training: the bits the quantiser accepts (spikegate quantize
# --weight-bits) and the noise width, in rounding steps, a run may ask for.
WEIGHT_NOISE_BITS = (4, 16)
WEIGHT_NOISE_SCALE_MAX = 16.0
DEFAULT_WEIGHT_NOISE_SCALE = 1.0
DEFAULT_SPIKE_MARGIN_WEIGHT = 1.0

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


class WeightNoise:
    """Per-row uniform weight noise of ``scale`` N-bit rounding steps (see the module docstring).

    ``perturbed(model)`` returns ``{name: w + noise}`` for every conv/linear weight; the noise is
    drawn from its own generator (seeded), so it does not disturb any other random stream.
    """

    def __init__(self, model: torch.nn.Module, bits: int, scale: float = DEFAULT_WEIGHT_NOISE_SCALE,
                 seed: int = 0):
        check_weight_noise(bits, scale)
        self.qmax = float(_qmax(int(bits)))
        self.scale = float(scale)
        self.gen = torch.Generator().manual_seed(int(seed) ^ 0x5EED_0015E)
        self.rows: list[tuple[str, bool]] = []  # (parameter name, per-row scale?)
        for mname, mod in model.named_modules():
            if isinstance(mod, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
                # The quantiser gives every conv row its own scale and the head(s) one scale.
                self.rows.append((f"{mname}.weight", not isinstance(mod, torch.nn.Linear)))

    def perturbed(self, model: torch.nn.Module) -> dict:
        params = dict(model.named_parameters())
        out = {}
        for name, per_row in self.rows:
            w = params[name]
            with torch.no_grad():
                if per_row:
                    m = w.abs().reshape(w.shape[0], -1).amax(1).view(-1, *([1] * (w.dim() - 1)))
                else:
                    m = w.abs().amax()
                u = torch.rand(w.shape, generator=self.gen, dtype=w.dtype) - 0.5
                noise = u * (self.scale * m / self.qmax)
            out[name] = w + noise  # gradients flow to the clean weight
        return out


class SpikeMargin:
    """Records every LIF's membrane potentials in training and scores how many sit near threshold.

    Forward hooks replay the LIF dynamics (``spikegate.quantize.lif``: decay_input, tau, hard
    reset with the spike detached) on the layer's input, so the score is differentiable and the
    LIF module itself is untouched.
    """

    @staticmethod
    def check(margin) -> None:
        if not (isinstance(margin, (int, float)) and math.isfinite(margin) and 0 < margin <= 1):
            raise ValueError(f"spike_margin must be in (0, 1] (a fraction of the threshold), not {margin!r}")

    def __init__(self, model: torch.nn.Module, margin: float):
        self.check(margin)
        self.margin = float(margin)
        self.scores: list[torch.Tensor] = []
        self.handles = [lif.register_forward_hook(self._hook) for _, lif in lif_modules(model)]

    def _hook(self, lif, inputs, output):
        if not (lif.training and torch.is_grad_enabled()):
            return
        x = inputs[0]
        v = torch.zeros_like(x[0])
        bumps = []
        for t in range(x.shape[0]):
            h = v + (x[t] - (v - lif.v_reset)) / lif.tau
            bumps.append(torch.relu(1.0 - (h / lif.v_threshold - 1.0).abs() / self.margin).mean())
            s = (h >= lif.v_threshold).to(h.dtype).detach()
            v = lif.v_reset * s + (1.0 - s) * h
        self.scores.append(torch.stack(bumps).mean())

    def take(self) -> torch.Tensor:
        """Mean score over the LIF layers of the last forward pass (and forget them)."""
        out = torch.stack(self.scores).mean()
        self.scores = []
        return out

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def check_weight_noise(bits, scale) -> None:
    lo, hi = WEIGHT_NOISE_BITS
    if isinstance(bits, bool) or not isinstance(bits, int) or not lo <= bits <= hi:
        raise ValueError(f"weight_noise_bits must be an integer in {lo}..{hi} (the quantiser's "
                         f"weight bits), not {bits!r}")
    if not (isinstance(scale, (int, float)) and math.isfinite(scale) and 0 < scale <= WEIGHT_NOISE_SCALE_MAX):
        raise ValueError(f"weight_noise_scale must be in (0, {WEIGHT_NOISE_SCALE_MAX:g}] rounding steps, "
                         f"not {scale!r}")


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
          clip_grad: float | None = 1.0, threads: int = DEFAULT_THREADS,
          weight_noise_bits: int | None = None, weight_noise_scale: float = DEFAULT_WEIGHT_NOISE_SCALE,
          init_from: str | None = None, spike_margin: float | None = None,
          spike_margin_weight: float = DEFAULT_SPIKE_MARGIN_WEIGHT, qat_bits: int | None = None,
          data: str = "digits") -> dict:
    """Train ``cfg`` on a data set (``data``: a name in ``spikegate.quantize.data.DATASETS``, default
    the digits), evaluate on its held-out split, optionally save a checkpoint.

    ``shift`` is the maximum random shift in input pixels (0, the default, disables this
    augmentation: on these 1347 images it slowed learning more than it helped). ``n_train`` limits
    training to the first ``n_train`` training images (for quick tests). Each epoch is a fresh
    permutation cut into full batches (the remainder is dropped: a batch of 3 would give
    BatchNorm useless statistics). ``threads`` is the torch CPU thread count while training
    (results are bit-identical only for the same count). ``weight_noise_bits`` (4..16, default
    off) trains through per-row weight noise of ``weight_noise_scale`` (default 1) rounding steps of
    that many bits (module docstring); the noise is on in the training steps only. ``init_from``
    starts from a checkpoint's weights (same shapes; fine-tuning) instead of a fresh
    initialisation. ``spike_margin`` (a fraction of the threshold, e.g. 0.05; default off) adds the
    spike-margin regulariser with weight ``spike_margin_weight`` (module docstring). ``qat_bits``
    (4..16, needs ``init_from``) fine-tunes quantisation-aware on the grid ``spikegate quantize
    --weight-bits qat_bits --calib digits`` will use and saves the weights on it
    (``spikegate.quantize.qat``; BatchNorm frozen). Returns a dict
    with ``top1``, ``samples``, ``correct`` (held out), ``train_top1``, ``loss`` (last epoch),
    ``epochs``, ``seconds``, ``path``, ``qat_off_grid`` (with ``qat_bits``: weights the projection
    could not put on the grid, by parameter; normally empty) and ``model`` (the trained module, in
    eval mode).
    """
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, not {epochs!r}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, not {batch!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive number, not {lr!r}")
    ds = dataset(data)
    if cfg.in_channels != ds.channels:
        raise ValueError(f"the {ds.name} images have {ds.channels} channel(s): in_channels must be "
                         f"{ds.channels}, not {cfg.in_channels}")
    if cfg.num_classes != ds.classes:
        raise ValueError(f"{ds.name} has {ds.classes} classes: num_classes must be {ds.classes}, "
                         f"not {cfg.num_classes}")
    ds.check_size(cfg.img_size)
    if weight_noise_bits is not None:
        check_weight_noise(weight_noise_bits, weight_noise_scale)
    if spike_margin is not None:
        SpikeMargin.check(spike_margin)
    if not (math.isfinite(spike_margin_weight) and spike_margin_weight >= 0):
        raise ValueError(f"spike_margin_weight must be >= 0, not {spike_margin_weight!r}")
    if qat_bits is not None:
        check_qat_bits(qat_bits)
        if not init_from:
            raise ValueError("qat_bits needs init_from: quantisation-aware training fine-tunes a trained "
                             "checkpoint with its BatchNorm statistics frozen")
        if weight_noise_bits is not None:
            raise ValueError("qat_bits and weight_noise_bits exclude each other: the QAT forward pass "
                             "already runs on the rounded weights")

    t0 = time.time()
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(cfg, epochs, seed, lr, batch, out_path, progress, weight_decay, shift,
                      label_smoothing, warmup_epochs, n_train, qkv_bias, branch_bias, surrogate_alpha,
                      clip_grad, threads, t0, weight_noise_bits, weight_noise_scale, init_from,
                      spike_margin, spike_margin_weight, qat_bits, ds)
    finally:
        torch.set_num_threads(old_threads)


def _train(cfg, epochs, seed, lr, batch, out_path, progress, weight_decay, shift, label_smoothing,
           warmup_epochs, n_train, qkv_bias, branch_bias, surrogate_alpha, clip_grad, threads, t0,
           weight_noise_bits, weight_noise_scale, init_from, spike_margin, spike_margin_weight, qat_bits, ds):
    torch.manual_seed(seed)
    rng = np.random.RandomState(seed)

    x_tr, y_tr = ds.split_xy("train", cfg.img_size)
    x_te, y_te = ds.split_xy("test", cfg.img_size)
    if n_train is not None:
        x_tr, y_tr = x_tr[:n_train], y_tr[:n_train]

    model = MetaSpikeFormer(cfg)
    init_for_spikes(model, qkv_bias, branch_bias)
    if init_from:
        from .checkpoint import check_state_dict, load_checkpoint

        ck = load_checkpoint(init_from)
        check_state_dict(model, ck.state_dict, ck.path)
        model.load_state_dict(ck.state_dict, strict=True)
    noise = WeightNoise(model, weight_noise_bits, weight_noise_scale, seed) if weight_noise_bits else None
    margin = SpikeMargin(model, spike_margin) if spike_margin else None
    qat = GridQAT(model, qat_bits, x_tr) if qat_bits else None
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
        if qat:
            freeze_batchnorm(model)
        order = rng.permutation(n)
        tot_loss, tot_correct, seen = 0.0, 0, 0
        for i in range(0, steps_per_epoch * batch, batch):
            idx = order[i:i + batch]
            xb = torch.from_numpy(_shift_batch(x_tr[idx], rng, shift))
            yb = torch.from_numpy(y_tr[idx])
            if noise:
                out = torch.func.functional_call(model, noise.perturbed(model), (xb,))
            elif qat:
                out = torch.func.functional_call(model, qat.quantized(model, qat.factors(model)), (xb,))
            else:
                out = model(xb)
            if isinstance(out, tuple):  # kd: (head, head_kd)
                loss = sum(F.cross_entropy(o, yb, label_smoothing=label_smoothing) for o in out)
                logits = (out[0] + out[1]) / 2
            else:
                loss = F.cross_entropy(out, yb, label_smoothing=label_smoothing)
                logits = out
            if margin:
                loss = loss + spike_margin_weight * margin.take()
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
    if margin:
        margin.remove()

    model.eval()
    off_grid = qat.project(model) if qat else {}
    res = evaluate_float(model, x_te, y_te)
    seconds = time.time() - t0
    result = dict(res, train_top1=train_acc, loss=loss_avg, epochs=epochs, seconds=seconds,
                  path=out_path, T=cfg.T, img_size=cfg.img_size, qat_off_grid=off_grid)
    if out_path:
        save_checkpoint(model, out_path, epoch=epochs - 1, extra_args=dict(
            data=ds.name, epochs=epochs, seed=seed, lr=lr, batch_size=batch, weight_decay=weight_decay,
            shift=shift, label_smoothing=label_smoothing, n_train=n, threads=threads,
            qkv_bias=qkv_bias, branch_bias=branch_bias, surrogate_alpha=surrogate_alpha,
            weight_noise_bits=weight_noise_bits,
            weight_noise_scale=weight_noise_scale if weight_noise_bits else None,
            init_from=init_from, spike_margin=spike_margin,
            spike_margin_weight=spike_margin_weight if spike_margin else None,
            qat_bits=qat_bits, qat_off_grid=sum(off_grid.values()) if qat else None,
            held_out_top1=round(res["top1"], 4), held_out_samples=res["samples"]))
    result["model"] = model
    return result
