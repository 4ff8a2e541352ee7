"""The CONV/HEAD engine's control: the state machine that sequences its parts (``hw/sfa_conv.py``).

Per time step: SCAT (the scanner and the tap loop, ``hw/conv_scanner.py``, ``hw/conv_tap_loop.py``)
until the scan is over, the drain of the last tap, then RO (the readout, ``hw/conv_readout.py``)
or, for HEAD, BIAS (``hw/conv_head_bias.py``), their drain, and DRAIN, the cycle of the last
write, which starts the next time step or ends the instruction (``done``).

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

from spikegate.machine.config import MachineConfig, deep_acc_pipeline

from .conv_geometry import geometry_shapes

__all__ = ["ConvControl"]


class ConvControl(wiring.Component):
    """``start`` (with the geometry registered a cycle later: ``is_head``, ``bcast``, ``T1``,
    ``t_one``) runs the instruction; the parts report ``scan_finished``, ``ro_last``,
    ``bias_last``. Out: ``done``; the strobes ``scan_init`` (restart the scan), ``load_src`` (the
    scan address from ``src``), ``ro_begin`` (the instruction's first cycle), ``ro_init`` (restart
    the readout and bias counters); the states ``scan_run``, ``in_ro``, ``ro_run``, ``bias_run``."""

    def __init__(self, cfg: MachineConfig):
        self._cfg = cfg
        self._deep = deep_acc_pipeline(cfg.lanes)
        shapes = geometry_shapes(cfg)
        super().__init__({
            "start": In(1), "done": Out(1),
            **{n: In(shapes[n]) for n in ("is_head", "bcast", "T1", "t_one")},
            "scan_finished": In(1), "ro_last": In(1), "bias_last": In(1),
            "scan_init": Out(1), "load_src": Out(1), "scan_run": Out(1),
            "ro_begin": Out(1), "ro_init": Out(1), "ro_run": Out(1), "in_ro": Out(1), "bias_run": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        cfg, deep, P = self._cfg, self._deep, self._cfg.lanes
        tcnt = Signal(cfg.fbits("T"))
        # tcnt == T - 1, kept in a flip-flop like the scanner's end flags (the compare was in front
        # of the scan registers' enables)
        t_end = Signal()
        in_ro = Signal()
        in_scat = Signal()      # the state is SCAT (deep pipeline only; set with scan_init)
        m.d.comb += self.in_ro.eq(in_ro)

        def drain_chain(states, then):
            """``states``, one cycle each, in order (a pipeline draining); the last one goes on to
            the state ``then`` names, or where ``then()`` sends it."""
            for state, following in zip(states, states[1:] + [then]):
                with m.State(state):
                    if callable(following):
                        following()
                    else:
                        m.next = following

        with m.FSM(name="conv"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [tcnt.eq(0), t_end.eq(self.t_one)]
                    m.d.comb += [self.load_src.eq(1), self.ro_begin.eq(1), self.scan_init.eq(1)]
                    if deep:
                        m.d.sync += in_scat.eq(1)
                    m.next = "SCAT"

            with m.State("SCAT"):
                if not deep:
                    m.d.comb += self.scan_run.eq(1)
                with m.If(self.scan_finished):
                    if deep:
                        m.d.sync += in_scat.eq(0)
                    m.next = "SCAT_DRAIN"

            # the last tap's drain: it is in T1 (its ACC read) in SCAT_DRAIN, and in the deep
            # pipeline in T2 in SCAT_DRAIN2, TW (its ACC read) in SCAT_DRAIN_W, T3 (its word and
            # addend registered) in SCAT_DRAIN3 and T4 (its add) in SCAT_DRAIN4; its write-back is
            # in the next cycle (T2: the readout's or bias phase's first cycle, whose ACC reads see
            # it through the transparent port; T5: SCAT_DRAIN5, before their first read, as the
            # deep pipeline's port is not transparent)
            def after_scan():
                with m.If(self.is_head):
                    m.next = "BIAS"
                with m.Else():
                    m.d.sync += in_ro.eq(1)
                    m.next = "RO"
            drain_chain(["SCAT_DRAIN", "SCAT_DRAIN2", "SCAT_DRAIN_W", "SCAT_DRAIN3", "SCAT_DRAIN4",
                         "SCAT_DRAIN5"] if deep else ["SCAT_DRAIN"], after_scan)

            with m.State("RO"):
                m.d.comb += self.ro_run.eq(1)
                with m.If(self.ro_last):
                    m.d.sync += in_ro.eq(0)
                    m.next = "RO_DRAIN"

            # the last element is in R1 (its ACC word(s) read and cleared) in RO_DRAIN, then in RS
            # and RS2 (with lanes to select or sum) and R2 (aligned); R3 writes it in DRAIN
            drain_chain(["RO_DRAIN", "RO_DRAIN2", "RO_DRAIN2S", "RO_DRAIN3"] if P > 1 else ["RO_DRAIN", "RO_DRAIN3"],
                        "DRAIN")

            with m.State("BIAS"):
                m.d.comb += self.bias_run.eq(1)
                with m.If(self.bias_last):
                    m.next = "BIAS_DRAIN"

            # the last bias is in T1 in BIAS_DRAIN (and in the deep pipeline in T2, TW, T3, T4 in
            # BIAS_DRAIN2, BIAS_DRAIN_W, BIAS_DRAIN3, BIAS_DRAIN4); its write-back (T2 or T5) is in DRAIN
            drain_chain(["BIAS_DRAIN", "BIAS_DRAIN2", "BIAS_DRAIN_W", "BIAS_DRAIN3", "BIAS_DRAIN4"]
                        if deep else ["BIAS_DRAIN"], "DRAIN")

            with m.State("DRAIN"):
                # the last write-back (R3, or T2 / T4) happens in this cycle
                with m.If(t_end):
                    m.d.comb += self.done.eq(1)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [tcnt.eq(tcnt + 1), t_end.eq(tcnt + 1 == self.T1)]
                    m.d.comb += [self.scan_init.eq(1), self.ro_init.eq(1), self.load_src.eq(self.bcast)]
                    if deep:
                        m.d.sync += in_scat.eq(1)
                    m.next = "SCAT"

        if deep:
            m.d.comb += self.scan_run.eq(in_scat)
        # reset the readout/bias counters at the start of every instruction
        with m.If(self.start):
            m.d.comb += self.ro_init.eq(1)
        return m
