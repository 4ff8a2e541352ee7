"""ONNX export of the integer IR: standard ONNX integer ops that reproduce the golden model exactly.

The exported graph takes ``images`` ``[B, C, H, W]`` float32 (B dynamic) and returns ``logits``
``[B, K]`` int64: bit for bit what :func:`spikegate.quantize.golden.execute` returns (``mode="int"``)
for the same T. Each IR op kind becomes the integer ops below (the definitions are
``docs/integer-semantics.md`` and ``quantize/intops.py``):

- ``quant_input``: ``Cast(double) -> Mul(scale) -> Add(0.5) -> Floor -> Clip -> Cast(int64)``, the
  float64 arithmetic of ``intops.quantize_input`` op for op (IEEE: identical results).
- ``conv`` (dense): im2col from one strided ``Slice`` per tap of the zero-``Pad``-ded input,
  ``Concat``-ed, then one integer ``MatMul`` ``[Cout, k*k*Cin] @ [k*k*Cin, N*Ho*Wo]``. The ``MatMul``
  runs in int32 when ``max_o sum|w_o| * max|x|`` (which bounds every partial sum) is below 2**31,
  else in int64; its result is cast to int64. Grouped (not depthwise) convolutions: one such
  ``MatMul`` per group. Depthwise (one input channel per group): ``Mul`` of each tap's ``Slice`` by
  its per-channel weight, summed with ``Add``.
  Alignment (``intops.shift_round``): ``Mul(2**s)`` for ``s >= 0``; for ``s = -r < 0``
  ``floor((acc + 2**(r-1)) / 2**r)``, with ``floor(a / d) = (a - Mod(a, d)) / d``: ``Mod`` with
  ``fmod=0`` on integers takes the divisor's sign, so ``a - Mod(a, d)`` is an exact multiple of ``d``
  and ``Div``'s truncation is exact. Then ``Add(bias)``.
- ``lif``: unrolled over T, the state carried from step to step: ``h2 = v + x[t]`` (``Add``),
  ``spike = h2 >= 2 * theta`` (``GreaterOrEqual``, ties fire), ``v = Where(spike, 0, floor(h2 / 2))``
  (the same ``Mod``/``Div`` floor); the spikes are ``Cast`` to int64 and ``Concat``-ed over T.
- a saturating op (``attrs["saturate"]``) ends in ``Clip`` to its declared ``out`` width.
- ``attention``: per sample and head, ``Y8^T = (V^T K) Q^T`` by two int64 ``MatMul`` on
  ``[heads, N, d, tokens]`` (the transpose of ``Q (K^T V)`` in ``intops.attention``: integer sums,
  so the grouping does not matter).
- ``add``: ``Add``. ``spatial_sum``: ``ReduceSum`` over the spatial axes.
- ``head``: ``ReduceSum`` of the spikes over T, one ``MatMul`` with the heads' weights summed, plus T
  times the summed biases: ``sum_t sum_h (W_h s[t] + b_h)`` regrouped (exact in integers).

Layout: activations are ``[C, T*B, ...]`` (channels first, then t-major samples: column ``t*B + b``),
so each convolution is a single large matrix product and every op except the LIF runs once for all
time steps. Reshapes write the sample axis as ``-1``: no shape arithmetic, any batch size. Tensors
that do not depend on t (the quantised image and what is computed from it before the first LIF) stay
``[C, B, ...]`` and are computed once: direct encoding repeats the image, so their T copies are equal.
Large weights are stored in the narrowest of int8/int16/int32 and ``Cast``.

Every intermediate is an exact integer far inside int64 (the declared widths bound them). The file is
deterministic (same IR and T: same bytes) and written atomically.
"""

from __future__ import annotations

import json
import os

import numpy as np

from spikegate.errors import SpikegateError
from spikegate.io import atomic_path

from .graph import Graph, validate

OPSET = 17
INT32_BOUND = 2 ** 31 - 1


class _Builder:
    """Collects nodes and initializers with deterministic names."""

    def __init__(self):
        from onnx import TensorProto, helper, numpy_helper

        self.TP, self.helper, self.nph = TensorProto, helper, numpy_helper
        self.nodes = []
        self.inits = []
        self._consts: dict = {}
        self._n = 0

    def _name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}#{self._n}"

    def const(self, arr, hint: str = "c") -> str:
        """An initializer holding ``arr`` exactly (shared by dtype, shape and bytes)."""
        arr = np.array(arr, order="C")  # (np.ascontiguousarray would turn a scalar into 1-d)
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._consts:
            name = self._name(f"const/{hint}")
            self.inits.append(self.nph.from_array(arr, name))
            self._consts[key] = name
        return self._consts[key]

    def i64(self, values, hint: str = "c") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def weight(self, arr, hint: str, int32: bool = False) -> str:
        """An int64 (or int32) tensor, stored in the narrowest integer type and cast if larger."""
        a = np.asarray(arr, dtype=np.int64)
        target, to = (np.int32, self.TP.INT32) if int32 else (np.int64, self.TP.INT64)
        if a.size <= 16:
            return self.const(a.astype(target), hint)
        lo, hi = int(a.min()), int(a.max())
        for dt in (np.int8, np.int16, np.int32):
            if np.iinfo(dt).min <= lo and hi <= np.iinfo(dt).max and np.dtype(dt).itemsize < np.dtype(target).itemsize:
                return self.op("Cast", [self.const(a.astype(dt), hint)], hint, to=to)
        return self.const(a.astype(target), hint)

    def op(self, op_type: str, inputs: list[str], hint: str, out: str | None = None, **attrs) -> str:
        out = out or self._name(f"{hint}/{op_type}")
        self.nodes.append(self.helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def floor_div(self, a: str, d: str, hint: str) -> str:
        """``floor(a / d)`` for int64 ``a`` and positive int64 ``d`` (broadcast)."""
        r = self.op("Mod", [a, d], hint, fmod=0)  # integer Mod, divisor's sign: 0 <= r < d
        return self.op("Div", [self.op("Sub", [a, r], hint), d], hint)  # exact division

    def taps(self, x: str, k: int, s: int, pad: int, ho: int, wo: int, hint: str):
        """The k*k strided windows ``[C, N, ho, wo]`` of ``x`` ``[C, N, H, W]`` zero-padded by ``pad``."""
        if pad:
            x = self.op("Pad", [x, self.i64([0, 0, pad, pad, 0, 0, pad, pad])], hint, mode="constant")
        out = []
        for dy in range(k):
            for dx in range(k):
                if k == 1 and s == 1:
                    out.append(((dy, dx), x))
                    continue
                starts = self.i64([dy, dx])
                ends = self.i64([dy + s * (ho - 1) + 1, dx + s * (wo - 1) + 1])
                sl = self.op("Slice", [x, starts, ends, self.i64([2, 3]), self.i64([s, s])], hint)
                out.append(((dy, dx), sl))
        return out


def _dense(b: _Builder, x: str, w: np.ndarray, op, in_shape, x_bound: int | None, hint: str) -> str:
    """Dense convolution ``[Cin, N, H, W] -> [Cout, N, Ho, Wo]`` as one integer MatMul."""
    cout, cin, k, _ = w.shape
    s, pad = int(op.attrs["stride"]), int(op.attrs["padding"])
    _, h, wd = in_shape
    _, ho, wo = op.shape
    bound = None if x_bound is None else int(np.abs(w).reshape(cout, -1).sum(1).max(initial=0)) * x_bound
    int32 = bound is not None and bound <= INT32_BOUND
    if int32:
        x = b.op("Cast", [x], hint, to=b.TP.INT32)
    if k == 1 and s == 1 and pad == 0:
        cols = b.op("Reshape", [x, b.i64([cin, -1])], hint)
    else:
        taps = [t for _, t in b.taps(x, k, s, pad, ho, wo, hint)]
        cat = taps[0] if len(taps) == 1 else b.op("Concat", taps, hint, axis=0)  # row tap * cin + j
        cols = b.op("Reshape", [cat, b.i64([k * k * cin, -1])], hint)
    wm = b.weight(w.transpose(0, 2, 3, 1).reshape(cout, k * k * cin), f"{hint}.weight", int32=int32)
    acc = b.op("MatMul", [wm, cols], hint)  # [cout, N * ho * wo]
    if int32:
        acc = b.op("Cast", [acc], hint, to=b.TP.INT64)
    return b.op("Reshape", [acc, b.i64([cout, -1, ho, wo])], hint)


def _depthwise(b: _Builder, x: str, w: np.ndarray, op, hint: str) -> str:
    """One input channel per group: per-tap ``Slice * w[:, tap]``, summed."""
    cout, _, k, _ = w.shape
    groups = int(op.attrs["groups"])
    s, pad = int(op.attrs["stride"]), int(op.attrs["padding"])
    _, ho, wo = op.shape
    if cout != groups:  # channel multiplier: output channel o reads input channel o // (cout / groups)
        x = b.op("Gather", [x, b.i64(np.arange(cout) // (cout // groups), f"{hint}.channels")], hint, axis=0)
    acc = None
    for (dy, dx), sl in b.taps(x, k, s, pad, ho, wo, hint):
        term = b.op("Mul", [sl, b.i64(w[:, 0, dy, dx].reshape(cout, 1, 1, 1), f"{hint}.w{dy}_{dx}")], hint)
        acc = term if acc is None else b.op("Add", [acc, term], hint)
    return acc


def _conv(b: _Builder, op, x: str, in_shape, x_bound: int | None) -> str:
    w = np.asarray(op.params["weight"], dtype=np.int64)
    cout, cpg = w.shape[:2]
    g = int(op.attrs["groups"])
    name = op.name
    if cpg == 1 and g > 1:
        acc = _depthwise(b, x, w, op, name)
    elif g == 1:
        acc = _dense(b, x, w, op, in_shape, x_bound, name)
    else:
        opg = cout // g
        parts = []
        for i in range(g):
            xs = b.op("Slice", [x, b.i64([i * cpg]), b.i64([(i + 1) * cpg]), b.i64([0])], f"{name}.g{i}")
            parts.append(_dense(b, xs, w[i * opg:(i + 1) * opg], op, (cpg,) + tuple(in_shape[1:]), x_bound,
                                f"{name}.g{i}"))
        acc = b.op("Concat", parts, name, axis=0)
    shift = np.asarray(op.params["shift"], dtype=np.int64)
    cshape = (cout, 1, 1, 1)
    if np.any(shift < 0):
        r = np.maximum(-shift, 0)
        mul = np.left_shift(1, np.maximum(shift, 0))
        half = np.where(r > 0, np.left_shift(1, np.maximum(r - 1, 0)), 0)
        if np.any(mul != 1):
            acc = b.op("Mul", [acc, b.i64(mul.reshape(cshape), f"{name}.mul")], name)
        acc = b.op("Add", [acc, b.i64(half.reshape(cshape), f"{name}.half")], name)
        acc = b.floor_div(acc, b.i64(np.left_shift(1, r).reshape(cshape), f"{name}.div"), name)
    elif np.any(shift > 0):
        acc = b.op("Mul", [acc, b.i64(np.left_shift(1, shift).reshape(cshape), f"{name}.mul")], name)
    bias = np.asarray(op.params["bias"], dtype=np.int64)
    if np.any(bias):
        acc = b.op("Add", [acc, b.i64(bias.reshape(cshape), f"{name}.bias")], name)
    return acc


def _lif(b: _Builder, op, x: str, varying: bool, T: int) -> str:
    """Integer LIF over T steps on ``[C, T*B, ...]`` (or a t-independent ``[C, B, ...]`` input)."""
    shape = tuple(op.shape)
    name = op.name
    th2 = 2 * np.asarray(op.params["threshold"], dtype=np.int64).reshape((shape[0],) + (1,) * len(shape))
    th2 = b.i64(th2, f"{name}.2theta")
    xt_all = b.op("Reshape", [x, b.i64([shape[0], T, -1] + list(shape[1:]))], name) if varying and T > 1 else None
    v = None
    spikes = []
    for t in range(T):
        hint = f"{name}.t{t}"
        xt = x if xt_all is None else b.op("Gather", [xt_all, b.i64(t)], hint, axis=1)
        h2 = xt if v is None else b.op("Add", [v, xt], hint)
        fire = b.op("GreaterOrEqual", [h2, th2], hint)
        spikes.append(b.op("Cast", [fire], hint, to=b.TP.INT64))
        if t + 1 < T:
            v = b.op("Where", [fire, b.i64(0), b.floor_div(h2, b.i64(2), hint)], hint)
    return spikes[0] if T == 1 else b.op("Concat", spikes, name, axis=1)


def _input_bound(producer) -> int | None:
    """Largest magnitude a multi-bit tensor can take (from its declared width), or None."""
    bits = producer.attrs.get("bits") if producer.kind == "quant_input" else producer.widths.get("out")
    return None if bits is None else 1 << (int(bits) - 1)


def build_int_onnx(g: Graph, T: int | None = None, debug_outputs: list[str] | tuple = ()):
    """The integer graph of ``g`` as an ``onnx.ModelProto`` (checked), T steps unrolled.

    ``debug_outputs``: names of IR ops whose tensors become extra int64 outputs ``debug/<name>``
    in the golden model's ``[T, B, C, ...]`` layout (for comparing with ``execute(..., keep=...)``).
    """
    import onnx

    validate(g, integer=True)
    T = int(g.meta.get("T", 1) if T is None else T)
    if T < 1:
        raise SpikegateError(f"T must be >= 1, not {T}")
    b = _Builder()
    TP, helper = b.TP, b.helper
    C, H, W = (int(v) for v in g.ops[0].shape)
    ops = g.producers()
    env: dict[str, tuple[str, bool]] = {}  # op name -> (ONNX tensor, depends on t)

    def tiled(name: str, rank: int) -> str:
        x, varying = env[name]
        return x if varying or T == 1 else b.op("Tile", [x, b.i64([1, T] + [1] * (rank - 2))], name)

    for o in g.ops:
        k = o.kind
        if k == "quant_input":
            lim = 1 << (int(o.attrs["bits"]) - 1)
            xd = b.op("Transpose", ["images"], o.name, perm=[1, 0, 2, 3])  # [C, B, H, W]
            xd = b.op("Cast", [xd], o.name, to=TP.DOUBLE)
            xd = b.op("Mul", [xd, b.const(np.float64(o.attrs["scale"]), "scale")], o.name)
            xd = b.op("Floor", [b.op("Add", [xd, b.const(np.float64(0.5), "half")], o.name)], o.name)
            xd = b.op("Clip", [xd, b.const(np.float64(-lim), "lo"), b.const(np.float64(lim - 1), "hi")], o.name)
            env[o.name] = (b.op("Cast", [xd], o.name, to=TP.INT64), False)
        elif k == "conv":
            src = ops[o.inputs[0]]
            x, varying = env[src.name]
            bound = 1 if o.attrs["in_kind"] == "spike" else _input_bound(src)
            env[o.name] = (_conv(b, o, x, tuple(src.shape), bound), varying)
        elif k == "lif":
            x, varying = env[o.inputs[0]]
            env[o.name] = (_lif(b, o, x, varying, T), True)
        elif k == "add":
            rank = 2 + len(o.shape) - 1
            if env[o.inputs[0]][1] == env[o.inputs[1]][1]:
                (x0, varying), (x1, _) = env[o.inputs[0]], env[o.inputs[1]]
            else:
                x0, x1, varying = tiled(o.inputs[0], rank), tiled(o.inputs[1], rank), True
            env[o.name] = (b.op("Add", [x0, x1], o.name), varying)
        elif k == "attention":
            heads = int(o.attrs["heads"])
            c, h, w = (int(v) for v in o.shape)
            d, n = c // heads, h * w
            q, kk, v = (b.op("Reshape", [tiled(i, 4), b.i64([heads, d, -1, n])], o.name) for i in o.inputs)
            qr = b.op("Transpose", [q], o.name, perm=[0, 2, 1, 3])  # [heads, N, d, n]
            vr = b.op("Transpose", [v], o.name, perm=[0, 2, 1, 3])
            kt = b.op("Transpose", [kk], o.name, perm=[0, 2, 3, 1])  # [heads, N, n, d]
            vk = b.op("MatMul", [vr, kt], o.name)  # [heads, N, d, d]: (K^T V)^T, counts 0..n
            y = b.op("MatMul", [vk, qr], o.name)  # [heads, N, d, n]: (Q (K^T V))^T
            y = b.op("Transpose", [y], o.name, perm=[0, 2, 1, 3])  # [heads, d, N, n]
            env[o.name] = (b.op("Reshape", [y, b.i64([c, -1, h, w])], o.name), True)
        elif k == "spatial_sum":
            x, varying = env[o.inputs[0]]
            rank = 1 + len(ops[o.inputs[0]].shape)
            env[o.name] = (b.op("ReduceSum", [x, b.i64(list(range(2, rank)))], o.name, keepdims=0), varying)
        elif k == "head":
            x, varying = env[o.inputs[0]]
            w = np.asarray(o.params["weight"], dtype=np.int64)  # [n_heads, K, C]
            bias = np.asarray(o.params["bias"], dtype=np.int64)  # [n_heads, K]
            if len(ops[o.inputs[0]].shape) != 1:
                raise SpikegateError(f"op {o.name}: the head reads a [C] spike vector, not "
                                      f"{list(ops[o.inputs[0]].shape)}")
            cin = w.shape[2]
            if varying and T > 1:
                x = b.op("ReduceSum", [b.op("Reshape", [x, b.i64([cin, T, -1])], o.name), b.i64([1])], o.name,
                         keepdims=0)
            elif T > 1:
                x = b.op("Mul", [x, b.i64(T)], o.name)
            y = b.op("MatMul", [b.weight(w.sum(axis=0), f"{o.name}.weight"), x], o.name)  # [K, B]
            y = b.op("Add", [y, b.i64((T * bias.sum(axis=0)).reshape(-1, 1), f"{o.name}.bias")], o.name)
            b.op("Transpose", [y], o.name, out="logits", perm=[1, 0])
        else:  # validate() makes this unreachable
            raise AssertionError(k)
        if o.attrs.get("saturate"):  # intops.saturate at the declared out width
            lim = 1 << (int(o.widths["out"]) - 1)
            x, varying = env[o.name]
            env[o.name] = (b.op("Clip", [x, b.i64(-lim, "lo"), b.i64(lim - 1, "hi")], o.name), varying)
    K = int(g.ops[-1].shape[0])
    outputs = [helper.make_tensor_value_info("logits", TP.INT64, ["batch", K])]
    for name in debug_outputs:
        if name not in env or ops[name].kind == "head":
            raise SpikegateError(f"debug output {name!r}: no such op (or the head: that is 'logits')")
        shape = [int(v) for v in ops[name].shape]
        y = b.op("Reshape", [tiled(name, 1 + len(shape)), b.i64([shape[0], T, -1] + shape[1:])], name)
        b.op("Transpose", [y], name, out=f"debug/{name}", perm=[1, 2, 0] + list(range(3, 2 + len(shape))))
        outputs.append(helper.make_tensor_value_info(f"debug/{name}", TP.INT64, [T, "batch"] + shape))
    graph = helper.make_graph(
        b.nodes, "spikegate_int",
        [helper.make_tensor_value_info("images", TP.FLOAT, ["batch", C, H, W])],
        outputs, initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="spikegate", ir_version=8)
    model.doc_string = ("spikegate integer model (docs/integer-semantics.md): the golden model's exact int64 "
                        "logits; float logits = logits / (T * n_heads * logit_scale)")
    meta = {"spikegate.kind": "int", "spikegate.T": str(T),
            "spikegate.n_heads": str(int(g.ops[-1].params["weight"].shape[0])),
            "spikegate.logit_scale": json.dumps(g.meta.get("logit_scale", 1.0))}
    for key, val in meta.items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, val
    onnx.checker.check_model(model, full_check=True)
    return model


def export_int_onnx(ir_path_or_graph, out_path: str, T: int | None = None) -> None:
    """Write the integer ONNX graph of an ``.sgir`` file (or a :class:`Graph`) to ``out_path``.

    ``T`` defaults to the IR's. onnxruntime (CPU) runs the file to exactly
    ``golden.execute(g, images, T=T)``. Deterministic; atomic (a failed export leaves no file).
    """
    if isinstance(ir_path_or_graph, Graph):
        g = ir_path_or_graph
    else:
        from .irfile import load_ir

        g = load_ir(os.fspath(ir_path_or_graph))
    data = build_int_onnx(g, T).SerializeToString(deterministic=True)
    with atomic_path(os.fspath(out_path), ".onnx") as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
