"""Programs for the accelerator tests: random hand-made ones and ones compiled from small models.

* :func:`random_program` builds a Program directly (no IR): every instruction kind, odd shapes,
  stride-2 depthwise convolutions, padding larger than the kernel, lane counts that do not divide
  the channel counts. Weights, biases and shifts are random; each LIF's thresholds are scaled (by
  running the ISS on the program so far) so that a fair share of its neurons fire.
* :func:`model_program` builds a random Meta-SpikeFormer from a preset, calibrates its BatchNorms
  so that neurons fire, quantises it and compiles it for ``lanes``.

Both are deterministic for a given seed. They are used by ``test_accelerator.py`` (which pickles the
Program for the cocotb half, ``tb_accelerator.py``).
"""

from __future__ import annotations

import math

import numpy as np

from spikegate.compiler import iss
from spikegate.compiler.passes.pack import _conv_words
from spikegate.machine.program import (IN_INT, IN_SPIKE, LANES_CO, LANES_TAP, OP_ATTN, OP_CONV, OP_HEAD,
                                         OP_INPUT, OP_LIF, OP_OUTPUT, OP_SUM, OUT_ACCUM, OUT_WRITE, Instr,
                                         Program)
from spikegate.quantize.intops import signed_bits

__all__ = ["random_program", "model_program", "random_pixels"]


def random_pixels(n: int, shape, bits: int, seed: int) -> np.ndarray:
    rng = np.random.RandomState(seed)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    px = rng.randint(lo, hi + 1, size=(n, *shape)).astype(np.int64)
    px[:, :, 0, :] = 0          # some zero rows: events are skipped
    if n > 1:
        px[1].flat[::3] = hi    # extremes
        px[1].flat[1::3] = lo
    return px


class _Builder:
    def __init__(self, rng, lanes, T):
        self.rng, self.P, self.T = rng, lanes, T
        self.instrs: list[Instr] = []
        self.words: list[np.ndarray] = []
        self.wtop = 0
        self.bias: list[int] = []
        self.shift: list[int] = []
        self.thresh: list[int] = []
        self.act_top = 0
        self.spk_top = 0
        self.acc_words = 1
        self.wmax = 31           # weights in 6 bits

    def alloc(self, mem, n):
        if mem == "ACT":
            a, self.act_top = self.act_top, self.act_top + n
        else:
            a, self.spk_top = self.spk_top, self.spk_top + n
        return a

    def add(self, ins):
        ins.tag = len(self.instrs)
        ins.name = f"{len(self.instrs)}"
        self.instrs.append(ins)
        return ins

    def conv(self, src, in_shape, *, in_kind, cout, k, stride, pad, lane_mode=LANES_CO, dst=None,
             bcast=0, shift_range=(0, 2)):
        rng = self.rng
        cin, h, w = in_shape
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        cpg = 1 if lane_mode == LANES_TAP else cin
        wt = rng.randint(-self.wmax, self.wmax + 1, size=(cout, cpg, k, k))
        wt[rng.rand(*wt.shape) < 0.2] = 0
        wd = _conv_words(wt.astype(np.int64), lane_mode, self.P)
        out_mode = OUT_WRITE if dst is None else OUT_ACCUM
        if dst is None:
            dst = self.alloc("ACT", self.T * cout * ho * wo)
        ins = Instr(OP_CONV, src=src, src2=bcast, dst=dst, T=self.T, cin=cin, h=h, w=w, cout=cout, ho=ho, wo=wo,
                    k=k, stride=stride, pad=pad, in_kind=in_kind, lane_mode=lane_mode, out_mode=out_mode,
                    wbase=self.wtop, pbase=len(self.bias))
        self.words.append(wd)
        self.wtop += len(wd)
        self.bias += [int(v) for v in rng.randint(-40, 41, size=cout)]
        self.shift += [int(v) for v in rng.randint(shift_range[0], shift_range[1] + 1, size=cout)]
        if lane_mode == LANES_CO:
            self.acc_words = max(self.acc_words, math.ceil(cout / self.P) * ho * wo)
        else:
            self.acc_words = max(self.acc_words, cout * ho * wo)
        self.add(ins)
        return dst, (cout, ho, wo)

    def program(self, **kw) -> Program:
        wmem = np.concatenate(self.words) if self.words else np.zeros((1, self.P), dtype=np.int64)
        b = self.bias or [0]
        s = self.shift or [0]
        th = self.thresh or [1]
        # No IR here: generous widths (ACT values stay within 24 bits, thresholds below 2**21, so the
        # LIF state needs at most 25 bits and h2 26), and the K^T V counts' exact width
        n_attn = max([i.ho * i.wo for i in self.instrs if i.opcode == OP_ATTN] + [1])
        return Program(instrs=list(self.instrs), lanes=self.P, act_bits=24, mul_x_bits=24, acc_bits=28,
                       membrane_bits=26,
                       state_bits=25, kv_bits=max(1, n_attn.bit_length()),
                       weight_bits=signed_bits(int(wmem.min()), int(wmem.max())),
                       bias_bits=signed_bits(min(b + [0]), max(b + [0])),
                       shift_bits=signed_bits(min(s + [0]), max(s + [0])),
                       thresh_bits=signed_bits(0, max(th)), pixel_bits=8, logit_bits=24,
                       act_words=max(1, self.act_top), spk_words=max(1, self.spk_top), acc_words=self.acc_words,
                       wmem=wmem, bias=np.array(b, dtype=np.int64), shift=np.array(s, dtype=np.int64),
                       thresh=np.array(th, dtype=np.int64), T=self.T, op_names=[i.name for i in self.instrs],
                       **kw)

    def lif(self, src, shape, pixels, rate=0.3):
        """LIF with per-channel thresholds scaled so that about ``rate`` of the spikes fire."""
        C, H, W = shape
        dst = self.alloc("SPK", self.T * C * H * W)
        ins = self.add(Instr(OP_LIF, src=src, dst=dst, T=self.T, cout=C, ho=H, wo=W, pbase=len(self.thresh)))
        base = self.rng.uniform(0.5, 1.5, size=C)
        n = self.T * C * H * W
        best = None

        def trial(e):
            th = [max(1, int(round(b * 2.0 ** (e / 2)))) for b in base]
            self.thresh += th
            count = iss.run(self.program(num_pixels=pixels.size), pixels).spike_counts[ins.name]
            del self.thresh[-C:]
            return count / n, th

        lo, hi = 0, 40              # the spike rate falls as the thresholds grow: bisect
        for _ in range(6):
            mid = (lo + hi) // 2
            r, th = trial(mid)
            if best is None or abs(r - rate) < best[0]:
                best = (abs(r - rate), th)
            if r > rate:
                lo = mid + 1
            else:
                hi = mid
        self.thresh += best[1]
        return dst


def random_program(seed: int, *, lanes: int, T: int, cin: int = 1, size: int = 6, c1: int = 3, c2: int = 5,
                   ca: int = 4, heads: int = 2, classes: int = 5, dw_stride: int = 1) -> tuple[Program, np.ndarray]:
    """A random program using every instruction; returns it and 2 random images for it."""
    rng = np.random.RandomState(seed)
    b = _Builder(rng, lanes, T)
    pixels = random_pixels(2, (cin, size, size), 8, seed + 1)
    px0 = pixels[0]
    x0 = b.alloc("ACT", cin * size * size)
    b.add(Instr(OP_INPUT, dst=x0, T=1, cin=cin, h=size, w=size))
    # stem: INT, broadcast over T, stride 2
    s0, sh0 = b.conv(x0, (cin, size, size), in_kind=IN_INT, cout=c1, k=3, stride=2, pad=1, bcast=1,
                     shift_range=(-4, -1))
    p1 = b.lif(s0, sh0, px0)
    a1, sh1 = b.conv(p1, sh0, in_kind=IN_SPIKE, cout=c2, k=3, stride=1, pad=1)
    p2 = b.lif(a1, sh1, px0)
    a2, sh2 = b.conv(p2, sh1, in_kind=IN_SPIKE, cout=c2, k=3, stride=dw_stride, pad=1, lane_mode=LANES_TAP)
    if sh2[1:] == sh0[1:]:
        b.conv(a2, sh2, in_kind=IN_INT, cout=c1, k=1, stride=1, pad=0, dst=s0, shift_range=(-3, 0))
        stream, shs = s0, sh0
    else:
        stream, shs = b.conv(a2, sh2, in_kind=IN_INT, cout=c1, k=1, stride=1, pad=0, shift_range=(-3, 0))
    p3 = b.lif(stream, shs, px0)
    qkv = []
    for _ in range(3):
        a, sha = b.conv(p3, shs, in_kind=IN_SPIKE, cout=ca, k=1, stride=1, pad=0)
        qkv.append(b.lif(a, sha, px0, rate=0.4))
    att = b.alloc("ACT", T * ca * sha[1] * sha[2])
    b.add(Instr(OP_ATTN, src=qkv[0], src2=qkv[1], src3=qkv[2], dst=att, T=T, cout=ca, ho=sha[1], wo=sha[2],
                heads=heads))
    p4 = b.lif(att, sha, px0)
    # a kernel-1 convolution with padding 1 (padding >= kernel: outputs on the border get only bias)
    a3, sh3 = b.conv(p4, sha, in_kind=IN_SPIKE, cout=c2, k=1, stride=1, pad=1)
    p5 = b.lif(a3, sh3, px0)
    a4, sh4 = b.conv(p5, sh3, in_kind=IN_SPIKE, cout=c1 + 1, k=3, stride=2, pad=0)
    sm = b.alloc("ACT", T * sh4[0])
    b.add(Instr(OP_SUM, src=a4, dst=sm, T=T, cin=sh4[0], h=sh4[1], w=sh4[2]))
    p6 = b.lif(sm, (sh4[0], 1, 1), px0, rate=0.5)
    C = sh4[0]
    G = math.ceil(classes / lanes)
    wh = rng.randint(-b.wmax, b.wmax + 1, size=(classes, C))
    wpad = np.zeros((G * lanes, C), dtype=np.int64)
    wpad[:classes] = wh
    wd = wpad.reshape(G, lanes, C).transpose(2, 0, 1).reshape(-1, lanes)
    b.add(Instr(OP_HEAD, src=p6, T=T, cin=C, cout=classes, wbase=b.wtop, pbase=len(b.bias)))
    b.words.append(wd)
    b.wtop += len(wd)
    bh = np.zeros(G * lanes, dtype=np.int64)
    bh[:classes] = rng.randint(-40, 41, size=classes)
    b.bias += [int(v) for v in bh]
    b.shift += [0] * (G * lanes)
    b.acc_words = max(b.acc_words, G)
    b.add(Instr(OP_OUTPUT, cout=classes))
    return b.program(num_pixels=cin * size * size, num_classes=classes), pixels


def model_program(preset_name: str = "fpga-tiny", *, lanes: int, T: int = 1, kd: bool = False,
                  in_channels: int | None = None, seed: int = 0, n_images: int = 2):
    """A random Meta-SpikeFormer (BatchNorms calibrated so that neurons fire), quantised to 8-bit
    weights and compiled for ``lanes``. Returns ``(program, int_graph, images, pixels)``."""
    import torch

    from spikegate.compiler.build import lower_to_program
    from spikegate.quantize import intops
    from spikegate.quantize.lower import lower
    from spikegate.quantize.model import build, preset
    from spikegate.quantize.quantizer import quantize_graph

    cfg = preset(preset_name).replace(T=T, kd=kd)
    if in_channels is not None:
        cfg = cfg.replace(in_channels=in_channels)
    torch.manual_seed(seed)
    model = build(cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = None                     # cumulative average over the calibration batches
            with torch.no_grad():
                mod.weight.uniform_(1.0, 3.0, generator=gen)
                mod.bias.uniform_(0.5, 2.0, generator=gen)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.rand(16, cfg.in_channels, cfg.img_size, cfg.img_size, generator=gen))
    model.eval()
    rng = np.random.RandomState(seed + 2)
    calib = rng.rand(8, cfg.in_channels, cfg.img_size, cfg.img_size).astype(np.float32)
    _, g = quantize_graph(lower(model), calib, weight_bits=8)
    prog = lower_to_program(g, lanes)
    images = rng.rand(n_images, cfg.in_channels, cfg.img_size, cfg.img_size).astype(np.float32)
    pixels = intops.quantize_input(images, prog.input_scale, prog.pixel_bits)
    return prog, g, images, pixels


def repconv_graph(seed: int, *, T: int = 1, size: int = 6, c: int = 4, classes: int = 5, n_images: int = 2):
    """A small integer IR with an un-merged RepConv (``quantize/lower.py``'s optional lowering):
    stem -> LIF -> A (1x1, padding 1, spikes in, integers out) -> D (depthwise 3x3, padding 0,
    integers in and out) -> P (1x1, integers in) -> LIF -> a stride-2 stream conv -> sum -> LIF ->
    head. Returns ``(graph, images)``.

    The integer paths carry large values of both signs (A's weights and its biases, which are
    exactly its output at the border, reach several hundred; D shifts right so that its output is
    narrower than A's, and A's output is the widest tensor any multi-bit conv reads: a multiplier
    operand sized from anything else, or a lane that selects where it should multiply, gives other
    results). Each LIF's thresholds are set from its input on these images (about 40 % fire)."""
    from spikegate.quantize.golden import execute
    from spikegate.quantize.graph import Graph, Op, validate
    from spikegate.quantize.ranges import assign_widths

    rng = np.random.RandomState(seed)
    ops: list = []
    shapes: dict = {}

    def add(op):
        ops.append(op)
        shapes[op.name] = tuple(op.shape)
        return op.name

    def conv(name, x, cout, k, pad, in_kind, role, *, stride=1, groups=1, wmax=63, bmax=40, shift=(0, 0)):
        cin, h, w = shapes[x]
        ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
        wt = rng.randint(-wmax, wmax + 1, size=(cout, cin // groups, k, k)).astype(np.int64)
        wt[rng.rand(*wt.shape) < 0.15] = 0
        return add(Op(name, "conv", [x], (cout, ho, wo),
                      {"kernel": k, "stride": stride, "padding": pad, "groups": groups, "in_kind": in_kind,
                       "role": role},
                      {"weight": wt, "bias": rng.randint(-bmax, bmax + 1, size=cout).astype(np.int64),
                       "shift": rng.randint(shift[0], shift[1] + 1, size=cout).astype(np.int64)}))

    def lif(name, x):
        return add(Op(name, "lif", [x], shapes[x], {"public_shape": "CHW"},
                      {"threshold": np.ones(shapes[x][0], dtype=np.int64)}))

    add(Op("input", "quant_input", [], (1, size, size), {"scale": 16.0, "bits": 6, "channels": 1, "size": size}))
    conv("stem", "input", c, 3, 1, "int", "lif", shift=(-3, -2))
    lif("lif1", "stem")
    conv("rep_a", "lif1", c, 1, 1, "spike", "int", wmax=127, bmax=400)
    conv("rep_d", "rep_a", c, 3, 0, "int", "int", groups=c, shift=(-9, -8))
    conv("rep_p", "rep_d", c, 1, 0, "int", "lif", bmax=100, shift=(-2, -1))
    lif("lif2", "rep_p")
    conv("down", "lif2", c, 3, 1, "spike", "stream", stride=2)
    add(Op("sum", "spatial_sum", ["down"], (c,), {}))
    lif("lif3", "sum")
    add(Op("head", "head", ["lif3"], (classes,), {"num_heads_out": 1},
           {"weight": rng.randint(-31, 32, size=(1, classes, c)).astype(np.int64),
            "bias": rng.randint(-40, 41, size=(1, classes)).astype(np.int64)}))
    images = rng.uniform(-2.0, 2.0, size=(n_images, 1, size, size)).astype(np.float32)
    g = Graph(ops, meta={"T": T, "logit_scale": 1.0, "weight_bits": 8})
    validate(g, integer=True)
    for o in g.ops:            # thresholds in order: each LIF's input depends on the ones before
        if o.kind == "lif":
            trace: dict = {}
            execute(g, images, trace=trace, keep={o.inputs[0]}, check_widths=False)
            x = trace[o.inputs[0]]
            pos = x[x > 0]
            o.params["threshold"] = np.full(o.shape[0], max(1, int(np.quantile(pos, 0.6)) // 2 if pos.size else 1),
                                            dtype=np.int64)
    return assign_widths(g), images
