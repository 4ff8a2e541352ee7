"""pytest wrapper: the WLOAD engine (``hw/wload.py``) alone against the burst-memory model (cocotb
half: ``tb_wload.py``), for three WMEM word widths over the ULX3S's 16-bit port: 8 lanes x 8 bits
(4 beats a word), 4 x 6 (24 bits, words straddling beats) and 1 x 8 (two words a beat: the engine
holds the port back). One simulator build per width and simulator
(``build/sim/wload-<bits>-<sim>``), reused between runs."""

from __future__ import annotations

import dataclasses

import pytest

from spikegate.hw.wload import WLoadEngine
from spikegate.machine.external_memory import ULX3S_PORT
from spikegate.rtl_tests.cocotb_util import SIMULATORS, run_cocotb, sim_build_dir

WIDTHS = {"8x8": 64, "4x6": 24, "1x8": 8}     # lanes x weight_bits -> word_bits
WMEM_ABITS = 10
N_BITS = 10
N_TOP = 300                                    # the largest WLOAD the tests run


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("width", list(WIDTHS))
def test_wload(width, sim):
    engine = WLoadEngine(word_bits=WIDTHS[width], wmem_abits=WMEM_ABITS, n_bits=N_BITS, port=ULX3S_PORT)
    run_cocotb(engine, "wload_top", "spikegate.rtl_tests.tb_wload", sim,
               sim_build_dir(f"wload-{width}", sim),
               config={"word_bits": WIDTHS[width], "wmem_abits": WMEM_ABITS, "n_bits": N_BITS,
                       "n_top": N_TOP, "port": dataclasses.asdict(ULX3S_PORT)})
