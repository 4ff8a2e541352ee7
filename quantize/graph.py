"""The spikegate op graph: one explicit IR shared by the lowered float graph and the integer model.

A graph is a list of ops in execution order. Each op produces one tensor named after the op (its
checkpoint module path, e.g. ``ConvBlock1_1.0.Conv.lif1``); ``inputs`` name earlier tensors or
``"input"``. Per-sample, per-time-step output shapes are ``[C, H, W]`` (``[C]`` after the spatial
sum). The same graph is executed in float64 (the lowered model, before rounding) and in exact
integers (the golden model); only its parameters differ.

The validity rules of the IR live here, in :func:`validate`: every loader and every pass calls it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np

# Op kinds and the attributes / parameters each one must carry.
OP_SPEC: dict[str, dict] = {
    "quant_input": {"attrs": {"scale", "bits", "channels", "size"}, "params": set(), "n_in": 0},
    "conv": {"attrs": {"kernel", "stride", "padding", "groups", "in_kind", "role"},
             "params": {"weight", "bias", "shift"}, "n_in": 1},
    "lif": {"attrs": {"public_shape"}, "params": {"threshold"}, "n_in": 1},
    "add": {"attrs": set(), "params": set(), "n_in": 2},
    "attention": {"attrs": {"heads"}, "params": set(), "n_in": 3},
    "spatial_sum": {"attrs": set(), "params": set(), "n_in": 1},
    "head": {"attrs": {"num_heads_out"}, "params": {"weight", "bias"}, "n_in": 1},
}

# What each op's output carries: spikes (0/1) or multi-bit integers.
OUTPUT_KIND = {"quant_input": "int", "conv": "int", "lif": "spike", "add": "int", "attention": "int",
               "spatial_sum": "int", "head": "int"}


# Ops whose output may saturate (docs/integer-semantics.md, "Saturation"): each writes a multi-bit
# tensor into activation memory. Nothing else needs to: a LIF's membrane, an accumulator and the
# head are bounded by their (possibly saturated) inputs, so the range analysis proves their widths.
SATURABLE = ("conv", "add", "spatial_sum")


def saturable(g: "Graph", o: "Op") -> bool:
    """May ``o`` saturate? An add's branch convolution (its second input) may not: the add
    saturates the sum (the hardware computes the two in one readout, ``compiler/passes/schedule.py``).
    An add's stream (its first input) may: its readout writes ACT like any other, and its other
    readers (the LIF of the next block) read the clamped word."""
    if o.kind not in SATURABLE:
        return False
    return not (o.kind == "conv" and any(c.kind == "add" and c.inputs[1] == o.name for c in g.consumers(o.name)))


class GraphError(ValueError):
    """The graph breaks an IR validity rule; the message names the op."""


@dataclass
class Op:
    name: str
    kind: str
    inputs: list[str]
    shape: tuple[int, ...]  # output shape per sample and time step
    attrs: dict = field(default_factory=dict)
    params: dict[str, np.ndarray] = field(default_factory=dict)
    widths: dict[str, int] = field(default_factory=dict)  # declared bit widths (integer IR only)

    def describe(self) -> str:
        """One line for humans."""
        a = self.attrs
        shape = "x".join(str(s) for s in self.shape)
        if self.kind == "conv":
            w = self.params["weight"]
            geo = f"{a['kernel']}x{a['kernel']}/s{a['stride']}/p{a['padding']}"
            if a["groups"] > 1:
                geo += f" dw" if a["groups"] == w.shape[0] else f" g{a['groups']}"
            detail = f"{geo} {w.shape[1] * a['groups']}->{w.shape[0]} in={a['in_kind']} role={a['role']}"
            sh = self.params.get("shift")
            if sh is not None and np.any(sh):
                detail += f" shift={int(np.min(sh))}..{int(np.max(sh))}"
        elif self.kind == "lif":
            th = self.params["threshold"]
            detail = f"threshold={_range_text(th)}"
        elif self.kind == "attention":
            detail = f"heads={a['heads']}"
        elif self.kind == "quant_input":
            detail = f"scale={a['scale']} bits={a['bits']}"
        elif self.kind == "head":
            detail = f"{self.params['weight'].shape[0]} head(s) {self.params['weight'].shape[2]}->" \
                     f"{self.params['weight'].shape[1]}"
        else:
            detail = ""
        wid = " ".join(f"{k}={v}" for k, v in sorted(self.widths.items()))
        if self.attrs.get("saturate"):
            wid += f" saturates {self.widths.get('wide', '?')}->{self.widths.get('out', '?')}"
        ins = ",".join(self.inputs) if self.inputs else "-"
        return f"{self.kind:<12} {self.name:<36} [{shape}] {detail}  <- {ins}" + (f"  bits: {wid}" if wid else "")


def _range_text(a: np.ndarray) -> str:
    a = np.asarray(a)
    lo, hi = a.min(), a.max()
    fmt = (lambda v: f"{int(v)}") if a.dtype.kind in "iu" else (lambda v: f"{float(v):.4g}")
    return fmt(lo) if lo == hi else f"{fmt(lo)}..{fmt(hi)}"


@dataclass
class Graph:
    ops: list[Op]
    meta: dict = field(default_factory=dict)  # model config, T, scales, dequantisation, ...

    def op(self, name: str) -> Op:
        for o in self.ops:
            if o.name == name:
                return o
        raise KeyError(name)

    def producers(self) -> dict[str, Op]:
        return {o.name: o for o in self.ops}

    def consumers(self, name: str) -> list[Op]:
        return [o for o in self.ops if name in o.inputs]

    def copy(self) -> "Graph":
        return copy.deepcopy(self)

    def lif_ops(self) -> list[Op]:
        return [o for o in self.ops if o.kind == "lif"]

    def describe(self) -> str:
        return "\n".join(o.describe() for o in self.ops)


def validate(g: Graph, integer: bool) -> None:
    """Check the structural rules of the IR. ``integer``: also the integer-only rules."""
    seen: dict[str, Op] = {}
    if not g.ops or g.ops[0].kind != "quant_input":
        raise GraphError("the first op must be quant_input")
    for o in g.ops:
        spec = OP_SPEC.get(o.kind)
        if spec is None:
            raise GraphError(f"op {o.name}: unknown op kind {o.kind!r} (known: {', '.join(OP_SPEC)})")
        if o.name in seen:
            raise GraphError(f"op {o.name}: name used twice")
        if len(o.inputs) != spec["n_in"]:
            raise GraphError(f"op {o.name}: {o.kind} takes {spec['n_in']} inputs, has {len(o.inputs)}")
        for i in o.inputs:
            if i not in seen:
                raise GraphError(f"op {o.name}: input {i!r} is not produced by an earlier op")
        missing = spec["attrs"] - set(o.attrs)
        if missing:
            raise GraphError(f"op {o.name}: missing attributes {sorted(missing)}")
        missing = spec["params"] - set(o.params)
        if missing:
            raise GraphError(f"op {o.name}: missing parameters {sorted(missing)}")
        ins = [seen[i] for i in o.inputs]
        _check_shapes(o, ins)
        if "saturate" in o.attrs:
            if o.attrs["saturate"] is not True:
                raise GraphError(f"op {o.name}: attribute saturate must be true when present, not "
                                 f"{o.attrs['saturate']!r}")
            if not saturable(g, o):
                raise GraphError(f"op {o.name}: a {o.kind} may not saturate"
                                 + (" (the add that reads it saturates the sum)" if o.kind == "conv" else
                                    f"; only {', '.join(SATURABLE)} outputs do"))
        if integer:
            for k, v in o.params.items():
                if np.asarray(v).dtype.kind not in "iu":
                    raise GraphError(f"op {o.name}: parameter {k} must be integer, not {np.asarray(v).dtype}")
        seen[o.name] = o
    if g.ops[-1].kind != "head":
        raise GraphError("the last op must be head")


def _check_shapes(o: Op, ins: list[Op]) -> None:
    a, p = o.attrs, o.params
    if o.kind == "conv":
        x = ins[0]
        w = np.asarray(p["weight"])
        cin, h, wd = x.shape
        k, s, pad, g = a["kernel"], a["stride"], a["padding"], a["groups"]
        if a["in_kind"] != OUTPUT_KIND[x.kind] and not (a["in_kind"] == "int" and x.kind == "quant_input"):
            raise GraphError(f"op {o.name}: in_kind={a['in_kind']} but its input {x.name} carries "
                             f"{OUTPUT_KIND[x.kind]}")
        if w.ndim != 4 or w.shape[2:] != (k, k) or w.shape[1] * g != cin or w.shape[0] % g:
            raise GraphError(f"op {o.name}: weight shape {tuple(w.shape)} does not fit kernel {k}, groups {g} "
                             f"and {cin} input channels")
        ho = (h + 2 * pad - k) // s + 1
        wo = (wd + 2 * pad - k) // s + 1
        if tuple(o.shape) != (w.shape[0], ho, wo):
            raise GraphError(f"op {o.name}: output shape {o.shape} should be {(w.shape[0], ho, wo)}")
        for name in ("bias", "shift"):
            if np.asarray(p[name]).shape != (w.shape[0],):
                raise GraphError(f"op {o.name}: {name} shape {np.asarray(p[name]).shape} should be ({w.shape[0]},)")
        if np.any(np.asarray(p["shift"]) < 0) and a["in_kind"] != "int":
            raise GraphError(f"op {o.name}: right shifts are only for multi-bit inputs")
        if np.any(np.abs(np.asarray(p["shift"])) > 30):
            raise GraphError(f"op {o.name}: shifts must lie in -30..30")
    elif o.kind == "lif":
        if tuple(o.shape) != tuple(ins[0].shape):
            raise GraphError(f"op {o.name}: shape {o.shape} differs from its input's {ins[0].shape}")
        th = np.asarray(p["threshold"])
        if th.shape != (o.shape[0],) or np.any(th <= 0):
            raise GraphError(f"op {o.name}: threshold must be {o.shape[0]} positive values")
    elif o.kind == "add":
        if not (tuple(ins[0].shape) == tuple(ins[1].shape) == tuple(o.shape)):
            raise GraphError(f"op {o.name}: operand shapes {ins[0].shape} and {ins[1].shape} differ")
    elif o.kind == "attention":
        if not all(tuple(i.shape) == tuple(o.shape) for i in ins) or not all(i.kind == "lif" for i in ins):
            raise GraphError(f"op {o.name}: q, k, v must be spike tensors of shape {o.shape}")
        if o.shape[0] % a["heads"]:
            raise GraphError(f"op {o.name}: {o.shape[0]} channels do not split into {a['heads']} heads")
    elif o.kind == "spatial_sum":
        if tuple(o.shape) != (ins[0].shape[0],):
            raise GraphError(f"op {o.name}: shape must be ({ins[0].shape[0]},)")
    elif o.kind == "head":
        w = np.asarray(p["weight"])
        if ins[0].kind != "lif" or w.ndim != 3 or w.shape[2] != ins[0].shape[0] or \
                np.asarray(p["bias"]).shape != w.shape[:2] or tuple(o.shape) != (w.shape[1],):
            raise GraphError(f"op {o.name}: head weights {tuple(w.shape)} do not fit input {ins[0].shape}")
