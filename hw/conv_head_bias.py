"""HEAD's bias phase (``hw/sfa_conv.py``).

HEAD runs as a CONV with a 1x1 kernel on a 1x1 map whose logits stay in the ACC banks for OUTPUT
(``docs/accelerator.md``: HEAD), so after each time step's scatter it adds the class biases there
instead of reading the banks out: for ``g``, ``p``: lane ``p`` adds ``BIAS[pbase + g*P + p]`` into
``ACC[p][g]``, one bias per cycle, issued to the lane array (``hw/conv_lanes.py``) as a tap in the
lanes' BIAS mode. The BIAS address is the readout's register (``hw/conv_readout.py``, which steps
it in the BIAS state), so that BIAS's read address is one register in every state.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig

from .conv_control import conv_states
from .conv_geometry import geometry_shapes
from .conv_lanes import tap_issue_sig
from .datapath import AccumulateLane

__all__ = ["HeadBiasPhase"]


class HeadBiasPhase(wiring.Component):
    """Sequenced by the control's ``state`` (``hw/conv_control.py``): ``start`` and DRAIN (unless
    ``t_end``) restart at ``g = p = 0``, BIAS issues one bias per cycle on ``issue`` (registered
    by the lane array in BIAS); BIAS's last cycle is the last lane (not ``more_lanes``) of the last
    group (``last_group``)."""

    def __init__(self, cfg: MachineConfig):
        self._cfg = cfg
        super().__init__({
            "G1": In(geometry_shapes(cfg)["G1"]),
            "state": In(range(len(conv_states(cfg)))), "start": In(1), "t_end": In(1),
            "issue": Out(tap_issue_sig(cfg)), "more_lanes": Out(1), "last_group": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        P = self._cfg.lanes
        S = conv_states(self._cfg)
        bp = Signal(range(max(P, 2)))
        bg = Signal.like(self.G1)
        iss = self.issue
        m.d.comb += [iss.mode.eq(AccumulateLane.BIAS)]
        m.d.comb += [iss.en[p].eq(bp == p) for p in range(P)]
        m.d.comb += [iss.addr[p].eq(bg) for p in range(P)]
        # the control's BIAS state ends on these, tested as the counters' steps test them
        m.d.comb += [self.more_lanes.eq(bp != P - 1), self.last_group.eq(bg == self.G1)]
        # one state-decoded structure, as the engine's FSM had it (hw/conv_control.py)
        with m.Switch(self.state):
            with m.Case(S["BIAS"]):
                m.d.comb += iss.valid.eq(1)
                with m.If(bp != P - 1):
                    m.d.sync += bp.eq(bp + 1)
                with m.Else():
                    m.d.sync += [bp.eq(0), bg.eq(bg + 1)]
            with m.Case(S["DRAIN"]):
                with m.If(self.t_end):
                    pass
                with m.Else():
                    m.d.sync += [bp.eq(0), bg.eq(0)]
        # restart at the start of every instruction
        with m.If(self.start):
            m.d.sync += [bp.eq(0), bg.eq(0)]
        return m
