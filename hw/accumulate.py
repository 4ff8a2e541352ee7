"""Event-driven convolution: every input spike adds selected weights into output accumulators.

For an input event ``(ci, y, x)`` the engine visits each kernel tap ``(ky, kx)`` whose output
position ``(oy, ox) = ((y + pad - ky) / stride, (x + pad - kx) / stride)`` is integral and inside
the output map, and for each adds ``w[co, ci, ky, kx]`` into ``acc[co, oy, ox]`` for the output
channels ``co`` the input channel feeds (all of them for a dense conv, ``co = ci`` for a depthwise
one). ``P`` lanes handle ``P`` output channels per cycle. Spikes select weights: there is no
multiplier. After the map's ``end`` event the accumulators are read out in ``C, H, W`` order as
``y = (acc << shift[c]) + bias[c]`` (``intops.conv``) and cleared as they are read.

The same engine with a multi-bit input value per event (``value_bits``) is the
:class:`~spikegate.hw.multibit.MultibitLinearUnit`: there the weight is multiplied by the value.

Memory organisation (per lane ``j``; ``chunks = ceil(cout / P)``):

* weights: word ``((m * cin + ci) * k + ky) * k + kx`` holds ``w[m*P + j, ci, ky, kx]`` (dense),
  or word ``(ci * k + ky) * k + kx`` holds ``w[ci, 0, ky, kx]`` (depthwise); channels past
  ``cout`` (the tail of the last chunk) hold 0, so tail lanes add zeros and need no masking;
* accumulators: word ``(r * Ho + oy) * Wo + ox`` with ``r = m`` (dense) or ``r = ci``
  (depthwise) holds ``acc[co, oy, ox]``.

Pipeline: issue (weight read) -> stage 1 (weight data, product, accumulator read) -> stage 2
(add, write back). The accumulator read port is transparent for the write port, so an update
issued right after another one to the same word reads the word being written: consecutive events
that hit the same accumulator never lose an update.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .event_encoder import event_layout
from .memories import WeightMemory
from .params import (bits_for, check_bool, check_choice, check_int, check_int_array, check_width,
                     mul_const)

__all__ = ["ConvGeometry", "AccumulateEngine", "output_layout", "SUPPORTED_KERNELS",
           "SUPPORTED_STRIDES"]

SUPPORTED_KERNELS = (1, 3, 7)
SUPPORTED_STRIDES = (1, 2)


def output_layout(out_bits: int) -> data.StructLayout:
    """Readout word: a signed value and ``last`` on the final word of a map (as the logit stream)."""
    return data.StructLayout({"value": signed(out_bits), "last": unsigned(1)})


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution's shape, checked: ``[cin, H, W] -> [cout, Ho, Wo]``.

    A linear layer is ``kernel=1`` on a 1x1 map. ``depthwise`` means ``groups = cin = cout``.
    """

    cin: int
    cout: int
    height: int
    width: int
    kernel: int
    stride: int = 1
    padding: int = 0
    depthwise: bool = False

    def __post_init__(self):
        check_int("cin", self.cin, minimum=1)
        check_int("cout", self.cout, minimum=1)
        check_int("height", self.height, minimum=1)
        check_int("width", self.width, minimum=1)
        check_choice("kernel", self.kernel, SUPPORTED_KERNELS)
        check_choice("stride", self.stride, SUPPORTED_STRIDES)
        check_int("padding", self.padding, minimum=0, maximum=self.kernel - 1)
        check_bool("depthwise", self.depthwise)
        if self.depthwise and self.cout != self.cin:
            raise ValueError(f"cout must equal cin ({self.cin}) for a depthwise conv, "
                             f"not {self.cout!r}")
        for name, size in (("height", self.height), ("width", self.width)):
            if size + 2 * self.padding < self.kernel:
                raise ValueError(f"{name} + 2*padding must be at least the kernel ({self.kernel}), "
                                 f"not {size + 2 * self.padding!r}")

    @property
    def out_height(self) -> int:
        return (self.height + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def out_width(self) -> int:
        return (self.width + 2 * self.padding - self.kernel) // self.stride + 1

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.cout, 1 if self.depthwise else self.cin, self.kernel, self.kernel)

    @property
    def groups(self) -> int:
        return self.cin if self.depthwise else 1

    def taps(self, y: int, x: int) -> int:
        """Kernel taps of an input pixel that land inside the output map (its fan-out / cout)."""
        def axis(p, out):
            return sum(1 for k in range(self.kernel)
                       if (p + self.padding - k) % self.stride == 0
                       and 0 <= (p + self.padding - k) // self.stride < out)
        return axis(y, self.out_height) * axis(x, self.out_width)


class _Axis:
    """Per-event tap bounds on one axis, from the event coordinate (combinational)."""

    def __init__(self, m, p, *, kernel, stride, padding, out_size, name):
        k, s, pad = kernel, stride, padding
        d = (out_size - 1) * s            # largest p + pad - k that still lands in the map
        pp = Signal(unsigned(len(p) + bits_for(pad)), name=f"{name}_p")
        lo0 = Signal.like(pp, name=f"{name}_lo0")
        self.lo = Signal.like(pp, name=f"{name}_lo")
        self.hi = Signal.like(pp, name=f"{name}_hi")
        self.out0 = Signal.like(pp, name=f"{name}_out0")
        self.valid = Signal(name=f"{name}_valid")
        m.d.comb += [
            pp.eq(p + pad),
            self.hi.eq(Mux(pp > k - 1, k - 1, pp)),
            lo0.eq(Mux(pp > d, pp - d, 0)),
        ]
        if s == 2:   # the tap must have the parity of p + pad
            m.d.comb += self.lo.eq(lo0 + (pp[0] ^ lo0[0]))
        else:
            m.d.comb += self.lo.eq(lo0)
        m.d.comb += [
            self.valid.eq(self.lo <= self.hi),
            self.out0.eq((pp - self.lo) >> (s - 1)),
        ]


class _ScatterEngine(wiring.Component):
    """Shared implementation of :class:`AccumulateEngine` and ``MultibitLinearUnit``'s core."""

    def __init__(self, *, cin, cout, height, width, kernel, stride=1, padding=0,
                 depthwise=False, weights, weight_bits, acc_bits, out_bits, shift=None,
                 bias=None, lanes=1, frames=1, value_bits=None):
        self._geom = ConvGeometry(cin=cin, cout=cout, height=height, width=width, kernel=kernel,
                                  stride=stride, padding=padding, depthwise=depthwise)
        g = self._geom
        self._weight_bits = check_width("weight_bits", weight_bits, minimum=2)
        self._acc_bits = check_width("acc_bits", acc_bits, minimum=2)
        self._out_bits = check_width("out_bits", out_bits, minimum=2)
        if self._acc_bits < self._weight_bits:
            raise ValueError(f"acc_bits must be at least weight_bits ({self._weight_bits}), "
                             f"not {acc_bits!r}")
        self._lanes = check_int("lanes", lanes, minimum=1)
        if g.depthwise and self._lanes != 1:
            raise ValueError(f"lanes must be 1 for a depthwise conv (one output channel per "
                             f"input event), not {lanes!r}")
        if self._lanes > g.cout:
            raise ValueError(f"lanes must be at most cout ({g.cout}), not {lanes!r}")
        self._frames = check_int("frames", frames, minimum=1)
        self._weights = check_int_array("weights", weights, shape=g.weight_shape,
                                        bits=self._weight_bits)
        self._shift = (np.zeros(g.cout, np.int64) if shift is None else
                       check_int_array("shift", shift, shape=(g.cout,), minimum=0))
        if self._shift.size and int(self._shift.max()) > 32:
            raise ValueError(f"shift must hold integers <= 32, not {int(self._shift.max())!r}")
        self._bias = (np.zeros(g.cout, np.int64) if bias is None else
                      check_int_array("bias", bias, shape=(g.cout,)))
        self._value_bits = (None if value_bits is None else
                            check_width("value_bits", value_bits, minimum=2))
        in_layout = dict(event_layout(g.cin, g.height, g.width).members)
        if self._value_bits is not None:
            in_layout["value"] = signed(self._value_bits)
        super().__init__({
            "events": In(stream.Signature(data.StructLayout(in_layout))),
            "o": Out(stream.Signature(output_layout(self._out_bits))),
        })

    # ---- read-only parameters
    geometry = property(lambda self: self._geom)
    lanes = property(lambda self: self._lanes)
    frames = property(lambda self: self._frames)
    weight_bits = property(lambda self: self._weight_bits)
    acc_bits = property(lambda self: self._acc_bits)
    out_bits = property(lambda self: self._out_bits)

    @property
    def chunks(self) -> int:
        """Output-channel groups of ``lanes`` channels (the last one may be partial)."""
        return 1 if self._geom.depthwise else -(-self._geom.cout // self._lanes)

    def event_cycles(self, y: int, x: int) -> int:
        """Cycle model: cycles an event at ``(y, x)`` occupies the engine (no stalls)."""
        return max(1, self._geom.taps(y, x) * self.chunks)

    @property
    def readout_words(self) -> int:
        g = self._geom
        return g.cout * g.out_height * g.out_width

    def lane_weights(self) -> np.ndarray:
        """``[lanes, depth]``: the weight memory contents of each lane (see module docstring)."""
        g, P, k = self._geom, self._lanes, self._geom.kernel
        if g.depthwise:
            return self._weights[:, 0].reshape(1, -1)
        wpad = np.zeros((self.chunks * P, g.cin, k, k), np.int64)
        wpad[:g.cout] = self._weights
        # [m, j, ci, ky, kx] -> lane j: [m, ci, ky, kx]
        return wpad.reshape(self.chunks, P, g.cin, k, k).transpose(1, 0, 2, 3, 4).reshape(P, -1)

    def elaborate(self, platform):
        m = Module()
        g, P, k, s = self._geom, self._lanes, self._geom.kernel, self._geom.stride
        Ho, Wo = g.out_height, g.out_width
        HW = Ho * Wo
        rows = g.cin if g.depthwise else self.chunks
        acc_depth = rows * HW
        ev = self.events.payload

        # ------------------------------------------------------------------ memories
        lane_w = self.lane_weights()
        w_rd, acc_rd, acc_wr = [], [], []
        for j in range(P):
            wmem = WeightMemory(values=lane_w[j], width=self._weight_bits)
            amem = WeightMemory(values=np.zeros(acc_depth, np.int64), width=self._acc_bits)
            m.submodules[f"weights{j}"] = wmem
            m.submodules[f"acc{j}"] = amem
            w_rd.append(wmem.read_port())
            acc_wr.append(amem.write_port())
            acc_rd.append(amem.read_port(transparent_for=(acc_wr[j],)))

        from ..quantize.intops import signed_bits   # (lazy: intops imports torch)
        bias_bits = signed_bits(int(self._bias.min()), int(self._bias.max()))
        shift_const = len(set(self._shift.tolist())) == 1
        m.submodules.bias = bias_mem = WeightMemory(values=self._bias, width=bias_bits)
        bias_rd = bias_mem.read_port()
        if shift_const:
            shift_val = int(self._shift[0])          # a constant shift: just wiring
        else:
            m.submodules.shift = shift_mem = WeightMemory(
                values=self._shift, width=bits_for(int(self._shift.max())), signed=False)
            shift_rd = shift_mem.read_port()
            shift_val = shift_rd.data

        # ------------------------------------------------------------------ issue stage
        ax_y = _Axis(m, ev.y, kernel=k, stride=s, padding=g.padding, out_size=Ho, name="y")
        ax_x = _Axis(m, ev.x, kernel=k, stride=s, padding=g.padding, out_size=Wo, name="x")

        busy = Signal()
        ci = Signal.like(ev.c)
        ky, kx = Signal(range(k + 1)), Signal(range(k + 1))
        ky_hi, kx_hi, kx_lo = (Signal(range(max(2, k))) for _ in range(3))
        oy, ox, ox0 = Signal(range(max(2, Ho))), Signal(range(max(2, Wo))), Signal(range(max(2, Wo)))
        mm = Signal(range(max(2, self.chunks)))
        value = Signal(signed(self._value_bits)) if self._value_bits else None
        frame = Signal(range(max(2, self._frames)))
        reading = Signal()          # readout phase

        kx_last = Signal()
        ky_last = Signal()
        m_last = Signal()
        issue_last = Signal()
        m.d.comb += [
            kx_last.eq(kx + s > kx_hi),
            ky_last.eq(ky + s > ky_hi),
            m_last.eq(mm == self.chunks - 1),
            issue_last.eq(busy & kx_last & ky_last & m_last),
            self.events.ready.eq(~reading & (~busy | issue_last)),
        ]

        with m.If(busy):         # advance the iterator: m innermost, then kx, then ky
            with m.If(~m_last):
                m.d.sync += mm.eq(mm + 1)
            with m.Else():
                m.d.sync += mm.eq(0)
                with m.If(~kx_last):
                    m.d.sync += [kx.eq(kx + s), ox.eq(ox - 1)]
                with m.Else():
                    m.d.sync += [kx.eq(kx_lo), ox.eq(ox0), ky.eq(ky + s), oy.eq(oy - 1)]
                    m.d.sync += busy.eq(0)
                    with m.If(~ky_last):
                        m.d.sync += busy.eq(1)

        with m.If(self.events.valid & self.events.ready):
            with m.If(ev.end):
                with m.If(frame == self._frames - 1):
                    m.d.sync += [frame.eq(0), reading.eq(1)]
                with m.Else():
                    m.d.sync += frame.eq(frame + 1)
            with m.Else():
                m.d.sync += [
                    busy.eq(ax_y.valid & ax_x.valid),
                    ci.eq(ev.c), mm.eq(0),
                    ky.eq(ax_y.lo), ky_hi.eq(ax_y.hi), oy.eq(ax_y.out0),
                    kx.eq(ax_x.lo), kx_hi.eq(ax_x.hi), kx_lo.eq(ax_x.lo),
                    ox.eq(ax_x.out0), ox0.eq(ax_x.out0),
                ]
                if value is not None:
                    m.d.sync += value.eq(ev.value)

        row_a = ci if g.depthwise else mm
        row_w = ci if g.depthwise else mul_const(mm, g.cin) + ci
        acc_addr = Signal(range(max(2, acc_depth)))
        w_addr = Signal(range(max(2, len(lane_w[0]))))
        m.d.comb += [
            acc_addr.eq(mul_const(row_a, HW) + mul_const(oy, Wo) + ox),
            w_addr.eq(mul_const(row_w, k * k) + mul_const(ky, k) + kx),
        ]
        for j in range(P):
            m.d.comb += w_rd[j].addr.eq(w_addr)

        # ------------------------------------------------------------------ stage 1
        s1_valid = Signal()
        s1_addr = Signal.like(acc_addr)
        s1_value = Signal.like(value) if value is not None else None
        m.d.sync += [s1_valid.eq(busy), s1_addr.eq(acc_addr)]
        if value is not None:
            m.d.sync += s1_value.eq(value)

        # ------------------------------------------------------------------ stage 2
        s2_valid = Signal()
        s2_addr = Signal.like(acc_addr)
        s2_add = [Signal(signed(self._acc_bits), name=f"s2_add{j}") for j in range(P)]
        m.d.sync += [s2_valid.eq(s1_valid), s2_addr.eq(s1_addr)]
        for j in range(P):
            term = w_rd[j].data if value is None else w_rd[j].data * s1_value
            m.d.sync += s2_add[j].eq(term)

        # ------------------------------------------------------------------ readout
        r_pos = Signal(range(max(2, HW)))          # position within the channel being issued
        r_base = Signal(range(max(2, acc_depth)))  # row base address of that channel
        r_lane = Signal(range(max(2, P)))
        r_co = Signal(range(max(2, g.cout)))
        r_issued_all = Signal()
        o_valid = Signal()
        o_lane = Signal.like(r_lane)
        o_addr = Signal.like(acc_addr)
        o_last = Signal()
        advance = Signal()
        r_issue = Signal()
        r_last = Signal()
        m.d.comb += [
            advance.eq(~o_valid | self.o.ready),
            r_issue.eq(reading & ~s1_valid & ~r_issued_all & advance),
            r_last.eq((r_co == g.cout - 1) & (r_pos == HW - 1)),
            bias_rd.addr.eq(r_co), bias_rd.en.eq(advance),
        ]
        if not shift_const:
            m.d.comb += [shift_rd.addr.eq(r_co), shift_rd.en.eq(advance)]
        with m.If(advance):
            m.d.sync += o_valid.eq(r_issue)
        with m.If(r_issue):
            m.d.sync += [o_lane.eq(r_lane), o_addr.eq(r_base + r_pos), o_last.eq(r_last)]
            with m.If(r_last):
                m.d.sync += [r_issued_all.eq(1), r_pos.eq(0), r_base.eq(0), r_lane.eq(0),
                             r_co.eq(0)]
            with m.Elif(r_pos == HW - 1):
                m.d.sync += [r_pos.eq(0), r_co.eq(r_co + 1)]
                if g.depthwise or P == 1:
                    m.d.sync += r_base.eq(r_base + HW)
                else:
                    with m.If(r_lane == P - 1):
                        m.d.sync += [r_lane.eq(0), r_base.eq(r_base + HW)]
                    with m.Else():
                        m.d.sync += r_lane.eq(r_lane + 1)
            with m.Else():
                m.d.sync += r_pos.eq(r_pos + 1)

        o_fire = Signal()
        m.d.comb += o_fire.eq(self.o.valid & self.o.ready)
        with m.If(o_fire & o_last):
            m.d.sync += [reading.eq(0), r_issued_all.eq(0)]

        acc_sel = Signal(signed(self._acc_bits))
        m.d.comb += acc_sel.eq(acc_rd[0].data)
        for j in range(1, P):
            with m.If(o_lane == j):
                m.d.comb += acc_sel.eq(acc_rd[j].data)
        m.d.comb += [
            self.o.valid.eq(o_valid),
            self.o.payload.value.eq((acc_sel << shift_val) + bias_rd.data),
            self.o.payload.last.eq(o_last),
        ]

        # ------------------------------------------------------------------ accumulator ports
        for j in range(P):
            with m.If(reading & ~s1_valid):
                m.d.comb += [acc_rd[j].addr.eq(r_base + r_pos), acc_rd[j].en.eq(advance)]
            with m.Else():
                m.d.comb += [acc_rd[j].addr.eq(s1_addr), acc_rd[j].en.eq(1)]
            with m.If(s2_valid):
                m.d.comb += [acc_wr[j].addr.eq(s2_addr), acc_wr[j].en.eq(1),
                             acc_wr[j].data.eq(acc_rd[j].data + s2_add[j])]
            with m.Else():   # clear each word as it is read out
                m.d.comb += [acc_wr[j].addr.eq(o_addr), acc_wr[j].data.eq(0),
                             acc_wr[j].en.eq(o_fire & (o_lane == j))]
        return m


class AccumulateEngine(_ScatterEngine):
    """Spike-driven convolution / linear layer with ``lanes`` parallel output channels.

    Parameters (keyword-only)
    -------------------------
    cin, cout, height, width, kernel, stride, padding, depthwise
        The convolution (see :class:`ConvGeometry`): kernel 1, 3 or 7; stride 1 or 2; zero
        padding below the kernel size; dense or depthwise (``groups = cin = cout``). A linear
        layer is kernel 1 on a 1x1 map.
    weights : integer array ``[cout, cin (1 if depthwise), k, k]``
        Must fit ``weight_bits`` (signed).
    weight_bits, acc_bits, out_bits : int
        Signed widths of weights, accumulators and readout values (from the IR).
    shift, bias : integer arrays ``[cout]`` or None
        Readout ``y = (acc << shift[c]) + bias[c]``; shifts in 0..32.
    lanes : int
        Output channels updated per cycle (1 for depthwise; at most ``cout``). When it does not
        divide ``cout`` the last chunk is partial: its unused lanes add zero weights.
    frames : int
        ``end`` events to accumulate over before reading out (``T`` for the classifier head,
        which sums its logits over time steps; 1 for a conv layer).

    Ports
    -----
    events : In(stream of :func:`~spikegate.hw.event_encoder.event_layout`)
        Address events ``(c, y, x)`` of the input spike map, then ``end``.
    o : Out(stream of :func:`output_layout`)
        ``cout * Ho * Wo`` values in ``C, H, W`` order; ``last`` on the final one.

    Timing (no stalls): each event occupies the engine ``max(1, taps * ceil(cout/lanes))``
    cycles (:meth:`event_cycles`; taps = kernel taps landing in the output map), so a map costs
    ``sum over events`` of that from its first event to its ``end``; the readout then streams one
    value per cycle (``cout * Ho * Wo`` cycles) after at most 3 cycles of latency.
    """

    def __init__(self, *, cin, cout, height, width, kernel, stride=1, padding=0,
                 depthwise=False, weights, weight_bits, acc_bits, out_bits, shift=None,
                 bias=None, lanes=1, frames=1):
        super().__init__(cin=cin, cout=cout, height=height, width=width, kernel=kernel,
                         stride=stride, padding=padding, depthwise=depthwise, weights=weights,
                         weight_bits=weight_bits, acc_bits=acc_bits, out_bits=out_bits,
                         shift=shift, bias=bias, lanes=lanes, frames=frames)
