"""Depthwise CONVs in channel tiles so that the ACC banks fit on chip with the weights
(``compiler/passes/acc_tiles.py``): the default model at 32 lanes on the ULX3S keeps its weights in
block RAM instead of streaming them from SDRAM, runs exactly as before but for the tiles' fetch and
drain, and a build directory rebuilds the same tiling."""

import hashlib
import json

import numpy as np
import pytest

from spikegate.board_targets import compile_target
from spikegate.compiler import iss
from spikegate.compiler.build import lower_to_program, place_weights, read_build
from spikegate.compiler.passes.acc_tiles import acc_tiled
from spikegate.compiler.passes.budget import on_chip_fits
from spikegate.machine.program import LANES_CO, LANES_TAP, OP_CONV, acc_reads
from spikegate.quantize.data import digits_split_xy
from spikegate.quantize.golden import execute
from spikegate.quantize.irfile import save_ir


@pytest.fixture(scope="module")
def default_ir():
    from spikegate.quantize.pipeline import quantize_checkpoint

    g, _ = quantize_checkpoint("default", calib="digits", evaluate=False)
    return g


def test_default_at_32_lanes_keeps_its_weights_on_the_ulx3s(default_ir):
    g = default_ir
    p = lower_to_program(g, 32)
    t = compile_target("ulx3s-85f")
    assert not on_chip_fits(p, t)                   # 212 of 208 block RAMs: the weights would leave
    q, why = place_weights(p, t, "auto")
    assert why is None and not q.external and on_chip_fits(q, t)
    assert q.acc_words < p.acc_words and q.acc_words == max(acc_reads(i, 32) for i in q.instrs)
    tiles = [i for i in q.instrs if i.opcode == OP_CONV and i.lane_mode == LANES_TAP]
    assert len(tiles) > len([i for i in p.instrs if i.opcode == OP_CONV and i.lane_mode == LANES_TAP])
    x, _ = digits_split_xy("test", 32)
    x = x[:2]
    before, after = iss.run_batch(p, x), iss.run_batch(q, x)
    for a, b, logits in zip(before, after, execute(g, x)):
        assert np.array_equal(b.logits, logits) and b.spike_counts == a.spike_counts
        # the same work; each extra tile costs its fetch, scanner fill and drains (a few cycles)
        assert b.sops == a.sops and 0 < b.cycles - a.cycles <= 30 * (len(q.instrs) - len(p.instrs))


def test_only_depthwise_layers_are_tiled(default_ir):
    p = lower_to_program(default_ir, 32)
    dense = max(acc_reads(i, 32) for i in p.instrs if i.opcode == OP_CONV and i.lane_mode == LANES_CO)
    assert acc_tiled(p, dense - 1) is None        # a dense layer would need it: no on-chip tiling
    q = acc_tiled(p, dense)
    assert q is not None and q.acc_words <= dense


def test_a_build_directory_rebuilds_the_tiling(default_ir, tmp_path):
    """``read_build`` lowers the IR again and tiles it to the ``memories.acc_words`` its
    report.json records (what ``compile`` wrote), so verify and run use the compiled program."""
    g = default_ir
    q, _ = place_weights(lower_to_program(g, 32), compile_target("ulx3s-85f"), "auto")
    save_ir(g, str(tmp_path / "model.sgir"))
    sha = hashlib.sha256((tmp_path / "model.sgir").read_bytes()).hexdigest()
    (tmp_path / "report.json").write_text(json.dumps(
        {"lanes": 32, "target": "ulx3s-85f", "ir_sha256": sha, "weights": {"where": "bram"},
         "memories": {"acc_words": q.acc_words}}))
    _, _, r = read_build(str(tmp_path))
    assert [dataclass_fields(i) for i in r.instrs] == [dataclass_fields(i) for i in q.instrs]


def dataclass_fields(ins):
    return tuple(sorted(vars(ins).items()))
