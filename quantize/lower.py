"""Lowering a float Meta-SpikeFormer to the op graph: BatchNorm folded, RepConv re-parameterised.

A RepConv is merged into one dense 3x3 convolution (``repconv="merge"``, the paper's inference form
and the default) or kept as its three convolutions (``repconv="split"``, :func:`split_repconv_bn`):
the merged kernel stores ``9 * Cin * Cout`` weights, the split one ``Cin * Cin + 9 * Cin + Cin *
Cout``, which is what lets a large model's weights fit external memory (the 15M preset's attention
RepConvs are 23.5M of its 33.2M merged weights).

The result is exact in real arithmetic (float64 here): nothing is rounded. Attention is expressed
in the integer-friendly form from the start (``8 * Y`` with the attention neuron's threshold
0.5 * 8 = 4) and the head's spatial mean as a sum (threshold N * 1), so later passes only rescale
and round.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from spikegate.errors import SpikegateError

from .graph import Graph, Op, validate
from .lif import MultiStepLIF
from .model import (BNAndPadLayer, MetaSpikeFormer, MS_Block, MS_ConvBlock, MS_DownSampling, MS_MLP,
                    RepConv, SepConv, MS_Attention_RepConv_qkv_id)


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).cpu().numpy()


def bn_affine(bn: nn.modules.batchnorm._BatchNorm) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode BatchNorm as ``a * y + c`` per channel."""
    a = _np(bn.weight) / np.sqrt(_np(bn.running_var) + bn.eps)
    c = _np(bn.bias) - _np(bn.running_mean) * a
    return a, c


def fold_conv_bn(conv: nn.Module, bn: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """``bn(conv(x))`` as one conv: returns (weight [Cout, Cin/g, k, k], bias [Cout])."""
    w = _np(conv.weight)
    if w.ndim == 3:  # Conv1d k=1 -> 1x1 conv2d
        w = w[..., None]
    b = _np(conv.bias) if conv.bias is not None else np.zeros(w.shape[0])
    a, c = bn_affine(bn)
    return w * a[:, None, None, None], b * a + c


def fold_repconv_bn(rep: RepConv, bn: nn.BatchNorm2d) -> tuple[np.ndarray, np.ndarray]:
    """``bn(RepConv(x))`` as one dense 3x3 conv with zero padding 1 and a bias.

    RepConv = 1x1 conv (A) -> BN whose output is padded with the BN's own value at zero input ->
    depthwise 3x3 without padding (D) -> 1x1 conv (P) -> BN. Padding with BN(0) equals padding the
    *input* with zeros before the 1x1 conv, so the chain is linear in the zero-padded input:
    ``K[o, j, tap] = sum_i P[o, i] D[i, tap] a1[i] A[i, j]``, and the constant ``c1`` of the first
    BN contributes ``sum_i P[o, i] c1[i] sum_tap D[i, tap]`` to the bias.
    """
    conv_a, bnpad, seq = rep.body[0], rep.body[1], rep.body[2]
    assert isinstance(bnpad, BNAndPadLayer) and bnpad.pad_pixels == 1
    A = _np(conv_a.weight)[:, :, 0, 0]              # [Cin, Cin]
    a1, c1 = bn_affine(bnpad.bn)                    # [Cin]
    D = _np(seq[0].weight)[:, 0]                    # [Cin, 3, 3]
    P = _np(seq[1].weight)[:, :, 0, 0]              # [Cout, Cin]
    a2, c2 = bn_affine(seq[2])
    a3, c3 = bn_affine(bn)
    K = np.einsum("oi,ixy,i,ij->ojxy", P, D, a1, A, optimize=True)
    b0 = P @ (c1 * D.reshape(D.shape[0], -1).sum(1))
    scale = a3 * a2
    return K * scale[:, None, None, None], a3 * (a2 * b0 + c2) + c3


REPCONV_MODES = ("merge", "split")


def split_repconv_bn(rep: RepConv, bn: nn.BatchNorm2d) -> list[tuple[np.ndarray, np.ndarray, int]]:
    """``bn(RepConv(x))`` as three convolutions ``(weight, bias, padding)``, exact in real arithmetic:

    * A: the 1x1 conv with the BN-and-pad's BN folded in, *padding 1*: at the border its input is
      zero, so its output there is its bias, the BN's value at zero input: exactly what BNAndPad
      pads with;
    * D: the depthwise 3x3, no padding, no bias;
    * P: the 1x1 conv with the inner and outer BatchNorms folded in.
    """
    conv_a, bnpad, seq = rep.body[0], rep.body[1], rep.body[2]
    assert isinstance(bnpad, BNAndPadLayer) and bnpad.pad_pixels == 1
    a1, c1 = bn_affine(bnpad.bn)
    A = _np(conv_a.weight) * a1[:, None, None, None]           # [Cin, Cin, 1, 1]
    D = _np(seq[0].weight)                                       # [Cin, 1, 3, 3]
    a2, c2 = bn_affine(seq[2])
    a3, c3 = bn_affine(bn)
    P = _np(seq[1].weight) * (a3 * a2)[:, None, None, None]     # [Cout, Cin, 1, 1]
    return [(A, c1, 1), (D, np.zeros(D.shape[0]), 0), (P, a3 * c2 + c3, 0)]


class _Builder:
    def __init__(self, model: MetaSpikeFormer, repconv: str = "merge"):
        self.repconv_mode = repconv
        self.model = model
        self.cfg = model.cfg
        self.ops: list[Op] = []
        self.segment = -1

    def add(self, op: Op) -> str:
        self.ops.append(op)
        return op.name

    def shape(self, name: str):
        return next(o.shape for o in self.ops if o.name == name)

    # -- primitive ops --------------------------------------------------------------------------
    def lif(self, name: str, x: str, vth: float, public: str, reads_stream: bool = False) -> str:
        C = self.shape(x)[0]
        attrs = {"public_shape": public, "v_threshold": vth}
        if reads_stream:
            attrs["segment"] = self.segment
        return self.add(Op(name, "lif", [x], self.shape(x), attrs, {"threshold": np.full(C, vth)}))

    def conv(self, name: str, x: str, w: np.ndarray, b: np.ndarray, *, stride=1, padding=0, groups=1,
             role: str) -> str:
        cin, h, wd = self.shape(x)
        k = w.shape[2]
        ho, wo = (h + 2 * padding - k) // stride + 1, (wd + 2 * padding - k) // stride + 1
        in_kind = "spike" if self.ops[[o.name for o in self.ops].index(x)].kind == "lif" else "int"
        attrs = {"kernel": k, "stride": stride, "padding": padding, "groups": groups, "in_kind": in_kind,
                 "role": role}
        if role == "stream":
            attrs["segment"] = self.segment
        return self.add(Op(name, "conv", [x], (w.shape[0], ho, wo), attrs,
                           {"weight": w, "bias": b, "shift": np.zeros(w.shape[0], dtype=np.int64)}))

    def residual(self, name: str, stream: str, branch: str) -> str:
        return self.add(Op(name, "add", [stream, branch], self.shape(stream), {"segment": self.segment}))

    def repconv(self, name: str, x: str, seq: nn.Sequential, *, role: str) -> str:
        """``seq`` = (RepConv, BatchNorm) on ``x``: one dense 3x3 conv named ``name``, or (split)
        ``name.a`` (1x1, padding 1), ``name.dw`` (depthwise 3x3) and ``name`` (1x1, ``role``)."""
        if self.repconv_mode == "merge":
            w, b = fold_repconv_bn(seq[0], seq[1])
            return self.conv(name, x, w, b, padding=1, role=role)
        (wa, ba, pa), (wd, bd, _), (wp, bp, _) = split_repconv_bn(seq[0], seq[1])
        a = self.conv(f"{name}.a", x, wa, ba, padding=pa, role="int")
        d = self.conv(f"{name}.dw", a, wd, bd, groups=wd.shape[0], role="int")
        return self.conv(name, d, wp, bp, role=role)

    # -- modules -------------------------------------------------------------------------------
    def downsample(self, prefix: str, m: MS_DownSampling, x: str) -> str:
        if hasattr(m, "encode_lif"):
            x = self.lif(f"{prefix}.encode_lif", x, 1.0, "CHW", reads_stream=True)
        self.segment += 1
        w, b = fold_conv_bn(m.encode_conv, m.encode_bn)
        c = m.encode_conv
        return self.conv(f"{prefix}.encode_conv", x, w, b, stride=c.stride[0], padding=c.padding[0],
                         role="stream")

    def convblock(self, p: str, m: MS_ConvBlock, r: str) -> str:
        s: SepConv = m.Conv
        a = self.lif(f"{p}.Conv.lif1", r, 1.0, "CHW", reads_stream=True)
        w, b = fold_conv_bn(s.pwconv1, s.bn1)
        a = self.conv(f"{p}.Conv.pwconv1", a, w, b, role="lif")
        a = self.lif(f"{p}.Conv.lif2", a, 1.0, "CHW")
        dw = _np(s.dwconv.weight)
        a = self.conv(f"{p}.Conv.dwconv", a, dw, np.zeros(dw.shape[0]), padding=s.dwconv.padding[0],
                      groups=s.dwconv.groups, role="int")
        w, b = fold_conv_bn(s.pwconv2, s.bn2)
        a = self.conv(f"{p}.Conv.pwconv2", a, w, b, role="stream")
        r = self.residual(f"{p}.Conv.add", r, a)
        a = self.lif(f"{p}.lif1", r, 1.0, "CHW", reads_stream=True)
        w, b = fold_conv_bn(m.conv1, m.bn1)
        a = self.conv(f"{p}.conv1", a, w, b, padding=1, role="lif")
        a = self.lif(f"{p}.lif2", a, 1.0, "CHW")
        w, b = fold_conv_bn(m.conv2, m.bn2)
        a = self.conv(f"{p}.conv2", a, w, b, padding=1, role="stream")
        return self.residual(f"{p}.add", r, a)

    def block(self, p: str, m: MS_Block, r: str) -> str:
        at: MS_Attention_RepConv_qkv_id = m.attn
        s = self.lif(f"{p}.attn.head_lif", r, 1.0, "CHW", reads_stream=True)
        qkv = []
        for n in ("q", "k", "v"):
            c = self.repconv(f"{p}.attn.{n}_conv", s, getattr(at, f"{n}_conv"), role="lif")
            qkv.append(self.lif(f"{p}.attn.{n}_lif", c, 1.0, "CHW"))
        C = self.shape(s)[0]
        y = self.add(Op(f"{p}.attn.attention", "attention", qkv, self.shape(s), {"heads": at.num_heads}))
        # attn_lif: threshold 0.5 on Y = Y8 / 8, i.e. 4 on Y8 (exact).
        ys = self.lif(f"{p}.attn.attn_lif", y, 0.5 * 8, "CN")
        pr = self.repconv(f"{p}.attn.proj_conv", ys, at.proj_conv, role="stream")
        r = self.residual(f"{p}.attn.add", r, pr)
        mlp: MS_MLP = m.mlp
        a = self.lif(f"{p}.mlp.fc1_lif", r, 1.0, "CN", reads_stream=True)
        w, b = fold_conv_bn(mlp.fc1_conv, mlp.fc1_bn)
        a = self.conv(f"{p}.mlp.fc1_conv", a, w, b, role="lif")
        a = self.lif(f"{p}.mlp.fc2_lif", a, 1.0, "CN")
        w, b = fold_conv_bn(mlp.fc2_conv, mlp.fc2_bn)
        a = self.conv(f"{p}.mlp.fc2_conv", a, w, b, role="stream")
        return self.residual(f"{p}.mlp.add", r, a)

    def build(self) -> Graph:
        m, cfg = self.model, self.cfg
        S = cfg.img_size
        x = self.add(Op("input", "quant_input", [], (cfg.in_channels, S, S),
                        {"scale": 1.0, "bits": 0, "channels": cfg.in_channels, "size": S}))
        r = self.downsample("downsample1_1", m.downsample1_1, x)
        r = self.convblock("ConvBlock1_1.0", m.ConvBlock1_1[0], r)
        r = self.downsample("downsample1_2", m.downsample1_2, r)
        r = self.convblock("ConvBlock1_2.0", m.ConvBlock1_2[0], r)
        r = self.downsample("downsample2", m.downsample2, r)
        r = self.convblock("ConvBlock2_1.0", m.ConvBlock2_1[0], r)
        r = self.convblock("ConvBlock2_2.0", m.ConvBlock2_2[0], r)
        r = self.downsample("downsample3", m.downsample3, r)
        for i, blk in enumerate(m.block3):
            r = self.block(f"block3.{i}", blk, r)
        r = self.downsample("downsample4", m.downsample4, r)
        for i, blk in enumerate(m.block4):
            r = self.block(f"block4.{i}", blk, r)
        C, H, W = self.shape(r)
        z = self.add(Op("spatial_sum", "spatial_sum", [r], (C,), {"segment": self.segment, "tokens": H * W}))
        # The head LIF sees the spatial *sum*: threshold N * 1.0 on it equals 1.0 on the mean.
        zs = self.lif("lif", z, float(H * W), "C", reads_stream=True)
        heads = [m.head] + ([m.head_kd] if cfg.kd else [])
        wts = np.stack([_np(h.weight) for h in heads])
        bs = np.stack([_np(h.bias) for h in heads])
        self.add(Op("head", "head", [zs], (cfg.num_classes,), {"num_heads_out": len(heads)},
                    {"weight": wts, "bias": bs}))
        meta = {"model": cfg.to_json(), "T": cfg.T, "logit_scale": 1.0}
        if self.repconv_mode != "merge":   # (a merged graph's meta, and IR file, as before the option)
            meta["repconv"] = self.repconv_mode
        g = Graph(self.ops, meta=meta)
        validate(g, integer=False)
        return g


SUPPORTED_MODULES = (MetaSpikeFormer, MS_DownSampling, MS_ConvBlock, SepConv, MS_Block, MS_MLP,
                     MS_Attention_RepConv_qkv_id, RepConv, BNAndPadLayer, MultiStepLIF, nn.Conv2d,
                     nn.Conv1d, nn.BatchNorm2d, nn.BatchNorm1d, nn.Linear, nn.Sequential, nn.ModuleList)


def check_supported(model: nn.Module) -> None:
    """Refuse models with layers the lowering does not know, listing every one by name."""
    bad = [f"{n} ({type(m).__name__})" for n, m in model.named_modules()
           if not isinstance(m, SUPPORTED_MODULES)]
    if bad:
        raise SpikegateError(f"unsupported layers: {', '.join(bad)}; spikegate lowers Meta-SpikeFormer "
                              "modules only")


def lower(model: MetaSpikeFormer, repconv: str = "merge") -> Graph:
    """The op graph of ``model``; ``repconv``: ``"merge"`` (one dense 3x3 conv per RepConv) or
    ``"split"`` (its three convolutions, :func:`split_repconv_bn`)."""
    check_supported(model)
    if repconv not in REPCONV_MODES:
        raise SpikegateError(f"repconv must be one of {', '.join(REPCONV_MODES)}, not {repconv!r}")
    if model.training:
        raise SpikegateError("lower() needs a model in eval mode (BatchNorm uses running statistics)")
    return _Builder(model, repconv).build()
