"""Random integer IR graphs for equivalence fuzzing (golden model vs ISS vs RTL).

A graph is drawn from a seed: a first multi-bit convolution starting a residual stream, then a
random sequence of blocks (convolution branches with kernels 1/3/7, depthwise + multi-bit
``pwconv2`` branches, or un-merged RepConvs: 1x1 with padding, depthwise on its integers, 1x1; attention blocks with random head counts, downsampling with stride 1 or 2),
then the spatial sum, the head LIF and one or two heads. Weights, biases, shifts (left, and right
for multi-bit inputs) and thresholds are random, including ties and the extremes of their widths;
T is 1 to 4 and the inputs' density ranges from blank to saturated. Every graph passes the IR's
validity rules and its widths come from the range analysis, exactly like a quantised model's; a
share of them (``GenConfig.saturating``) saturate their activations at a width their own inputs
exceed, so the clamps are exercised too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikegate.quantize.golden import execute
from spikegate.quantize.graph import Graph, Op, saturable, validate
from spikegate.quantize.intops import signed_bits
from spikegate.quantize.ranges import MAX_WIDTH, assign_widths


@dataclass
class GenConfig:
    """Knobs a shrinker can turn down."""

    max_blocks: int = 4
    max_channels: int = 8
    max_size: int = 8
    max_T: int = 4
    weight_bits: int = 8
    # Worst case for overflow: every weight +qmax, every bias +4*qmax, every stream shift +3,
    # every threshold 1, every input pixel at its largest value, so every neuron fires at every
    # step and every accumulator and membrane goes to the top of its analysed range.
    worst_case: bool = False
    # The share of graphs that saturate: their activations are clamped (docs/integer-semantics.md)
    # 1 to 3 bits below the widest value the graph's own inputs produce, so clamps are hit.
    saturating: float = 0.3


class _G:
    def __init__(self, rng: np.random.Generator, cfg: GenConfig, T: int):
        self.rng, self.cfg, self.T = rng, cfg, T
        self.ops: list[Op] = []
        self.n = 0
        self.qmax = (1 << (cfg.weight_bits - 1)) - 1

    def name(self, kind: str) -> str:
        self.n += 1
        return f"{kind}{self.n}"

    def shape(self, t: str):
        return next(o.shape for o in self.ops if o.name == t)

    def weights(self, shape, extreme: bool = False) -> np.ndarray:
        if self.cfg.worst_case:
            return np.full(shape, self.qmax, dtype=np.int64)
        w = self.rng.integers(-self.qmax, self.qmax + 1, shape)
        if extreme and self.rng.random() < 0.5:
            mask = self.rng.random(shape) < 0.3
            w = np.where(mask, self.rng.choice([-self.qmax, self.qmax], shape), w)
        sparsity = self.rng.choice([0.0, 0.3, 0.8])
        w = np.where(self.rng.random(shape) < sparsity, 0, w)
        return w.astype(np.int64)

    def conv(self, x: str, cout: int, k: int, stride: int, in_kind: str, role: str, groups: int = 1,
             right_shift: bool = False, pad: int | None = None) -> str:
        cin, h, w = self.shape(x)
        pad = k // 2 if pad is None else pad
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        wt = self.weights((cout, cin // groups, k, k), extreme=True)
        bias = self.rng.integers(-4 * self.qmax, 4 * self.qmax + 1, cout).astype(np.int64)
        if role == "stream":
            lo = -3 if right_shift else 0
            shift = self.rng.integers(lo, 4, cout).astype(np.int64)
        else:
            shift = np.zeros(cout, dtype=np.int64)
        if self.cfg.worst_case:
            bias = np.full(cout, 4 * self.qmax, dtype=np.int64)
            shift = np.where(shift != 0, 3, shift) if role != "stream" else np.full(cout, 3, dtype=np.int64)
        name = self.name("conv")
        self.ops.append(Op(name, "conv", [x], (cout, ho, wo),
                           {"kernel": k, "stride": stride, "padding": pad, "groups": groups, "in_kind": in_kind,
                            "role": role},
                           {"weight": wt, "bias": bias, "shift": shift}))
        return name

    def lif(self, x: str, scale: float, tie: bool = True) -> str:
        C = self.shape(x)[0]
        # thresholds around the input's typical magnitude: some channels silent, some saturated
        th = np.maximum(1, (scale * self.rng.choice([0.05, 0.3, 1.0, 3.0], C))).astype(np.int64)
        if tie and self.rng.random() < 0.3:
            th[self.rng.integers(0, C)] = 1  # fires on any h2 >= 2: ties at small inputs
        if self.cfg.worst_case:
            th = np.ones(C, dtype=np.int64)
        name = self.name("lif")
        self.ops.append(Op(name, "lif", [x], self.shape(x), {"public_shape": "CHW"}, {"threshold": th}))
        return name

    def add(self, a: str, b: str) -> str:
        name = self.name("add")
        self.ops.append(Op(name, "add", [a, b], self.shape(a), {}))
        return name


def random_graph(seed: int, cfg: GenConfig | None = None) -> tuple[Graph, np.ndarray]:
    """A random valid integer IR and a batch of float inputs for it (seeded, reproducible)."""
    cfg = cfg or GenConfig()
    rng = np.random.default_rng(seed)
    T = int(rng.integers(1, cfg.max_T + 1))
    G = _G(rng, cfg, T)
    cin = int(rng.choice([1, 2, 3]))
    size = int(rng.choice([s for s in (8, 12, 16) if s <= max(8, cfg.max_size)]))
    bits = int(rng.integers(2, 9))
    G.ops.append(Op("input", "quant_input", [], (cin, size, size),
                    {"scale": float(2 ** int(rng.integers(0, 5))), "bits": bits, "channels": cin, "size": size}))
    C = int(rng.integers(2, cfg.max_channels + 1))
    k0 = int(rng.choice([1, 3, 7]))
    s0 = int(rng.choice([1, 2])) if size >= 8 else 1
    r = G.conv("input", C, k0, s0, "int", "stream", right_shift=True)
    unit = G.qmax * 4.0
    # whether a separable block is an un-merged RepConv: drawn apart, and the block's own draws
    # too, so that a seed's graph without one is the graph it always was
    unmerged = np.random.default_rng([seed, 1])
    for _ in range(int(rng.integers(1, cfg.max_blocks + 1))):
        kind = rng.choice(["branch", "sep", "attn", "down"])
        C = G.shape(r)[0]
        if kind == "sep" and unmerged.random() < 0.5:
            r = _unmerged_repconv(G, unmerged, r, unit)
        elif kind == "branch":
            a = G.lif(r, unit)
            depth = int(rng.integers(0, 2))
            for _ in range(depth):
                a = G.lif(G.conv(a, int(rng.integers(2, cfg.max_channels + 1)), int(rng.choice([1, 3, 7])), 1,
                                 "spike", "lif"), G.qmax * 2.0)
            r = G.add(r, G.conv(a, C, int(rng.choice([1, 3])), 1, "spike", "stream"))
        elif kind == "sep":
            a = G.lif(r, unit)
            med = int(rng.integers(2, cfg.max_channels + 1))
            a = G.lif(G.conv(a, med, 1, 1, "spike", "lif"), G.qmax * 2.0)
            d = G.conv(a, med, int(rng.choice([3, 7])), 1, "spike", "int", groups=med)
            r = G.add(r, G.conv(d, C, 1, 1, "int", "stream", right_shift=True))
        elif kind == "attn":
            heads = int(rng.choice([h for h in (1, 2, 4) if C % h == 0]))
            s = G.lif(r, unit)
            qkv = [G.lif(G.conv(s, C, 3, 1, "spike", "lif"), G.qmax * 2.0) for _ in range(3)]
            name = G.name("attn")
            G.ops.append(Op(name, "attention", qkv, G.shape(s), {"heads": heads}))
            ys = G.ops[-1].name
            a = G.lif(ys, 1.0 + rng.integers(0, 6), tie=False)
            G.ops[-1].params["threshold"] = np.full(C, 1 if cfg.worst_case else int(rng.choice([1, 2, 4, 8])),
                                                    dtype=np.int64)
            r = G.add(r, G.conv(a, C, 3, 1, "spike", "stream"))
        else:
            a = G.lif(r, unit)
            h = G.shape(r)[1]
            stride = int(rng.choice([1, 2])) if h >= 4 else 1
            r = G.conv(a, int(rng.integers(2, cfg.max_channels + 1)), 3, stride, "spike", "stream")
    C, H, W = G.shape(r)
    z = G.name("sum")
    G.ops.append(Op(z, "spatial_sum", [r], (C,), {}))
    zs = G.lif(z, unit * H * W)
    nh = int(rng.choice([1, 2]))
    K = int(rng.integers(2, 11))
    G.ops.append(Op("head", "head", [zs], (K,), {"num_heads_out": nh},
                    {"weight": G.weights((nh, K, C)),
                     "bias": (np.full((nh, K), G.qmax) if cfg.worst_case else
                              rng.integers(-G.qmax, G.qmax + 1, (nh, K))).astype(np.int64)}))
    g = Graph(G.ops, meta={"T": T, "logit_scale": 1.0, "generator_seed": int(seed), "weight_bits": cfg.weight_bits})
    validate(g, integer=True)
    g = assign_widths(g)
    # inputs: from blank to saturated
    B = 3
    dens = rng.choice([0.0, 0.2, 0.6, 1.0], B)
    lim = 2 ** (bits - 1)
    x = (rng.random((B, cin, size, size)) < dens[:, None, None, None]) * rng.uniform(-lim, lim, (B, cin, size, size))
    if cfg.worst_case:
        x = np.full((B, cin, size, size), lim - 1, dtype=np.float64)
    x = (x / G.ops[0].attrs["scale"]).astype(np.float32)
    if not cfg.worst_case and rng.random() < cfg.saturating:
        g = _saturating(g, x, int(rng.integers(1, 4)))
    return g, x


def _unmerged_repconv(G: _G, rng: np.random.Generator, r: str, unit: float) -> str:
    """A separable block as the RepConv the lowering can leave un-merged (``quantize/lower.py``),
    its draws from ``rng``: A, a 1x1 with padding 1 on spikes (padding >= kernel: its bias alone at
    the border), D, a depthwise 3x3 without padding on A's integers (right shifts keep it narrow),
    and P, a 1x1 on D's integers into the stream. (3x3 only, as the lowering makes them: every
    element of A's output is an event, and a 7x7's 49 taps made the RTL fuzz's worst cases twice
    as slow.)"""
    main, G.rng = G.rng, rng
    C = G.shape(r)[0]
    a = G.lif(r, unit)
    med = int(rng.integers(2, G.cfg.max_channels + 1))
    d = G.conv(G.conv(a, med, 1, 1, "spike", "int", pad=1), med, 3, 1, "int", "int", groups=med, pad=0)
    G.ops[-1].params["shift"] = rng.integers(-8, -3, med).astype(np.int64)
    r = G.add(r, G.conv(d, C, 1, 1, "int", "stream", right_shift=True))
    G.rng = main
    return r


def _saturating(g: Graph, x: np.ndarray, below: int) -> Graph:
    """``g`` with its activations saturating ``below`` bits under the widest value ``x`` gives
    them (the saturable ops wider than that clamp; every other width is proven as before)."""
    observed: dict = {}
    execute(g, x, check_widths=False, observed=observed)
    widest = max((signed_bits(*observed[o.name]) for o in g.ops if saturable(g, o) and o.name in observed),
                 default=2)
    return assign_widths(g, sat_bits=max(2, widest - below), max_bits=MAX_WIDTH)


def shrink_configs(cfg: GenConfig) -> list[GenConfig]:
    """Smaller knob settings to retry a failing seed with, smallest first."""
    out = []
    for blocks in sorted({1, max(1, cfg.max_blocks // 2), cfg.max_blocks}):
        for ch in sorted({2, max(2, cfg.max_channels // 2), cfg.max_channels}):
            for T in sorted({1, cfg.max_T}):
                c = GenConfig(max_blocks=blocks, max_channels=ch, max_size=cfg.max_size, max_T=T,
                              weight_bits=cfg.weight_bits)
                if c != cfg:
                    out.append(c)
    return out
