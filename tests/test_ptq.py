"""Post-training quantization of float checkpoints: the early layers' spikes (issue 23, item 2).

Measured on the official-layout fixtures with ``python -m bench.ptq`` (which also prints the
ablations these tests pin): the first LIF layers' spikes against the exact scaled graph (the float
model), calibrated on 16 uniform random images (seed 0) and measured on 16 others (seed 1).

* ``small_t1`` (T = 1): 99.99 / 99.95 / 99.62 %, the issue's target (>= 99 %) holds.
* ``small_t4`` (T = 4): 99.61 / 99.15 / 95.61 %. The third LIF (``ConvBlock1_1.0.lif1``, after the
  first residual add) misses 99 % for reasons no rounding rule of the integer graph removes:
  per-channel rounding done naively in float (every row filling exactly ``qmax``, no power-of-two
  stream, no shift) with the same 8-bit input reaches 95.87 %, and 97.07 % even with the input
  not rounded; making the residual stream 2, 8 or 64 times finer, so that ``pwconv2`` needs no
  rounding right shift, changes it by at most 0.05 points. What these tests pin is that the
  integer graph loses no more than that naive rounding does, and that the alignment shifts cost
  nothing measurable.
"""

import numpy as np

from bench.ptq import finer_streams, fixture_images, lif_agreement, naive_per_channel, scaled_and_rounded
from conftest import fixture_path
from spikegate.quantize import intops
from spikegate.quantize.checkpoint import load_model
from spikegate.quantize.lower import lower
from spikegate.quantize.quantizer import round_graph


def _graphs(ck):
    model, _ = load_model(ck)
    calib, x = fixture_images(model.cfg, 0), fixture_images(model.cfg, 1)
    g0 = lower(model)
    g1, g2 = scaled_and_rounded(g0, calib, 8)
    return model.cfg.T, g0, g1, g2, x


def test_first_lifs_match_naive_per_channel_rounding(official):
    ck, _ = official
    T, g0, g1, g2, x = _graphs(ck)
    ours = lif_agreement(g1, g2, x, T)
    print(ck, ours)
    names = list(ours)
    # the first two LIF layers agree >= 99 % on both fixtures, all three on T = 1
    assert min(ours[n] for n in names[:2]) >= 99.0
    if T == 1:
        assert ours[names[2]] >= 99.0
    # no LIF loses more than 0.5 points to per-channel float rounding of the same weights and input
    s = float(g1.ops[0].attrs["scale"])
    g0s = g0.copy()
    g0s.ops[0].attrs["scale"] = 1.0
    naive = lif_agreement(g0s, naive_per_channel(g0s, 8), x, T, test_mode="float",
                          test_input=intops.quantize_input(x, s, 8) / s)
    print("naive", naive)
    for n in names:
        assert ours[n] >= naive[n] - 0.5, (n, ours[n], naive[n])


def test_stream_alignment_shifts_cost_no_spikes():
    """A stream 8 times finer (no right shift for the multi-bit writers) changes nothing that
    matters: the shifts' rounding is not where the post-training error comes from."""
    T, g0, g1, g2, x = _graphs(fixture_path("small_t4.pth"))
    assert any(np.asarray(o.params["shift"]).min() < 0 for o in g2.ops[:8] if o.kind == "conv")
    ours = lif_agreement(g1, g2, x, T)
    g3 = finer_streams(g1, 3)
    fine = lif_agreement(g3, round_graph(g3, 8), x, T)
    print(ours, fine)
    for n in ours:
        assert abs(ours[n] - fine[n]) <= 0.1, (n, ours[n], fine[n])
