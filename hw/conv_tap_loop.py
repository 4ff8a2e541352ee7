"""The CONV/HEAD engine's tap loop: stage S1 and the tap issue (``hw/sfa_conv.py``).

S1 has the scanner's element (``hw/conv_scanner.py``) and its value in registers. A zero (or an
element reaching no output) takes this one cycle. A non-zero one is an *event*: its taps are
issued one per cycle starting in this very cycle (LANES_CO: ``oy``, ``ox``, lane group ``g``
innermost; LANES_TAP: one tap group per cycle, lane ``p`` on tap ``tg*P + p``), and the scanner
advances in the event's last cycle (``adv``). An event therefore costs exactly its tap cycles
(``taps * G``, or ``Gt``), a non-event one cycle.

A tap issue (``issue``, registered by the lane array in T1, ``hw/conv_lanes.py``) gives each
lane whether it adds and the ACC word, the element's value and the lane's mode; the WMEM word of
the tap is ``w_addr`` (read now, its weights arrive with T1 or, deep pipeline, TW).
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline

from .conv_control import conv_states
from .conv_geometry import geometry_shapes
from .conv_lanes import tap_issue_sig
from .conv_scanner import element_sig
from .datapath import AccumulateLane
from .params import bits_for
from .sfa_common import derived_layout, small_mul

CHAIN_CUT = 8   # the kernel-index chain gets a wire every this many lanes (_kernel_index_regs)

__all__ = ["ConvTapLoop"]

# the geometry registers the tap loop uses (hw/conv_geometry.py)
TAP_LOOP_GEOMETRY = ("k", "pad", "sh", "ho", "wo", "in_int", "tapm", "howo", "kG", "G1", "Gt1",
                     "g_one", "gt_one")


class ConvTapLoop(wiring.Component):
    """S1, sequenced by the control's ``state`` (``hw/conv_control.py``): ``start`` in IDLE and
    DRAIN (unless ``t_end``) empty it, SCAT (deep pipeline: ``scan_run``) runs the scan cycles; it
    takes the scanner's ``element`` as it advances, says so on ``adv`` (the element's last cycle)
    and issues its taps on ``issue`` (``valid``: an event; the lane array registers it in SCAT),
    their WMEM word on ``w_addr``."""

    def __init__(self, cfg: MachineConfig):
        self._cfg = cfg
        self._deep = deep_acc_pipeline(cfg.lanes)
        shapes = geometry_shapes(cfg)
        super().__init__({
            "drv": In(derived_layout(cfg)),
            **{n: In(shapes[n]) for n in TAP_LOOP_GEOMETRY},
            "state": In(range(len(conv_states(cfg)))), "start": In(1), "t_end": In(1),
            "element": In(element_sig(cfg)),
            "adv": Out(1), "w_addr": Out(cfg.wmem_abits),
            "issue": Out(tap_issue_sig(cfg)),
            **({"scan_run": In(1)} if self._deep else {}),
        })

    def _kernel_index_regs(self, m):
        """Lane p's first tap ``(p // k, p % k)`` and a tap group's step ``(P // k, P % k)``
        (LANES_TAP), and with the deep pipeline the registers its tap tests and ACC words use."""
        cfg, deep, P = self._cfg, self._deep, self._cfg.lanes
        CB, KB = cfg.coord_bits, cfg.fbits("k")
        k, pad, sh, ho, wo = self.k, self.pad, self.sh, self.ho, self.wo
        r = {}

        def held(value, shape, name):
            sig = Signal(shape, name=name)
            m.d.sync += sig.eq(value)
            return sig

        def held_comb(value, shape, name):
            sig = Signal(shape, name=name)
            m.d.comb += sig.eq(value)
            return sig
        if deep:
            # (deep pipeline, LANES_TAP) s1_pad_y - (ho << s) and s1_pad_x - (wo << s): the taps'
            # upper bound tests compare them with the kernel indices (pad_ho, pad_wo: pad - (ho <<
            # s), pad - (wo << s), registered from the instruction's registers, valid long before
            # S1's first load)
            r["pad_ho"] = held(pad - (ho << sh), signed(CB + 5), "pad_ho")
            r["pad_wo"] = held(pad - (wo << sh), signed(CB + 5), "pad_wo")
        KYB = r["KYB"] = bits_for((1 << KB) + P + 1)
        chain = [(Const(0, KYB), Const(0, KB))]
        for p in range(P):
            cy, cx = chain[-1]
            if p and p % CHAIN_CUT == 0:
                # a wire every CHAIN_CUT lanes: each step uses the previous one's expression
                # several times, so Amaranth's checks (which walk expressions as trees) took time
                # exponential in the lanes (a 32-lane build never finished elaborating); the
                # same logic, and no cut at all up to CHAIN_CUT lanes (their Verilog unchanged)
                cy, cx = held_comb(cy, KYB, f"chain_ky{p}"), held_comb(cx, KB, f"chain_kx{p}")
            wrap = cx + 1 >= k
            chain.append((Mux(wrap, cy + 1, cy)[:KYB], Mux(wrap, 0, cx + 1)[:KB]))
        if deep:
            # registers (k is valid from start, the first event at least three cycles later): the
            # chain of P compares from k, the tap group's step and the wrap compare in one cycle
            # were the ECP5's critical path (k -> kyl). A group's kx wraps where kx + dkx >= k,
            # i.e. kx >= k - dkx (kx_lim), to kx - kx_lim; ky then steps by dky + 1 (dky1)
            r["init_ky"] = [held(chain[p][0], KYB, f"init_ky{p}") for p in range(P + 1)]
            r["init_kx"] = [held(chain[p][1], KB, f"init_kx{p}") for p in range(P + 1)]
            r["kx_lim"] = held(k - chain[P][1], KB + 1, "kx_lim")
            r["dky1"] = held(chain[P][0] + 1, KYB + 1, "dky1")
            # LANES_TAP's row offsets ``j * wo`` for every tap row ``j`` (below 2**KB), registers
            # loaded from wo (valid from the second SCAT cycle on, before the first tap): a tap's
            # ACC word then selects its row's offset where the shift-add product, then two
            # subtractions, were the ECP5's critical path (sh -> t1_addr)
            r["wo_rows"] = [held(small_mul(Const(j, KB), wo), cfg.acc_abits, f"wo_row{j}") for j in range(1 << KB)]
        else:
            r["init_ky"] = [Signal(KYB, name=f"init_ky{p}") for p in range(P + 1)]
            r["init_kx"] = [Signal(KB, name=f"init_kx{p}") for p in range(P + 1)]
            for p in range(P + 1):
                m.d.comb += [r["init_ky"][p].eq(chain[p][0]), r["init_kx"][p].eq(chain[p][1])]
        return r

    def _tap_ok_addr(self, m, kr, s1, p):
        """Whether lane ``p``'s tap (LANES_TAP) reaches an output, and its ACC word."""
        deep = self._deep
        CB, KB = self._cfg.coord_bits, self._cfg.fbits("k")
        k, sh, ho, wo = self.k, self.sh, self.ho, self.wo
        pad_y, pad_x = s1["pad_y"], s1["pad_x"]
        ky, kx = s1["kyl"][p], s1["kxl"][p]
        if deep:
            # the same test with every bound a compare of two registers: ry >= 0 is
            # kyl <= pad_y, (ry >> s) < ho is ry < ho << s, i.e. pad_y - (ho << s)
            # (S1's register s1_pyh) < kyl, and ry's parity is pad_y's xor kyl's (the
            # subtraction and the compare of its result were two carry chains in
            # series, the ECP5's worst path)
            ok = ((ky < k) & (ky <= pad_y) & (kx <= pad_x) &
                  (~sh | ~((pad_y[0] ^ ky[0]) | (pad_x[0] ^ kx[0]))) &
                  (s1["pyh"] < ky) & (s1["pxw"] < kx))
            addr = s1["Ex0"] - Array(kr["wo_rows"])[ky[:KB] >> sh] - (kx >> sh)
        else:
            ry = Signal(signed(CB + 3), name=f"ry{p}")
            rx = Signal(signed(CB + 3), name=f"rx{p}")
            m.d.comb += [ry.eq(pad_y - ky), rx.eq(pad_x - kx)]
            qy = ry >> sh
            qx = rx >> sh
            ok = ((ky < k) & (ry >= 0) & (rx >= 0) & (~sh | (~ry[0] & ~rx[0])) &
                  (qy < ho) & (qx < wo))
            addr = s1["Ex0"] - small_mul(ky[:KB] >> sh, wo) - (kx >> sh)
        return ok, addr

    def _load(self, m, kr, s1):
        """S1 takes the scanner's element (its value, its first tap) as the scanner advances."""
        el, P = self.element, self._cfg.lanes
        tapm, pad, sh = self.tapm, self.pad, self.sh
        m.d.sync += s1["event"].eq(el.valid & (el.value != 0) & (tapm | el.has))
        with m.If(el.valid):
            p_pad_x = el.ix + pad
            m.d.sync += [
                s1["x_val"].eq(el.value), s1["pad_y"].eq(el.iy + pad), s1["pad_x"].eq(p_pad_x),
                s1["Ex0"].eq(el.E + (p_pad_x >> sh)),
                s1["oy_left"].eq(el.oy_span), s1["ox_left"].eq(el.ox_span), s1["ox_row_left"].eq(el.ox_span),
                s1["g_left"].eq(self.G1),
                s1["a_row"].eq(el.acc), s1["a_pos"].eq(el.acc), s1["a_cur"].eq(el.acc),
                s1["w_row"].eq(el.w), s1["w_pos"].eq(el.w), s1["w_cur"].eq(el.w), s1["tg_left"].eq(self.Gt1),
                s1["g_end"].eq(self.g_one), s1["tg_end"].eq(self.gt_one), s1["oy_end"].eq(el.oy_span == 0),
                s1["ox_end"].eq(el.ox_span == 0), s1["ox_one"].eq(el.ox_span == 0),
                s1["last_tap"].eq(Mux(tapm, self.gt_one, self.g_one & (el.ox_span == 0) & (el.oy_span == 0))),
            ]
            if self._deep:
                m.d.sync += [s1["pyh"].eq(el.iy + kr["pad_ho"]), s1["pxw"].eq(el.ix + kr["pad_wo"])]
            m.d.sync += [s1["kyl"][p].eq(kr["init_ky"][p]) for p in range(P)]
            m.d.sync += [s1["kxl"][p].eq(kr["init_kx"][p]) for p in range(P)]

    def _next_tap(self, m, kr, s1):
        """The next tap of the current event: the next tap group (LANES_TAP), or the next lane
        group, column, row (LANES_CO), each index with its end flag and its addresses."""
        G, sh, howo, wo = self.drv.G, self.sh, self.howo, self.wo
        G1, g_one = self.G1, self.g_one
        tg_left, tg_end, last_tap, w_cur = s1["tg_left"], s1["tg_end"], s1["last_tap"], s1["w_cur"]
        g_left, g_end, ox_left, ox_end = s1["g_left"], s1["g_end"], s1["ox_left"], s1["ox_end"]
        oy_left, oy_end, ox_one = s1["oy_left"], s1["oy_end"], s1["ox_one"]
        a_row, a_pos, a_cur, w_row, w_pos = s1["a_row"], s1["a_pos"], s1["a_cur"], s1["w_row"], s1["w_pos"]
        kyl, kxl = s1["kyl"], s1["kxl"]
        dky, dkx = kr["init_ky"][-1], kr["init_kx"][-1]
        with m.If(self.tapm):
            m.d.sync += [tg_left.eq(tg_left - 1), tg_end.eq(tg_left == 1), last_tap.eq(tg_left == 1),
                         w_cur.eq(w_cur + 1)]
            for p in range(self._cfg.lanes):
                if self._deep:
                    wrap = kxl[p] >= kr["kx_lim"]
                    m.d.sync += [kxl[p].eq(Mux(wrap, kxl[p] - kr["kx_lim"], kxl[p] + dkx)),
                                 kyl[p].eq(Mux(wrap, kyl[p] + kr["dky1"], kyl[p] + dky))]
                else:
                    nkx = kxl[p] + dkx
                    wrap = nkx >= self.k
                    m.d.sync += [kxl[p].eq(Mux(wrap, nkx - self.k, nkx)),
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
            skG = self.kG << sh
            m.d.sync += [g_left.eq(G1), g_end.eq(g_one), ox_left.eq(s1["ox_row_left"]),
                         ox_end.eq(ox_one), oy_left.eq(oy_left - 1), oy_end.eq(oy_left == 1),
                         last_tap.eq(g_one & ox_one & (oy_left == 1)),
                         a_row.eq(a_row + wo), a_pos.eq(a_row + wo), a_cur.eq(a_row + wo),
                         w_row.eq(w_row - skG), w_pos.eq(w_row - skG), w_cur.eq(w_row - skG)]

    def elaborate(self, platform):
        m = Module()
        cfg, deep, P = self._cfg, self._deep, self._cfg.lanes
        CB, KB = cfg.coord_bits, cfg.fbits("k")
        s1 = {}
        # S1's element: ``event`` (a non-zero element; LANES_CO: one that reaches an output), its
        # value, and (LANES_TAP) iy + pad, ix + pad, and ci*howo + ((iy+pad)>>s)*wo + ((ix+pad)>>s),
        # added as S1 takes the element, so that the taps' valid tests and ACC words start at
        # registers (the adds in front of them were the critical path of both families)
        s1["event"] = Signal(name="event")
        s1["x_val"] = Signal(signed(cfg.act_bits), name="x_val")
        s1["pad_y"] = Signal(CB + 4, name="s1_pad_y")
        s1["pad_x"] = Signal(CB + 4, name="s1_pad_x")
        s1["Ex0"] = Signal(cfg.acc_abits, name="s1_Ex0")
        if deep:
            s1["pyh"] = Signal(signed(CB + 5), name="s1_pyh")
            s1["pxw"] = Signal(signed(CB + 5), name="s1_pxw")
        # The tap loop's indices count down what is left of their range (the addresses step in
        # their own registers), each with a flag that says it is at its last value
        for name in ("oy_left", "ox_left", "ox_row_left"):      # ox_row_left: ox_left at a row's start
            s1[name] = Signal(CB + 1, name=name)
        s1["g_left"] = Signal.like(self.drv.G, name="g_left")
        for name in ("a_row", "a_pos", "a_cur"):
            s1[name] = Signal(cfg.acc_abits, name=name)
        for name in ("w_row", "w_pos", "w_cur"):
            s1[name] = Signal(cfg.wmem_abits, name=name)
        s1["tg_left"] = Signal.like(self.drv.Gt, name="tg_left")
        kr = self._kernel_index_regs(m)
        s1["kyl"] = [Signal(kr["KYB"], name=f"ky{p}") for p in range(P)]
        s1["kxl"] = [Signal(KB, name=f"kx{p}") for p in range(P)]
        # Whether each index of the tap loop is at its last value (nothing left), kept in
        # flip-flops: set when the index is loaded (its span is 0) or stepped (1 was left). So the
        # last-tap decision, and with it the scanner's advance that enables every scan register,
        # starts at registers; comparing up-counting indices with their bounds in that cycle put
        # three LUT levels in front of it (the UP5K's critical path)
        for name in ("g_end", "ox_end", "oy_end", "tg_end"):
            s1[name] = Signal(name=name)
        s1["ox_one"] = Signal(name="ox_one")    # the element's ox range has one value (ox_end after an oy step)
        # ``last_tap`` (``Mux(tapm, tg_end, g_end & ox_end & oy_end)``), a register set whenever one
        # of those flags is, from the same next values. So the scanner's advance, which enables
        # every scan register, is one LUT of two flip-flops (from the eight it read, it was the
        # UP5K's critical path: x_nz -> the advance -> wch's enable)
        s1["last_tap"] = Signal(name="last_tap")
        event = s1["event"]
        m.d.comb += [self.adv.eq(~event | s1["last_tap"]), self.w_addr.eq(s1["w_cur"])]

        def scan_cycle():
            """One SCAT cycle of S1; the taps' tests and ACC words (LANES_TAP) are computed under
            the tap issue's conditions, as the engine had them, and returned per lane."""
            with m.If(self.adv):
                self._load(m, kr, s1)
            with m.Elif(event):
                self._next_tap(m, kr, s1)
            with m.If(event):
                with m.If(self.tapm):
                    taps = [self._tap_ok_addr(m, kr, s1, p) for p in range(P)]
            return taps
        # one state-decoded structure, as the engine's FSM had it (hw/conv_control.py)
        S = conv_states(cfg)
        with m.Switch(self.state):
            with m.Case(S["IDLE"]):
                with m.If(self.start):
                    m.d.sync += event.eq(0)
            with m.Case(S["SCAT"]):
                if not deep:
                    taps = scan_cycle()
            with m.Case(S["DRAIN"]):
                with m.If(self.t_end):
                    pass
                with m.Else():
                    m.d.sync += event.eq(0)
        if deep:
            with m.If(self.scan_run):
                taps = scan_cycle()

        # the tap issue (registered by the lane array in T1, in SCAT): WMEM read now, ACC read in
        # T1, write-back in T2 (short pipeline) or T5
        iss = self.issue
        m.d.comb += [iss.valid.eq(event), iss.x.eq(s1["x_val"]),
                     iss.mode.eq(Mux(self.in_int, AccumulateLane.MUL, AccumulateLane.SPIKE))]
        with m.If(self.tapm):
            for p, (ok, addr) in enumerate(taps):
                m.d.comb += [iss.en[p].eq(ok), iss.addr[p].eq(addr)]
        with m.Else():
            for p in range(P):
                m.d.comb += [iss.en[p].eq(1), iss.addr[p].eq(s1["a_cur"])]
        return m
