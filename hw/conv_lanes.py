"""The CONV/HEAD engine's tap pipeline and lane array (``hw/sfa_conv.py``).

A tap issue (the tap loop's, ``hw/conv_tap_loop.py``, or HEAD's bias phase's,
``hw/conv_head_bias.py``) reads WMEM (and BIAS); one cycle later (T1) it is registered here and the
ACC word(s) read. With one lane (the *short* ACC pipeline), one cycle later (T2) the lane adds its
weight, ``x * weight`` or its bias to the word on the read port and writes it back; a tap issued
right after another one to the same word sees the updated value through the transparent read port.

With more than one lane (the *deep* pipeline, ``machine/config.py: deep_acc_pipeline``: the banks
are many block RAMs spread over the die) the ACC word(s) are read two cycles later, in TW (WMEM's
banks' words are in the bank registers behind their block RAMs in T2, ``hw/banked_rom.py``, the
groups' in the group registers in TW, and the group mux's word in a register before the
multipliers in T3); in T3 the ACC word(s) are registered and each lane registers the operands of
its addend; in T4 it selects the addend and adds it to the registered word into a register, which
T5 writes back. The deep pipeline's ACC read ports are not transparent (``hw/accelerator.py``), so
each lane forwards: in T4 it adds to the result of one of the three previous taps instead of the
word read when that tap went to the same word of this lane (the nearest one first; the addresses
are compared one stage earlier, in T3, from registers). (The stages are split because a block
RAM's clock-to-output, the multiplier and the adder in one cycle were the ECP5's critical path,
then the ACC block RAM's clock-to-output, the transparent port's bypass mux and the adder back into
the block RAM's write data, then the multiplier and the adder into the write data, then the
multiplier, the addend mux, the forward mux and the adder into the result register, then the
multiplier, its partial products' LUTs and the addend mux into the addend register, then the route
from the one weight register across the die to the multipliers.)

Lane ``p`` is an :class:`~spikegate.hw.datapath.AccumulateLane` (proven equal to its integer
definition by ``rtl_tests/test_formal.py`` at the widths :func:`lane_widths` gives). The ACC ports
are this part's: besides the taps' read-modify-writes it reads the readout's words (``ro_addr``
while ``in_ro``) and clears them (``clr``, ``clr_addr``: the readout's R1).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline

from .conv_control import conv_states
from .datapath import AccumulateLane
from .sfa_common import read_sig, wmem_layout, write_sig

__all__ = ["ConvLaneArray", "tap_issue_sig", "lane_widths"]


def lane_widths(cfg: MachineConfig) -> dict:
    """The widths of each :class:`AccumulateLane`: an ACC word, a weight, a multi-bit input
    (``mul_x_bits``: the widest tensor an INT conv reads, not the ACT word, so that the multiplier
    fits one DSP block) and a BIAS word."""
    return dict(acc_bits=cfg.acc_bits, weight_bits=cfg.weight_bits, x_bits=cfg.mul_x_bits, bias_bits=cfg.bias_bits)


def tap_issue_sig(cfg: MachineConfig) -> wiring.Signature:
    """A tap (or bias) issue, seen from its issuer: in a cycle with ``valid``, lane ``p`` adds
    (``en[p]``) to ACC word ``addr[p]`` in ``mode`` (an :class:`AccumulateLane` mode) with the
    input ``x`` (the tap loop's; the bias phase leaves it)."""
    P = cfg.lanes
    return wiring.Signature({
        "valid": Out(1), "mode": Out(2), "x": Out(signed(cfg.mul_x_bits)),
        "en": Out(1).array(P), "addr": Out(cfg.acc_abits).array(P),
    })


class ConvLaneArray(wiring.Component):
    """T1 to T2 (short pipeline) or T5 (deep one) and the ``lanes`` lanes: T1 registers
    ``scan_issue`` (when ``valid``) in the control's SCAT ``state`` (deep pipeline: under
    ``scan_run``) and ``bias_issue`` in BIAS (``hw/conv_control.py``), the weights come from
    ``wmem_data``, the biases from ``bias_data``; ``acc_r``/``acc_w`` are the ACC banks' ports."""

    def __init__(self, cfg: MachineConfig):
        self._cfg = cfg
        self._deep = deep_acc_pipeline(cfg.lanes)
        P = cfg.lanes
        super().__init__({
            "state": In(range(len(conv_states(cfg)))),
            "scan_issue": In(tap_issue_sig(cfg)), "bias_issue": In(tap_issue_sig(cfg)),
            "wmem_data": In(wmem_layout(cfg)), "bias_data": In(signed(cfg.bias_bits)),
            "in_ro": In(1), "ro_addr": In(cfg.acc_abits),
            "clr": In(1).array(P), "clr_addr": In(cfg.acc_abits),
            "acc_r": Out(read_sig(cfg.acc_abits, signed(cfg.acc_bits), take=cfg.taken)).array(P),
            "acc_w": Out(write_sig(cfg.acc_abits, signed(cfg.acc_bits))).array(P),
            **({"scan_run": In(1)} if self._deep else {}),
        })

    def _t1_t2(self, m):
        """T1 (the issue registered) and T2."""
        cfg, deep, P = self._cfg, self._deep, self._cfg.lanes
        t = {}
        t["t1_en"] = t1_en = [Signal(name=f"t1_en{p}") for p in range(P)]
        t["t1_addr"] = t1_addr = [Signal(cfg.acc_abits, name=f"t1_addr{p}") for p in range(P)]
        t1_x = Signal(signed(cfg.mul_x_bits), name="t1_x")
        t1_mode = Signal(2, name="t1_mode")
        for p in range(P):
            m.d.sync += t1_en[p].eq(0)

        def scan_t1():
            iss = self.scan_issue
            with m.If(iss.valid):
                m.d.sync += [t1_x.eq(iss.x), t1_mode.eq(iss.mode)]
                m.d.sync += [t1_en[p].eq(iss.en[p]) for p in range(P)]
                m.d.sync += [t1_addr[p].eq(iss.addr[p]) for p in range(P)]
        # which issue T1 registers: one state-decoded structure, as the engine's FSM had it
        # (hw/conv_control.py)
        S = conv_states(cfg)
        with m.Switch(self.state):
            with m.Case(S["SCAT"]):
                if not deep:
                    scan_t1()
            with m.Case(S["BIAS"]):
                iss = self.bias_issue
                m.d.sync += [t1_en[p].eq(iss.en[p]) for p in range(P)]
                m.d.sync += [t1_addr[p].eq(iss.addr[p]) for p in range(P)]
                m.d.sync += t1_mode.eq(iss.mode)
        if deep:
            with m.If(self.scan_run):
                scan_t1()
        # T2: in the short pipeline (one lane) the T1 stage reads the ACC word and registers the
        # weights (WMEM), the bias and x, and T2 adds and writes back; in the deep one T2 carries
        # the tap along (the weights come from WMEM's bank mux), TW reads the ACC word(s) and
        # registers the weights, and T3 registers them, so that no block RAM read feeds the
        # multiplier, the forward mux or the adder in the same cycle
        t["t2_en"] = t2_en = [Signal(name=f"t2_en{p}") for p in range(P)]
        t["t2_addr"] = t2_addr = [Signal(cfg.acc_abits, name=f"t2_addr{p}") for p in range(P)]
        t["t2_x"] = t2_x = Signal(signed(cfg.mul_x_bits), name="t2_x")
        t["t2_mode"] = t2_mode = Signal(2, name="t2_mode")
        # the weights (short pipeline only: the deep one's come from WMEM's bank mux in T2);
        # declared and assigned in the order they always were, so that the one-lane netlist is
        # unchanged (a reordered netlist maps to a few more LUTs on the full UP5K)
        t["t2_w"] = t2_w = None if deep else Signal.like(self.wmem_data, name="t2_w")  # P signed weights
        t["t2_bias"] = t2_bias = Signal(signed(cfg.bias_bits), name="t2_bias")
        m.d.sync += [t2_en[p].eq(t1_en[p]) for p in range(P)]
        m.d.sync += [t2_addr[p].eq(t1_addr[p]) for p in range(P)]
        m.d.sync += [t2_x.eq(t1_x), t2_mode.eq(t1_mode)] + ([] if deep else [t2_w.eq(self.wmem_data)]) + [
            t2_bias.eq(self.bias_data)]
        return t

    def _deep_stages(self, m, t):
        """TW, T3, T4 and T5 of the deep pipeline, with the lanes' three-deep forward."""
        cfg, P = self._cfg, self._cfg.lanes

        def regs(name, shape=1):
            return [Signal(shape, name=f"{name}{p}") for p in range(P)]
        # T3 (the ACC word(s) registered, each lane's addend registered), T4 (lane add, result
        # registered) and T5 (write-back of that register): per lane a three-deep forward: a
        # tap's ACC read (TW) happens two cycles before the T5 write of the tap issued one cycle
        # before it, one cycle before that of the tap issued two cycles before it, and in the
        # same cycle as that of the tap issued three cycles before it (the read port is not
        # transparent: hw/accelerator.py), so when one of those wrote the same word of this lane
        # (compared in T3 from registered addresses) the lane adds to that tap's result (t4_prev:
        # the previous T4 result, i.e. the word T5 writes now; t5_prev: the one before, written in
        # the previous cycle; t6_prev: the one before that, written as this tap read) instead of
        # the stale word read (the nearest one first: it already includes the others). T3
        # registers the choice as a two-bit select (t4_sel), so T4's forward is one 4:1 mux
        # in front of the adder. A write four or more cycles before T4 is in the word read.
        acc = signed(cfg.acc_bits)
        t3_en, t3_addr = regs("t3_en"), regs("t3_addr", cfg.acc_abits)
        t4_en, t4_addr = regs("t4_en"), regs("t4_addr", cfg.acc_abits)
        t["t4_sel"] = t4_sel = regs("t4_sel", 2)      # 0 word, 1 t6, 2 t5, 3 t4
        t["t4_prev"] = t4_prev = regs("t4_prev", acc)
        t["t5_en"], t["t5_addr"] = t5_en, t5_addr = regs("t5_en"), regs("t5_addr", cfg.acc_abits)
        t["t5_prev"] = t5_prev = regs("t5_prev", acc)
        t6_en, t6_addr = regs("t6_en"), regs("t6_addr", cfg.acc_abits)
        t["t6_prev"] = t6_prev = regs("t6_prev", acc)
        t["t3_x"] = t3_x = Signal(signed(cfg.mul_x_bits), name="t3_x")
        t["t3_mode"] = t3_mode = Signal(2, name="t3_mode")
        t["t3_w"] = t3_w = Signal.like(self.wmem_data, name="t3_w")
        t["t3_bias"] = t3_bias = Signal(signed(cfg.bias_bits), name="t3_bias")
        # TW: a stage between T2 and T3 that only carries the tap along while WMEM's word passes
        # its group registers (hw/banked_rom.py: three cycles from the tap's issue to the word)
        t["tw_en"], t["tw_addr"] = tw_en, tw_addr = regs("tw_en"), regs("tw_addr", cfg.acc_abits)
        tw_x = Signal(signed(cfg.mul_x_bits), name="tw_x")
        tw_mode = Signal(2, name="tw_mode")
        tw_bias = Signal(signed(cfg.bias_bits), name="tw_bias")
        m.d.sync += [tw_en[p].eq(t["t2_en"][p]) for p in range(P)]
        m.d.sync += [tw_addr[p].eq(t["t2_addr"][p]) for p in range(P)]
        m.d.sync += [tw_x.eq(t["t2_x"]), tw_mode.eq(t["t2_mode"]), tw_bias.eq(t["t2_bias"])]
        m.d.sync += [t3_en[p].eq(tw_en[p]) for p in range(P)]
        m.d.sync += [t3_addr[p].eq(tw_addr[p]) for p in range(P)]
        m.d.sync += [t4_en[p].eq(t3_en[p]) for p in range(P)]
        m.d.sync += [t4_addr[p].eq(t3_addr[p]) for p in range(P)]
        for p in range(P):
            fwd1 = t4_en[p] & (t4_addr[p] == t3_addr[p])
            fwd2 = t5_en[p] & (t5_addr[p] == t3_addr[p])
            fwd3 = t6_en[p] & (t6_addr[p] == t3_addr[p])
            m.d.sync += t4_sel[p].eq(Mux(fwd1, 3, Mux(fwd2, 2, Mux(fwd3, 1, 0))))
        m.d.sync += [t5_en[p].eq(t4_en[p]) for p in range(P)]
        m.d.sync += [t5_addr[p].eq(t4_addr[p]) for p in range(P)]
        m.d.sync += [t5_prev[p].eq(t4_prev[p]) for p in range(P)]
        m.d.sync += [t6_en[p].eq(t5_en[p]) for p in range(P)]
        m.d.sync += [t6_addr[p].eq(t5_addr[p]) for p in range(P)]
        m.d.sync += [t6_prev[p].eq(t5_prev[p]) for p in range(P)]
        # T4's word: the ACC bank's register behind its block RAMs, which takes every cycle
        # (acc_r.take; the readout's RS words are the same registers)
        t["t4_acc"] = [self.acc_r[p].data for p in range(P)]
        m.d.comb += [self.acc_r[p].take.eq(1) for p in range(P)]
        # the weights: WMEM delivers them three cycles after the tap's issue (the deep
        # pipeline's WMEM, hw/banked_rom.py: each bank's word registered in T1 behind its block
        # RAMs, each group of banks' in T2, the group mux in TW); T3 registers the mux's word,
        # so that the lanes' multipliers, spread over the die, are fed by registers that can
        # sit next to them
        m.d.sync += [t3_x.eq(tw_x), t3_mode.eq(tw_mode), t3_w.eq(self.wmem_data), t3_bias.eq(tw_bias)]

    def elaborate(self, platform):
        m = Module()
        cfg, deep, P = self._cfg, self._deep, self._cfg.lanes
        t = self._t1_t2(m)
        if deep:
            self._deep_stages(m, t)
            # what the ACC collision test watches (rtl_tests/test_port_collisions.py, through
            # ConvEngine.acc_read_probe): whether a tap's read is in TW, and the tap's forward in
            # T4; set anew by every elaboration
            self.tw_en, self.t4_sel = t["tw_en"], t["t4_sel"]
        for p in range(P):
            m.d.comb += self.acc_r[p].addr.eq(Mux(self.in_ro, self.ro_addr, t["tw_addr" if deep else "t1_addr"][p]))

        # ---- the tap or bias add, one proven AccumulateLane per lane (only events, non-zero
        # elements, issue taps: in SPIKE mode the lane runs for a spike): in the short pipeline
        # in T2, written back in the same cycle; in the deep one the addend in T3 (registered in
        # the lane: the multiplier and the adder in different cycles), the add in T4 into a
        # register, which T5 writes back (so neither the multiplier nor the adder drives the
        # block RAM's write data)
        for p in range(P):
            lane = AccumulateLane(**lane_widths(cfg), registered=deep)
            m.submodules[f"lane{p}"] = lane
            if deep:
                sel = t["t4_sel"][p]
                acc_in = Mux(sel[1], Mux(sel[0], t["t4_prev"][p], t["t5_prev"][p]),
                             Mux(sel[0], t["t6_prev"][p], t["t4_acc"][p]))
                m.d.comb += [lane.mode.eq(t["t3_mode"]), lane.acc.eq(acc_in),
                             lane.x.eq(t["t3_x"]), lane.weight.eq(t["t3_w"][p]), lane.bias.eq(t["t3_bias"])]
                m.d.sync += t["t4_prev"][p].eq(lane.acc_next)
                wb_en, wb_addr, wb_data = t["t5_en"][p], t["t5_addr"][p], t["t4_prev"][p]
            else:
                m.d.comb += [lane.mode.eq(t["t2_mode"]), lane.acc.eq(self.acc_r[p].data),
                             lane.x.eq(t["t2_x"]), lane.weight.eq(t["t2_w"][p]), lane.bias.eq(t["t2_bias"])]
                wb_en, wb_addr, wb_data = t["t2_en"][p], t["t2_addr"][p], lane.acc_next
            with m.If(wb_en):
                m.d.comb += [self.acc_w[p].en.eq(1), self.acc_w[p].addr.eq(wb_addr),
                             self.acc_w[p].data.eq(wb_data)]
            with m.Elif(self.clr[p]):
                m.d.comb += [self.acc_w[p].en.eq(1), self.acc_w[p].addr.eq(self.clr_addr),
                             self.acc_w[p].data.eq(0)]
            m.d.comb += self.acc_r[p].en.eq(1)
        return m
