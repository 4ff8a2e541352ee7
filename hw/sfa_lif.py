"""LIF engine of the SFA accelerator: ACT currents -> SPK spikes, membrane in a register.

``docs/accelerator.md`` (LIF): for each element ``e`` (channels, then positions), for each time step
``t`` (innermost): ``h2 = v + ACT[src + t*n + e]``, ``s = h2 >= 2*THRESH[pbase + c]``,
``v = 0 if s else h2 >> 1``, ``SPK[dst + t*n + e] = s``; ``v`` starts at 0 for every element.

Three stages: issue (ACT and THRESH reads, one element-step per cycle), C1 (the words read are
registered) and C2 (membrane update, SPK write, spike count). Cycles: ``T * n + 2``. (C1 keeps a
block RAM's clock-to-output out of the membrane's add-compare-select, which was the ECP5's
critical path; the membrane recurrence itself, ``v`` to ``v``, stays one cycle.) ``spikes`` holds
the spike count of the last LIF instruction (for verification).

The membrane update is :class:`~spikegate.hw.datapath.LIFStep`, the component
``rtl_tests/test_formal.py`` proves equal to ``intops.lif_step`` (at the widths :func:`lif_step_widths`
gives it); the engine only sequences it. ``v`` is ``state_bits`` wide and ``h2`` ``membrane_bits``
(the IR's declared state and membrane widths).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib.wiring import Out

from .datapath import LIFStep
from spikegate.machine.config import MachineConfig

from .sfa_common import Engine, read_sig, write_sig

__all__ = ["LIFEngine", "lif_step_widths"]


def lif_step_widths(cfg: MachineConfig) -> dict:
    """The widths the engine builds its :class:`LIFStep` with: ``x`` is an ACT word, the state and
    the membrane the IR's declared widths, the threshold a THRESH word (never negative)."""
    return dict(x_bits=cfg.act_bits, state_bits=cfg.state_bits, membrane_bits=cfg.membrane_bits,
                threshold_bits=cfg.thresh_bits)


class LIFEngine(Engine):
    def __init__(self, cfg: MachineConfig):
        super().__init__(cfg, {
            "act_r": Out(read_sig(cfg.act_abits, signed(cfg.act_bits), take=cfg.taken)),
            "thresh_r": Out(read_sig(cfg.thresh_abits, signed(cfg.thresh_bits))),
            "spk_w": Out(write_sig(cfg.spk_abits, unsigned(1))),
            "spikes": Out(32),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        I, D = self.instr, self.drv
        n = D.n_out

        run = Signal()
        # widths from the program (counters) and of the memory addressed (addresses)
        e_src = Signal(cfg.act_abits)   # src + e
        e_dst = Signal(cfg.spk_abits)   # dst + e
        a_src = Signal(cfg.act_abits)   # src + t*n + e
        a_dst = Signal(cfg.spk_abits)   # dst + t*n + e
        ta = Signal(cfg.thresh_abits)   # pbase + c

        # compute stage
        c1 = Signal()
        c1_first = Signal()
        c1_dst = Signal(cfg.spk_abits)
        v = Signal(signed(cfg.state_bits))
        m.submodules.step = step = LIFStep(**lif_step_widths(cfg))
        m.d.sync += c1.eq(0)
        c2 = Signal()
        c2_first = Signal()
        c2_dst = Signal(cfg.spk_abits)
        th2 = Signal(unsigned(cfg.thresh_bits))
        if cfg.taken:
            # C2's input: ACT's bank registers behind its block RAMs, taking every cycle (read_sig)
            x2 = self.act_r.data
            m.d.comb += self.act_r.take.eq(1)
        else:
            x2 = Signal(signed(cfg.act_bits))
        m.d.sync += [c2.eq(c1), c2_first.eq(c1_first), c2_dst.eq(c1_dst),
                     *([] if cfg.taken else [x2.eq(self.act_r.data)]),
                     th2.eq(self.thresh_r.data.as_unsigned())]

        m.d.comb += [self.act_r.addr.eq(a_src), self.act_r.en.eq(run),
                     self.thresh_r.addr.eq(ta), self.thresh_r.en.eq(run)]

        # The loops (time steps, positions in a channel, elements) count down what is left of
        # them, each with a flip-flop saying it is at its last value (set when the count is
        # loaded or stepped onto it, a compare with a constant), so that the loop enables start
        # at flip-flops, not at subtractors and compares of the instruction (as in CONV and SUM)
        T1, howo1 = Signal.like(I.T), Signal.like(D.howo)      # reloaded every element, channel
        t_left, q_left, e_left = Signal.like(I.T), Signal.like(D.howo), Signal.like(n)
        t_first, t_end, q_end, e_end, t_one, howo_one = (Signal() for _ in range(6))
        with m.If(self.start):
            m.d.sync += [run.eq(1), e_src.eq(I.src), e_dst.eq(I.dst), a_src.eq(I.src),
                         a_dst.eq(I.dst), ta.eq(I.pbase), self.spikes.eq(0),
                         T1.eq(I.T - 1), howo1.eq(D.howo - 1), t_one.eq(I.T == 1), howo_one.eq(D.howo == 1),
                         t_left.eq(I.T - 1), q_left.eq(D.howo - 1), e_left.eq(n - 1), t_first.eq(1),
                         t_end.eq(I.T == 1), q_end.eq(D.howo == 1), e_end.eq(n == 1)]
        with m.Elif(run):
            m.d.sync += [c1.eq(1), c1_first.eq(t_first), c1_dst.eq(a_dst)]
            with m.If(~t_end):
                m.d.sync += [t_left.eq(t_left - 1), t_end.eq(t_left == 1), t_first.eq(0),
                             a_src.eq(a_src + n), a_dst.eq(a_dst + n)]
            with m.Else():
                m.d.sync += [t_left.eq(T1), t_end.eq(t_one), t_first.eq(1), e_src.eq(e_src + 1),
                             e_dst.eq(e_dst + 1), a_src.eq(e_src + 1), a_dst.eq(e_dst + 1),
                             e_left.eq(e_left - 1), e_end.eq(e_left == 1)]
                with m.If(~q_end):
                    m.d.sync += [q_left.eq(q_left - 1), q_end.eq(q_left == 1)]
                with m.Else():
                    m.d.sync += [q_left.eq(howo1), q_end.eq(howo_one), ta.eq(ta + 1)]
                with m.If(e_end):
                    m.d.sync += run.eq(0)

        m.d.comb += [step.v.eq(Mux(c2_first, 0, v)), step.x.eq(x2), step.threshold.eq(th2)]
        spike = step.spike
        with m.If(c2):
            m.d.sync += [v.eq(step.v_next), self.spikes.eq(self.spikes + spike)]
            m.d.comb += [self.spk_w.en.eq(1), self.spk_w.addr.eq(c2_dst), self.spk_w.data.eq(spike)]
            m.d.comb += self.done.eq(~run & ~c1)
        return m
