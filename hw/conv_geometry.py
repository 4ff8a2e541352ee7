"""The CONV/HEAD engine's instruction registers (``hw/sfa_conv.py``).

HEAD runs as a CONV with a 1x1 kernel on a 1x1 map, so every geometry field the engine's parts use
is the instruction's field or HEAD's implicit value, selected by the opcode. Those selections and
the loop bounds minus one are registered here, once: the opcode decode, the HEAD muxes and the
subtractors then stay off the scanner's, the tap loop's and the readout's paths (each of those
chains, in front of a scan register or the state logic, was a critical path of the UP5K or the
ECP5). The instruction is valid from the cycle before ``start`` on, ``drv`` from ``start`` on:
either way every output holds the instruction's value from ``start + 1`` (the first SCAT cycle) on.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline
from spikegate.machine.program import OP_HEAD

from .sfa_common import derived_layout, instr_layout

__all__ = ["ConvGeometry", "geometry_shapes"]


def geometry_shapes(cfg: MachineConfig) -> dict:
    """Every register :class:`ConvGeometry` outputs, name -> shape (the parts of the engine take
    the ones they use, at these shapes)."""
    iw = {n: Shape.cast(s).width for n, s in instr_layout(cfg).members.items()}
    dw = {n: Shape.cast(s).width for n, s in derived_layout(cfg).members.items()}
    shapes = {
        "is_head": 1, "k": iw["k"], "pad": iw["pad"], "sh": 1, "ho": iw["ho"], "wo": iw["wo"],
        "in_int": 1, "tapm": 1, "accum": 1, "bcast": 1,
        "pk1": signed(max(iw["pad"], iw["k"]) + 2),
    }
    if deep_acc_pipeline(cfg.lanes):
        shapes["k_1"] = iw["k"]
    shapes.update({
        "howo": dw["howo"], "kG": max(dw["kG"], dw["G"]), "kkG": max(dw["kkG"], dw["G"]),
        "w1": iw["w"], "h1": iw["h"], "ho1": iw["ho"], "wo1": iw["wo"], "cin1": iw["cin"],
        "cout1": iw["cout"], "T1": iw["T"], "t_one": 1, "howo1": dw["howo"], "G1": dw["G"],
        "Gt1": dw["Gt"], "cin_one": 1, "h_one": 1, "w_one": 1,
    })
    if deep_acc_pipeline(cfg.lanes):
        shapes["G_s0"] = dw["G"]
    shapes.update({"g_one": 1, "gt_one": 1})
    return shapes


class ConvGeometry(wiring.Component):
    """The instruction (``instr``, ``drv``) in, its geometry registered out: HEAD's implicit
    values substituted (``k`` 1, ``pad`` 0, ``h = w = ho = wo = howo`` 1, no stride, spike input,
    LANES_CO, no accumulate, no broadcast), each loop bound less one (``w1``, ``h1``, ``ho1``,
    ``wo1``, ``cin1``, ``cout1``, ``T1``, ``howo1``, ``G1``, ``Gt1``), ``pad + 1 - k`` (``pk1``),
    and the tests ``bound == 1`` (``t_one``, ``cin_one``, ``h_one``, ``w_one``, ``g_one``,
    ``gt_one``). With the deep pipeline also ``k - 1`` (``k_1``) and a copy of ``G`` for S0
    (``G_s0``: the scanner's first step is a cycle after ``start``)."""

    def __init__(self, cfg: MachineConfig):
        self._cfg = cfg
        members = {"instr": In(instr_layout(cfg)), "drv": In(derived_layout(cfg))}
        members.update({name: Out(shape) for name, shape in geometry_shapes(cfg).items()})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        I, D = self.instr, self.drv
        head_now = I.opcode == OP_HEAD

        def held(name, value):
            port = getattr(self, name)
            sig = Signal(port.shape(), name=name)
            m.d.sync += sig.eq(value)
            m.d.comb += port.eq(sig)
            return sig

        k_now, pad_now = Mux(head_now, 1, I.k), Mux(head_now, 0, I.pad)
        is_head = held("is_head", head_now)
        held("k", k_now)
        held("pad", pad_now)
        held("sh", ~head_now & (I.stride == 2))          # stride 2 <=> shift by 1
        held("ho", Mux(head_now, 1, I.ho))
        held("wo", Mux(head_now, 1, I.wo))
        held("in_int", ~head_now & I.in_kind)
        held("tapm", ~head_now & I.lane_mode)            # LANES_TAP
        held("accum", ~head_now & I.out_mode)
        held("bcast", ~head_now & (I.src2 != 0))
        held("pk1", pad_now + 1 - k_now)                 # pad + 1 - k
        if deep_acc_pipeline(self._cfg.lanes):
            held("k_1", k_now - 1)
        held("howo", Mux(is_head, 1, D.howo))
        held("kG", Mux(is_head, D.G, D.kG))
        held("kkG", Mux(is_head, D.G, D.kkG))
        # the loop bounds minus one: the scanner's advance decision and S0's compares see a
        # register, not a subtractor (on the UP5K that chain was the critical path)
        held("w1", Mux(head_now, 1, I.w) - 1)
        held("h1", Mux(head_now, 1, I.h) - 1)
        held("ho1", Mux(head_now, 1, I.ho) - 1)
        held("wo1", Mux(head_now, 1, I.wo) - 1)
        held("cin1", I.cin - 1)
        # the readout's and the time loop's bounds (a subtractor from the instruction in front of
        # the state logic was the UP5K's critical path)
        held("cout1", I.cout - 1)
        held("T1", I.T - 1)
        held("t_one", I.T == 1)
        held("howo1", Mux(is_head, 1, D.howo) - 1)
        held("G1", D.G - 1)
        held("Gt1", D.Gt - 1)
        held("cin_one", I.cin == 1)
        held("h_one", Mux(head_now, 1, I.h) == 1)
        held("w_one", Mux(head_now, 1, I.w) == 1)
        if deep_acc_pipeline(self._cfg.lanes):
            held("G_s0", D.G)           # drv is valid from start, S0's first step is a cycle later
        held("g_one", D.G == 1)
        held("gt_one", D.Gt == 1)
        return m
