"""CONV and HEAD engine of the SFA accelerator: event-driven scatter into the ACC banks, then readout.

Semantics: ``docs/accelerator.md`` (CONV, HEAD). HEAD runs as a CONV with a 1x1 kernel on a 1x1
map (``cin = C`` spikes, ``cout = K`` classes, lanes over classes) whose per-time-step phase after
the scatter adds the biases into the ACC banks instead of reading them out.

Per time step ``t``:

``SCAT`` (scatter). A three-stage scanner walks the input elements in ``[c][y][x]`` order:

* stage S0 issues the read of the next element (SPK, or ACT in INT mode) and computes, from its
  coordinates, where its first tap goes: the valid output range ``oy_lo..oy_hi`` (``ox`` likewise,
  no multiplier: stride 1 or 2 is a shift), the ACC word ``oy_lo*wo + ox_lo`` (``oy_lo*wo`` kept
  incrementally as the scan moves down the rows) and the WMEM word
  ``wbase + ci*k*k*G + ky*k*G + kx*G`` (a running channel base plus two narrow products; the
  first tap's ``ky``, ``kx`` are registers stepped with ``iy``, ``ix``, and every loop bound minus
  one is a register, so no subtractor sits in front of these paths);
* stage SR holds those results while the read is in flight (the value is on the read port at its
  end, and held there while the scanner stalls);
* with more than one lane (the deep pipeline below), stage SV has the value as read in a register
  (ACT's: its bank registers, taken as SV takes the element, ``hw/banked_ram.py``), with SR's
  results carried along, so that S1's zero test starts at a register (the ACT block RAMs'
  clock-to-output, their output mux and the zero test in one cycle were the ECP5's critical
  path); filling it costs one more cycle per time step (with SCAT_DRAIN5: ``SCAN_DEEP_OVH``);
* stage S1 has the element's value in a register. A zero (or an element reaching no output) takes
  this one cycle. A non-zero one is an *event*: its taps are issued one per cycle starting in this
  very cycle (LANES_CO: ``oy``, ``ox``, lane group ``g`` innermost; LANES_TAP: one tap group per
  cycle, lane ``p`` on tap ``tg*P + p``), and the scanner advances (S0 issues the next read, SR,
  SV and S1 take the next elements) in the event's last cycle. An event therefore costs exactly its
  tap cycles (``taps * G``, or ``Gt``), a non-event one cycle; filling S0 and SR costs two cycles
  per time step. (SR exists so that the decision to advance depends on registers only: a block
  RAM's clock-to-output, the zero test and the read enable in one cycle were the critical path
  on both the ECP5 and the iCE40.)

A tap issue reads WMEM (and BIAS in HEAD's bias phase); one cycle later (T1) the weights and bias
are registered and the ACC word(s) read. With one lane (the *short* ACC pipeline), one cycle later
(T2) the lane adds its weight, ``x * weight`` or its bias to the word on the read port and writes it
back; a tap issued right after another one to the same word (its T1 read in the cycle of the first
one's T2 write) sees the updated value through the transparent read port, and one drain cycle
(SCAT_DRAIN) after the scan puts the last write in the first cycle of the readout or bias phase.
With more than one lane (the *deep* pipeline, ``compiler/cycle_model.py: deep_acc_pipeline``: the
banks are many block RAMs spread over the die) the ACC word(s) are read two cycles later, in TW
(WMEM's banks' words are in the bank registers behind their block RAMs in T2, ``hw/banked_rom.py``,
the groups' in the group registers in TW, and the group mux's word in a register before the
multipliers in T3); in T3
the ACC word(s) are registered and each lane registers the operands of its addend: its weight
(SPIKE), ``x * weight`` (INT) or its bias (lane ``p`` is an
:class:`~spikegate.hw.datapath.AccumulateLane` with registered operands); in T4 it selects the
addend and adds it to the registered word into a register, which T5 writes back. The deep
pipeline's ACC read ports are not transparent (``hw/accelerator.py``), so a tap issued one, two or
three cycles after another one to the same word would read a stale word (the third: its TW read
in the cycle of the first one's T5 write); each lane forwards: in T4 it adds to the result of the
previous cycle's T4 (the register T5 writes now), of the one before (written in the previous
cycle) or of the one before that (written in this tap's TW) instead of the registered word when
that tap went to the same word of this lane (the nearest one first; the addresses are compared
one stage earlier, in T3, from registers). Six drain cycles (SCAT_DRAIN, SCAT_DRAIN2,
SCAT_DRAIN_W, SCAT_DRAIN3, SCAT_DRAIN4, SCAT_DRAIN5) after the scan put the last tap's T5 write in
the cycle before the readout or bias phase, whose ACC reads then see it. (The
stages are split because a block RAM's clock-to-output, the multiplier and the adder in one cycle
were the ECP5's critical path, then the ACC block RAM's clock-to-output, the transparent port's
bypass mux and the adder back into the block RAM's write data, then the multiplier and the adder
into the write data, then the multiplier, the addend mux, the forward mux and the adder into the
result register, then the multiplier, its partial products' LUTs and the addend mux into the
addend register, then the route from the one weight register across the die to the
multipliers.)

``RO`` (CONV readout, one output element per cycle, channels then positions): read the ACC word(s),
SHIFT/BIAS of the channel and, for OUT_ACCUM, the old ACT word; one cycle later (R1) clear the ACC
word(s) and, with more than one lane, register the words with the shift, bias and old word; in
the next two cycles (RS and RS2, only with more than one lane) select the lane's word (LANES_TAP:
sum the banks), RS in pairs and RS2 the pairs, and register it with ``bias + old`` (without RS,
R1 registers that sum); one more cycle later (R2) register ``align(acc, shift) + (bias + old)``,
and in the next (R3) write it to ACT. Separate stages because a block RAM's clock-to-output, the
lane sum, the aligner and two adders in one cycle were the ECP5's critical path, then the eight
banks' sum from registers across the die, and the aligner with its adder and the route to the ACT
block RAM the UP5K's. ``align(acc, shift) + b``
is an :class:`~spikegate.hw.datapath.AlignBias`.

The lanes and the readout are the components ``rtl_tests/test_formal.py`` proves equal to their
integer definitions (``quantize/intops.py``), at the widths :func:`lane_widths` and
:func:`readout_widths` give them; this engine only sequences them.

``BIAS`` (HEAD): for ``g``, ``p``: lane ``p`` adds ``BIAS[pbase + g*P + p]`` into ``ACC[p][g]``.

Cycle costs (``compiler/cycle_model.py`` holds the constants, ``compiler/iss.py`` the counting):
per time step ``3 + sum(element costs)`` for SCAT (with SCAT_DRAIN), ``n_out + 3`` for RO, ``G*P +
2`` for BIAS (with BIAS_DRAIN and the DRAIN cycle of the last write-back); with more than one lane
SCAT and BIAS take four more (the deep pipeline's drains, ``ACC_DEEP_OVH``), SCAT two more (SV's
fill, SCAT_DRAIN5: ``SCAN_DEEP_OVH``), RO two more (RS, RS2).
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline
from spikegate.machine.program import OP_HEAD

from .datapath import AccumulateLane, AlignBias
from .params import bits_for
from .sfa_common import (Engine, derived_layout, derived_or_zero, instr_layout, read_sig, small_mul, tree_sum,
                         wmem_layout, write_sig)

__all__ = ["ConvEngine", "lane_widths", "readout_widths"]


def lane_widths(cfg: MachineConfig) -> dict:
    """The widths of each :class:`AccumulateLane`: an ACC word, a weight, a multi-bit input
    (``mul_x_bits``: the widest tensor an INT conv reads, not the ACT word, so that the multiplier
    fits one DSP block) and a BIAS word."""
    return dict(acc_bits=cfg.acc_bits, weight_bits=cfg.weight_bits, x_bits=cfg.mul_x_bits, bias_bits=cfg.bias_bits)


def readout_widths(cfg: MachineConfig) -> dict:
    """The widths of the readout's :class:`AlignBias`: the accumulator is one ACC word, or in
    LANES_TAP the sum of the ``lanes`` banks; its "bias" is the channel's BIAS word plus, for
    OUT_ACCUM, the old ACT word (added a stage earlier, so R2 has one adder after the aligner);
    the result is an ACT word."""
    return dict(acc_bits=cfg.acc_bits + bits_for(cfg.lanes), shift_bits=cfg.shift_bits,
                bias_bits=max(cfg.bias_bits, cfg.act_bits) + 1, out_bits=cfg.act_bits)


class ConvEngine(Engine):
    """Runs CONV and HEAD instructions (``start`` with the instruction presented on ``instr`` from
    the cycle before ``start`` on and its products on ``drv`` from ``start`` on, both held until
    ``done``; ``done`` pulses in the cycle of the last memory write). ``wmem_r`` delivers a word
    one cycle after its address with one lane, three cycles after it with the deep pipeline (a
    :class:`~spikegate.hw.banked_rom.BankedROM`: the weights are registered in T3 either way)."""

    def __init__(self, cfg: MachineConfig):
        P = cfg.lanes
        super().__init__(cfg, {
            "act_r": Out(read_sig(cfg.act_abits, signed(cfg.act_bits), take=cfg.taken)),
            "act_w": Out(write_sig(cfg.act_abits, signed(cfg.act_bits))),
            "spk_r": Out(read_sig(cfg.spk_abits, unsigned(1))),
            "wmem_r": Out(read_sig(cfg.wmem_abits, wmem_layout(cfg))),
            "bias_r": Out(read_sig(cfg.bias_abits, signed(cfg.bias_bits))),
            "shift_r": Out(read_sig(cfg.shift_abits, signed(cfg.shift_bits))),
            "acc_r": Out(read_sig(cfg.acc_abits, signed(cfg.acc_bits), take=cfg.taken)).array(P),
            "acc_w": Out(write_sig(cfg.acc_abits, signed(cfg.acc_bits))).array(P),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        P = cfg.lanes
        I, D = self.instr, self.drv
        # Widths from the program: coordinates, counters and products as wide as the program's
        # largest values (MachineConfig.field_bits / derived_bits); addresses as wide as the memory
        # they address (only ever used modulo its size)
        CB = cfg.coord_bits
        KB = cfg.fbits("k")             # every tap index is below k
        SAB = max(cfg.act_abits, cfg.spk_abits)
        PAB = max(cfg.bias_abits, cfg.shift_abits)

        # ---- the instruction, with HEAD's implicit geometry (1x1 kernel on a 1x1 map), registered
        # (the opcode decode, the HEAD muxes and pad + 1 - k stay off the scanner's paths): the
        # engine needs ``instr`` from the cycle before ``start`` on, ``drv`` from ``start`` on
        head_now = I.opcode == OP_HEAD

        def held(value, shape, name):
            sig = Signal(shape, name=name)
            m.d.sync += sig.eq(value)
            return sig
        k_now, pad_now = Mux(head_now, 1, I.k), Mux(head_now, 0, I.pad)
        is_head = held(head_now, 1, "is_head")
        k = held(k_now, len(I.k), "k")
        pad = held(pad_now, len(I.pad), "pad")
        sh = held(~head_now & (I.stride == 2), 1, "sh")           # stride 2 <=> shift by 1
        ho = held(Mux(head_now, 1, I.ho), len(I.ho), "ho")
        wo = held(Mux(head_now, 1, I.wo), len(I.wo), "wo")
        in_int = held(~head_now & I.in_kind, 1, "in_int")
        tapm = held(~head_now & I.lane_mode, 1, "tapm")            # LANES_TAP
        accum = held(~head_now & I.out_mode, 1, "accum")
        bcast = held(~head_now & (I.src2 != 0), 1, "bcast")
        pk1 = held(pad_now + 1 - k_now, signed(max(len(I.pad), len(I.k)) + 2), "pad1k")  # pad + 1 - k
        deep = deep_acc_pipeline(P)
        if deep:
            # lo(0) (lo_fn of input index 0) and pad >> s: the instruction's products (the
            # compiler's, 0 for HEAD: machine/program.py: derived_values), registers valid at
            # start, so that the scanner's start values (k0_start, arow0, yrow0, and the output
            # ranges' registers below) are one subtract or the adds of one product from registers:
            # lo_fn, its product with wo and arow's mux in one cycle were the ECP5's critical path
            # (sh -> arow), and computed from the instruction into a register (opcode -> lo0) the
            # next one. (The one-lane scanner computes them from lo_fn as before.)
            lo0, pad_s = derived_or_zero(D, "lo0"), derived_or_zero(D, "pad_s")
            k_1 = held(k_now - 1, len(I.k), "k_1")          # k - 1
        howo = held(Mux(is_head, 1, D.howo), len(D.howo), "howo")
        G = Signal.like(D.G)
        kG = held(Mux(is_head, D.G, D.kG), max(len(D.kG), len(D.G)), "kG")
        kkG = held(Mux(is_head, D.G, D.kkG), max(len(D.kkG), len(D.G)), "kkG")
        Gt = Signal.like(D.Gt)
        m.d.comb += [G.eq(D.G), Gt.eq(D.Gt)]
        # the loop bounds minus one, registered: the scanner's advance decision and S0's compares
        # see a register, not a subtractor (on the UP5K that chain was the critical path). The
        # instruction's values are valid from the cycle before start, drv's from start: either way
        # the registers hold the instruction's values from start + 1, the first SCAT cycle, on.
        w1 = held(Mux(head_now, 1, I.w) - 1, len(I.w), "w1")
        h1 = held(Mux(head_now, 1, I.h) - 1, len(I.h), "h1")
        ho1 = held(Mux(head_now, 1, I.ho) - 1, len(I.ho), "ho1")
        wo1 = held(Mux(head_now, 1, I.wo) - 1, len(I.wo), "wo1")
        cin1 = held(I.cin - 1, len(I.cin), "cin1")
        # the readout's and the time loop's bounds (a subtractor from the instruction in front of
        # the state logic was the UP5K's critical path)
        cout1 = held(I.cout - 1, len(I.cout), "cout1")
        T1 = held(I.T - 1, len(I.T), "T1")
        t_one = held(I.T == 1, 1, "t_one")
        # tcnt == T - 1, kept in a flip-flop like the scanner's end flags (the compare was in front
        # of the scan registers' enables)
        t_end = Signal()
        howo1 = held(Mux(is_head, 1, D.howo) - 1, len(D.howo), "howo1")
        G1 = held(D.G - 1, len(D.G), "G1")
        Gt1 = held(D.Gt - 1, len(D.Gt), "Gt1")

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

        # ---- scan stage S0: the element whose read is issued next
        # Whether ci, iy, ix are at their last value, kept in flip-flops (set when the index is
        # loaded or stepped onto its bound) like the tap loop's end flags: the scanner's advance
        # enables every S0 register, and comparing the indices with their bounds in that cycle
        # put LUT levels in front of those enables (the UP5K's critical path, into wch's enable)
        ci_end, iy_end, ix_end = Signal(name="ci_end"), Signal(name="iy_end"), Signal(name="ix_end")
        cin_one = held(I.cin == 1, 1, "cin_one")
        h_one = held(Mux(head_now, 1, I.h) == 1, 1, "h_one")
        w_one = held(Mux(head_now, 1, I.w) == 1, 1, "w_one")
        tcnt = Signal(cfg.fbits("T"))
        s0v = Signal()
        ci = Signal(cfg.fbits("cin"))
        iy = Signal(CB)
        ix = Signal(CB)
        sa = Signal(SAB)                # scan address (continues over time steps unless broadcast)
        arow = Signal(cfg.acc_abits)        # oy_lo(iy) * wo                         (LANES_CO)
        wch = Signal(cfg.wmem_abits)         # wbase + ci * kkG (LANES_CO) / ci * Gt  (LANES_TAP)
        chb = Signal(cfg.acc_abits)         # ci * howo                              (LANES_TAP)
        yrow = Signal(cfg.acc_abits)        # ((iy + pad) >> s) * wo                 (LANES_TAP)

        if deep:
            # The output ranges in registers stepped with the indices: ``lo`` (lo_fn of the index)
            # grows by one exactly where the first tap's kernel index steps back (lo_steps, below),
            # ``q = (v + pad) >> s`` (hi_fn before its clamp) where y0_steps says. Computed from
            # iy, ix in S0, lo_fn, hi_fn's clamp, the span's subtract and the has-taps test were
            # three carry chains in one cycle, the ECP5's critical path (pad -> sr_has)
            y_lo, x_lo = Signal(CB + 2, name="y_lo"), Signal(CB + 2, name="x_lo")
            y_q, x_q = Signal(CB + 1, name="y_q"), Signal(CB + 1, name="x_q")
            oy_lo, oy_hi = y_lo, Mux(y_q > ho1, ho1, y_q)
            ox_lo, ox_hi = x_lo, Mux(x_q > wo1, wo1, x_q)
        else:
            oy_lo, oy_hi = lo_fn(iy), hi_fn(iy, ho1)
            ox_lo, ox_hi = lo_fn(ix), hi_fn(ix, wo1)
        # The kernel index of the S0 element's first tap, ``v + pad - (lo(v) << s)``, kept in a
        # register per axis and stepped with the index (not derived from lo_fn in S0: lo_fn, that
        # subtraction and the WMEM word's adds in one cycle were the UP5K's critical path). As v
        # grows by one it grows by one until it would reach k, then (stride s) it steps back by
        # 2**s - 1: ``min(v + pad, k - 1)`` for stride 1, alternating k - 1, k - 2 for stride 2.
        # (signed: an index that reaches no output, e.g. an odd one under a 1x1 kernel of stride 2,
        # has k0 = -1; its S0 results are not used, but the next index steps from it)
        ky0 = Signal(signed(KB + 2))
        kx0 = Signal(signed(KB + 2))
        k0_start = Signal(signed(KB + 2))   # its value at v = 0
        m.d.comb += k0_start.eq(pad - ((lo0 if deep else lo_fn(Const(0, CB))) << sh))

        def k0_step(k0):
            if deep:
                # the compare with k - 1 (a register) beside the adds, not after one
                return Mux(k0 < k_1, k0 + 1, Mux(sh, k0 - 1, k0))
            up = k0 + 1
            return Mux(up < k, up, up - (1 << sh))

        def lo_steps(k0):
            """``lo(v + 1) != lo(v)`` for the index whose first tap is ``k0``: lo grows by one
            exactly where k0_step steps back (its ``up`` reaches k). A compare of two small
            registers, where comparing lo_fn of v and v + 1 put two lo_fn chains in front of the
            row register's adder (the UP5K's critical path, iy -> arow). (Deep scanner: a compare
            with the register k - 1, where the add and the compare after it were the ECP5's
            critical path, ky0 -> y_lo.)"""
            if deep:
                return k0 >= k_1
            return k0 + 1 >= k
        # the output range's span (hi - lo: the number of output rows/columns less one); negative
        # where the element reaches no output
        oy_span = Signal(signed(CB + 3), name="oy_span")
        ox_span = Signal(signed(CB + 3), name="ox_span")
        m.d.comb += [oy_span.eq(oy_hi - oy_lo), ox_span.eq(ox_hi - ox_lo)]
        has_taps = (oy_span >= 0) & (ox_span >= 0)
        acc_start = Signal(cfg.acc_abits)
        w_start = Signal(cfg.wmem_abits)
        if deep:
            # S0 registers wch + ky0 * kG and kx0 * G apart (SR's sr_w and sr_wx); SV adds them: the
            # word's three-operand sum of two shift-add products, behind the shared ``drv``
            # register's G, was one cycle (the ECP5's worst path on some placements)
            G_s0 = held(D.G, len(D.G), "G_s0")      # drv is valid from start, S0's first step is a cycle later
            w_x = Signal(cfg.wmem_abits)
            m.d.comb += [acc_start.eq(arow + ox_lo), w_start.eq(Mux(tapm, wch, wch + small_mul(ky0[:KB], kG))),
                         w_x.eq(Mux(tapm, 0, small_mul(kx0[:KB], G_s0)))]
        else:
            m.d.comb += [
                acc_start.eq(arow + ox_lo),
                w_start.eq(Mux(tapm, wch, wch + small_mul(ky0[:KB], kG) + small_mul(kx0[:KB], G))),
            ]
        # values of the row registers at iy = 0
        arow0 = small_mul((lo0 if deep else lo_fn(Const(0, CB)))[:3], wo)    # oy_lo(0) <= pad <= 7
        yrow0 = small_mul(pad_s if deep else pad >> sh, wo)
        # (iy + 1 + pad) >> s differs from (iy + pad) >> s always at stride 1, where iy + pad is
        # odd at stride 2 (ix likewise)
        y0_steps = ~sh | (iy[0] ^ pad[0])
        x0_steps = ~sh | (ix[0] ^ pad[0])

        # ---- S1: the element whose value is on the read port, and its tap loop
        event = Signal()        # S1 holds an event: a non-zero element (LANES_CO: one that reaches an output)
        # LANES_TAP: iy + pad, ix + pad, and ci*howo + ((iy+pad)>>s)*wo + ((ix+pad)>>s), added as S1
        # takes the element, so that the taps' valid tests and ACC words start at registers (the
        # adds in front of them were the critical path of both families)
        s1_pad_y = Signal(CB + 4)
        s1_pad_x = Signal(CB + 4)
        s1_Ex0 = Signal(cfg.acc_abits)
        # (deep pipeline, LANES_TAP) s1_pad_y - (ho << s) and s1_pad_x - (wo << s): the taps' upper
        # bound tests compare them with the kernel indices (pad_ho, pad_wo: pad - (ho << s), pad -
        # (wo << s), registered from the instruction's registers, valid long before S1's first load)
        if deep:
            s1_pyh = Signal(signed(CB + 5))
            s1_pxw = Signal(signed(CB + 5))
            pad_ho = held(pad - (ho << sh), signed(CB + 5), "pad_ho")
            pad_wo = held(pad - (wo << sh), signed(CB + 5), "pad_wo")
        # The tap loop's indices count down what is left of their range (the addresses step in
        # their own registers), each with a flag that says it is at its last value
        oy_left = Signal(CB + 1)
        ox_left = Signal(CB + 1)
        ox_row_left = Signal(CB + 1)     # ox_left's value at the start of each row of taps
        g_left = Signal.like(G)
        a_row = Signal(cfg.acc_abits)
        a_pos = Signal(cfg.acc_abits)
        a_cur = Signal(cfg.acc_abits)
        w_row = Signal(cfg.wmem_abits)
        w_pos = Signal(cfg.wmem_abits)
        w_cur = Signal(cfg.wmem_abits)
        tg_left = Signal.like(Gt)
        KYB = bits_for((1 << KB) + P + 1)
        kyl = [Signal(KYB, name=f"ky{p}") for p in range(P)]
        kxl = [Signal(KB, name=f"kx{p}") for p in range(P)]

        # lane p's first tap (p // k, p % k) and the step of a tap group (P // k, P % k)
        chain = [(Const(0, KYB), Const(0, KB))]
        for p in range(P):
            cy, cx = chain[-1]
            wrap = cx + 1 >= k
            chain.append((Mux(wrap, cy + 1, cy)[:KYB], Mux(wrap, 0, cx + 1)[:KB]))
        if deep:
            # registers (k is valid from start, the first event at least three cycles later): the
            # chain of P compares from k, the tap group's step and the wrap compare in one cycle
            # were the ECP5's critical path (k -> kyl). A group's kx wraps where kx + dkx >= k,
            # i.e. kx >= k - dkx (kx_lim), to kx - kx_lim; ky then steps by dky + 1 (dky1)
            init_ky = [held(chain[p][0], KYB, f"init_ky{p}") for p in range(P + 1)]
            init_kx = [held(chain[p][1], KB, f"init_kx{p}") for p in range(P + 1)]
            kx_lim = held(k - chain[P][1], KB + 1, "kx_lim")
            dky1 = held(chain[P][0] + 1, KYB + 1, "dky1")
        else:
            init_ky = [Signal(KYB, name=f"init_ky{p}") for p in range(P + 1)]
            init_kx = [Signal(KB, name=f"init_kx{p}") for p in range(P + 1)]
            for p in range(P + 1):
                m.d.comb += [init_ky[p].eq(chain[p][0]), init_kx[p].eq(chain[p][1])]
        dky, dkx = init_ky[P], init_kx[P]
        if deep:
            # LANES_TAP's row offsets ``j * wo`` for every tap row ``j`` (below 2**KB), registers
            # loaded from wo (valid from the second SCAT cycle on, before the first tap): a tap's
            # ACC word then selects its row's offset where the shift-add product, then two
            # subtractions, were the ECP5's critical path (sh -> t1_addr)
            wo_rows = [held(small_mul(Const(j, KB), wo), cfg.acc_abits, f"wo_row{j}") for j in range(1 << KB)]

        # ---- SR: the element whose read is in flight (its value arrives on the read port at the end
        # of this stage), with S0's first-tap results registered; S1 takes both when it advances,
        # so S1's decisions (event, last tap, advance) depend on registers only, never on a block
        # RAM's output in the same cycle
        srv = Signal()
        sr_has = Signal()
        sr_iy = Signal(CB)
        sr_ix = Signal(CB)
        sr_E = Signal(cfg.acc_abits)
        sr_oy_span = Signal.like(oy_span)
        sr_ox_span = Signal.like(ox_span)
        sr_acc = Signal(cfg.acc_abits)
        sr_w = Signal(cfg.wmem_abits)
        sr_wx = Signal(cfg.wmem_abits) if deep else None     # (deep) the kx0 * G part

        x_val = Signal(signed(cfg.act_bits))    # the S1 element's value, and whether it is non-zero

        # ---- SV (the deep pipeline's scanner only): the element whose value has arrived, the value
        # registered as read and SR's results carried along; S1 takes them, and the value's zero
        # test, when it advances. Without SV the ACT block RAMs' clock-to-output, their output mux
        # and the zero test of the value were in one cycle (the ECP5's critical path once the
        # lanes' multiply-add was split); with one lane S1 takes them from SR and the port.
        sr_fields = [sr_has, sr_iy, sr_ix, sr_E, sr_oy_span, sr_ox_span, sr_acc, sr_w]
        if deep:
            svv = Signal()
            # the value as read: ACT's word is in ACT's bank registers (taken as SV takes the
            # element: ``act_r.take``, hw/banked_ram.py), SPK's bit in a register here
            sv_spk = Signal(name="sv_spk")
            sv_val = Mux(in_int, self.act_r.data, sv_spk)
            sv_fields = [Signal.like(f, name=f.name.replace("sr_", "sv_")) for f in sr_fields]
            pre_v, pre_val, pre_fields = svv, sv_val, sv_fields
        else:
            # the value on the read port
            pre_v, pre_val, pre_fields = srv, Mux(in_int, self.act_r.data, self.spk_r.data), sr_fields
        p_has, p_iy, p_ix, p_E, p_oy_span, p_ox_span, p_acc, p_w = pre_fields

        # Whether each index of the tap loop is at its last value (nothing left), kept in
        # flip-flops: set when the index is loaded (its span is 0) or stepped (1 was left). So the
        # last-tap decision, and with it the scanner's advance that enables every scan register,
        # starts at registers; comparing up-counting indices with their bounds in that cycle put
        # three LUT levels in front of it (the UP5K's critical path)
        g_end, ox_end, oy_end, tg_end = (Signal(name=n) for n in ("g_end", "ox_end", "oy_end", "tg_end"))
        ox_one = Signal()               # the element's ox range has one value (ox_end after an oy step)
        g_one = held(D.G == 1, 1, "g_one")
        gt_one = held(D.Gt == 1, 1, "gt_one")
        # S1's decisions, registers themselves: ``event`` is set when S1 takes its element (valid,
        # non-zero, reaching an output), ``last_tap`` (``Mux(tapm, tg_end, g_end & ox_end & oy_end)``)
        # whenever one of those flags is set, from the same next values. So the scanner's advance,
        # which enables every scan register, is one LUT of two flip-flops (from the eight it read,
        # it was the UP5K's critical path: x_nz -> the advance -> wch's enable)
        last_tap = Signal()
        s1_done = Signal()
        m.d.comb += s1_done.eq(~event | last_tap)

        # ---- T1 (tap / bias write-back) pipeline registers
        MODE_SEL, MODE_MUL, MODE_BIAS = AccumulateLane.SPIKE, AccumulateLane.MUL, AccumulateLane.BIAS
        t1_en = [Signal(name=f"t1_en{p}") for p in range(P)]
        t1_addr = [Signal(cfg.acc_abits, name=f"t1_addr{p}") for p in range(P)]
        t1_x = Signal(signed(cfg.mul_x_bits))
        t1_mode = Signal(2)
        for p in range(P):
            m.d.sync += t1_en[p].eq(0)
        # T2: in the short pipeline (one lane) the T1 stage reads the ACC word and registers the
        # weights (WMEM), the bias and x, and T2 adds and writes back; in the deep one T2 carries
        # the tap along (the weights come from WMEM's bank mux), TW reads the ACC word(s) and
        # registers the weights, and T3 registers them, so that no block RAM read feeds the
        # multiplier, the forward mux or the adder in the same cycle
        t2_en = [Signal(name=f"t2_en{p}") for p in range(P)]
        t2_addr = [Signal(cfg.acc_abits, name=f"t2_addr{p}") for p in range(P)]
        t2_x = Signal(signed(cfg.mul_x_bits))
        t2_mode = Signal(2)
        # the weights (short pipeline only: the deep one's come from WMEM's bank mux in T2);
        # declared and assigned in the order they always were, so that the one-lane netlist is
        # unchanged (a reordered netlist maps to a few more LUTs on the full UP5K)
        t2_w = None if deep else Signal.like(self.wmem_r.data)    # View: array of P signed weights
        t2_bias = Signal(signed(cfg.bias_bits))
        m.d.sync += [t2_en[p].eq(t1_en[p]) for p in range(P)]
        m.d.sync += [t2_addr[p].eq(t1_addr[p]) for p in range(P)]
        m.d.sync += [t2_x.eq(t1_x), t2_mode.eq(t1_mode)] + ([] if deep else [t2_w.eq(self.wmem_r.data)]) + [
            t2_bias.eq(self.bias_r.data)]
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
        if deep:
            t3_en = [Signal(name=f"t3_en{p}") for p in range(P)]
            t3_addr = [Signal(cfg.acc_abits, name=f"t3_addr{p}") for p in range(P)]
            t4_en = [Signal(name=f"t4_en{p}") for p in range(P)]
            t4_addr = [Signal(cfg.acc_abits, name=f"t4_addr{p}") for p in range(P)]
            t4_sel = [Signal(2, name=f"t4_sel{p}") for p in range(P)]   # 0 word, 1 t6, 2 t5, 3 t4
            t4_prev = [Signal(signed(cfg.acc_bits), name=f"t4_prev{p}") for p in range(P)]
            t5_en = [Signal(name=f"t5_en{p}") for p in range(P)]
            t5_addr = [Signal(cfg.acc_abits, name=f"t5_addr{p}") for p in range(P)]
            t5_prev = [Signal(signed(cfg.acc_bits), name=f"t5_prev{p}") for p in range(P)]
            t6_en = [Signal(name=f"t6_en{p}") for p in range(P)]
            t6_addr = [Signal(cfg.acc_abits, name=f"t6_addr{p}") for p in range(P)]
            t6_prev = [Signal(signed(cfg.acc_bits), name=f"t6_prev{p}") for p in range(P)]
            t3_x = Signal(signed(cfg.mul_x_bits))
            t3_mode = Signal(2)
            t3_w = Signal.like(self.wmem_r.data)
            t3_bias = Signal(signed(cfg.bias_bits))
            # TW: a stage between T2 and T3 that only carries the tap along while WMEM's word passes
            # its group registers (hw/banked_rom.py: three cycles from the tap's issue to the word)
            tw_en = [Signal(name=f"tw_en{p}") for p in range(P)]
            tw_addr = [Signal(cfg.acc_abits, name=f"tw_addr{p}") for p in range(P)]
            tw_x = Signal(signed(cfg.mul_x_bits))
            tw_mode = Signal(2)
            tw_bias = Signal(signed(cfg.bias_bits))
            m.d.sync += [tw_en[p].eq(t2_en[p]) for p in range(P)]
            m.d.sync += [tw_addr[p].eq(t2_addr[p]) for p in range(P)]
            m.d.sync += [tw_x.eq(t2_x), tw_mode.eq(t2_mode), tw_bias.eq(t2_bias)]
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
            t4_acc = [self.acc_r[p].data for p in range(P)]
            m.d.comb += [self.acc_r[p].take.eq(1) for p in range(P)]
            # the weights: WMEM delivers them three cycles after the tap's issue (the deep
            # pipeline's WMEM, hw/banked_rom.py: each bank's word registered in T1 behind its block
            # RAMs, each group of banks' in T2, the group mux in TW); T3 registers the mux's word,
            # so that the lanes' multipliers, spread over the die, are fed by registers that can
            # sit next to them
            m.d.sync += [t3_x.eq(tw_x), t3_mode.eq(tw_mode), t3_w.eq(self.wmem_r.data), t3_bias.eq(tw_bias)]
        # ---- readout registers
        co = Signal(cfg.fbits("cout"))
        rp = Signal(range(max(P, 2)))           # co % P       (LANES_CO)
        rq = Signal(len(howo))          # position in the channel
        ra = Signal(cfg.acc_abits)      # ACC word
        rgb = Signal(cfg.acc_abits)     # (co // P) * howo
        oa = Signal(cfg.act_abits)      # ACT word (continues over time steps)
        # pbase + co in the readout, pbase + g*P + p in HEAD's bias phase: one register, the BIAS
        # and SHIFT address in every state (a mux of two by the state, in front of the block RAM
        # across the die, was the ECP5's critical path)
        pa = Signal(PAB)
        r1v = Signal()
        r1_p = Signal(range(max(P, 2)))
        r1_ra = Signal(cfg.acc_abits)
        r1_oa = Signal(cfg.act_abits)
        # per lane, whether R1 clears its word (LANES_TAP: every lane; LANES_CO: lane co % P): a
        # flip-flop, so that the write enable of the bank, across the die, is one LUT of registers
        r1_clr = [Signal(name=f"r1_clr{p}") for p in range(P)]
        m.d.sync += r1v.eq(0)
        m.d.sync += [r1_clr[p].eq(0) for p in range(P)]
        # R2: the selected (LANES_TAP: summed) accumulator, the channel's shift and its bias plus the
        # old ACT word (the residual add), registered so that the ACC read, the lane sum and the
        # bias + old add end before R2, and the align and one add have R2 to themselves
        ro_w = readout_widths(cfg)
        r2v = Signal()
        r2_acc = Signal(signed(ro_w["acc_bits"]))
        r2_shift = Signal(signed(cfg.shift_bits))
        r2_bias_old = Signal(signed(ro_w["bias_bits"]))
        r2_oa = Signal(cfg.act_abits)
        m.d.sync += r2v.eq(0)

        # ---- HEAD bias phase registers
        bp = Signal(range(max(P, 2)))
        bg = Signal.like(G)

        m.d.comb += [self.wmem_r.addr.eq(w_cur), self.wmem_r.en.eq(1)]

        # The readout state (RO) in a flip-flop: the read addresses are a mux of registers by it
        # (decoding the FSM's state in front of the ACC banks' and ACT's read addresses, across the
        # die, was the ECP5's critical path). The ACC read of T1 (short pipeline) or TW (deep one),
        # or the readout's (no tap is in flight then); ACT's and SPK's of the scan or the readout
        # (either port's data is only taken where its engine enables the read).
        in_ro = Signal()
        in_scat = Signal()      # the state is SCAT (deep pipeline only; set with scan_init)
        if deep:
            # what the ACC collision test watches (rtl_tests/test_port_collisions.py): whether the
            # read is the readout's and then whether RS uses the lane's word (LANES_TAP: every
            # lane's; LANES_CO: lane rp's), whether it is a tap's (TW), and the tap's forward in
            # T4; set anew by every elaboration
            self.acc_read_probe = {"in_ro": in_ro, "ro_used": [tapm | (rp == p) for p in range(P)],
                                   "tw_en": tw_en, "t4_sel": t4_sel}
        for p in range(P):
            m.d.comb += self.acc_r[p].addr.eq(Mux(in_ro, ra, tw_addr[p] if deep else t1_addr[p]))
        m.d.comb += [self.act_r.addr.eq(Mux(in_ro, oa, sa)), self.spk_r.addr.eq(sa)]

        def scan_init():
            return [ci.eq(0), iy.eq(0), ix.eq(0), ci_end.eq(cin_one), iy_end.eq(h_one), ix_end.eq(w_one),
                    s0v.eq(1), srv.eq(0), event.eq(0), arow.eq(arow0), yrow.eq(yrow0), chb.eq(0),
                    wch.eq(I.wbase), ky0.eq(k0_start), kx0.eq(k0_start)] + (
                        [svv.eq(0), in_scat.eq(1), y_lo.eq(lo0), x_lo.eq(lo0), y_q.eq(pad_s), x_q.eq(pad_s)]
                        if deep else [])

        def readout_init():
            return [co.eq(0), rp.eq(0), rq.eq(0), ra.eq(0), rgb.eq(0), pa.eq(I.pbase),
                    bp.eq(0), bg.eq(0)]

        def drain_chain(states, then):
            """``states``, one cycle each, in order (a pipeline draining); the last one goes on to
            the state ``then`` names, or where ``then()`` sends it."""
            for state, following in zip(states, states[1:] + [then]):
                with m.State(state):
                    if callable(following):
                        following()
                    else:
                        m.next = following

        def scan_step():
            """One SCAT cycle of the scanner (S0, SR, SV, S1) and the tap issue. In the deep
            pipeline it runs under ``in_scat``, a flip-flop that is high exactly in SCAT, instead
            of the FSM's state decode: the decode of the state register was the first two LUT
            levels of the ECP5's worst paths (into the taps' valid tests, S0's register enables
            and ACT's read enable)."""
            adv = s1_done
            # read of the next element
            m.d.comb += [self.spk_r.en.eq(adv & s0v), self.act_r.en.eq(adv & s0v)]
            if deep:
                # SV takes the element's value as the scanner advances (elsewhere the
                # readout's RS takes the old word every cycle)
                m.d.comb += self.act_r.take.eq(adv)
            with m.If(adv):
                m.d.sync += event.eq(pre_v & (pre_val != 0) & (tapm | p_has))
                with m.If(pre_v):
                    # SR (or SV) -> S1: the value from the read port (or SV), first tap of the element
                    p_pad_x = p_ix + pad
                    m.d.sync += [
                        x_val.eq(pre_val), s1_pad_y.eq(p_iy + pad), s1_pad_x.eq(p_pad_x),
                        s1_Ex0.eq(p_E + (p_pad_x >> sh)),
                        oy_left.eq(p_oy_span), ox_left.eq(p_ox_span), ox_row_left.eq(p_ox_span),
                        g_left.eq(G1),
                        a_row.eq(p_acc), a_pos.eq(p_acc), a_cur.eq(p_acc),
                        w_row.eq(p_w), w_pos.eq(p_w), w_cur.eq(p_w), tg_left.eq(Gt1),
                        g_end.eq(g_one), tg_end.eq(gt_one), oy_end.eq(p_oy_span == 0),
                        ox_end.eq(p_ox_span == 0), ox_one.eq(p_ox_span == 0),
                        last_tap.eq(Mux(tapm, gt_one, g_one & (p_ox_span == 0) & (p_oy_span == 0))),
                    ]
                    if deep:
                        m.d.sync += [s1_pyh.eq(p_iy + pad_ho), s1_pxw.eq(p_ix + pad_wo)]
                    m.d.sync += [kyl[p].eq(init_ky[p]) for p in range(P)]
                    m.d.sync += [kxl[p].eq(init_kx[p]) for p in range(P)]
                if deep:
                    # SR -> SV: the value from the read port, SR's results
                    m.d.sync += [svv.eq(srv), sv_spk.eq(self.spk_r.data)]
                    m.d.sync += [v.eq(f) for v, f in zip(sv_fields, sr_fields)]
                    m.d.sync += p_w.eq(sr_w + sr_wx)       # (sv_w) S0's word, finished
                m.d.sync += srv.eq(s0v)
                with m.If(s0v):
                    # S0 -> SR: the read is issued now, the first tap computed
                    m.d.sync += [
                        sr_has.eq(has_taps), sr_iy.eq(iy), sr_ix.eq(ix), sr_E.eq(chb + yrow),
                        sr_oy_span.eq(oy_span), sr_ox_span.eq(ox_span),
                        sr_acc.eq(acc_start), sr_w.eq(w_start),
                    ]
                    if deep:
                        m.d.sync += sr_wx.eq(w_x)
                    # S0 advances
                    m.d.sync += sa.eq(sa + 1)
                    with m.If(~ix_end):
                        m.d.sync += [ix.eq(ix + 1), ix_end.eq(ix + 1 == w1), kx0.eq(k0_step(kx0))]
                        if deep:
                            m.d.sync += [x_lo.eq(Mux(lo_steps(kx0), x_lo + 1, x_lo)),
                                         x_q.eq(Mux(x0_steps, x_q + 1, x_q))]
                    with m.Else():
                        m.d.sync += [ix.eq(0), ix_end.eq(w_one), kx0.eq(k0_start)]
                        if deep:
                            m.d.sync += [x_lo.eq(lo0), x_q.eq(pad_s)]
                        with m.If(~iy_end):
                            m.d.sync += [iy.eq(iy + 1), iy_end.eq(iy + 1 == h1), ky0.eq(k0_step(ky0)),
                                         arow.eq(arow + Mux(lo_steps(ky0), wo, 0)),
                                         yrow.eq(yrow + Mux(y0_steps, wo, 0))]
                            if deep:
                                m.d.sync += [y_lo.eq(Mux(lo_steps(ky0), y_lo + 1, y_lo)),
                                             y_q.eq(Mux(y0_steps, y_q + 1, y_q))]
                        with m.Else():
                            m.d.sync += [iy.eq(0), iy_end.eq(h_one), ky0.eq(k0_start), arow.eq(arow0),
                                         yrow.eq(yrow0)]
                            if deep:
                                m.d.sync += [y_lo.eq(lo0), y_q.eq(pad_s)]
                            with m.If(~ci_end):
                                m.d.sync += [ci.eq(ci + 1), ci_end.eq(ci + 1 == cin1), chb.eq(chb + howo),
                                             wch.eq(wch + Mux(tapm, Gt, kkG))]
                            with m.Else():
                                m.d.sync += s0v.eq(0)
            with m.Elif(event):
                # next tap of the current event
                with m.If(tapm):
                    m.d.sync += [tg_left.eq(tg_left - 1), tg_end.eq(tg_left == 1), last_tap.eq(tg_left == 1),
                                 w_cur.eq(w_cur + 1)]
                    for p in range(P):
                        if deep:
                            wrap = kxl[p] >= kx_lim
                            m.d.sync += [kxl[p].eq(Mux(wrap, kxl[p] - kx_lim, kxl[p] + dkx)),
                                         kyl[p].eq(Mux(wrap, kyl[p] + dky1, kyl[p] + dky))]
                        else:
                            nkx = kxl[p] + dkx
                            wrap = nkx >= k
                            m.d.sync += [kxl[p].eq(Mux(wrap, nkx - k, nkx)),
                                         kyl[p].eq(kyl[p] + dky + wrap)]
                with m.Elif(~g_end):
                    m.d.sync += [g_left.eq(g_left - 1), g_end.eq(g_left == 1),
                                 last_tap.eq((g_left == 1) & ox_end & oy_end), a_cur.eq(a_cur + howo),
                                 w_cur.eq(w_cur + 1)]
                with m.Elif(~ox_end):
                    sG = G << sh
                    m.d.sync += [g_left.eq(G1), g_end.eq(g_one), ox_left.eq(ox_left - 1),
                                 ox_end.eq(ox_left == 1), last_tap.eq(g_one & (ox_left == 1) & oy_end),
                                 a_pos.eq(a_pos + 1), a_cur.eq(a_pos + 1),
                                 w_pos.eq(w_pos - sG), w_cur.eq(w_pos - sG)]
                with m.Else():
                    skG = kG << sh
                    m.d.sync += [g_left.eq(G1), g_end.eq(g_one), ox_left.eq(ox_row_left),
                                 ox_end.eq(ox_one), oy_left.eq(oy_left - 1), oy_end.eq(oy_left == 1),
                                 last_tap.eq(g_one & ox_one & (oy_left == 1)),
                                 a_row.eq(a_row + wo), a_pos.eq(a_row + wo), a_cur.eq(a_row + wo),
                                 w_row.eq(w_row - skG), w_pos.eq(w_row - skG), w_cur.eq(w_row - skG)]

            # tap issue: WMEM read now, ACC read in T1, write-back in T2 (short pipeline) or T5
            with m.If(event):
                m.d.sync += [t1_x.eq(x_val), t1_mode.eq(Mux(in_int, MODE_MUL, MODE_SEL))]
                with m.If(tapm):
                    pad_y, pad_x = s1_pad_y, s1_pad_x
                    for p in range(P):
                        if deep:
                            # the same test with every bound a compare of two registers: ry >= 0 is
                            # kyl <= pad_y, (ry >> s) < ho is ry < ho << s, i.e. pad_y - (ho << s)
                            # (S1's register s1_pyh) < kyl, and ry's parity is pad_y's xor kyl's (the
                            # subtraction and the compare of its result were two carry chains in
                            # series, the ECP5's worst path)
                            ky, kx = kyl[p], kxl[p]
                            ok = ((ky < k) & (ky <= pad_y) & (kx <= pad_x) &
                                  (~sh | ~((pad_y[0] ^ ky[0]) | (pad_x[0] ^ kx[0]))) &
                                  (s1_pyh < ky) & (s1_pxw < kx))
                        else:
                            ry = Signal(signed(CB + 3), name=f"ry{p}")
                            rx = Signal(signed(CB + 3), name=f"rx{p}")
                            m.d.comb += [ry.eq(pad_y - kyl[p]), rx.eq(pad_x - kxl[p])]
                            qy = ry >> sh
                            qx = rx >> sh
                            ok = ((kyl[p] < k) & (ry >= 0) & (rx >= 0) & (~sh | (~ry[0] & ~rx[0])) &
                                  (qy < ho) & (qx < wo))
                        if deep:
                            addr = s1_Ex0 - Array(wo_rows)[kyl[p][:KB] >> sh] - (kxl[p] >> sh)
                        else:
                            addr = s1_Ex0 - small_mul(kyl[p][:KB] >> sh, wo) - (kxl[p] >> sh)
                        m.d.sync += [t1_en[p].eq(ok), t1_addr[p].eq(addr)]
                with m.Else():
                    for p in range(P):
                        m.d.sync += [t1_en[p].eq(1), t1_addr[p].eq(a_cur)]

        if deep:
            m.d.comb += self.act_r.take.eq(1)       # but in SCAT (below)
        with m.FSM(name="conv"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [tcnt.eq(0), t_end.eq(t_one), sa.eq(I.src), oa.eq(I.dst)]
                    m.d.sync += scan_init()
                    m.next = "SCAT"

            with m.State("SCAT"):
                if not deep:
                    scan_step()
                with m.If((~s0v & ~srv & ~svv & s1_done) if deep else (~s0v & ~srv & s1_done)):
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
                with m.If(is_head):
                    m.next = "BIAS"
                with m.Else():
                    m.d.sync += in_ro.eq(1)
                    m.next = "RO"
            drain_chain(["SCAT_DRAIN", "SCAT_DRAIN2", "SCAT_DRAIN_W", "SCAT_DRAIN3", "SCAT_DRAIN4",
                         "SCAT_DRAIN5"] if deep else ["SCAT_DRAIN"], after_scan)

            with m.State("RO"):
                m.d.comb += self.act_r.en.eq(1)
                m.d.sync += [r1v.eq(1), r1_p.eq(rp), r1_ra.eq(ra), r1_oa.eq(oa), oa.eq(oa + 1)]
                m.d.sync += [r1_clr[p].eq(tapm | (rp == p)) for p in range(P)]
                with m.If(rq != howo1):
                    m.d.sync += [rq.eq(rq + 1), ra.eq(ra + 1)]
                with m.Else():
                    m.d.sync += [rq.eq(0), co.eq(co + 1), pa.eq(pa + 1)]
                    with m.If(tapm):
                        m.d.sync += ra.eq(ra + 1)
                    with m.Elif(rp != P - 1):
                        m.d.sync += [rp.eq(rp + 1), ra.eq(rgb)]
                    with m.Else():
                        m.d.sync += [rp.eq(0), rgb.eq(rgb + howo), ra.eq(rgb + howo)]
                    with m.If(co == cout1):
                        m.d.sync += in_ro.eq(0)
                        m.next = "RO_DRAIN"

            # the last element is in R1 (its ACC word(s) read and cleared) in RO_DRAIN, then in RS
            # and RS2 (with lanes to select or sum) and R2 (aligned); R3 writes it in DRAIN
            drain_chain(["RO_DRAIN", "RO_DRAIN2", "RO_DRAIN2S", "RO_DRAIN3"] if P > 1 else ["RO_DRAIN", "RO_DRAIN3"],
                        "DRAIN")

            with m.State("BIAS"):
                for p in range(P):
                    m.d.sync += [t1_en[p].eq(bp == p), t1_addr[p].eq(bg)]
                m.d.sync += [t1_mode.eq(MODE_BIAS), pa.eq(pa + 1)]
                with m.If(bp != P - 1):
                    m.d.sync += bp.eq(bp + 1)
                with m.Else():
                    m.d.sync += [bp.eq(0), bg.eq(bg + 1)]
                    with m.If(bg == G1):
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
                    m.d.sync += [tcnt.eq(tcnt + 1), t_end.eq(tcnt + 1 == T1), scan_init(), readout_init()]
                    with m.If(bcast):
                        m.d.sync += sa.eq(I.src)
                    m.next = "SCAT"

        if deep:
            with m.If(in_scat):
                scan_step()

        # reset the readout/bias counters at the start of every instruction
        with m.If(self.start):
            m.d.sync += readout_init()

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
                acc_in = Mux(t4_sel[p][1], Mux(t4_sel[p][0], t4_prev[p], t5_prev[p]),
                             Mux(t4_sel[p][0], t6_prev[p], t4_acc[p]))
                m.d.comb += [lane.mode.eq(t3_mode), lane.acc.eq(acc_in),
                             lane.x.eq(t3_x), lane.weight.eq(t3_w[p]), lane.bias.eq(t3_bias)]
                m.d.sync += t4_prev[p].eq(lane.acc_next)
                wb_en, wb_addr, wb_data = t5_en[p], t5_addr[p], t4_prev[p]
            else:
                m.d.comb += [lane.mode.eq(t2_mode), lane.acc.eq(self.acc_r[p].data),
                             lane.x.eq(t2_x), lane.weight.eq(t2_w[p]), lane.bias.eq(t2_bias)]
                wb_en, wb_addr, wb_data = t2_en[p], t2_addr[p], lane.acc_next
            with m.If(wb_en):
                m.d.comb += [self.acc_w[p].en.eq(1), self.acc_w[p].addr.eq(wb_addr),
                             self.acc_w[p].data.eq(wb_data)]
            with m.Elif(r1_clr[p]):
                m.d.comb += [self.acc_w[p].en.eq(1), self.acc_w[p].addr.eq(r1_ra),
                             self.acc_w[p].data.eq(0)]
            m.d.comb += self.acc_r[p].en.eq(1)

        # ---- R1 (the ACC word(s) are cleared above) and, with more than one lane, RS: the lane's
        # word is selected (LANES_CO) or the banks summed (LANES_TAP) from registered words, so
        # the block RAMs' clock-to-output and the sum tree are in different cycles
        shift_v, bias_v, old_v = self.shift_r.data, self.bias_r.data, Mux(accum, self.act_r.data, 0)
        words = [self.acc_r[p].data for p in range(P)]
        sel_p, sel_v, sel_oa = r1_p, r1v, r1_oa
        if P > 1:
            # the words and the old ACT word need no register here: they are the ACC banks' and
            # ACT's registers behind their block RAMs, which take every cycle outside the scan
            # (read_sig's ``take``); the rest is registered beside them
            rs_p = Signal.like(r1_p)
            rs_v = Signal()
            rs_oa = Signal.like(r1_oa)
            rs_shift = Signal.like(r2_shift)
            rs_bias = Signal(signed(cfg.bias_bits))
            m.d.sync += [rs_p.eq(r1_p), rs_v.eq(r1v), rs_oa.eq(r1_oa),
                         rs_shift.eq(shift_v), rs_bias.eq(bias_v)]
            sel_p, sel_v, sel_oa = rs_p, rs_v, rs_oa
            shift_v, bias_v = rs_shift, rs_bias
        acc_sel = Signal(signed(ro_w["acc_bits"]))
        if P > 1:
            # RS: the words in pairs (LANES_TAP: each pair's sum; LANES_CO: the pair's word the
            # lane's low bit selects), registered with the rest in RS2, whose sum of the pairs (or
            # mux of them) goes to R2: the eight banks' sum in one cycle, from the bank registers
            # across the die, was the ECP5's critical path. Each pair sum is exact (one bit wider
            # than a word), so the sum is the one the single stage made
            pairs = [words[i:i + 2] for i in range(0, P, 2)]
            rs2_pair = [Signal(signed(cfg.acc_bits + 1), name=f"rs2_pair{i}") for i in range(len(pairs))]
            rs2_p = Signal.like(r1_p)
            rs2_v = Signal()
            rs2_oa = Signal.like(r1_oa)
            rs2_shift = Signal.like(r2_shift)
            rs2_bias_old = Signal.like(r2_bias_old)
            m.d.sync += [rs2_p.eq(sel_p), rs2_v.eq(sel_v), rs2_oa.eq(sel_oa),
                         rs2_shift.eq(shift_v), rs2_bias_old.eq(bias_v + old_v)]
            for reg, pair in zip(rs2_pair, pairs):
                if len(pair) == 1:
                    m.d.sync += reg.eq(pair[0])
                else:
                    with m.If(tapm):
                        m.d.sync += reg.eq(pair[0] + pair[1])
                    with m.Else():
                        m.d.sync += reg.eq(Mux(sel_p[0], pair[1], pair[0]))
            with m.If(tapm):
                m.d.comb += acc_sel.eq(tree_sum(rs2_pair))
            with m.Else():
                with m.Switch(rs2_p[1:] if len(rs2_p) > 1 else 0):
                    for i, reg in enumerate(rs2_pair):
                        with m.Case(i):
                            m.d.comb += acc_sel.eq(reg)
            m.d.sync += [r2v.eq(rs2_v), r2_acc.eq(acc_sel), r2_shift.eq(rs2_shift),
                         r2_bias_old.eq(rs2_bias_old), r2_oa.eq(rs2_oa)]
        else:
            # (one lane: the one-lane netlist as it always was)
            with m.If(tapm):
                m.d.comb += acc_sel.eq(words[0])
            with m.Else():
                with m.Switch(sel_p):
                    with m.Case(0):
                        m.d.comb += acc_sel.eq(words[0])
            # OUT_ACCUM's residual add (intops.add) folded into the bias: align(acc) + (bias + old)
            m.d.sync += [r2v.eq(sel_v), r2_acc.eq(acc_sel), r2_shift.eq(shift_v),
                         r2_bias_old.eq(bias_v + old_v), r2_oa.eq(sel_oa)]

        # ---- R2: align + bias, registered; R3: the ACT write of that register (the aligner, its
        # adder and the route to the ACT block RAM's write data in one cycle were the UP5K's
        # critical path)
        m.submodules.readout = ro = AlignBias(**ro_w)
        m.d.comb += [ro.acc.eq(r2_acc), ro.shift.eq(r2_shift), ro.bias.eq(r2_bias_old)]
        r3v = Signal()
        r3_oa = Signal.like(r2_oa)
        r3_y = Signal.like(ro.y)
        m.d.sync += [r3v.eq(r2v), r3_oa.eq(r2_oa), r3_y.eq(ro.y)]
        with m.If(r3v):
            m.d.comb += [self.act_w.en.eq(1), self.act_w.addr.eq(r3_oa), self.act_w.data.eq(r3_y)]
        m.d.comb += [self.bias_r.addr.eq(pa), self.shift_r.addr.eq(pa),
                     self.bias_r.en.eq(1), self.shift_r.en.eq(1)]
        return m
