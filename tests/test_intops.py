"""Each golden op against an independent float computation, on cases where floats are exact."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from spikegate.quantize import intops
from spikegate.quantize.lif import MultiStepLIF
from spikegate.quantize.model import MS_Attention_RepConv_qkv_id

SEED = 1234


@pytest.fixture
def rng():
    print(f"seed {SEED}")
    return np.random.default_rng(SEED)


@pytest.mark.parametrize("k,stride,pad,groups,in_kind", [
    (1, 1, 0, 1, "spike"), (3, 1, 1, 1, "spike"), (3, 2, 1, 1, "spike"), (7, 1, 3, "dw", "spike"),
    (7, 2, 3, 1, "int"), (1, 1, 0, 1, "int"),
])
def test_conv_matches_float_conv(rng, k, stride, pad, groups, in_kind):
    cin, cout = 6, 6 if groups == "dw" else 5
    g = cin if groups == "dw" else 1
    x = rng.integers(0, 2, (2, 3, cin, 9, 9)) if in_kind == "spike" else rng.integers(-128, 128, (2, 3, cin, 9, 9))
    w = rng.integers(-128, 128, (cout, cin // g, k, k))
    b = rng.integers(-1000, 1000, cout)
    shift = rng.integers(0, 4, cout) if in_kind == "spike" else rng.integers(-4, 4, cout)
    y = intops.conv(x, w, b, stride=stride, padding=pad, groups=g, shift=shift)
    # independent: float32 conv (exact: |partial sums| < 2**24), then exact scaling in Python ints
    acc = F.conv2d(torch.tensor(x.reshape(6, cin, 9, 9), dtype=torch.float32),
                   torch.tensor(w, dtype=torch.float32), stride=stride, padding=pad, groups=g).numpy()
    assert np.abs(acc).max() < 2 ** 24
    acc = acc.astype(np.int64).reshape(y.shape)
    #: left shift is multiply, right shift is floor(a / 2**r + 1/2)
    sh = shift.reshape(1, 1, -1, 1, 1)
    scaled = np.where(sh >= 0, acc * (2.0 ** np.maximum(sh, 0)), np.floor(acc / 2.0 ** np.maximum(-sh, 0) + 0.5))
    expect = scaled.astype(np.int64) + b.reshape(1, 1, -1, 1, 1)
    np.testing.assert_array_equal(y, expect)


def test_lif_matches_float_lif_when_float_is_exact(rng):
    """Inputs that are multiples of 2**T keep every float membrane integral, so both agree exactly."""
    T = 4
    th = rng.integers(1, 50, 8)
    x = rng.integers(-40, 60, (T, 3, 8, 5, 5)) * (2 ** T)
    spikes, mem = intops.lif(x, th)
    lif = MultiStepLIF(v_threshold=1.0)
    # float model with per-channel threshold: scale each channel by 1/threshold (LIF is homogeneous)
    xf = torch.tensor(x / th.reshape(1, 1, -1, 1, 1), dtype=torch.float64)
    ref = lif(xf).numpy()
    np.testing.assert_array_equal(spikes, ref.astype(np.uint8))
    assert spikes.mean() > 0.05 and spikes.mean() < 0.95


def test_lif_ties_fire_and_hard_reset():
    th = np.array([5])
    x = np.array([10, 9, 1, 20]).reshape(4, 1, 1)  # h2 = 10 (tie: fires), 9, 9+1=... see below
    s, v = intops.lif(x, th, channel_axis=2)
    # t0: h2=0+10=10>=10 fire, v=0; t1: h2=9 <10, v=4; t2: h2=4+1=5, v=2; t3: h2=22 fire, v=0
    assert s.ravel().tolist() == [1, 0, 0, 1]
    assert v.ravel().tolist() == [0, 4, 2, 0]
    s, v = intops.lif(np.array([-7]).reshape(1, 1, 1), th, channel_axis=2)
    assert v.ravel().tolist() == [-4]  # floor(-7 / 2): arithmetic shift


def test_attention_matches_float_module(rng):
    C, heads, H, W, T, B = 16, 2, 3, 3, 2, 2
    att = MS_Attention_RepConv_qkv_id(C, heads)
    q, k, v = (rng.integers(0, 2, (T, B, C, H, W)) for _ in range(3))
    # the float module's own arithmetic, on the same binary Q, K, V
    N = H * W
    qt, kt, vt = (att._heads(torch.tensor(a, dtype=torch.float32), T, B, C, N) for a in (q, k, v))
    y = ((qt @ (kt.transpose(-2, -1) @ vt)) * att.scale).transpose(3, 4).reshape(T, B, C, H, W).numpy()
    y8 = intops.attention(q, k, v, heads)
    np.testing.assert_array_equal(y8, (y * 8).astype(np.int64))
    np.testing.assert_array_equal(y * 8, y8)  # exact: Y * 8 is an integer
    kv = intops.attention_kv(k[0, 0, :8].reshape(8, N).T, v[0, 0, :8].reshape(8, N).T)
    assert kv.shape == (8, 8) and kv.max() <= N


def test_spatial_sum_head_argmax(rng):
    x = rng.integers(-1000, 1000, (2, 3, 4, 2, 2))
    np.testing.assert_array_equal(intops.spatial_sum(x), (torch.tensor(x, dtype=torch.float64).flatten(3).mean(3) * 4).numpy())
    s = rng.integers(0, 2, (3, 5, 7))
    w = rng.integers(-127, 128, (2, 10, 7))
    b = rng.integers(-50, 50, (2, 10))
    ref = sum((torch.tensor(s, dtype=torch.float64) @ torch.tensor(w[h], dtype=torch.float64).T + torch.tensor(b[h], dtype=torch.float64)).sum(0) for h in range(2))
    np.testing.assert_array_equal(intops.head(s, w, b), ref.numpy())
    assert intops.argmax(np.array([[3, 7, 7, 1]])).tolist() == [1]  # first maximum wins


def test_quantize_input_and_shift_round():
    x = np.array([0.0, 1 / 16, 0.5, -0.53125, 2.0, -3.0, 1000.0])
    assert intops.quantize_input(x, 64, 8).tolist() == [0, 4, 32, -34, 127, -128, 127]
    a = np.arange(-20, 21)
    for r in (1, 2, 3):
        exp = [int(np.floor(v / 2 ** r + 0.5)) for v in a]
        assert intops.shift_round(a, np.full_like(a, -r)).tolist() == exp
    assert intops.shift_round(a, np.full_like(a, 2)).tolist() == (a * 4).tolist()


def test_signed_bits():
    assert intops.signed_bits(0, 1) == 2
    assert intops.signed_bits(-128, 127) == 8
    assert intops.signed_bits(-129, 0) == 9
    assert intops.signed_bits(0, 128) == 9


def test_int64_fallback_equals_float_path(rng):
    x = rng.integers(-300, 300, (1, 2, 5, 8, 8))
    w = rng.integers(-127, 128, (4, 5, 3, 3))
    b = rng.integers(-9, 9, 4)
    sh = np.array([-2, 0, 1, 3])
    fast = intops.conv(x, w, b, stride=2, padding=1, shift=sh)
    slow = intops.conv(x, w, b, stride=2, padding=1, shift=sh, magnitude_bound=2 ** 41)
    np.testing.assert_array_equal(fast, slow)
