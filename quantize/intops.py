"""The integer operations of the spikegate IR: the living definition of each op.

Everything downstream (the golden model, the RTL testbenches, the ONNX integer export) uses these
functions; nothing re-implements them. ``docs/integer-semantics.md`` states the same definitions in
prose, with their bit widths.

Convolutions run through PyTorch in float64 when the range analysis bounds every partial sum below
2**40 (then every exact intermediate is an integer float64 represents, the algorithm's rounding
error is far below 1/2, and ``rint`` recovers the exact integer, which is checked); above that they
run in int64 numpy.

Arrays are ``int64`` numpy arrays in ``[T, B, C, ...]`` layout (channel axis 2); spikes are ``uint8``
0/1. Each function is exact integer arithmetic.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

EXACT_FLOAT64 = 2 ** 53
FLOAT_PATH_BOUND = 2 ** 40
FLOAT32_EXACT_BOUND = 2 ** 24  # float32's mantissa: every integer of smaller magnitude is exact


# ---------------------------------------------------------------------------------------------
# Bit-width helpers (one definition, used by the range analysis, the IR checks and the hardware)
# ---------------------------------------------------------------------------------------------

def signed_bits(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding every integer in ``[lo, hi]`` (at least 2)."""
    lo, hi = int(lo), int(hi)
    b = 2
    while not (-(1 << (b - 1)) <= lo and hi <= (1 << (b - 1)) - 1):
        b += 1
    return b


def saturate(values: np.ndarray, bits: int) -> np.ndarray:
    """Clamp to the signed ``bits``-bit range ``[-2**(bits-1), 2**(bits-1)-1]``: a value that would
    not fit becomes the nearest end of the range (never wrapped). The IR applies it to the outputs
    of the ops whose ``attrs["saturate"]`` is set (``docs/integer-semantics.md``: Saturation)."""
    lim = 1 << (int(bits) - 1)
    return np.clip(np.asarray(values, dtype=np.int64), -lim, lim - 1)


def saturated_count(values: np.ndarray, bits: int) -> int:
    """How many of ``values`` :func:`saturate` changes (the golden model counts them)."""
    values = np.asarray(values)
    lim = 1 << (int(bits) - 1)
    return int(((values < -lim) | (values > lim - 1)).sum())


def fits(values: np.ndarray, bits: int) -> bool:
    if values.size == 0:
        return True
    return int(values.min()) >= -(1 << (bits - 1)) and int(values.max()) <= (1 << (bits - 1)) - 1


# ---------------------------------------------------------------------------------------------
# Input quantisation
# ---------------------------------------------------------------------------------------------

def quantize_input(x: np.ndarray, scale: float, bits: int) -> np.ndarray:
    """``clip(floor(x * scale + 1/2), -2**(bits-1), 2**(bits-1)-1)`` as int64 (round half up)."""
    q = np.floor(np.asarray(x, dtype=np.float64) * float(scale) + 0.5)
    lim = 1 << (bits - 1)
    return np.clip(q, -lim, lim - 1).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Convolution / linear: y = (sum w * x) << shift[c] + bias[c]
# ---------------------------------------------------------------------------------------------

def conv(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None, *, stride: int = 1,
         padding: int = 0, groups: int = 1, shift: np.ndarray | None = None,
         magnitude_bound: int | None = None) -> np.ndarray:
    """2-D convolution with zero padding on integer inputs ``[..., Cin, H, W]``.

    ``x`` may be spikes (0/1) or multi-bit integers. The accumulator ``sum w * x`` is aligned to
    the residual stream's scale by ``shift[c]`` (see :func:`shift_round`: shifts, not multipliers)
    and ``bias[c]`` is added after the shift. Leading dimensions (T, B) are flattened and restored.
    """
    x = np.asarray(x)
    lead = x.shape[:-3]
    xf = x.reshape((-1,) + x.shape[-3:])
    w = np.asarray(weight, dtype=np.int64)
    if magnitude_bound is None:
        magnitude_bound = int(np.abs(w).reshape(w.shape[0], -1).sum(1).max(initial=0)) * \
            int(np.abs(xf).max(initial=0))
    acc_i = None
    if magnitude_bound < FLOAT_PATH_BOUND:
        # Every partial sum of this convolution is an integer of magnitude <= magnitude_bound, so
        # a float type whose mantissa holds that bound computes it exactly, in any summation
        # order: float32 below 2**24 (twice as fast), float64 below 2**53. The result must then be
        # integral; if it is not (an inexact algorithm, e.g. Winograd), fall back to int64.
        dtype = np.float32 if magnitude_bound < FLOAT32_EXACT_BOUND else np.float64
        acc = F.conv2d(torch.from_numpy(xf.astype(dtype)), torch.from_numpy(w.astype(dtype)),
                       stride=stride, padding=padding, groups=groups).numpy()
        rounded = np.rint(acc)
        if np.array_equal(acc, rounded):
            acc_i = rounded.astype(np.int64)
    if acc_i is None:
        acc_i = _conv_int64(xf.astype(np.int64), w, stride, padding, groups)
    if shift is not None:
        acc_i = shift_round(acc_i, np.asarray(shift, dtype=np.int64).reshape(1, -1, 1, 1))
    if bias is not None:
        acc_i = acc_i + np.asarray(bias, dtype=np.int64).reshape(1, -1, 1, 1)
    return acc_i.reshape(lead + acc_i.shape[1:])


def _conv_int64(x, w, stride, padding, groups):
    n, cin, h, wd = x.shape
    cout, cpg, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - k) // stride + 1
    wo = (wd + 2 * padding - k) // stride + 1
    out = np.zeros((n, cout, ho, wo), dtype=np.int64)
    opg = cout // groups
    for g in range(groups):
        xs = xp[:, g * cpg:(g + 1) * cpg]
        ws = w[g * opg:(g + 1) * opg]
        for dy in range(k):
            for dx in range(k):
                patch = xs[:, :, dy:dy + stride * ho:stride, dx:dx + stride * wo:stride]
                out[:, g * opg:(g + 1) * opg] += np.einsum("ncij,oc->noij", patch, ws[:, :, dy, dx])
    return out


def shift_round(acc: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Align an accumulator to the stream scale: ``acc << s`` for ``s >= 0``; for ``s < 0`` a right
    shift by ``-s`` rounding half up, ``(acc + 2**(-s-1)) >> -s`` (arithmetic, so it floors)."""
    acc = np.asarray(acc, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    left = acc << np.maximum(shift, 0)
    r = np.maximum(-shift, 0)
    half = np.where(r > 0, np.left_shift(1, np.maximum(r - 1, 0)), 0)
    right = (acc + half) >> r
    return np.where(shift >= 0, left, right)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """``y[..., k] = sum_c w[k, c] * x[..., c] + bias[k]`` on integers (the classifier head)."""
    y = np.asarray(x, dtype=np.int64) @ np.asarray(weight, dtype=np.int64).T
    if bias is not None:
        y = y + np.asarray(bias, dtype=np.int64)
    return y


# ---------------------------------------------------------------------------------------------
# LIF neuron, tau = 2, in doubled units
# ---------------------------------------------------------------------------------------------

def lif_step(v: np.ndarray, x: np.ndarray, threshold: np.ndarray):
    """One time step of the integer LIF; returns ``(spike, v_next, h2)``.

    ``h2 = v + x`` is twice the float model's charged membrane ``H = (V + X) / 2``; comparing it
    with ``2 * threshold`` decides the spike exactly (no rounding before the comparison; ties fire).
    Only the carried state is rounded: ``v_next = floor(h2 / 2)`` (arithmetic shift), or 0 after a
    spike (hard reset).
    """
    h2 = v + x
    spike = h2 >= 2 * threshold
    v_next = np.where(spike, 0, h2 >> 1)
    return spike.astype(np.uint8), v_next.astype(np.int64), h2


def lif(x_seq: np.ndarray, threshold: np.ndarray, channel_axis: int = 2):
    """Multi-step integer LIF over axis 0 (T). ``threshold`` is per channel (positive integers).

    Returns ``(spikes uint8, membranes int64)``, both shaped like ``x_seq``; ``membranes[t]`` is the
    state after step t (after reset), i.e. what is kept in membrane memory between time steps.
    """
    x_seq = np.asarray(x_seq, dtype=np.int64)
    shape = [1] * (x_seq.ndim - 1)
    shape[channel_axis - 1] = -1
    th = np.asarray(threshold, dtype=np.int64).reshape(shape)
    v = np.zeros(x_seq.shape[1:], dtype=np.int64)
    spikes = np.empty(x_seq.shape, dtype=np.uint8)
    membranes = np.empty(x_seq.shape, dtype=np.int64)
    for t in range(x_seq.shape[0]):
        s, v, _ = lif_step(v, x_seq[t], th)
        spikes[t] = s
        membranes[t] = v
    return spikes, membranes


# ---------------------------------------------------------------------------------------------
# Spike-driven self-attention (exact)
# ---------------------------------------------------------------------------------------------

def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, heads: int) -> np.ndarray:
    """``Y8 = Q (K^T V)`` per head on binary ``[T, B, C, H, W]`` spikes; returns int64 ``[T,B,C,H,W]``.

    ``K^T V`` are counts (AND-and-count over tokens); ``Q (K^T V)`` sums the rows of ``K^T V``
    selected by Q's spikes. The float model multiplies by 0.125; we keep ``8 * Y`` exactly and the
    attention neuron's threshold 0.5 becomes 4 in these units.
    """
    T, B, C, H, W = q.shape
    N, d = H * W, C // heads

    def split(s):  # [T,B,C,H,W] -> [T,B,heads,N,d]
        return np.asarray(s, dtype=np.int64).reshape(T, B, heads, d, N).transpose(0, 1, 2, 4, 3)

    qh, kh, vh = split(q), split(k), split(v)
    kv = np.matmul(kh.transpose(0, 1, 2, 4, 3), vh)  # [T,B,heads,d,d] counts in 0..N
    y = np.matmul(qh, kv)  # [T,B,heads,N,d]
    return y.transpose(0, 1, 2, 4, 3).reshape(T, B, C, H, W)


def attention_kv(k_tokens: np.ndarray, v_tokens: np.ndarray) -> np.ndarray:
    """``K^T V`` for one head: ``[N, d]`` binary each -> ``[d, d]`` counts (used by hardware tests)."""
    return np.asarray(k_tokens, dtype=np.int64).T @ np.asarray(v_tokens, dtype=np.int64)


# ---------------------------------------------------------------------------------------------
# Residual add, spatial sum, head, argmax
# ---------------------------------------------------------------------------------------------

def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Membrane shortcut: both operands are already at the stream's scale (writers shifted)."""
    return np.asarray(a, dtype=np.int64) + np.asarray(b, dtype=np.int64)


def spatial_sum(x: np.ndarray) -> np.ndarray:
    """``[T, B, C, H, W] -> [T, B, C]``: the sum over tokens (N times the float model's mean)."""
    x = np.asarray(x, dtype=np.int64)
    return x.reshape(x.shape[:3] + (-1,)).sum(axis=3)


def head(spikes: np.ndarray, weights: np.ndarray, biases: np.ndarray) -> np.ndarray:
    """Integer logits ``[B, K]``: sum over T and over heads (head, head_kd) of ``W s + b``.

    ``weights``: ``[n_heads, K, C]``; ``biases``: ``[n_heads, K]``; ``spikes``: ``[T, B, C]``.
    """
    s = np.asarray(spikes, dtype=np.int64)
    out = 0
    for h in range(weights.shape[0]):
        out = out + linear(s, weights[h], biases[h]).sum(axis=0)
    return np.asarray(out, dtype=np.int64)


def argmax(logits: np.ndarray) -> np.ndarray:
    """Class index per sample; the first maximum wins (as the hardware argmax)."""
    return np.argmax(np.asarray(logits), axis=-1)
