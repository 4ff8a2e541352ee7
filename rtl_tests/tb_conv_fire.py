"""cocotb test of the CONV engine's fire mode against the ISS (pytest half: ``test_conv_fire.py``).

The engine testbench of ``tb_engines.py`` (loader, sequencer, write monitors of ACT, SPK and the
ACC banks, scoreboard of every memory word and of the cycles against the ISS's step), plus the
engine's ``spikes`` after every CONV: the spikes a CONV with ``fire`` fired (ISS:
``MachineState.fired``), 0 after one without (the count restarts with every instruction).
"""

from __future__ import annotations

import cocotb

from spikegate.rtl_tests.tb_engines import EngineTB


class FireTB(EngineTB):
    """:class:`EngineTB` whose scoreboard also compares the CONV engine's spike count."""

    def check(self, step, ins, what, *args):
        super().check(step, ins, what, *args)
        spikes = int(self.dut.spikes.value)
        if spikes != step["spikes"]:
            self.failures.append(f"{what}: spike count {spikes}, ISS {step['spikes']}")


@cocotb.test()
async def conv_fire_matches_iss(dut):
    """Every CONV step of the program (with and without fire), in a seeded random order."""
    tb = FireTB(dut)
    await tb.start()
    runs = list(tb.steps)
    tb.rng.shuffle(runs)
    for step in runs:
        await tb.run_step(step, False)
    assert not tb.failures, f"{len(tb.failures)} mismatches with the ISS:\n" + "\n".join(tb.failures)
