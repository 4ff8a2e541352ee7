"""Spike-driven self-attention of one block (``intops.attention``), then its LIF neuron.

Per head, on binary ``Q``, ``K``, ``V`` of ``N`` tokens by ``d`` channels:

1. ``KV = K^T V`` by AND-and-count: for every token and every channel ``i`` where ``k[i]`` spikes
   (and ``v`` is not all zero), row ``i`` of ``KV`` gains the token's ``v`` bits (``d`` counters
   of ``bits_for(N)`` bits in one memory word per row). Cost: one cycle per such ``(token, i)``.
2. ``Y8 = Q KV``: for every token, the rows of ``KV`` selected by ``q``'s spikes are summed
   (``d`` adders). Cost: one cycle per spike of ``q``.
3. The ``d`` values ``Y8[n, :]`` go one per cycle through the attention LIF
   (:class:`~spikegate.hw.lif_unit.LIFUnit` with threshold 4: ``Y8`` is ``8 * Y`` and the float
   threshold is 0.5), membranes kept across the ``T`` time steps.

Rows of ``KV`` not yet written in the current head read as 0 (a ``d``-bit "touched" mask),
so no clearing pass is needed between heads.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .lif_unit import LIFUnit
from .memories import WeightMemory
from .params import bits_for, check_divides, check_int

__all__ = ["AttentionUnit", "ATTENTION_THRESHOLD"]

#: The attention neuron's threshold in ``Y8`` units (0.5 * 8).
ATTENTION_THRESHOLD = 4


def _lowest(m, bits, name):
    """Index of the lowest set bit of ``bits`` (0 when none) and ``bits`` without it."""
    width = len(bits)
    idx = Signal(range(max(2, width)), name=f"{name}_idx")
    rest = Signal(width, name=f"{name}_rest")
    pick = Const(0, idx.shape())
    for i in reversed(range(width)):
        pick = Mux(bits[i], i, pick)
    m.d.comb += [idx.eq(pick), rest.eq(bits & (bits - 1))]
    return idx, rest


class AttentionUnit(wiring.Component):
    """``Y8 = Q (K^T V)`` per head and the attention LIF, streaming.

    Parameters (keyword-only)
    -------------------------
    heads : int
        Attention heads; the block's channels are ``heads * head_dim``.
    tokens : int
        Tokens ``N = H * W`` per head.
    head_dim : int
        Channels per head ``d``.
    timesteps : int
        ``T``: the LIF's membranes restart from 0 every ``T`` time steps.

    Derived widths: ``KV`` counters ``bits_for(N)`` (unsigned), ``Y8`` ``bits_for(d*N)``
    (unsigned), LIF membrane 4 bits (it stays in 0..3).

    Ports
    -----
    kv : In(stream of {k: unsigned(d), v: unsigned(d)})
        Per head, the ``N`` tokens' ``K`` and ``V`` spikes (bit ``j`` = channel ``j`` of the head).
    q : In(stream of unsigned(d))
        Per head, the ``N`` tokens' ``Q`` spikes, taken after the head's ``kv`` tokens.
    o : Out(stream of {y8, spike, last})
        Per time step, per head, per token ``n``, per channel ``j``: ``Y8[n, j]`` and the
        attention neuron's spike; ``last`` on the final element of a time step.

    Order per time step: head 0 (``N`` kv tokens, ``N`` q tokens), head 1, ...

    Timing per head (no stalls): ``sum_n c_kv(n)`` cycles for ``KV`` (``c_kv = popcount(k_n)``
    when ``k_n`` and ``v_n`` are both non-zero, else 1), then per token about
    ``max(popcount(q_n) + 2, d)`` (row sums overlap with the serial LIF output of the previous
    token); see the testbench for the asserted bounds.
    """

    def __init__(self, *, heads: int, tokens: int, head_dim: int, timesteps: int):
        self._heads = check_int("heads", heads, minimum=1)
        self._tokens = check_int("tokens", tokens, minimum=1)
        self._d = check_int("head_dim", head_dim, minimum=1)
        self._timesteps = check_int("timesteps", timesteps, minimum=1)
        self._count_bits = bits_for(self._tokens)
        self._y_bits = bits_for(self._d * self._tokens)
        d = self._d
        super().__init__({
            "kv": In(stream.Signature(data.StructLayout({"k": unsigned(d), "v": unsigned(d)}))),
            "q": In(stream.Signature(unsigned(d))),
            "o": Out(stream.Signature(data.StructLayout({
                "y8": unsigned(self._y_bits), "spike": unsigned(1), "last": unsigned(1)}))),
        })

    @classmethod
    def for_block(cls, *, channels: int, heads: int, tokens: int, timesteps: int):
        """The unit of a transformer block of ``channels`` channels split into ``heads`` heads."""
        channels = check_int("channels", channels, minimum=1)
        heads = check_int("heads", heads, minimum=1)
        check_divides("heads", heads, "channels", channels)
        return cls(heads=heads, tokens=tokens, head_dim=channels // heads, timesteps=timesteps)

    heads = property(lambda self: self._heads)
    tokens = property(lambda self: self._tokens)
    head_dim = property(lambda self: self._d)
    timesteps = property(lambda self: self._timesteps)
    count_bits = property(lambda self: self._count_bits)
    y_bits = property(lambda self: self._y_bits)

    def elaborate(self, platform):
        m = Module()
        d, N, cb, yb = self._d, self._tokens, self._count_bits, self._y_bits
        row_layout = data.ArrayLayout(unsigned(cb), d)

        m.submodules.kv_rows = kv_mem = WeightMemory(values=[0] * d, width=d * cb, signed=False)
        wr = kv_mem.write_port()
        rd = kv_mem.read_port(transparent_for=(wr,))
        rd_row = data.View(row_layout, rd.data)

        in_q = Signal()              # phase: 0 = building KV, 1 = Q rows
        tok = Signal(range(max(2, N)))
        touched = Signal(d)

        # ---------------------------------------------------------------- KV phase issue
        kv_pend = Signal(d)
        kv_v = Signal(d)
        kv_last_tok = Signal()       # the pending token is the head's last kv token
        kv_i, kv_rest = _lowest(m, kv_pend, "kv")
        kv_issue = Signal()
        m.d.comb += [
            kv_issue.eq(kv_pend != 0),
            self.kv.ready.eq(~in_q & ~kv_last_tok & ((kv_pend == 0) | (kv_rest == 0))),
        ]
        with m.If(kv_issue):
            m.d.sync += kv_pend.eq(kv_rest)
        with m.If(self.kv.valid & self.kv.ready):
            m.d.sync += [kv_pend.eq(Mux(self.kv.payload.v != 0, self.kv.payload.k, 0)),
                         kv_v.eq(self.kv.payload.v)]
            with m.If(tok == N - 1):
                m.d.sync += [tok.eq(0), kv_last_tok.eq(1)]
            with m.Else():
                m.d.sync += tok.eq(tok + 1)
        with m.If(kv_last_tok & (~kv_issue | (kv_rest == 0))):
            m.d.sync += [kv_last_tok.eq(0), in_q.eq(1)]     # rows issued: go on with Q

        # ---------------------------------------------------------------- Q phase issue
        q_pend = Signal(d)
        q_active = Signal()          # a q token is being summed (rows in flight)
        q_i, q_rest = _lowest(m, q_pend, "q")
        q_issue = Signal()
        m.d.comb += q_issue.eq(in_q & (q_pend != 0))
        with m.If(q_issue):
            m.d.sync += q_pend.eq(q_rest)

        m.d.comb += rd.addr.eq(Mux(in_q, q_i, kv_i))

        # ---------------------------------------------------------------- stage 1
        s1_kv = Signal()
        s1_q = Signal()
        s1_i = Signal.like(kv_i)
        s1_v = Signal(d)
        m.d.sync += [s1_kv.eq(kv_issue & ~in_q), s1_q.eq(q_issue),
                     s1_i.eq(Mux(in_q, q_i, kv_i)), s1_v.eq(kv_v)]
        old = Signal(row_layout)
        m.d.comb += old.eq(Mux(touched.bit_select(s1_i, 1), rd.data, 0))
        new = Signal(row_layout)
        for j in range(d):
            m.d.comb += new[j].eq(old[j] + s1_v[j])
        m.d.comb += [wr.addr.eq(s1_i), wr.data.eq(new), wr.en.eq(s1_kv)]
        with m.If(s1_kv):
            m.d.sync += touched.eq(touched | (Const(1, d) << s1_i))

        y = [Signal(yb, name=f"y{j}") for j in range(d)]
        with m.If(s1_q):
            for j in range(d):
                m.d.sync += y[j].eq(y[j] + old[j])

        # ---------------------------------------------------------------- serializer -> LIF
        ser = [Signal(yb, name=f"ser{j}") for j in range(d)]
        ser_left = Signal(range(d + 1))
        m.submodules.lif = lif = LIFUnit(
            channels=1, size=self._heads * N * d, timesteps=self._timesteps, x_bits=yb + 1,
            v_bits=4, thresholds=[ATTENTION_THRESHOLD], threshold_bits=3)
        ser_fire = Signal()
        m.d.comb += [
            lif.i.valid.eq(ser_left != 0),
            lif.i.payload.eq(ser[0]),
            ser_fire.eq(lif.i.valid & lif.i.ready),
        ]
        with m.If(ser_fire):
            m.d.sync += ser_left.eq(ser_left - 1)
            for j in range(d - 1):
                m.d.sync += ser[j].eq(ser[j + 1])

        y_done = Signal()            # y holds the finished sums of the active q token
        transfer = Signal()
        q_tok = Signal(range(max(2, N)))
        m.d.comb += [
            y_done.eq(q_active & (q_pend == 0) & ~s1_q),
            transfer.eq(y_done & ((ser_left == 0) | ((ser_left == 1) & ser_fire))),
            # (not in the cycle that finishes the head: the next q token belongs to the next head)
            self.q.ready.eq(in_q & (~q_active | (transfer & (q_tok != N - 1)))),
        ]
        with m.If(transfer):
            m.d.sync += [q_active.eq(0), ser_left.eq(d)]
            for j in range(d):
                m.d.sync += [ser[j].eq(y[j]), y[j].eq(0)]
            with m.If(q_tok == N - 1):   # head finished: back to KV for the next head
                m.d.sync += [q_tok.eq(0), in_q.eq(0), touched.eq(0)]
            with m.Else():
                m.d.sync += q_tok.eq(q_tok + 1)
        with m.If(self.q.valid & self.q.ready):
            m.d.sync += [q_pend.eq(self.q.payload), q_active.eq(1)]

        m.d.comb += [
            self.o.valid.eq(lif.o.valid),
            self.o.payload.y8.eq(lif.o.payload.x),
            self.o.payload.spike.eq(lif.o.payload.spike),
            self.o.payload.last.eq(lif.o.payload.last),
            lif.o.ready.eq(self.o.ready),
        ]
        return m
