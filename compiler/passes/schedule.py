"""Pass: IR ops -> machine operations on named tensors, in execution order.

Each residual ``add`` is fused into its branch's last convolution (readout adds into the stream's
buffer: ``out_mode = OUT_ACCUM``); ``head`` and ``head_kd`` are merged into one weight set (exact:
``W_h s + W_kd s = (W_h + W_kd) s``); an INPUT and an OUTPUT frame the program.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spikegate.quantize.graph import Graph

from spikegate.machine.program import (IN_INT, IN_SPIKE, LANES_CO, LANES_TAP, OP_ATTN, OP_CONV, OP_HEAD, OP_INPUT, OP_LIF,
                       OP_OUTPUT, OP_SUM, OPCODES, OUT_ACCUM, OUT_WRITE)


@dataclass
class MOp:
    """A machine operation before addresses are assigned."""

    opcode: int
    name: str                 # the IR op it implements
    srcs: list[str]           # tensor names read
    dst: str | None           # tensor name written (None: ACC/logits)
    mem: str = "ACT"          # where dst lives: ACT or SPK
    in_shape: tuple = ()
    out_shape: tuple = ()
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    fire_dst: str | None = None   # CONV with a fused LIF (passes/fuse_fire.py): its spikes (SPK)

    @property
    def dsts(self) -> list[str]:
        """The tensors it writes: ``dst`` and, for a CONV that fires, its spikes."""
        return [t for t in (self.dst, self.fire_dst) if t is not None]

    def describe(self) -> str:
        fired = f" (+ fires {self.fire_dst})" if self.fire_dst else ""
        return f"{OPCODES[self.opcode]:<6} {self.name:<36} {self.dst or 'ACC'}{fired} <- " \
               f"{', '.join(self.srcs) or 'pixels'} {self.attrs}"


@dataclass
class Schedule:
    mops: list[MOp]
    tensors: dict[str, dict]   # name -> {"mem": ACT|SPK, "shape": (C,H,W), "steps": T or 1, "alias": name}
    T: int
    meta: dict

    def describe(self) -> str:
        return "\n".join(m.describe() for m in self.mops)


def schedule(g: Graph, T: int | None = None, *, events: bool = False) -> Schedule:
    """``events``: the input is one frame per time step (event data ``[B, T, C, H, W]``), so the
    input tensor holds T frames and the first convolution reads frame t at step t; otherwise one
    image, which the first convolution reads at every step (direct encoding: ``broadcast``)."""
    T = int(T or g.meta.get("T", 1))
    prod = {o.name: o for o in g.ops}
    fused = {}  # branch conv name -> add op
    for o in g.ops:
        if o.kind == "add":
            fused[o.inputs[1]] = o
    alias: dict[str, str] = {}   # tensor name -> buffer-owning tensor name

    def buf(n: str) -> str:
        while n in alias:
            n = alias[n]
        return n

    tensors: dict[str, dict] = {}
    mops: list[MOp] = []
    for o in g.ops:
        if o.kind == "quant_input":
            tensors[o.name] = {"mem": "ACT", "shape": tuple(o.shape), "steps": T if events else 1}
            mops.append(MOp(OP_INPUT, o.name, [], o.name, "ACT", out_shape=tuple(o.shape)))
        elif o.kind == "conv":
            src = prod[o.inputs[0]]
            a = o.attrs
            add = fused.get(o.name)
            attrs = {"k": a["kernel"], "stride": a["stride"], "pad": a["padding"],
                     "in_kind": IN_SPIKE if a["in_kind"] == "spike" else IN_INT,
                     "lane_mode": LANES_TAP if a["groups"] > 1 else LANES_CO,
                     "out_mode": OUT_ACCUM if add is not None else OUT_WRITE,
                     "broadcast": 1 if src.kind == "quant_input" and not events else 0}
            params = {"weight": o.params["weight"], "bias": o.params["bias"], "shift": o.params["shift"]}
            if add is not None:
                dst = buf(add.inputs[0])
                alias[add.name] = dst
            else:
                dst = o.name
                tensors[o.name] = {"mem": "ACT", "shape": tuple(o.shape), "steps": T}
            mops.append(MOp(OP_CONV, o.name, [buf(o.inputs[0])], dst, "ACT", tuple(src.shape), tuple(o.shape),
                            attrs, params))
        elif o.kind == "add":
            continue  # fused above
        elif o.kind == "lif":
            tensors[o.name] = {"mem": "SPK", "shape": tuple(o.shape), "steps": T}
            mops.append(MOp(OP_LIF, o.name, [buf(o.inputs[0])], o.name, "SPK", tuple(o.shape), tuple(o.shape),
                            {}, {"threshold": o.params["threshold"]}))
        elif o.kind == "attention":
            tensors[o.name] = {"mem": "ACT", "shape": tuple(o.shape), "steps": T}
            mops.append(MOp(OP_ATTN, o.name, [buf(i) for i in o.inputs], o.name, "ACT", tuple(o.shape),
                            tuple(o.shape), {"heads": o.attrs["heads"]}))
        elif o.kind == "spatial_sum":
            src = prod[o.inputs[0]]
            tensors[o.name] = {"mem": "ACT", "shape": tuple(o.shape), "steps": T}
            mops.append(MOp(OP_SUM, o.name, [buf(o.inputs[0])], o.name, "ACT", tuple(src.shape), tuple(o.shape)))
        elif o.kind == "head":
            w = o.params["weight"].sum(axis=0)
            b = o.params["bias"].sum(axis=0)
            src = prod[o.inputs[0]]
            mops.append(MOp(OP_HEAD, o.name, [buf(o.inputs[0])], None, "ACC", tuple(src.shape), tuple(o.shape),
                            {"heads_merged": int(o.params["weight"].shape[0])}, {"weight": w, "bias": b}))
            mops.append(MOp(OP_OUTPUT, "output", [], None, "ACC", out_shape=tuple(o.shape)))
        else:  # check_ops refuses anything else
            raise AssertionError(o.kind)
    for m in mops:  # resolve aliases in every reference
        m.srcs = [buf(s) for s in m.srcs]
        if m.dst is not None:
            m.dst = buf(m.dst)
    return Schedule(mops, tensors, T, dict(g.meta))
