"""The CONV/HEAD engine's control: the state machine that sequences its parts (``hw/sfa_conv.py``).

Per time step: SCAT (the scanner and the tap loop, ``hw/conv_scanner.py``, ``hw/conv_tap_loop.py``)
until the scan is over, the drain of the last tap, then RO (the readout, ``hw/conv_readout.py``)
or, for HEAD, BIAS (``hw/conv_head_bias.py``), their drain, and DRAIN, the cycle of the last
write, which starts the next time step or ends the instruction (``done``).

The state register is an output (``state``, codes :func:`conv_states`): each part decodes it in a
``Switch`` of its own, so that every register it drives has the one state-decoded priority
structure it had when the engine was one module (the same gates; OR-ed strobes per phase were
equivalent on the reachable states but mapped to more logic cells on the UP5K). ``t_end``
(the last time step) is a flip-flop the parts' DRAIN cases test like this FSM's.

Two states are also kept in flip-flops, set and cleared with the state: ``in_ro`` (the read
addresses are a mux of registers by it: decoding the FSM's state in front of the ACC banks' and
ACT's read addresses, across the die, was the ECP5's critical path) and, in the deep pipeline,
``scan_run`` (the decode of the state register was the first two LUT levels of the ECP5's worst
paths, into the taps' valid tests, S0's register enables and ACT's read enable).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline, split_lane_sum

from .conv_geometry import geometry_shapes

__all__ = ["ConvControl", "conv_states", "drain_states"]


def drain_states(cfg: MachineConfig) -> dict:
    """The drain states after SCAT, RO and BIAS (one cycle each, in order)."""
    deep, P = deep_acc_pipeline(cfg.lanes), cfg.lanes
    return {
        "SCAT": ["SCAT_DRAIN", "SCAT_DRAIN2", "SCAT_DRAIN_W", "SCAT_DRAIN3", "SCAT_DRAIN4", "SCAT_DRAIN5"]
        if deep else ["SCAT_DRAIN"],
        "RO": ["RO_DRAIN", "RO_DRAIN2", "RO_DRAIN2S", *(["RO_DRAIN2T"] if split_lane_sum(P) else []), "RO_DRAIN3"]
        if P > 1 else ["RO_DRAIN", "RO_DRAIN3"],
        "BIAS": ["BIAS_DRAIN", "BIAS_DRAIN2", "BIAS_DRAIN_W", "BIAS_DRAIN3", "BIAS_DRAIN4"]
        if deep else ["BIAS_DRAIN"],
    }


def conv_states(cfg: MachineConfig) -> dict:
    """State name -> code of the ``state`` register: the codes Amaranth's ``m.FSM`` gave the
    engine's states (in the order the FSM first named them), so the register is the one it was."""
    d = drain_states(cfg)
    names = ["IDLE", "SCAT", *d["SCAT"], "BIAS", "RO", *d["RO"], "DRAIN", *d["BIAS"]]
    return {name: code for code, name in enumerate(names)}


class ConvControl(wiring.Component):
    """``start`` (with the geometry registered a cycle later: ``is_head``, ``T1``, ``t_one``) runs
    the instruction; the parts report ``scan_finished`` and the counters' tests that end RO
    (``more_pos``, ``last_ch``: the readout's) and BIAS (``more_lanes``, ``last_group``: the bias
    phase's), tested in the nesting the counters' steps have (the same gates as one module). Out:
    ``done``, the ``state`` register, ``t_end`` (the last time step) and the state flip-flops
    ``in_ro`` and (deep pipeline) ``scan_run``."""

    def __init__(self, cfg: MachineConfig):
        self._cfg = cfg
        self._deep = deep_acc_pipeline(cfg.lanes)
        self._states = conv_states(cfg)
        shapes = geometry_shapes(cfg)
        members = {
            "start": In(1), "done": Out(1),
            **{n: In(shapes[n]) for n in ("is_head", "T1", "t_one")},
            "scan_finished": In(1), "more_pos": In(1), "last_ch": In(1), "more_lanes": In(1),
            "last_group": In(1),
            "state": Out(range(len(self._states))), "t_end": Out(1), "in_ro": Out(1),
        }
        if self._deep:
            members["scan_run"] = Out(1)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, deep, S = self._cfg, self._deep, self._states
        drains = drain_states(cfg)
        decoding = {code: name for name, code in S.items()}
        state = Signal(range(len(S)), name="conv_state", decoder=lambda n: f"{decoding.get(n, '?')}/{n}")
        tcnt = Signal(cfg.fbits("T"))
        # tcnt == T - 1, kept in a flip-flop like the scanner's end flags (the compare was in front
        # of the scan registers' enables)
        t_end = Signal()
        in_ro = Signal()
        in_scat = Signal()      # the state is SCAT (deep pipeline only; set with the scan's start)
        m.d.comb += [self.state.eq(state), self.t_end.eq(t_end), self.in_ro.eq(in_ro)]

        def goto(name):
            m.d.sync += state.eq(S[name])

        def drain_chain(states, then):
            """``states``, one cycle each, in order (a pipeline draining); the last one goes on to
            the state ``then`` names, or where ``then()`` sends it."""
            for name, following in zip(states, states[1:] + [then]):
                with m.Case(S[name]):
                    if callable(following):
                        following()
                    else:
                        goto(following)

        def after_scan():
            # the last tap's drain: it is in T1 (its ACC read) in SCAT_DRAIN, and in the deep
            # pipeline in T2 in SCAT_DRAIN2, TW (its ACC read) in SCAT_DRAIN_W, T3 (its word and
            # addend registered) in SCAT_DRAIN3 and T4 (its add) in SCAT_DRAIN4; its write-back
            # is in the next cycle (T2: the readout's or bias phase's first cycle, whose ACC reads
            # see it through the transparent port; T5: SCAT_DRAIN5, before their first read, as
            # the deep pipeline's port is not transparent)
            with m.If(self.is_head):
                goto("BIAS")
            with m.Else():
                m.d.sync += in_ro.eq(1)
                goto("RO")

        # (the cases in the order the states were defined, as the FSM had them)
        with m.Switch(state):
            with m.Case(S["IDLE"]):
                with m.If(self.start):
                    m.d.sync += [tcnt.eq(0), t_end.eq(self.t_one)]
                    if deep:
                        m.d.sync += in_scat.eq(1)
                    goto("SCAT")
            with m.Case(S["SCAT"]):
                with m.If(self.scan_finished):
                    if deep:
                        m.d.sync += in_scat.eq(0)
                    goto("SCAT_DRAIN")
            drain_chain(drains["SCAT"], after_scan)
            with m.Case(S["RO"]):
                with m.If(self.more_pos):
                    pass
                with m.Elif(self.last_ch):
                    m.d.sync += in_ro.eq(0)
                    goto("RO_DRAIN")
            # the last element is in R1 (its ACC word(s) read and cleared) in RO_DRAIN, then in RS
            # and RS2 (with lanes to select or sum), RS3 (more than 8 lanes) and R2 (aligned); R3
            # writes it in DRAIN
            drain_chain(drains["RO"], "DRAIN")
            with m.Case(S["BIAS"]):
                with m.If(self.more_lanes):
                    pass
                with m.Elif(self.last_group):
                    goto("BIAS_DRAIN")
            # the last bias is in T1 in BIAS_DRAIN (and in the deep pipeline in T2, TW, T3, T4 in
            # BIAS_DRAIN2, BIAS_DRAIN_W, BIAS_DRAIN3, BIAS_DRAIN4); its write-back (T2 or T5) is
            # in DRAIN
            drain_chain(drains["BIAS"], "DRAIN")
            with m.Case(S["DRAIN"]):
                # the last write-back (R3, or T2 / T4) happens in this cycle
                with m.If(t_end):
                    m.d.comb += self.done.eq(1)
                    goto("IDLE")
                with m.Else():
                    m.d.sync += [tcnt.eq(tcnt + 1), t_end.eq(tcnt + 1 == self.T1)]
                    if deep:
                        m.d.sync += in_scat.eq(1)
                    goto("SCAT")
        if deep:
            m.d.comb += self.scan_run.eq(in_scat)
        return m
