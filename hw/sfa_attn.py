"""ATTN engine of the SFA accelerator: spike-driven self-attention ``Y = Q (K^T V)`` per head.

``docs/accelerator.md`` (ATTN). ``N = ho*wo`` tokens, ``C = cout`` channels, ``d = C / heads``. For
each time step and head (states):

``CLR``  clear the ``d x d`` counts ``KV`` (one word per cycle).
``KS``   scan ``K[h*d + i, n]`` (``n`` outer, ``i`` inner), one bit per cycle; for a set bit read
         ``V[h*d + j, n]`` for ``j < d`` (one per cycle, on the same SPK port) and add it into
         ``KV[i][j]`` one cycle later (with more than one lane: registered then, written the
         next).
``QS``   for one token ``n``: scan ``Q[h*d + i, n]``; for a set bit add row ``KV[i]`` into the
         ``d`` accumulators ``Y`` (a small memory), one ``j`` per cycle.
``YO``   write ``Y[j]`` to ``ACT[dst + t*C*N + (h*d + j)*N + n]`` and clear it, one per cycle;
         then ``QS`` for the next token.

The K and Q scans are a three-stage scanner, like the CONV engine's: S0 issues the SPK read of the
next bit, S1 is the bit whose read is in flight, S2 has the bit in a register (taken from the read
port when S1 moves on). Every decision (start a row, issue the next read, finish) looks at S2's
register and never at the read port's data: the SPK block RAM's clock-to-output, the set-bit test
and the next SPK address, read enable and scanner updates in one cycle were the critical path on
both the ECP5 and the iCE40. A clear bit in S2 costs one cycle (S0 issues, S1 and S2 move on). A
set bit starts its row in S2 (``j = 0``, then ``j = 1 .. d-1`` in ROW): in KS the row's V reads
take the SPK port, so the bit in S1, arriving in the row's first cycle, is dropped, and in the
cycle after the row (REP) S1's read is issued again from its saved address (QS does the same, so
both scans cost the same). A set bit therefore costs ``d + 2`` cycles (its ``d`` row cycles, REP,
and the cycle S1's bit spends in flight again), a clear one 1, and a scan of ``B`` bits with ``S``
set ``B + S*(d + 1) + 2`` (the two cycles fill S0 and S1; the last bit's cycle finishes the scan).

``KV`` (``d_max * d_max`` words of ``kv_bits``) and ``Y`` (``d_max`` words) live inside the engine.
``d`` and ``d * N`` are the instruction's products (``drv``, computed by the compiler and held in
the program ROM: ``machine/program.py: derived_values``), so the engine neither divides nor
multiplies; it starts with CLR. Cycle counts: ``compiler/iss.py``.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline

from .sfa_common import Engine, read_sig, write_sig

__all__ = ["AttnEngine"]


class AttnEngine(Engine):
    def __init__(self, cfg: MachineConfig):
        super().__init__(cfg, {
            "spk_r": Out(read_sig(cfg.spk_abits, unsigned(1))),
            "act_w": Out(write_sig(cfg.act_abits, signed(cfg.act_bits))),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._cfg
        I, D = self.instr, self.drv
        N = D.howo

        kv_words = max(2, cfg.d_max * cfg.d_max)
        y_words = max(2, cfg.d_max)
        m.submodules.kv = kv = Memory(shape=unsigned(cfg.kv_bits), depth=kv_words, init=[])
        # a row sum Y[j] adds at most d_max counts of at most 2**kv_bits - 1 each (and fits an ACT word,
        # where it goes): Y words need only that many bits, zero-extended on their way to ACT
        y_bits = min(cfg.act_bits, max(1, (cfg.d_max * ((1 << cfg.kv_bits) - 1)).bit_length()))
        m.submodules.ymem = ymem = Memory(shape=unsigned(y_bits), depth=y_words, init=[])
        # Read ports without transparency: a word read in cycle c is written back in c + 1, and no
        # read of the same word follows before c + 3 (in a row j moves on every cycle; the next row,
        # of KV's or Y's same words, starts at least REP and S1's re-read later, even with d = 1;
        # YO's clears likewise precede the next token's first row). In these flip-flop memories the
        # transparency bypass (an address compare and a mux after the read mux) sat on the UP5K's
        # critical path, KV's read into Y's adder.
        kv_w = kv.write_port()
        kv_r = kv.read_port()
        y_w = ymem.write_port()
        y_r = ymem.read_port()

        # ---- d = C // heads and d*N: the instruction's products
        d, dN = D.d, D.dN
        # widths from the program: counters as wide as the program's largest values, addresses as
        # wide as the memory they address (SPK or ACT: only ever used modulo its size; KV)
        AB = max(cfg.act_abits, cfg.spk_abits)
        KVB = max(1, (kv_words - 1).bit_length())
        DB = cfg.fbits("cout")          # d <= C
        # loop bounds minus one, registered, so the scanners' and counters' compares see a register
        # and not a subtractor (d - 1 in front of the row/state logic was the UP5K's critical path):
        # all valid from start + 1 on (instr and drv held)
        d1 = Signal(len(d))
        N1 = Signal(len(N))
        heads1 = Signal(len(I.heads))
        T1 = Signal(len(I.T))
        m.d.sync += [d1.eq(d - 1), N1.eq(N - 1), heads1.eq(I.heads - 1), T1.eq(I.T - 1)]
        # Whether j, si, sn, n are at their last value (d - 1, d - 1, N - 1, N - 1), kept in
        # flip-flops: set when the counter is loaded or stepped onto its bound, so the row, scan
        # and token decisions (which enable the scanner's and address registers) start at a
        # register instead of a counter-vs-bound compare (the UP5K's critical path, N1 -> state
        # -> more -> snb's enable)
        d_one, d_two = Signal(), Signal()
        m.d.sync += [d_one.eq(d == 1), d_two.eq(d == 2)]
        j_end, si_end, sn_end, n_end = (Signal(name=nm) for nm in ("j_end", "si_end", "sn_end", "n_end"))

        t = Signal(cfg.fbits("T"))
        hh = Signal(cfg.fbits("heads"))
        thb = Signal(AB)                # t*C*N + h*d*N
        n = Signal(len(N))              # token of QS/YO
        # scanner (KS: n outer, i inner; QS: i only), three stages like the CONV scanner's:
        # S0 (sn, si, sa, more): the element whose read is issued next;
        # S1 (v1, a1, vb1, kr1): the element whose read is in flight (its bit is on the port next cycle);
        # S2 (v2, b2, vb2, kr2): the element whose bit is in a register: the decisions look only at it
        sn = Signal(len(N))
        si = Signal(DB)
        sid = Signal(KVB)               # si * d
        snb = Signal(AB)                # base + thb + sn
        sa = Signal(AB)                 # snb + si * N
        more = Signal()
        v1 = Signal()
        a1 = Signal(AB)                 # its SPK address (read again after a row: rep)
        vb1 = Signal(AB)                # src3 + thb + sn of that element
        kr1 = Signal(KVB)               # si * d of that element
        v2 = Signal()
        b2 = Signal()
        vb2 = Signal(AB)
        kr2 = Signal(KVB)
        rep = Signal()                  # a row just ended: S1's read was lost to it, issue it again
        row = Signal()
        j = Signal(DB)
        r_va = Signal(AB)
        r_kva = Signal(KVB)
        # CLR / YO counters
        ci = Signal(DB)
        cj = Signal(DB)
        ca = Signal(KVB)
        oa = Signal(cfg.act_abits)
        # write-back registers
        k1v = Signal()
        k1a = Signal(range(kv_words))
        y1v = Signal()
        y1a = Signal(range(y_words))
        o1v = Signal()
        o1a = Signal(cfg.act_abits)
        o1j = Signal(range(y_words))
        m.d.sync += [k1v.eq(0), y1v.eq(0), o1v.eq(0)]

        # KV's read address: the row's next word, or S2's row start; a mux of registers by one
        # flip-flop in every state (a read nobody takes changes nothing). Decided in the scan's
        # branches, the state and S2's decode sat in front of KV's read mux, the UP5K's critical
        # path.
        m.d.comb += [kv_r.en.eq(1), y_r.en.eq(1), kv_r.addr.eq(Mux(row, r_kva, kr2))]

        def scan_start(base, n_value, thb_value):
            return [sn.eq(n_value), sn_end.eq(n_value == N1), si.eq(0), si_end.eq(d_one), sid.eq(0),
                    snb.eq(base + thb_value + n_value), sa.eq(base + thb_value + n_value), more.eq(1),
                    v1.eq(0), v2.eq(0), rep.eq(0), row.eq(0)]

        def head_start(thb_value):
            return [ci.eq(0), cj.eq(0), ca.eq(0), thb.eq(thb_value)]

        def scan_cycle(is_k: bool):
            """One cycle of KS/QS. Returns the condition 'phase finished in this cycle'.

            Every decision here depends on registers only (S2's bit, never the SPK read port's data):
            the port's clock-to-output, the set-bit test and the next SPK address/enable in one cycle
            were the critical path on both FPGA families."""
            finished = Signal(name="ks_fin" if is_k else "qs_fin")
            with m.If(row):
                if is_k:
                    m.d.comb += [self.spk_r.addr.eq(r_va), self.spk_r.en.eq(1)]
                    m.d.sync += [k1v.eq(1), k1a.eq(r_kva)]
                else:
                    m.d.comb += y_r.addr.eq(j)
                    m.d.sync += [y1v.eq(1), y1a.eq(j)]
                m.d.sync += [r_va.eq(r_va + N), r_kva.eq(r_kva + 1), j.eq(j + 1), j_end.eq(j + 1 == d1)]
                with m.If(j_end):
                    m.d.sync += row.eq(0)
            with m.Elif(v2 & b2):
                # S2 holds a set bit: its row starts now (j = 0 here, 1 .. d-1 in ROW). S1's bit,
                # arriving now, is dropped (KS: the port is reading V); S1 keeps its address for rep
                m.d.sync += [v2.eq(0), rep.eq(1)]
                if is_k:
                    m.d.comb += [self.spk_r.addr.eq(vb2), self.spk_r.en.eq(1)]
                    m.d.sync += [k1v.eq(1), k1a.eq(kr2)]
                else:
                    m.d.comb += y_r.addr.eq(0)
                    m.d.sync += [y1v.eq(1), y1a.eq(0)]
                m.d.sync += [r_va.eq(vb2 + N), r_kva.eq(kr2 + 1), j.eq(1), j_end.eq(d_two)]
                with m.If(d != 1):
                    m.d.sync += row.eq(1)
            with m.Elif(rep):
                # the cycle after a row: S1's element is read again (if there is one); S2 is empty
                m.d.sync += rep.eq(0)
                m.d.comb += [self.spk_r.addr.eq(a1), self.spk_r.en.eq(v1)]
            with m.Else():
                # S2's bit (if any) is clear: done with it. S1 -> S2, S0 -> S1
                m.d.sync += [v2.eq(v1), b2.eq(self.spk_r.data), vb2.eq(vb1), kr2.eq(kr1), v1.eq(more)]
                with m.If(more):
                    m.d.comb += [self.spk_r.addr.eq(sa), self.spk_r.en.eq(1)]
                    m.d.sync += [a1.eq(sa), vb1.eq(I.src3 + thb + sn), kr1.eq(sid)]
                    with m.If(~si_end):
                        m.d.sync += [si.eq(si + 1), si_end.eq(si + 1 == d1), sid.eq(sid + d), sa.eq(sa + N)]
                    with m.Else():
                        m.d.sync += [si.eq(0), si_end.eq(d_one), sid.eq(0)]
                        if is_k:
                            m.d.sync += [sn.eq(sn + 1), sn_end.eq(sn + 1 == N1), snb.eq(snb + 1), sa.eq(snb + 1)]
                            with m.If(sn_end):
                                m.d.sync += more.eq(0)
                        else:
                            m.d.sync += more.eq(0)
                with m.Elif(~v1):
                    m.d.comb += finished.eq(1)
            return finished

        with m.FSM(name="attn"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [t.eq(0), hh.eq(0), head_start(0)]
                    m.next = "CLR"
            with m.State("CLR"):
                m.d.comb += [kv_w.en.eq(1), kv_w.addr.eq(ca), kv_w.data.eq(0)]
                m.d.sync += ca.eq(ca + 1)
                with m.If(cj != d1):
                    m.d.sync += cj.eq(cj + 1)
                with m.Else():
                    m.d.sync += [cj.eq(0), ci.eq(ci + 1)]
                    with m.If(ci == d1):
                        m.d.sync += scan_start(I.src2, 0, thb)
                        m.next = "KS"
            with m.State("KS"):
                with m.If(scan_cycle(True)):
                    m.d.sync += [n.eq(0), n_end.eq(N1 == 0), scan_start(I.src, 0, thb)]
                    m.next = "QS"
            with m.State("QS"):
                with m.If(scan_cycle(False)):
                    m.d.sync += [j.eq(0), j_end.eq(d_one), oa.eq(I.dst + thb + n)]
                    m.next = "YO"
            with m.State("YO"):
                m.d.comb += y_r.addr.eq(j)
                m.d.sync += [o1v.eq(1), o1a.eq(oa), o1j.eq(j), oa.eq(oa + N), j.eq(j + 1), j_end.eq(j + 1 == d1)]
                with m.If(j_end):
                    with m.If(~n_end):
                        m.d.sync += [n.eq(n + 1), n_end.eq(n + 1 == N1), scan_start(I.src, n + 1, thb)]
                        m.next = "QS"
                    with m.Elif(hh != heads1):
                        m.d.sync += [hh.eq(hh + 1), head_start(thb + dN)]
                        m.next = "CLR"
                    with m.Elif(t != T1):
                        m.d.sync += [t.eq(t + 1), hh.eq(0), head_start(thb + dN)]
                        m.next = "CLR"
                    with m.Else():
                        m.next = "FIN"
            with m.State("FIN"):
                m.d.comb += self.done.eq(1)     # the last Y word is written in this cycle
                m.next = "IDLE"

        # write-backs. With more than one lane (the ECP5 builds: compiler/cycle_model.py:
        # deep_acc_pipeline) KV's one cycle later again, from registers (the V bit and the old
        # count): the SPK block RAM's clock-to-output and the route across the die into KV's write
        # data were the ECP5's critical path. The next read of the same count is at least d + 2
        # cycles after this one's (a row per set bit, and the row's words differ), so no read sees
        # a count before its write lands; and KS's last write lands before QS's first KV read.
        if deep_acc_pipeline(cfg.lanes):
            k2v = Signal()
            k2a = Signal.like(k1a)
            k2_count = Signal.like(kv_r.data)
            k2_bit = Signal()
            m.d.sync += [k2v.eq(k1v), k2a.eq(k1a), k2_count.eq(kv_r.data), k2_bit.eq(self.spk_r.data)]
            with m.If(k2v):
                m.d.comb += [kv_w.en.eq(1), kv_w.addr.eq(k2a), kv_w.data.eq(k2_count + k2_bit)]
        else:
            with m.If(k1v):
                m.d.comb += [kv_w.en.eq(1), kv_w.addr.eq(k1a), kv_w.data.eq(kv_r.data + self.spk_r.data)]
        with m.If(y1v):
            m.d.comb += [y_w.en.eq(1), y_w.addr.eq(y1a), y_w.data.eq(y_r.data + kv_r.data)]
        with m.Elif(o1v):
            m.d.comb += [y_w.en.eq(1), y_w.addr.eq(o1j), y_w.data.eq(0)]
        with m.If(o1v):
            m.d.comb += [self.act_w.en.eq(1), self.act_w.addr.eq(o1a), self.act_w.data.eq(y_r.data)]
        return m
