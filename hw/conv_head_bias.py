"""HEAD's bias phase (``hw/sfa_conv.py``).

HEAD runs as a CONV with a 1x1 kernel on a 1x1 map whose logits stay in the ACC banks for OUTPUT
(``docs/accelerator.md``: HEAD), so after each time step's scatter it adds the class biases there
instead of reading the banks out: for ``g``, ``p``: lane ``p`` adds ``BIAS[pbase + g*P + p]`` into
``ACC[p][g]``, one bias per cycle, issued to the lane array (``hw/conv_lanes.py``) as a tap in the
lanes' BIAS mode. The BIAS address is the readout's register (``hw/conv_readout.py``, stepped with
``param_step`` while this phase runs), so that BIAS's read address is one register in every state.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig

from .conv_geometry import geometry_shapes
from .conv_lanes import tap_issue_sig
from .datapath import AccumulateLane

__all__ = ["HeadBiasPhase"]


class HeadBiasPhase(wiring.Component):
    """``init`` restarts at ``g = p = 0``, ``run`` is the FSM's BIAS state (one bias per cycle on
    ``issue``; ``last`` in the last one, ``g = G - 1``, ``p = P - 1``)."""

    def __init__(self, cfg: MachineConfig):
        self._cfg = cfg
        super().__init__({
            "G1": In(geometry_shapes(cfg)["G1"]),
            "init": In(1), "run": In(1),
            "issue": Out(tap_issue_sig(cfg)), "last": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        P = self._cfg.lanes
        bp = Signal(range(max(P, 2)))
        bg = Signal.like(self.G1)
        with m.If(self.run):
            iss = self.issue
            m.d.comb += [iss.valid.eq(1), iss.mode.eq(AccumulateLane.BIAS)]
            m.d.comb += [iss.en[p].eq(bp == p) for p in range(P)]
            m.d.comb += [iss.addr[p].eq(bg) for p in range(P)]
            with m.If(bp != P - 1):
                m.d.sync += bp.eq(bp + 1)
            with m.Else():
                m.d.sync += [bp.eq(0), bg.eq(bg + 1)]
                with m.If(bg == self.G1):
                    m.d.comb += self.last.eq(1)
        with m.If(self.init):
            m.d.sync += [bp.eq(0), bg.eq(0)]
        return m
