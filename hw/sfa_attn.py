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
        return _AttnLogic(self).build()


class _AttnLogic:
    """One elaboration of an :class:`AttnEngine`: its module, memories and registers.

    Exists so that each part of the engine (memories, registers, the scanner, the states, the
    write-backs) is a method of a screenful that sees the same signals, without passing dozens of
    them around. :meth:`build` runs the parts in a fixed order: every signal is created and every
    statement added in that order, so the netlist is the same however the parts are cut."""

    def __init__(self, engine: AttnEngine):
        self.m = Module()
        self.cfg = engine._cfg
        self.I, self.D = engine.instr, engine.drv
        self.N = self.D.howo
        self.spk_r, self.act_w = engine.spk_r, engine.act_w
        self.start, self.done = engine.start, engine.done

    def build(self) -> Module:
        """The engine's module: the parts below, in the order their signals and statements go in."""
        self._memories()
        self._loop_bounds()
        self._scanner_registers()
        self._phase_registers()
        self._read_enables()
        self._fsm()
        self._kv_write_back()
        self._y_and_act_write_back()
        return self.m

    def _memories(self):
        """``KV`` (the ``d x d`` counts) and ``Y`` (one token's row sums): the engine's own
        memories, so neither takes a port of the shared ones."""
        m, cfg = self.m, self.cfg
        self.kv_words = kv_words = max(2, cfg.d_max * cfg.d_max)
        self.y_words = y_words = max(2, cfg.d_max)
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
        self.kv_w = kv.write_port()
        self.kv_r = kv.read_port()
        self.y_w = ymem.write_port()
        self.y_r = ymem.read_port()

    def _loop_bounds(self):
        """Register widths, and the loop bounds and end flags as flip-flops: the compares that
        steer the scanner and the counters then start at a register (see the comments)."""
        m, cfg, I, D, N = self.m, self.cfg, self.I, self.D, self.N
        # ---- d = C // heads and d*N: the instruction's products
        d = self.d = D.d
        self.dN = D.dN
        # widths from the program: counters as wide as the program's largest values, addresses as
        # wide as the memory they address (SPK or ACT: only ever used modulo its size; KV)
        self.AB = max(cfg.act_abits, cfg.spk_abits)
        self.KVB = max(1, (self.kv_words - 1).bit_length())
        self.DB = cfg.fbits("cout")          # d <= C
        # loop bounds minus one, registered, so the scanners' and counters' compares see a register
        # and not a subtractor (d - 1 in front of the row/state logic was the UP5K's critical path):
        # all valid from start + 1 on (instr and drv held)
        self.d1 = d1 = Signal(len(d))
        self.N1 = N1 = Signal(len(N))
        self.heads1 = heads1 = Signal(len(I.heads))
        self.T1 = T1 = Signal(len(I.T))
        m.d.sync += [d1.eq(d - 1), N1.eq(N - 1), heads1.eq(I.heads - 1), T1.eq(I.T - 1)]
        # Whether j, si, sn, n are at their last value (d - 1, d - 1, N - 1, N - 1), kept in
        # flip-flops: set when the counter is loaded or stepped onto its bound, so the row, scan
        # and token decisions (which enable the scanner's and address registers) start at a
        # register instead of a counter-vs-bound compare (the UP5K's critical path, N1 -> state
        # -> more -> snb's enable)
        # (assigned as a pair, they stay unnamed in the Verilog, as they always were)
        self.d_one, self.d_two = Signal(), Signal()
        m.d.sync += [self.d_one.eq(d == 1), self.d_two.eq(d == 2)]
        self.j_end, self.si_end, self.sn_end, self.n_end = (
            Signal(name=nm) for nm in ("j_end", "si_end", "sn_end", "n_end"))

    def _scanner_registers(self):
        """The loop counters and the three-stage K/Q scanner of the module docstring."""
        AB, KVB, DB, N = self.AB, self.KVB, self.DB, self.N
        self.t = Signal(self.cfg.fbits("T"))
        self.hh = Signal(self.cfg.fbits("heads"))
        self.thb = Signal(AB)                # t*C*N + h*d*N
        self.n = Signal(len(N))              # token of QS/YO
        # scanner (KS: n outer, i inner; QS: i only), three stages like the CONV scanner's:
        # S0 (sn, si, sa, more): the element whose read is issued next;
        # S1 (v1, a1, vb1, kr1): the element whose read is in flight (its bit is on the port next cycle);
        # S2 (v2, b2, vb2, kr2): the element whose bit is in a register: the decisions look only at it
        self.sn = Signal(len(N))
        self.si = Signal(DB)
        self.sid = Signal(KVB)               # si * d
        self.snb = Signal(AB)                # base + thb + sn
        self.sa = Signal(AB)                 # snb + si * N
        self.more = Signal()
        self.v1 = Signal()
        self.a1 = Signal(AB)                 # its SPK address (read again after a row: rep)
        self.vb1 = Signal(AB)                # src3 + thb + sn of that element
        self.kr1 = Signal(KVB)               # si * d of that element
        self.v2 = Signal()
        self.b2 = Signal()
        self.vb2 = Signal(AB)
        self.kr2 = Signal(KVB)
        self.rep = Signal()                  # a row just ended: S1's read was lost to it, issue it again
        self.row = Signal()
        self.j = Signal(DB)
        self.r_va = Signal(AB)
        self.r_kva = Signal(KVB)

    def _phase_registers(self):
        """The CLR / YO counters, and the write-back registers (valid for one cycle)."""
        DB, KVB, cfg = self.DB, self.KVB, self.cfg
        # CLR / YO counters
        self.ci = Signal(DB)
        self.cj = Signal(DB)
        self.ca = Signal(KVB)
        self.oa = Signal(cfg.act_abits)
        # write-back registers
        self.k1v = k1v = Signal()
        self.k1a = Signal(range(self.kv_words))
        self.y1v = y1v = Signal()
        self.y1a = Signal(range(self.y_words))
        self.o1v = o1v = Signal()
        self.o1a = Signal(cfg.act_abits)
        self.o1j = Signal(range(self.y_words))
        self.m.d.sync += [k1v.eq(0), y1v.eq(0), o1v.eq(0)]

    def _read_enables(self):
        """KV's and Y's reads, always enabled; KV's address chosen by one flip-flop."""
        # KV's read address: the row's next word, or S2's row start; a mux of registers by one
        # flip-flop in every state (a read nobody takes changes nothing). Decided in the scan's
        # branches, the state and S2's decode sat in front of KV's read mux, the UP5K's critical
        # path.
        self.m.d.comb += [self.kv_r.en.eq(1), self.y_r.en.eq(1),
                          self.kv_r.addr.eq(Mux(self.row, self.r_kva, self.kr2))]

    def _scan_start(self, base, n_value, thb_value):
        """Statements that load the scanner for a scan from ``base + thb_value + n_value``."""
        return [self.sn.eq(n_value), self.sn_end.eq(n_value == self.N1), self.si.eq(0),
                self.si_end.eq(self.d_one), self.sid.eq(0),
                self.snb.eq(base + thb_value + n_value), self.sa.eq(base + thb_value + n_value),
                self.more.eq(1), self.v1.eq(0), self.v2.eq(0), self.rep.eq(0), self.row.eq(0)]

    def _head_start(self, thb_value):
        """Statements that start a head (its CLR) at ``thb = thb_value``."""
        return [self.ci.eq(0), self.cj.eq(0), self.ca.eq(0), self.thb.eq(thb_value)]

    def _row_word(self, is_k: bool, v_addr, kv_addr, y_addr):
        """One word of a row, the same at its start and in ROW: KS reads ``V`` at ``v_addr`` for
        the count ``KV[kv_addr]``, QS reads ``Y[y_addr]`` to add KV's row word into."""
        m = self.m
        if is_k:
            m.d.comb += [self.spk_r.addr.eq(v_addr), self.spk_r.en.eq(1)]
            m.d.sync += [self.k1v.eq(1), self.k1a.eq(kv_addr)]
        else:
            m.d.comb += self.y_r.addr.eq(y_addr)
            m.d.sync += [self.y1v.eq(1), self.y1a.eq(y_addr)]

    def _scan_cycle(self, is_k: bool):
        """One cycle of KS/QS. Returns the condition 'phase finished in this cycle'.

        Every decision here depends on registers only (S2's bit, never the SPK read port's data):
        the port's clock-to-output, the set-bit test and the next SPK address/enable in one cycle
        were the critical path on both FPGA families."""
        m, N, d, j = self.m, self.N, self.d, self.j
        finished = Signal(name="ks_fin" if is_k else "qs_fin")
        with m.If(self.row):
            self._row_word(is_k, self.r_va, self.r_kva, j)
            m.d.sync += [self.r_va.eq(self.r_va + N), self.r_kva.eq(self.r_kva + 1), j.eq(j + 1),
                         self.j_end.eq(j + 1 == self.d1)]
            with m.If(self.j_end):
                m.d.sync += self.row.eq(0)
        with m.Elif(self.v2 & self.b2):
            # S2 holds a set bit: its row starts now (j = 0 here, 1 .. d-1 in ROW). S1's bit,
            # arriving now, is dropped (KS: the port is reading V); S1 keeps its address for rep
            m.d.sync += [self.v2.eq(0), self.rep.eq(1)]
            self._row_word(is_k, self.vb2, self.kr2, 0)
            m.d.sync += [self.r_va.eq(self.vb2 + N), self.r_kva.eq(self.kr2 + 1), j.eq(1),
                         self.j_end.eq(self.d_two)]
            with m.If(d != 1):
                m.d.sync += self.row.eq(1)
        with m.Elif(self.rep):
            # the cycle after a row: S1's element is read again (if there is one); S2 is empty
            m.d.sync += self.rep.eq(0)
            m.d.comb += [self.spk_r.addr.eq(self.a1), self.spk_r.en.eq(self.v1)]
        with m.Else():
            self._scan_advance(is_k, finished)
        return finished

    def _scan_advance(self, is_k: bool, finished):
        """S2's bit (if any) is clear: the scanner moves on (S1 -> S2, S0 -> S1, S0 to the next
        element), or, with S0 and S1 empty, the scan is ``finished``."""
        m, N, d = self.m, self.N, self.d
        si, sn, sa, snb, sid = self.si, self.sn, self.sa, self.snb, self.sid
        m.d.sync += [self.v2.eq(self.v1), self.b2.eq(self.spk_r.data), self.vb2.eq(self.vb1),
                     self.kr2.eq(self.kr1), self.v1.eq(self.more)]
        with m.If(self.more):
            m.d.comb += [self.spk_r.addr.eq(sa), self.spk_r.en.eq(1)]
            m.d.sync += [self.a1.eq(sa), self.vb1.eq(self.I.src3 + self.thb + sn), self.kr1.eq(sid)]
            with m.If(~self.si_end):
                m.d.sync += [si.eq(si + 1), self.si_end.eq(si + 1 == self.d1), sid.eq(sid + d),
                             sa.eq(sa + N)]
            with m.Else():
                m.d.sync += [si.eq(0), self.si_end.eq(self.d_one), sid.eq(0)]
                if is_k:
                    m.d.sync += [sn.eq(sn + 1), self.sn_end.eq(sn + 1 == self.N1), snb.eq(snb + 1),
                                 sa.eq(snb + 1)]
                    with m.If(self.sn_end):
                        m.d.sync += self.more.eq(0)
                else:
                    m.d.sync += self.more.eq(0)
        with m.Elif(~self.v1):
            m.d.comb += finished.eq(1)

    def _fsm(self):
        """The engine's states (module docstring): per time step and head CLR, KS, then QS and YO
        per token."""
        m, I, N1, thb, n = self.m, self.I, self.N1, self.thb, self.n
        with m.FSM(name="attn"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.t.eq(0), self.hh.eq(0), self._head_start(0)]
                    m.next = "CLR"
            with m.State("CLR"):
                self._clear_kv_word()
            with m.State("KS"):
                with m.If(self._scan_cycle(True)):
                    m.d.sync += [n.eq(0), self.n_end.eq(N1 == 0), self._scan_start(I.src, 0, thb)]
                    m.next = "QS"
            with m.State("QS"):
                with m.If(self._scan_cycle(False)):
                    m.d.sync += [self.j.eq(0), self.j_end.eq(self.d_one), self.oa.eq(I.dst + thb + n)]
                    m.next = "YO"
            with m.State("YO"):
                self._write_out_y_word()
            with m.State("FIN"):
                m.d.comb += self.done.eq(1)     # the last Y word is written in this cycle
                m.next = "IDLE"

    def _clear_kv_word(self):
        """CLR: clear one word of ``KV`` per cycle, then start KS on ``K``."""
        m, ci, cj, ca, d1 = self.m, self.ci, self.cj, self.ca, self.d1
        m.d.comb += [self.kv_w.en.eq(1), self.kv_w.addr.eq(ca), self.kv_w.data.eq(0)]
        m.d.sync += ca.eq(ca + 1)
        with m.If(cj != d1):
            m.d.sync += cj.eq(cj + 1)
        with m.Else():
            m.d.sync += [cj.eq(0), ci.eq(ci + 1)]
            with m.If(ci == d1):
                m.d.sync += self._scan_start(self.I.src2, 0, self.thb)
                m.next = "KS"

    def _write_out_y_word(self):
        """YO: write out (and clear) one ``Y`` word per cycle; after the last, on to the next
        token's QS, the next head's or time step's CLR, or FIN."""
        m, j, n, hh, thb, oa = self.m, self.j, self.n, self.hh, self.thb, self.oa
        m.d.comb += self.y_r.addr.eq(j)
        m.d.sync += [self.o1v.eq(1), self.o1a.eq(oa), self.o1j.eq(j), oa.eq(oa + self.N), j.eq(j + 1),
                     self.j_end.eq(j + 1 == self.d1)]
        with m.If(self.j_end):
            with m.If(~self.n_end):
                m.d.sync += [n.eq(n + 1), self.n_end.eq(n + 1 == self.N1),
                             self._scan_start(self.I.src, n + 1, thb)]
                m.next = "QS"
            with m.Elif(hh != self.heads1):
                m.d.sync += [hh.eq(hh + 1), self._head_start(thb + self.dN)]
                m.next = "CLR"
            with m.Elif(self.t != self.T1):
                m.d.sync += [self.t.eq(self.t + 1), hh.eq(0), self._head_start(thb + self.dN)]
                m.next = "CLR"
            with m.Else():
                m.next = "FIN"

    def _kv_write_back(self):
        """KS's count update ``KV[i][j] += V`` bit, one cycle after the read (see the comment)."""
        m, kv_w, kv_r, k1v, k1a = self.m, self.kv_w, self.kv_r, self.k1v, self.k1a
        # write-backs. With more than one lane (the ECP5 builds: compiler/cycle_model.py:
        # deep_acc_pipeline) KV's one cycle later again, from registers (the V bit and the old
        # count): the SPK block RAM's clock-to-output and the route across the die into KV's write
        # data were the ECP5's critical path. The next read of the same count is at least d + 2
        # cycles after this one's (a row per set bit, and the row's words differ), so no read sees
        # a count before its write lands; and KS's last write lands before QS's first KV read.
        if deep_acc_pipeline(self.cfg.lanes):
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

    def _y_and_act_write_back(self):
        """QS's row sum ``Y[j] += KV[i][j]``, YO's clear of ``Y[j]``, and YO's ``ACT`` write."""
        m, y_w, y_r, act_w = self.m, self.y_w, self.y_r, self.act_w
        with m.If(self.y1v):
            m.d.comb += [y_w.en.eq(1), y_w.addr.eq(self.y1a), y_w.data.eq(y_r.data + self.kv_r.data)]
        with m.Elif(self.o1v):
            m.d.comb += [y_w.en.eq(1), y_w.addr.eq(self.o1j), y_w.data.eq(0)]
        with m.If(self.o1v):
            m.d.comb += [act_w.en.eq(1), act_w.addr.eq(self.o1a), act_w.data.eq(y_r.data)]
