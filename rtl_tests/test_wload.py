"""pytest wrapper: the WLOAD engine (``hw/wload.py``) alone against the burst-memory model (cocotb
half: ``tb_wload.py``), for three WMEM word widths over the ULX3S's 16-bit port: 8 lanes x 8 bits
(4 beats a word), 4 x 6 (24 bits, words straddling beats) and 1 x 8 (two words a beat: the engine
holds the port back); and 4 x 6 over a 64-bit port with bursts of at most 3 beats (2.67 words a
beat, short odd bursts). One simulator build per case and simulator (``build/sim/wload-<case>-<sim>``),
reused between runs."""

from __future__ import annotations

import dataclasses

import pytest

from spikegate.hw.wload import WLoadEngine
from spikegate.machine.external_memory import ULX3S_PORT, BurstPort
from spikegate.rtl_tests.cocotb_util import SIMULATORS, run_cocotb, sim_build_dir

# case -> (word_bits = lanes x weight_bits, port)
CASES = {"8x8": (64, ULX3S_PORT), "4x6": (24, ULX3S_PORT), "1x8": (8, ULX3S_PORT),
         "4x6-p64b3": (24, BurstPort(port_bits=64, max_burst=3, addr_bits=12))}
WMEM_ABITS = 10
N_BITS = 10
N_TOP = 300                                    # the largest WLOAD the tests run


@pytest.mark.parametrize("sim", SIMULATORS)
@pytest.mark.parametrize("case", list(CASES))
def test_wload(case, sim):
    word_bits, port = CASES[case]
    engine = WLoadEngine(word_bits=word_bits, wmem_abits=WMEM_ABITS, n_bits=N_BITS, port=port)
    run_cocotb(engine, "wload_top", "spikegate.rtl_tests.tb_wload", sim,
               sim_build_dir(f"wload-{case}", sim),
               config={"word_bits": word_bits, "wmem_abits": WMEM_ABITS, "n_bits": N_BITS,
                       "n_top": N_TOP, "port": dataclasses.asdict(port)})
