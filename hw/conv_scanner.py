"""The CONV/HEAD engine's input scanner: stages S0, SR and (deep pipeline) SV (``hw/sfa_conv.py``).

The scanner walks the input elements in ``[c][y][x]`` order and, per element, hands the tap loop
(``hw/conv_tap_loop.py``, stage S1) its value and where its first tap goes, computed without a
multiplier while the element's read is in flight:

* S0 issues the read of the next element (SPK, or ACT in INT mode) and computes, from its
  coordinates, the valid output range ``oy_lo..oy_hi`` (``ox`` likewise; stride 1 or 2 is a
  shift), the ACC word ``oy_lo*wo + ox_lo`` (``oy_lo*wo`` kept incrementally as the scan moves down
  the rows) and the WMEM word ``wbase + ci*k*k*G + ky*k*G + kx*G`` (a running channel base plus two
  narrow products; the first tap's ``ky``, ``kx`` are registers stepped with ``iy``, ``ix``);
* SR holds those results while the read is in flight (the value is on the read port at its end,
  and held there while the scanner stalls), so that S1's decisions depend on registers only;
* SV (more than one lane) has the value as read in a register (ACT's: its bank registers, taken as
  SV takes the element, ``hw/banked_ram.py``), with SR's results carried along, so that S1's zero
  test starts at a register (the ACT block RAMs' clock-to-output, their output mux and the zero test
  in one cycle were the ECP5's critical path).

The scanner advances (``adv``: the tap loop's element is done) as one: S0 issues the next read, SR
and SV take the next elements.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline

from .conv_control import conv_states
from .conv_geometry import geometry_shapes
from .sfa_common import derived_layout, derived_or_zero, instr_layout, small_mul

__all__ = ["ConvScanner", "element_sig"]

# the geometry registers the scanner uses (hw/conv_geometry.py)
SCANNER_GEOMETRY = ("k", "pad", "sh", "wo", "in_int", "tapm", "pk1", "k_1", "howo", "kG", "kkG",
                    "w1", "h1", "ho1", "wo1", "cin1", "cin_one", "h_one", "w_one", "G_s0")


def element_sig(cfg: MachineConfig) -> wiring.Signature:
    """The element the scanner hands S1 (seen from the scanner): whether there is one (``valid``),
    its value (``value``: the ACT word, or the spike) and its first tap: whether it reaches an
    output (``has``), its coordinates, ``E`` (LANES_TAP: ``ci*howo + ((iy+pad)>>s)*wo``), the
    output ranges' spans (``hi - lo``, negative where it reaches none) and the ACC and WMEM words
    of its first tap."""
    CB = cfg.coord_bits
    return wiring.Signature({
        "valid": Out(1), "value": Out(signed(cfg.act_bits)), "has": Out(1),
        "iy": Out(CB), "ix": Out(CB), "E": Out(cfg.acc_abits),
        "oy_span": Out(signed(CB + 3)), "ox_span": Out(signed(CB + 3)),
        "acc": Out(cfg.acc_abits), "w": Out(cfg.wmem_abits),
    })


class ConvScanner(wiring.Component):
    """S0, SR and SV, sequenced by the control's ``state`` (``hw/conv_control.py``): ``start`` in
    IDLE and DRAIN (unless ``t_end``) restart the scan at element 0 and load the scan address with
    the instruction's ``src`` (in DRAIN only with ``bcast``: the scan address continues over time
    steps unless the input is broadcast); SCAT (deep pipeline: ``scan_run``) runs the scan cycles,
    ``adv`` advances. ``rd_addr``/``rd_en`` is the element's read (SPK and ACT; ``rd_en`` is
    ``adv`` with an element in S0, the engine enables the ports with it in the scan),
    ``act_take`` ACT's ``take`` (deep pipeline), ``finished`` says the scan is over (nothing
    left in S0, SR, SV, and S1 done)."""

    def __init__(self, cfg: MachineConfig):
        self._cfg = cfg
        self._deep = deep_acc_pipeline(cfg.lanes)
        shapes = geometry_shapes(cfg)
        members = {
            "instr": In(instr_layout(cfg)), "drv": In(derived_layout(cfg)),
            **{n: In(shapes[n]) for n in SCANNER_GEOMETRY if n in shapes},
            "state": In(range(len(conv_states(cfg)))), "start": In(1), "t_end": In(1), "bcast": In(1),
            "adv": In(1),
            "act_data": In(signed(cfg.act_bits)), "spk_data": In(unsigned(1)),
            "rd_addr": Out(max(cfg.act_abits, cfg.spk_abits)), "rd_en": Out(1),
            "element": Out(element_sig(cfg)), "finished": Out(1),
        }
        if self._deep:
            members["act_take"] = Out(1)
            members["scan_run"] = In(1)
        super().__init__(members)

    def _first_tap(self, m, iy, ix, arow, wch, ky0, kx0, lo0):
        """S0's results for the element at ``iy``, ``ix``: the output ranges' spans, whether it
        reaches an output and its first tap's ACC and WMEM words (``w_x``: the deep pipeline's
        ``kx0 * G`` part, added in SV), and the ranges' own registers (deep pipeline, which passes
        ``lo0``, lo(0), from the instruction's products)."""
        cfg, deep = self._cfg, self._deep
        CB = cfg.coord_bits
        KB = cfg.fbits("k")
        pad, sh, pk1, tapm = self.pad, self.sh, self.pk1, self.tapm
        ho1, wo1, kG = self.ho1, self.wo1, self.kG
        G = Signal.like(self.drv.G)
        m.d.comb += G.eq(self.drv.G)
        r = {}

        def lo_fn(v):
            """First output index reached by input index ``v`` (``max(0, ceil((v+pad-k+1)/s))``)."""
            a = Signal(signed(CB + 4), name="lo_a")
            lo = Signal(CB + 2, name="lo")
            m.d.comb += [a.eq(v + pk1), lo.eq(Mux(a <= 0, 0, (a + sh) >> sh))]
            return lo

        def hi_fn(v, size_o1):
            """Last output index reached (``min(size_o1, (v + pad) >> s)``, ``size_o1`` = size - 1)."""
            q = Signal(CB + 1, name="hi_q")
            hi = Signal(CB + 1, name="hi")
            m.d.comb += [q.eq((v + pad) >> sh), hi.eq(Mux(q > size_o1, size_o1, q))]
            return hi

        if deep:
            # The output ranges in registers stepped with the indices: ``lo`` (lo_fn of the index)
            # grows by one exactly where the first tap's kernel index steps back (lo_steps),
            # ``q = (v + pad) >> s`` (hi_fn before its clamp) where y0_steps says. Computed from
            # iy, ix in S0, lo_fn, hi_fn's clamp, the span's subtract and the has-taps test were
            # three carry chains in one cycle, the ECP5's critical path (pad -> sr_has)
            r["y_lo"], r["x_lo"] = y_lo, x_lo = Signal(CB + 2, name="y_lo"), Signal(CB + 2, name="x_lo")
            r["y_q"], r["x_q"] = y_q, x_q = Signal(CB + 1, name="y_q"), Signal(CB + 1, name="x_q")
            oy_lo, oy_hi = y_lo, Mux(y_q > ho1, ho1, y_q)
            ox_lo, ox_hi = x_lo, Mux(x_q > wo1, wo1, x_q)
        else:
            oy_lo, oy_hi = lo_fn(iy), hi_fn(iy, ho1)
            ox_lo, ox_hi = lo_fn(ix), hi_fn(ix, wo1)
        # lo(0): the deep pipeline's product, or lo_fn of 0 (built anew where it is used)
        r["lo_at_0"] = (lambda: lo0) if deep else (lambda: lo_fn(Const(0, CB)))
        # the output range's span (hi - lo: the number of output rows/columns less one); negative
        # where the element reaches no output
        r["oy_span"] = oy_span = Signal(signed(CB + 3), name="oy_span")
        r["ox_span"] = ox_span = Signal(signed(CB + 3), name="ox_span")
        m.d.comb += [oy_span.eq(oy_hi - oy_lo), ox_span.eq(ox_hi - ox_lo)]
        r["has_taps"] = (oy_span >= 0) & (ox_span >= 0)
        r["acc_start"] = acc_start = Signal(cfg.acc_abits)
        r["w_start"] = w_start = Signal(cfg.wmem_abits)
        if deep:
            # S0 registers wch + ky0 * kG and kx0 * G apart (SR's sr_w and sr_wx); SV adds them: the
            # word's three-operand sum of two shift-add products, behind the shared ``drv``
            # register's G, was one cycle (the ECP5's worst path on some placements)
            r["w_x"] = w_x = Signal(cfg.wmem_abits)
            m.d.comb += [acc_start.eq(arow + ox_lo), w_start.eq(Mux(tapm, wch, wch + small_mul(ky0[:KB], kG))),
                         w_x.eq(Mux(tapm, 0, small_mul(kx0[:KB], self.G_s0)))]
        else:
            m.d.comb += [
                acc_start.eq(arow + ox_lo),
                w_start.eq(Mux(tapm, wch, wch + small_mul(ky0[:KB], kG) + small_mul(kx0[:KB], G))),
            ]
        return r

    def elaborate(self, platform):
        m = Module()
        cfg, deep = self._cfg, self._deep
        I, D = self.instr, self.drv
        CB = cfg.coord_bits
        KB = cfg.fbits("k")
        pad, sh, wo, tapm, howo = self.pad, self.sh, self.wo, self.tapm, self.howo
        if deep:
            # lo(0) (lo_fn of input index 0) and pad >> s: the instruction's products (the
            # compiler's, 0 for HEAD: machine/program.py: derived_values), valid at start, so that
            # the scanner's start values (k0_start, arow0, yrow0, and the output ranges' registers)
            # are one subtract or the adds of one product from registers: lo_fn, its product with
            # wo and arow's mux in one cycle were the ECP5's critical path (sh -> arow)
            lo0, pad_s = derived_or_zero(D, "lo0"), derived_or_zero(D, "pad_s")
        else:
            lo0 = pad_s = None

        # ---- S0: the element whose read is issued next. Whether ci, iy, ix are at their last
        # value, kept in flip-flops (set when the index is loaded or stepped onto its bound) like
        # the tap loop's end flags: the scanner's advance enables every S0 register, and comparing
        # the indices with their bounds in that cycle put LUT levels in front of those enables
        # (the UP5K's critical path, into wch's enable)
        ci_end, iy_end, ix_end = Signal(name="ci_end"), Signal(name="iy_end"), Signal(name="ix_end")
        s0v = Signal()
        ci = Signal(cfg.fbits("cin"))
        iy = Signal(CB)
        ix = Signal(CB)
        sa = Signal(len(self.rd_addr))  # scan address (continues over time steps unless broadcast)
        arow = Signal(cfg.acc_abits)        # oy_lo(iy) * wo                         (LANES_CO)
        wch = Signal(cfg.wmem_abits)         # wbase + ci * kkG (LANES_CO) / ci * Gt  (LANES_TAP)
        chb = Signal(cfg.acc_abits)         # ci * howo                              (LANES_TAP)
        yrow = Signal(cfg.acc_abits)        # ((iy + pad) >> s) * wo                 (LANES_TAP)
        # The kernel index of the S0 element's first tap, ``v + pad - (lo(v) << s)``, kept in a
        # register per axis and stepped with the index (not derived from lo_fn in S0: lo_fn, that
        # subtraction and the WMEM word's adds in one cycle were the UP5K's critical path). As v
        # grows by one it grows by one until it would reach k, then (stride s) it steps back by
        # 2**s - 1: ``min(v + pad, k - 1)`` for stride 1, alternating k - 1, k - 2 for stride 2.
        # (signed: an index that reaches no output, e.g. an odd one under a 1x1 kernel of stride 2,
        # has k0 = -1; its S0 results are not used, but the next index steps from it)
        ky0 = Signal(signed(KB + 2))
        kx0 = Signal(signed(KB + 2))
        s0 = self._first_tap(m, iy, ix, arow, wch, ky0, kx0, lo0)
        k0_start = Signal(signed(KB + 2))   # its value at v = 0
        m.d.comb += k0_start.eq(pad - (s0["lo_at_0"]() << sh))
        # values of the row registers at iy = 0
        arow0 = small_mul(s0["lo_at_0"]()[:3], wo)    # oy_lo(0) <= pad <= 7
        yrow0 = small_mul(pad_s if deep else pad >> sh, wo)

        # ---- SR: the element whose read is in flight (its value arrives on the read port at the end
        # of this stage), with S0's first-tap results registered; S1 takes both when it advances,
        # so S1's decisions (event, last tap, advance) depend on registers only, never on a block
        # RAM's output in the same cycle
        srv = Signal()
        sr_has = Signal()
        sr_iy = Signal(CB)
        sr_ix = Signal(CB)
        sr_E = Signal(cfg.acc_abits)
        sr_oy_span = Signal.like(s0["oy_span"])
        sr_ox_span = Signal.like(s0["ox_span"])
        sr_acc = Signal(cfg.acc_abits)
        sr_w = Signal(cfg.wmem_abits)
        sr_wx = Signal(cfg.wmem_abits) if deep else None     # (deep) the kx0 * G part
        sr_fields = [sr_has, sr_iy, sr_ix, sr_E, sr_oy_span, sr_ox_span, sr_acc, sr_w]

        # ---- SV (the deep pipeline's scanner only): the element whose value has arrived, the value
        # registered as read and SR's results carried along; S1 takes them, and the value's zero
        # test, when it advances; with one lane S1 takes them from SR and the port.
        el = self.element
        if deep:
            svv = Signal()
            # the value as read: ACT's word is in ACT's bank registers (taken as SV takes the
            # element: ``act_take``, hw/banked_ram.py), SPK's bit in a register here
            sv_spk = Signal(name="sv_spk")
            sv_fields = [Signal.like(f, name=f.name.replace("sr_", "sv_")) for f in sr_fields]
            pre_v, pre_val, pre_fields = svv, Mux(self.in_int, self.act_data, sv_spk), sv_fields
            m.d.comb += self.finished.eq(~s0v & ~srv & ~svv & self.adv)
        else:
            # the value on the read port
            pre_v, pre_val, pre_fields = srv, Mux(self.in_int, self.act_data, self.spk_data), sr_fields
            m.d.comb += self.finished.eq(~s0v & ~srv & self.adv)
        m.d.comb += [el.valid.eq(pre_v), el.value.eq(pre_val)]
        m.d.comb += [port.eq(f) for port, f in zip(
            [el.has, el.iy, el.ix, el.E, el.oy_span, el.ox_span, el.acc, el.w], pre_fields)]
        m.d.comb += self.rd_addr.eq(sa)

        def scan_init():
            m.d.sync += [ci.eq(0), iy.eq(0), ix.eq(0), ci_end.eq(self.cin_one), iy_end.eq(self.h_one),
                         ix_end.eq(self.w_one), s0v.eq(1), srv.eq(0), arow.eq(arow0), yrow.eq(yrow0),
                         chb.eq(0), wch.eq(I.wbase), ky0.eq(k0_start), kx0.eq(k0_start)]
            if deep:
                m.d.sync += [svv.eq(0), s0["y_lo"].eq(lo0), s0["x_lo"].eq(lo0), s0["y_q"].eq(pad_s),
                             s0["x_q"].eq(pad_s)]

        step = SimpleNamespace(
            s0=s0, s0v=s0v, srv=srv, svv=svv if deep else None, sv_spk=sv_spk if deep else None,
            sv_fields=sv_fields if deep else None, sr_fields=sr_fields, sr_wx=sr_wx, pre_fields=pre_fields,
            sa=sa, ci=ci, iy=iy, ix=ix, ci_end=ci_end, iy_end=iy_end, ix_end=ix_end, arow=arow, wch=wch,
            chb=chb, yrow=yrow, ky0=ky0, kx0=kx0, k0_start=k0_start, arow0=arow0, yrow0=yrow0, lo0=lo0,
            pad_s=pad_s)
        # read of the next element (the engine enables the ports with it in the scan)
        m.d.comb += self.rd_en.eq(self.adv & s0v)
        if deep:
            m.d.comb += self.act_take.eq(1)     # but in the scan (_advance)
        # one state-decoded structure, as the engine's FSM had it (hw/conv_control.py)
        S = conv_states(cfg)
        with m.Switch(self.state):
            with m.Case(S["IDLE"]):
                with m.If(self.start):
                    m.d.sync += sa.eq(I.src)
                    scan_init()
            with m.Case(S["SCAT"]):
                if not deep:
                    self._advance(m, step)
            with m.Case(S["DRAIN"]):
                with m.If(~self.t_end):     # the next time step
                    scan_init()
                    with m.If(self.bcast):
                        m.d.sync += sa.eq(I.src)
        if deep:
            with m.If(self.scan_run):
                self._advance(m, step)
        return m

    def _advance(self, m, s):
        """One SCAT cycle of S0, SR and SV (in the deep pipeline under ``scan_run``, a flip-flop
        that is high exactly in SCAT, instead of the FSM's state decode, ``hw/conv_control.py``):
        as the scanner advances, SR -> SV, S0 -> SR, and S0 steps to the next element."""
        deep, D = self._deep, self.drv
        pad, sh, wo, tapm, howo = self.pad, self.sh, self.wo, self.tapm, self.howo
        s0, s0v, srv, svv, sr_fields, sr_wx = s.s0, s.s0v, s.srv, s.svv, s.sr_fields, s.sr_wx
        sr_has, sr_iy, sr_ix, sr_E, sr_oy_span, sr_ox_span, sr_acc, sr_w = sr_fields
        sa, ci, iy, ix, ci_end, iy_end, ix_end = s.sa, s.ci, s.iy, s.ix, s.ci_end, s.iy_end, s.ix_end
        arow, wch, chb, yrow, ky0, kx0, k0_start = s.arow, s.wch, s.chb, s.yrow, s.ky0, s.kx0, s.k0_start
        arow0, yrow0, lo0, pad_s = s.arow0, s.yrow0, s.lo0, s.pad_s

        def k0_step(k0):
            if deep:
                # the compare with k - 1 (a register) beside the adds, not after one
                return Mux(k0 < self.k_1, k0 + 1, Mux(sh, k0 - 1, k0))
            up = k0 + 1
            return Mux(up < self.k, up, up - (1 << sh))

        def lo_steps(k0):
            """``lo(v + 1) != lo(v)`` for the index whose first tap is ``k0``: lo grows by one
            exactly where k0_step steps back (its ``up`` reaches k). A compare of two small
            registers, where comparing lo_fn of v and v + 1 put two lo_fn chains in front of the
            row register's adder (the UP5K's critical path, iy -> arow). (Deep scanner: a compare
            with the register k - 1, where the add and the compare after it were the ECP5's
            critical path, ky0 -> y_lo.)"""
            if deep:
                return k0 >= self.k_1
            return k0 + 1 >= self.k
        # (iy + 1 + pad) >> s differs from (iy + pad) >> s always at stride 1, where iy + pad is
        # odd at stride 2 (ix likewise)
        y0_steps = ~sh | (iy[0] ^ pad[0])
        x0_steps = ~sh | (ix[0] ^ pad[0])

        adv = self.adv
        if deep:
            # SV takes the element's value as the scanner advances (elsewhere the readout's RS
            # takes the old word every cycle)
            m.d.comb += self.act_take.eq(adv)
        with m.If(adv):
            if deep:
                # SR -> SV: the value from the read port, SR's results
                m.d.sync += [svv.eq(srv), s.sv_spk.eq(self.spk_data)]
                m.d.sync += [v.eq(f) for v, f in zip(s.sv_fields, sr_fields)]
                m.d.sync += s.pre_fields[-1].eq(sr_w + sr_wx)       # (sv_w) S0's word, finished
            m.d.sync += srv.eq(s0v)
            with m.If(s0v):
                # S0 -> SR: the read is issued now, the first tap computed
                m.d.sync += [
                    sr_has.eq(s0["has_taps"]), sr_iy.eq(iy), sr_ix.eq(ix), sr_E.eq(chb + yrow),
                    sr_oy_span.eq(s0["oy_span"]), sr_ox_span.eq(s0["ox_span"]),
                    sr_acc.eq(s0["acc_start"]), sr_w.eq(s0["w_start"]),
                ]
                if deep:
                    m.d.sync += sr_wx.eq(s0["w_x"])
                # S0 advances
                m.d.sync += sa.eq(sa + 1)
                with m.If(~ix_end):
                    m.d.sync += [ix.eq(ix + 1), ix_end.eq(ix + 1 == self.w1), kx0.eq(k0_step(kx0))]
                    if deep:
                        x_lo, x_q = s0["x_lo"], s0["x_q"]
                        m.d.sync += [x_lo.eq(Mux(lo_steps(kx0), x_lo + 1, x_lo)),
                                     x_q.eq(Mux(x0_steps, x_q + 1, x_q))]
                with m.Else():
                    m.d.sync += [ix.eq(0), ix_end.eq(self.w_one), kx0.eq(k0_start)]
                    if deep:
                        m.d.sync += [s0["x_lo"].eq(lo0), s0["x_q"].eq(pad_s)]
                    with m.If(~iy_end):
                        m.d.sync += [iy.eq(iy + 1), iy_end.eq(iy + 1 == self.h1), ky0.eq(k0_step(ky0)),
                                     arow.eq(arow + Mux(lo_steps(ky0), wo, 0)),
                                     yrow.eq(yrow + Mux(y0_steps, wo, 0))]
                        if deep:
                            y_lo, y_q = s0["y_lo"], s0["y_q"]
                            m.d.sync += [y_lo.eq(Mux(lo_steps(ky0), y_lo + 1, y_lo)),
                                         y_q.eq(Mux(y0_steps, y_q + 1, y_q))]
                    with m.Else():
                        m.d.sync += [iy.eq(0), iy_end.eq(self.h_one), ky0.eq(k0_start), arow.eq(arow0),
                                     yrow.eq(yrow0)]
                        if deep:
                            m.d.sync += [s0["y_lo"].eq(lo0), s0["y_q"].eq(pad_s)]
                        with m.If(~ci_end):
                            m.d.sync += [ci.eq(ci + 1), ci_end.eq(ci + 1 == self.cin1), chb.eq(chb + howo),
                                         wch.eq(wch + Mux(tapm, D.Gt, self.kkG))]
                        with m.Else():
                            m.d.sync += s0v.eq(0)
