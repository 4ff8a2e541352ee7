"""The CONV engine's readout: ACC to ACT, one output element per cycle (``hw/sfa_conv.py``).

``RO`` walks the output elements, channels then positions: read the ACC word(s) (through the lane
array, ``hw/conv_lanes.py``, which owns the ACC ports), SHIFT/BIAS of the channel and, for
OUT_ACCUM, the old ACT word; one cycle later (R1) clear the ACC word(s) and, with more than one
lane, register the words with the shift, bias and old word; in the next two cycles (RS and RS2,
only with more than one lane) select the lane's word (LANES_TAP: sum the banks), RS in pairs and
RS2 the pairs, and register it with ``bias + old`` (without RS, R1 registers that sum; with more
than ``LANE_SUM_BANKS`` = 8 lanes, ``split_lane_sum``, RS2 the pairs in groups of four and one more
stage, RS3, the groups); one more cycle later (R2) register ``align(acc, shift) + (bias + old)``,
and in the next (R3) write it to ACT. Separate stages because a block RAM's clock-to-output, the
lane sum, the aligner and two adders in one cycle were the ECP5's critical path, then the eight
banks' sum from registers across the die (then, at 32 lanes, the sixteen pairs' sum), and the
aligner with its adder and the route to the ACT block RAM the UP5K's.
``align(acc, shift) + b`` is an :class:`~spikegate.hw.datapath.AlignBias` (proven equal to its
integer definition by ``rtl_tests/test_formal.py`` at the widths :func:`readout_widths` gives).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import LANE_SUM_BANKS, MachineConfig, split_lane_sum
from spikegate.machine.program import FIRE_ONLY

from .conv_control import conv_states
from .conv_geometry import geometry_shapes
from .datapath import AlignBias, Saturate
from .params import bits_for
from .sfa_common import field_or_zero, instr_layout, tree_sum, write_sig

__all__ = ["ConvReadout", "fire_decode", "readout_widths"]

# the geometry registers the readout uses (hw/conv_geometry.py)
READOUT_GEOMETRY = ("tapm", "accum", "howo", "howo1", "cout1")


def fire_decode(instr) -> tuple:
    """CONV's ``fire`` field (``machine/program.py``: 0, FIRE or FIRE_ONLY): whether the readout
    fires, and whether it writes ACT (not FIRE_ONLY; a program whose field is too narrow to hold
    FIRE_ONLY always does, with no gate)."""
    fire = field_or_zero(instr, "fire")
    writes_act = fire != FIRE_ONLY if len(fire) >= FIRE_ONLY.bit_length() else Const(1)
    return fire != 0, writes_act


def readout_widths(cfg: MachineConfig) -> dict:
    """The widths of the readout's :class:`AlignBias`: the accumulator is one ACC word, or in
    LANES_TAP the sum of the ``lanes`` banks; its "bias" is the channel's BIAS word plus, for
    OUT_ACCUM, the old ACT word (added a stage earlier, so R2 has one adder after the aligner);
    the result is an ACT word, or, when the program saturates, the result before the clamp
    (``readout_bits``; :class:`Saturate` makes it an ACT word in R3)."""
    return dict(acc_bits=cfg.acc_bits + bits_for(cfg.lanes), shift_bits=cfg.shift_bits,
                bias_bits=max(cfg.bias_bits, cfg.act_bits) + 1,
                out_bits=max(cfg.readout_bits, cfg.act_bits) if cfg.sat_bits else cfg.act_bits)


class ConvReadout(wiring.Component):
    """RO to R3, sequenced by the control's ``state`` (``hw/conv_control.py``): ``start`` points
    the ACT address at ``dst`` (it continues over time steps) and, with DRAIN (unless ``t_end``),
    restarts the channel, position and BIAS/SHIFT address counters; RO reads one element per cycle
    (the last one is the last position, not ``more_pos``, of the last channel, ``last_ch``), BIAS steps the BIAS/SHIFT address (HEAD's bias phase, which reads
    BIAS there). ``ro_addr``/``clr``/``clr_addr`` go to the lane array's ACC ports,
    ``act_addr`` is the old word's read (the engine enables it in RO), ``words`` the ACC banks'
    words, ``param_addr`` BIAS's and SHIFT's read (and THRESH's, when the program fires).

    When the program fires (``MachineConfig.fires``; only then are these members and their logic
    built, so a program without ``fire`` has the netlist it always had): ``thresh_data`` is the
    THRESH word at ``param_addr`` (read in RO beside BIAS/SHIFT), piped beside the shift to R3,
    where a CONV with ``fire`` compares the word it writes to ACT with twice it and writes the
    spike to ``spk_w`` at ``src3 + e`` (a counter loaded at ``start`` and stepped by every R3
    write: the writes come in element order), in the cycle of the ACT write, so no cycle is added;
    ``spikes`` counts them (cleared at ``start``), as the LIF engine's does. A FIRE_ONLY CONV
    writes no ACT word (only its spikes: a current no other instruction reads)."""

    def __init__(self, cfg: MachineConfig):
        self._cfg = cfg
        P = cfg.lanes
        shapes = geometry_shapes(cfg)
        PAB = max(cfg.bias_abits, cfg.shift_abits, *([cfg.thresh_abits] if cfg.fires else []))
        fire = {"thresh_data": In(signed(cfg.thresh_bits)),
                "spk_w": Out(write_sig(cfg.spk_abits, unsigned(1))), "spikes": Out(32)} if cfg.fires else {}
        super().__init__({
            "instr": In(instr_layout(cfg)),
            **{n: In(shapes[n]) for n in READOUT_GEOMETRY},
            "state": In(range(len(conv_states(cfg)))), "start": In(1), "t_end": In(1),
            "more_pos": Out(1), "last_ch": Out(1),
            "words": In(signed(cfg.acc_bits)).array(P), "shift_data": In(signed(cfg.shift_bits)),
            "bias_data": In(signed(cfg.bias_bits)), "old_data": In(signed(cfg.act_bits)),
            "ro_addr": Out(cfg.acc_abits), "clr": Out(1).array(P), "clr_addr": Out(cfg.acc_abits),
            "act_addr": Out(cfg.act_abits), "param_addr": Out(PAB),
            "act_w": Out(write_sig(cfg.act_abits, signed(cfg.act_bits))),
            **fire,
        })

    def _counters(self, m, r):
        """RO: the counters (channel ``co``, its lane ``rp`` and position ``rq``, the ACC word
        ``ra`` and its lane group's base ``rgb``, the ACT word ``oa``, the BIAS/SHIFT word ``pa``)
        and R1's registers."""
        P, tapm, I = self._cfg.lanes, self.tapm, self.instr
        co, rp, rq, ra, rgb, oa, pa = (r[n] for n in ("co", "rp", "rq", "ra", "rgb", "oa", "pa"))
        S = conv_states(self._cfg)
        m.d.sync += r["r1v"].eq(0)
        m.d.sync += [r["r1_clr"][p].eq(0) for p in range(P)]
        # the control's RO state ends on these, tested as the counters' steps test them
        m.d.comb += [self.more_pos.eq(rq != self.howo1), self.last_ch.eq(co == self.cout1)]

        def readout_init():
            m.d.sync += [co.eq(0), rp.eq(0), rq.eq(0), ra.eq(0), rgb.eq(0), pa.eq(I.pbase)]
        # one state-decoded structure, as the engine's FSM had it (hw/conv_control.py)
        with m.Switch(self.state):
            with m.Case(S["IDLE"]):
                with m.If(self.start):
                    m.d.sync += oa.eq(I.dst)
            with m.Case(S["RO"]):
                m.d.sync += [r["r1v"].eq(1), r["r1_p"].eq(rp), r["r1_ra"].eq(ra), r["r1_oa"].eq(oa),
                             oa.eq(oa + 1)]
                m.d.sync += [r["r1_clr"][p].eq(tapm | (rp == p)) for p in range(P)]
                with m.If(rq != self.howo1):
                    m.d.sync += [rq.eq(rq + 1), ra.eq(ra + 1)]
                with m.Else():
                    m.d.sync += [rq.eq(0), co.eq(co + 1), pa.eq(pa + 1)]
                    with m.If(tapm):
                        m.d.sync += ra.eq(ra + 1)
                    with m.Elif(rp != P - 1):
                        m.d.sync += [rp.eq(rp + 1), ra.eq(rgb)]
                    with m.Else():
                        m.d.sync += [rp.eq(0), rgb.eq(rgb + self.howo), ra.eq(rgb + self.howo)]
            with m.Case(S["BIAS"]):
                m.d.sync += pa.eq(pa + 1)
            with m.Case(S["DRAIN"]):
                with m.If(~self.t_end):     # the next time step
                    readout_init()
        # restart at the start of every instruction
        with m.If(self.start):
            readout_init()

    def _select(self, m, r, acc_sel):
        """RS and RS2 (more than one lane): the words in pairs (LANES_TAP: each pair's sum;
        LANES_CO: the pair's word the lane's low bit selects), registered with the rest in RS2,
        whose sum of the pairs (or mux of them) goes to R2: the eight banks' sum in one cycle,
        from the bank registers across the die, was the ECP5's critical path. Each pair sum is
        exact (one bit wider than a word), so the sum is the one the single stage made; with more
        than 8 lanes RS2 sums groups of pairs and RS3 the groups (:meth:`_groups`). The
        words and the old ACT word need no register in RS: they are the ACC banks' and ACT's
        registers behind their block RAMs, which take every cycle outside the scan (read_sig's
        ``take``); the rest is registered beside them."""
        cfg, P, tapm = self._cfg, self._cfg.lanes, self.tapm
        r1_p, r1_oa = r["r1_p"], r["r1_oa"]
        words, old_v = list(self.words), Mux(self.accum, self.old_data, 0)
        rs_p = Signal.like(r1_p)
        rs_v = Signal()
        rs_oa = Signal.like(r1_oa)
        rs_shift = Signal.like(r["r2_shift"])
        rs_bias = Signal(signed(cfg.bias_bits))
        m.d.sync += [rs_p.eq(r1_p), rs_v.eq(r["r1v"]), rs_oa.eq(r1_oa),
                     rs_shift.eq(self.shift_data), rs_bias.eq(self.bias_data)]
        if cfg.fires:
            rs_th, rs2_th = Signal.like(r["r2_th"], name="rs_th"), Signal.like(r["r2_th"], name="rs2_th")
            m.d.sync += [rs_th.eq(self.thresh_data), rs2_th.eq(rs_th)]
            if split_lane_sum(P):
                rs3_th = Signal.like(r["r2_th"], name="rs3_th")
                m.d.sync += [rs3_th.eq(rs2_th), r["r2_th"].eq(rs3_th)]
            else:
                m.d.sync += r["r2_th"].eq(rs2_th)
        pairs = [words[i:i + 2] for i in range(0, P, 2)]
        rs2_pair = [Signal(signed(cfg.acc_bits + 1), name=f"rs2_pair{i}") for i in range(len(pairs))]
        rs2_p = Signal.like(r1_p)
        rs2_v = Signal()
        rs2_oa = Signal.like(r1_oa)
        rs2_shift = Signal.like(r["r2_shift"])
        rs2_bias_old = Signal.like(r["r2_bias_old"])
        m.d.sync += [rs2_p.eq(rs_p), rs2_v.eq(rs_v), rs2_oa.eq(rs_oa),
                     rs2_shift.eq(rs_shift), rs2_bias_old.eq(rs_bias + old_v)]
        for reg, pair in zip(rs2_pair, pairs):
            if len(pair) == 1:
                m.d.sync += reg.eq(pair[0])
            else:
                with m.If(tapm):
                    m.d.sync += reg.eq(pair[0] + pair[1])
                with m.Else():
                    m.d.sync += reg.eq(Mux(rs_p[0], pair[1], pair[0]))
        last = dict(regs=rs2_pair, sel=rs2_p[1:] if len(rs2_p) > 1 else 0, v=rs2_v, oa=rs2_oa,
                    shift=rs2_shift, bias_old=rs2_bias_old)
        if split_lane_sum(P):
            last = self._groups(m, last, rs2_p)
        with m.If(tapm):
            m.d.comb += acc_sel.eq(tree_sum(last["regs"]))
        with m.Else():
            with m.Switch(last["sel"]):
                for i, reg in enumerate(last["regs"]):
                    with m.Case(i):
                        m.d.comb += acc_sel.eq(reg)
        m.d.sync += [r["r2v"].eq(last["v"]), r["r2_acc"].eq(acc_sel), r["r2_shift"].eq(last["shift"]),
                     r["r2_bias_old"].eq(last["bias_old"]), r["r2_oa"].eq(last["oa"])]

    def _groups(self, m, rs2, rs2_p):
        """RS3 (more than ``LANE_SUM_BANKS`` lanes: ``split_lane_sum``): RS2 registers the pairs in
        groups of ``LANE_SUM_BANKS // 2`` (LANES_TAP: each group's sum, exact, as wide as its
        pairs' sum; LANES_CO: the group's pair that lane bits 1 and 2 select) with the rest
        beside them, and RS3 sums the groups (selects one by the lane's upper bits) into R2: 16
        pairs summed in one cycle at 32 lanes was the ECP5's critical path. Returns RS3's
        registers as :meth:`_select` names RS2's."""
        cfg, tapm = self._cfg, self.tapm
        k = LANE_SUM_BANKS // 2
        pairs = rs2["regs"]
        groups = [pairs[i:i + k] for i in range(0, len(pairs), k)]
        regs = [Signal(signed(cfg.acc_bits + 1 + (len(g) - 1).bit_length()), name=f"rs3_group{i}")
                for i, g in enumerate(groups)]
        low = (k - 1).bit_length() + 1      # the lane index's bits below its group's
        in_group = rs2_p[1:low]
        for reg, group in zip(regs, groups):
            with m.If(tapm):
                m.d.sync += reg.eq(tree_sum(group))
            with m.Else():
                with m.Switch(in_group):
                    for j, pair in enumerate(group):
                        with m.Case(j):
                            m.d.sync += reg.eq(pair)
        rs3 = {n: Signal.like(rs2[n], name=f"rs3_{n}") for n in ("v", "oa", "shift", "bias_old")}
        rs3_p = Signal.like(rs2_p, name="rs3_p")
        m.d.sync += [rs3[n].eq(rs2[n]) for n in rs3] + [rs3_p.eq(rs2_p)]
        return dict(regs=regs, sel=rs3_p[low:], **rs3)

    def elaborate(self, platform):
        m = Module()
        cfg, P = self._cfg, self._cfg.lanes
        ro_w = readout_widths(cfg)
        r = {
            "co": Signal(cfg.fbits("cout"), name="co"),
            "rp": Signal(range(max(P, 2)), name="rp"),      # co % P       (LANES_CO)
            "rq": Signal(len(self.howo), name="rq"),         # position in the channel
            "ra": Signal(cfg.acc_abits, name="ra"),          # ACC word
            "rgb": Signal(cfg.acc_abits, name="rgb"),        # (co // P) * howo
            "oa": Signal(cfg.act_abits, name="oa"),          # ACT word (continues over time steps)
            # pbase + co in the readout, pbase + g*P + p in HEAD's bias phase: one register, the
            # BIAS and SHIFT address in every state (a mux of two by the state, in front of the
            # block RAM across the die, was the ECP5's critical path)
            "pa": Signal(len(self.param_addr), name="pa"),
            "r1v": Signal(name="r1v"),
            "r1_p": Signal(range(max(P, 2)), name="r1_p"),
            "r1_ra": Signal(cfg.acc_abits, name="r1_ra"),
            "r1_oa": Signal(cfg.act_abits, name="r1_oa"),
            # per lane, whether R1 clears its word (LANES_TAP: every lane; LANES_CO: lane co % P):
            # a flip-flop, so that the write enable of the bank, across the die, is one LUT of
            # registers
            "r1_clr": [Signal(name=f"r1_clr{p}") for p in range(P)],
            # R2: the selected (LANES_TAP: summed) accumulator, the channel's shift and its bias
            # plus the old ACT word (the residual add), registered so that the ACC read, the lane
            # sum and the bias + old add end before R2, and the align and one add have R2 to
            # themselves
            "r2v": Signal(name="r2v"),
            "r2_acc": Signal(signed(ro_w["acc_bits"]), name="r2_acc"),
            "r2_shift": Signal(signed(cfg.shift_bits), name="r2_shift"),
            "r2_bias_old": Signal(signed(ro_w["bias_bits"]), name="r2_bias_old"),
            "r2_oa": Signal(cfg.act_abits, name="r2_oa"),
        }
        if cfg.fires:
            # the channel's threshold (never negative: the LIF engine reads it unsigned too), piped
            # beside the shift to R3
            r["r2_th"] = Signal(unsigned(cfg.thresh_bits), name="r2_th")
        m.d.sync += r["r2v"].eq(0)
        self._counters(m, r)
        # which lanes' words RS uses (LANES_TAP: every lane's; LANES_CO: lane rp's), for the ACC
        # collision test (ConvEngine.acc_read_probe); set anew by every elaboration
        self.lane_used = [self.tapm | (r["rp"] == p) for p in range(P)]
        m.d.comb += [self.ro_addr.eq(r["ra"]), self.clr_addr.eq(r["r1_ra"]), self.act_addr.eq(r["oa"]),
                     self.param_addr.eq(r["pa"])]
        m.d.comb += [self.clr[p].eq(r["r1_clr"][p]) for p in range(P)]

        # ---- R1 (the ACC word(s) are cleared by the lane array) and, with more than one lane,
        # RS and RS2
        acc_sel = Signal(signed(ro_w["acc_bits"]))
        if P > 1:
            self._select(m, r, acc_sel)
        else:
            # (one lane: the one-lane netlist as it always was)
            with m.If(self.tapm):
                m.d.comb += acc_sel.eq(self.words[0])
            with m.Else():
                with m.Switch(r["r1_p"]):
                    with m.Case(0):
                        m.d.comb += acc_sel.eq(self.words[0])
            # OUT_ACCUM's residual add (intops.add) folded into the bias: align(acc) + (bias + old)
            m.d.sync += [r["r2v"].eq(r["r1v"]), r["r2_acc"].eq(acc_sel), r["r2_shift"].eq(self.shift_data),
                         r["r2_bias_old"].eq(self.bias_data + Mux(self.accum, self.old_data, 0)),
                         r["r2_oa"].eq(r["r1_oa"])]
            if cfg.fires:
                m.d.sync += r["r2_th"].eq(self.thresh_data)

        # ---- R2: align + bias, registered; R3: the ACT write of that register (the aligner, its
        # adder and the route to the ACT block RAM's write data in one cycle were the UP5K's
        # critical path)
        m.submodules.align = ro = AlignBias(**ro_w)
        m.d.comb += [ro.acc.eq(r["r2_acc"]), ro.shift.eq(r["r2_shift"]), ro.bias.eq(r["r2_bias_old"])]
        r3v = Signal()
        r3_oa = Signal.like(r["r2_oa"])
        r3_y = Signal.like(ro.y)
        m.d.sync += [r3v.eq(r["r2v"]), r3_oa.eq(r["r2_oa"]), r3_y.eq(ro.y)]
        if cfg.sat_bits:
            # the clamp after R3 (its test and mux before the ACT write, not after R2's adder)
            m.submodules.saturate = sat = Saturate(in_bits=ro_w["out_bits"], out_bits=cfg.sat_bits)
            m.d.comb += sat.x.eq(r3_y)
            r3_y = sat.y
        # (FIRE_ONLY writes no ACT word; without fire the enable is the constant it always was)
        act_en = fire_decode(self.instr)[1] if cfg.fires else 1
        with m.If(r3v):
            m.d.comb += [self.act_w.en.eq(act_en), self.act_w.addr.eq(r3_oa), self.act_w.data.eq(r3_y)]
        if cfg.fires:
            self._fire(m, r, r3v, r3_y)
        return m

    def _fire(self, m, r, r3v, y):
        """R3 of a CONV with ``fire``: ``SPK[src3 + e] = y >= 2 * THRESH[pbase + c]`` for the word
        ``y`` written to ACT (the integer LIF's first step, membrane 0: ``intops.lif_step``), and
        the spike count."""
        cfg = self._cfg
        r3_th = Signal.like(r["r2_th"], name="r3_th")
        sa = Signal(cfg.spk_abits, name="sa")        # src3 + e: the SPK word of R3's element
        m.d.sync += r3_th.eq(r["r2_th"])
        spike = Signal(name="spike")
        m.d.comb += spike.eq(y >= (r3_th << 1))
        with m.If(self.start):
            m.d.sync += [sa.eq(self.instr.src3), self.spikes.eq(0)]
        with m.Elif(r3v & fire_decode(self.instr)[0]):
            m.d.sync += [sa.eq(sa + 1), self.spikes.eq(self.spikes + spike)]
            m.d.comb += [self.spk_w.en.eq(1), self.spk_w.addr.eq(sa), self.spk_w.data.eq(spike)]
