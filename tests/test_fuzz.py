"""Randomised equivalence, CI-sized: random IR graphs, golden model vs the instruction-level
simulator, layer by layer; plus every saved regression case. (`make fuzz N=...` runs more, and the
RTL batch lives in rtl_tests/test_fuzz_rtl.py.)"""

import glob
import os
import random

import numpy as np
import pytest

from spikegate.fuzz import REGRESSIONS, check_graph, run_one
from spikegate.quantize.irfile import load_ir

SEED = int(os.environ.get("SPIKEGATE_FUZZ_SEED") or random.SystemRandom().randrange(1, 10**6))
COUNT = 30


def test_random_graphs_iss_equals_golden():
    print(f"fuzz seed {SEED} (rerun with SPIKEGATE_FUZZ_SEED={SEED})")
    failures = []
    for s in range(SEED, SEED + COUNT):
        err, g, x, lanes = run_one(s, rtl=None)
        if err:
            failures.append(f"seed {s}: {err}")
    assert not failures, "\n".join(failures)


def test_random_graphs_saturate_and_hit_their_clamps():
    """A share of the fuzzer's graphs saturate (issue 23) and their own inputs hit the clamps, at
    residual adds and convolutions as well as spatial sums; the ISS still equals the golden model."""
    from spikegate.compiler.irgen import GenConfig, random_graph
    from spikegate.quantize.golden import execute

    kinds, hit_graphs = set(), 0
    for s in range(SEED, SEED + 12):
        g, x = random_graph(s, GenConfig(saturating=1.0))
        assert any(o.attrs.get("saturate") for o in g.ops), f"seed {s}"
        sat: dict = {}
        execute(g, x, saturations=sat)
        hits = {n for n, v in sat.items() if v["count"]}
        hit_graphs += bool(hits)
        kinds |= {g.op(n).kind for n in hits}
        assert check_graph(g, x, 2, None, "") is None, f"seed {s}"
    # readouts (a residual add's, or a stream convolution's, which may saturate since the fix
    # below) and spatial sums: which readout clamps first depends on the drawn graph
    assert hit_graphs >= 6 and "spatial_sum" in kinds and kinds & {"add", "conv"}, (hit_graphs, kinds)


CASES = sorted(glob.glob(os.path.join(REGRESSIONS, "*.sgir")))


def test_regression_cases_are_shipped():
    """The replay below must replay something (see tests/regressions/README.md for what is there)."""
    assert CASES, f"no regression cases in {REGRESSIONS}"
    for case in CASES:
        assert os.path.exists(case[:-5] + ".npy"), f"{case}: its inputs (.npy) are missing"


@pytest.mark.parametrize("case", CASES, ids=[os.path.basename(c)[:-5] for c in CASES])
def test_regressions_replay(case, tmp_path):
    g = load_ir(case)
    x = np.load(case[:-5] + ".npy")
    lanes = int(case.rsplit("lanes", 1)[1].split(".")[0]) if "lanes" in case else 4
    assert check_graph(g, x, lanes, rtl=None, workdir=str(tmp_path)) is None


def test_an_adds_stream_convolution_saturates_where_it_is_stored():
    """Found by the fuzz above (seed 858092): a convolution that starts a residual stream (an add's
    first input, stored in ACT and read by the next LIF) was treated like the add's branch (never
    stored, never clamped), so the hardware's clamp of its readout disagreed with the golden model
    (a LIF's spike count differed) and its word could be wider than ACT's. It saturates like any
    stored readout now; only the branch, added in the stream's readout, does not."""
    from spikegate.compiler.irgen import GenConfig, random_graph
    from spikegate.quantize.graph import saturable

    g, x = random_graph(858092, GenConfig(saturating=1.0))
    streams = [g.op(o.inputs[0]) for o in g.ops if o.kind == "add" and g.op(o.inputs[0]).kind == "conv"]
    branches = [g.op(o.inputs[1]) for o in g.ops if o.kind == "add"]
    assert any(c.attrs.get("saturate") for c in streams)
    assert all(saturable(g, c) for c in streams) and not any(saturable(g, c) for c in branches)
    assert check_graph(g, x, 2, None, "") is None
