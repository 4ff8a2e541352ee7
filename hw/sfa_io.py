"""INPUT, SUM and OUTPUT engines of the SFA accelerator (``docs/accelerator.md``).

* :class:`InputEngine`: ``ACT[dst + i] = pixel[i]`` for ``i < cin*h*w``, one pixel per cycle when
  the stream has them (``ready`` is high while it runs). Cycles: one per accepted pixel; ``done``
  pulses with the last one.
* :class:`SumEngine`: ``ACT[dst + r] = sum_q ACT[src + r*N + q]`` for the ``T*C`` rows, one read per
  cycle, the row's write one cycle after its last read (two with more than one lane: the word
  read is registered before the adder). Cycles: ``T*C*N + 1`` (``+ 2``).
* :class:`OutputEngine`: logits ``ACC[k % P][k // P]`` on the stream, each word cleared as it is
  accepted. A read is issued whenever the output register is empty or being emptied, so with
  ``ready`` high it sends one logit per cycle. Cycles: ``K + 1`` (plus any back-pressure); with
  more than one lane ``K + 2`` (the words are registered before the lane mux).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline

from .accel_interface import logit_stream, pixel_stream
from .datapath import Saturate
from .sfa_common import Engine, read_sig, write_sig

__all__ = ["InputEngine", "SumEngine", "OutputEngine"]


class InputEngine(Engine):
    def __init__(self, cfg: MachineConfig):
        super().__init__(cfg, {
            "pixels": In(pixel_stream(cfg.pixel_bits)),
            "act_w": Out(write_sig(cfg.act_abits, signed(cfg.act_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        run = Signal()
        addr = Signal(self._cfg.act_abits)
        left = Signal(len(self.drv.n_in))   # pixels still expected after this one
        m.d.comb += self.pixels.ready.eq(run)
        with m.If(self.start):
            m.d.sync += [run.eq(1), addr.eq(self.instr.dst), left.eq(self.drv.n_in - 1)]
        with m.If(run & self.pixels.valid):
            m.d.comb += [self.act_w.en.eq(1), self.act_w.addr.eq(addr), self.act_w.data.eq(self.pixels.payload)]
            m.d.sync += [addr.eq(addr + 1), left.eq(left - 1)]
            with m.If(left == 0):
                m.d.sync += run.eq(0)
                m.d.comb += self.done.eq(1)
        return m


class SumEngine(Engine):
    def __init__(self, cfg: MachineConfig):
        super().__init__(cfg, {
            "act_r": Out(read_sig(cfg.act_abits, signed(cfg.act_bits), take=cfg.taken)),
            "act_w": Out(write_sig(cfg.act_abits, signed(cfg.act_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        I, D = self.instr, self.drv
        run = Signal()
        ra = Signal(cfg.act_abits)
        wa = Signal(cfg.act_abits)
        s1 = Signal()
        s1_first = Signal()
        s1_last = Signal()
        s1_wa = Signal(cfg.act_abits)
        # act_bits (the IR's declared widths) holds every spatial sum's range [N*lo, N*hi], and each
        # partial sum of a row lies in [min(0, N*lo), max(0, N*hi)], inside the same width
        # (a saturating program: the sums' width before the clamp, MachineConfig.sum_bits)
        acc = Signal(signed(max(cfg.sum_bits, cfg.act_bits) if cfg.sat_bits else cfg.act_bits))
        # The loops count down what is left of them (the positions of a row, the channels, the time
        # steps), each with a flip-flop saying it is at its last value (set when the count is loaded
        # or stepped onto it, a compare with a constant), so that the loop's enables start at
        # flip-flops: a subtractor from the products and a compare with it in front of them were
        # the UP5K's critical path, then an incrementer and that compare
        hw1, cin1 = Signal.like(D.hw), Signal.like(I.cin)      # reloaded every row, every time step
        q_left, c_left, t_left = Signal.like(D.hw), Signal.like(I.cin), Signal.like(I.T)
        q_first, q_end, c_end, t_end = Signal(), Signal(), Signal(), Signal()
        hw_one, cin_one = Signal(), Signal()
        m.d.sync += s1.eq(0)
        m.d.comb += [self.act_r.addr.eq(ra), self.act_r.en.eq(run)]
        with m.If(self.start):
            m.d.sync += [run.eq(1), ra.eq(I.src), wa.eq(I.dst), hw1.eq(D.hw - 1), hw_one.eq(D.hw == 1),
                         cin1.eq(I.cin - 1), cin_one.eq(I.cin == 1), q_left.eq(D.hw - 1), c_left.eq(I.cin - 1),
                         t_left.eq(I.T - 1), q_first.eq(1), q_end.eq(D.hw == 1), c_end.eq(I.cin == 1),
                         t_end.eq(I.T == 1)]
        with m.Elif(run):
            m.d.sync += [s1.eq(1), s1_first.eq(q_first), s1_last.eq(q_end), s1_wa.eq(wa), ra.eq(ra + 1)]
            with m.If(~q_end):
                m.d.sync += [q_left.eq(q_left - 1), q_end.eq(q_left == 1), q_first.eq(0)]
            with m.Else():
                m.d.sync += [q_left.eq(hw1), q_end.eq(hw_one), q_first.eq(1), wa.eq(wa + 1)]
                with m.If(~c_end):
                    m.d.sync += [c_left.eq(c_left - 1), c_end.eq(c_left == 1)]
                with m.Else():
                    m.d.sync += [c_left.eq(cin1), c_end.eq(cin_one), t_left.eq(t_left - 1),
                                 t_end.eq(t_left == 1)]
                    with m.If(t_end):
                        m.d.sync += run.eq(0)
        # With more than one lane (the ECP5 builds' deep pipelines, compiler/cycle_model.py:
        # deep_acc_pipeline) the word read is registered (S2) before the adder: the ACT block RAMs'
        # clock-to-output, their output mux and the adder in one cycle were the ECP5's critical
        # path. One more cycle per SUM instruction (SUM_DEEP_OVH); with one lane S1 adds.
        if deep_acc_pipeline(cfg.lanes):
            s2, s2_first, s2_last = Signal(), Signal(), Signal()
            s2_wa = Signal.like(s1_wa)
            # the word: ACT's bank registers behind its block RAMs, taking every cycle (read_sig)
            s2_val = self.act_r.data
            m.d.comb += self.act_r.take.eq(1)
            m.d.sync += [s2.eq(s1), s2_first.eq(s1_first), s2_last.eq(s1_last), s2_wa.eq(s1_wa)]
            add_v, add_first, add_last, add_wa, add_val = s2, s2_first, s2_last, s2_wa, s2_val
            # the last write: no read left (run), and none in S1 (a one-element row's write would
            # otherwise pass for the last while the last row's word is in S1)
            drained = ~run & ~s1
        else:
            add_v, add_first, add_last, add_wa, add_val = s1, s1_first, s1_last, s1_wa, self.act_r.data
            drained = ~run
        total = Mux(add_first, 0, acc) + add_val
        written = total
        if cfg.sat_bits:
            m.submodules.saturate = sat = Saturate(in_bits=len(acc), out_bits=cfg.sat_bits)
            m.d.comb += sat.x.eq(total)
            written = sat.y
        with m.If(add_v):
            m.d.sync += acc.eq(total)
            with m.If(add_last):
                m.d.comb += [self.act_w.en.eq(1), self.act_w.addr.eq(add_wa), self.act_w.data.eq(written)]
                m.d.comb += self.done.eq(drained)
        return m


class OutputEngine(Engine):
    def __init__(self, cfg: MachineConfig):
        P = cfg.lanes
        super().__init__(cfg, {
            "acc_r": Out(read_sig(cfg.acc_abits, signed(cfg.acc_bits), take=cfg.taken)).array(P),
            "acc_w": Out(write_sig(cfg.acc_abits, signed(cfg.acc_bits))).array(P),
            "logits": Out(logit_stream(cfg.logit_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        P = cfg.lanes
        K = self.instr.cout
        run = Signal()
        p = Signal(range(max(P, 2)))
        g = Signal(cfg.acc_abits)
        kq = Signal(cfg.fbits("cout"))      # logits issued (read)
        ko = Signal(cfg.fbits("cout"))      # logits accepted
        if deep_acc_pipeline(P):
            self._deep_output(m, run, p, g, kq, ko, K)
            return m
        ov = Signal()                       # output register holds a logit
        op = Signal(range(max(P, 2)))
        og = Signal(cfg.acc_abits)
        fire = ov & self.logits.ready
        issue = Signal()
        m.d.comb += issue.eq(run & (~ov | self.logits.ready))

        self._ports_and_stream(m, issue, fire, p, g, ov, op, og, ko, K, [r.data for r in self.acc_r])

        with m.If(self.start):
            m.d.sync += [run.eq(1), p.eq(0), g.eq(0), kq.eq(0), ko.eq(0), ov.eq(0)]
        with m.If(issue):
            m.d.sync += [ov.eq(1), op.eq(p), og.eq(g), kq.eq(kq + 1)]
            self._next_read(m, run, p, g, kq, K)
        with m.Elif(fire):
            m.d.sync += ov.eq(0)
        self._count_accepted(m, fire, ko, K)
        return m

    def _ports_and_stream(self, m, issue, fire, p, g, ov, op, og, ko, K, lane_words, ko_last=None, deep=False):
        """Shared by both output paths: lane ``p``'s ACC read of word ``g`` when a read issues,
        the clear of the word whose logit is accepted (lane ``op``, word ``og``), and the logit
        stream: valid while a logit is held (``ov``), its value lane ``op``'s of ``lane_words``.
        ``ko_last``: a flip-flop holding ``ko == K - 1`` (else the compare is built here)."""
        P = self._cfg.lanes
        if deep:
            # (deep pipeline) the clear a cycle after the logit is accepted, from registers: the
            # host link's ready, the lane compare and the ACC bank's port mux and bank decode in
            # one cycle were the ECP5's worst path on some placements. The last clear lands in the
            # sequencer's FETCH after ``done``, while the port multiplexers still select OUTPUT
            # and cycles before any engine reads ACC again.
            clr_en = [Signal(name=f"clr_en{b}") for b in range(P)]
            clr_addr = Signal.like(og, name="clr_addr")
            m.d.sync += [clr_en[b].eq(fire & (op == b)) for b in range(P)]
            m.d.sync += clr_addr.eq(og)
        for b in range(P):
            m.d.comb += [self.acc_r[b].addr.eq(g), self.acc_r[b].en.eq(issue & (p == b))]
            with m.If(clr_en[b] if deep else fire & (op == b)):
                m.d.comb += [self.acc_w[b].en.eq(1), self.acc_w[b].addr.eq(clr_addr if deep else og),
                             self.acc_w[b].data.eq(0)]
        value = Signal(signed(self._cfg.acc_bits))
        with m.Switch(op):
            for b in range(P):
                with m.Case(b):
                    m.d.comb += value.eq(lane_words[b])
        m.d.comb += [self.logits.valid.eq(ov), self.logits.payload.value.eq(value),
                     self.logits.payload.last.eq(ko == K - 1 if ko_last is None else ko_last)]

    def _count_accepted(self, m, fire, ko, K, ko_last=None):
        """Count the accepted logits; done with the ``K``-th (``ko_last``, where given, is a
        flip-flop that holds ``ko == K - 1``)."""
        with m.If(fire):
            m.d.sync += ko.eq(ko + 1)
            with m.If(ko == K - 1 if ko_last is None else ko_last):
                m.d.comb += self.done.eq(1)

    def _next_read(self, m, run, p, g, kq, K):
        """The read issue's loop, shared by both output paths: the next lane ``p`` (then the next
        word ``g``), and the end of the reads after the ``K``-th logit's."""
        with m.If(p != self._cfg.lanes - 1):
            m.d.sync += p.eq(p + 1)
        with m.Else():
            m.d.sync += [p.eq(0), g.eq(g + 1)]
        with m.If(kq == K - 1):
            m.d.sync += run.eq(0)

    def _deep_output(self, m, run, p, g, kq, ko, K):
        """The output path with more than one lane (the ECP5 builds' deep pipelines,
        ``compiler/cycle_model.py: deep_acc_pipeline``): the ACC block RAMs are spread over the die,
        and their clock-to-output, the route to the lane mux, the mux and the host link's logic in
        one cycle were the ECP5's critical path. So a read (stage R: the word on the read port)
        moves into an output stage O that registers every lane's word (behind its block RAMs), and
        the stream's value is the lane mux of those registers. R takes a new read when it is empty
        or moving on; while O is full and not accepted, R holds (no read: the port keeps its word).
        One more cycle per OUTPUT instruction (``OUTPUT_DEEP_OVH``), one logit per cycle with
        ``ready`` high; each ACC word is cleared when its logit is accepted."""
        cfg = self._cfg
        P = cfg.lanes
        rv = Signal()                       # R: a read is on the port
        rp = Signal.like(p)
        rg = Signal.like(g)
        ov = Signal()                       # O: a logit is in the word registers
        op = Signal.like(p)
        og = Signal.like(g)
        # O's words: each ACC bank's register behind its block RAMs, taking with ``move`` (read_sig)
        words = [self.acc_r[b].data for b in range(P)]
        fire = ov & self.logits.ready
        move = Signal()
        issue = Signal()
        m.d.comb += [move.eq(rv & (~ov | fire)), issue.eq(run & (~rv | move))]
        m.d.comb += [self.acc_r[b].take.eq(move) for b in range(P)]

        # ko == K - 1 in a flip-flop, set as ko steps onto it: the last flag and ``done`` (which
        # moves the sequencer's pc) start at a register, not at a subtractor and a compare of the
        # instruction's count behind the host link's ``ready``
        ko_last = Signal()
        with m.If(self.start):
            m.d.sync += ko_last.eq(K == 1)
        with m.Elif(fire):
            m.d.sync += ko_last.eq(ko + 2 == K)
        self._ports_and_stream(m, issue, fire, p, g, ov, op, og, ko, K, words, ko_last, deep=True)

        with m.If(self.start):
            m.d.sync += [run.eq(1), p.eq(0), g.eq(0), kq.eq(0), ko.eq(0), rv.eq(0), ov.eq(0)]
        with m.If(issue):
            m.d.sync += [rv.eq(1), rp.eq(p), rg.eq(g), kq.eq(kq + 1)]
            self._next_read(m, run, p, g, kq, K)
        with m.Elif(move):
            m.d.sync += rv.eq(0)
        with m.If(move):
            m.d.sync += [ov.eq(1), op.eq(rp), og.eq(rg)]
        with m.Elif(fire):
            m.d.sync += ov.eq(0)
        self._count_accepted(m, fire, ko, K, ko_last)
