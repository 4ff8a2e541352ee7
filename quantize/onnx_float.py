"""ONNX export of the float Meta-SpikeFormer, with the time loop unrolled.

The exported graph takes ``images`` ``[B, C, H, W]`` float32 (B dynamic, H = W = ``cfg.img_size``)
and returns ``logits`` ``[B, classes]``. T is fixed when exporting: the image is encoded directly
(the stem conv runs once, its output is repeated T times, which is what repeating the image before
the conv computes) and every multi-step LIF becomes T copies of standard ONNX arithmetic:

    h = v + (x - v) / tau          # Sub, Div, Add (tau = 2)
    s = Cast(h >= vth, float)      # GreaterOrEqual, Cast (ties fire)
    v = (1 - s) * h                # Sub, Mul (hard reset to 0)

with ``v = 0`` (a broadcast scalar) before the first step. This is the float32 expression of
``quantize/lif.py`` in the same order, so an ONNX runtime fires exactly the spikes PyTorch fires
unless a membrane lands within rounding error of the threshold after the convolutions (whose
accumulation order no two runtimes share; the exporter also folds each eval-mode BatchNorm into the
conv before it). On the official fixtures the logits agree with PyTorch to a few 1e-7.

Internally activations keep PyTorch's ``[T*B, C, H, W]`` layout. Every reshape is written with the
batch as ``-1`` and the other dimensions as constants, so the graph has no shape arithmetic and
works for any batch size. ``RepConv``'s "pad with the BN's own value at zero input" becomes a zero
``Pad`` and a ``Where`` against a constant border mask (the in-place slice assignments of the
training code would export as ``ScatterND`` with the export batch size baked in).
"""

from __future__ import annotations

import json
import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from spikegate.io import atomic_path

from .lif import MultiStepLIF
from .model import MetaSpikeFormer, MS_Block, MS_ConvBlock, MS_DownSampling, RepConv

OPSET = 17


class _ZeroPad1(torch.autograd.Function):
    """Zero padding of one pixel around the last two axes of an NCHW tensor, exported as a single
    ``Pad`` with constant pads (``F.pad`` exports a chain of shape ops the tracer does not fold)."""

    @staticmethod
    def forward(ctx, y):
        return F.pad(y, [1, 1, 1, 1])

    @staticmethod
    def symbolic(g, y):
        pads = g.op("Constant", value_t=torch.tensor([0, 0, 1, 1, 0, 0, 1, 1], dtype=torch.int64))
        return g.op("Pad", y, pads, mode_s="constant")


def _conv_out(side: int, k: int, s: int, p: int) -> int:
    return (side + 2 * p - k) // s + 1


class _FloatGraph(nn.Module):
    """Export-only forward of a :class:`MetaSpikeFormer` (shares its parameters; no copies)."""

    def __init__(self, model: MetaSpikeFormer, T: int):
        super().__init__()
        self.m = model
        self.T = int(T)
        # Constant interior masks of RepConv's padding, one per spatial size, made here (not in
        # forward) so they export as initializers rather than as the ops that built them.
        self._masks: dict[tuple[int, int], str] = {}
        for _, _, side in model.cfg.stage_shapes():
            hp = side + 2
            if (hp, hp) not in self._masks:
                m = torch.zeros(1, 1, hp, hp, dtype=torch.bool)
                m[:, :, 1:-1, 1:-1] = True
                self.register_buffer(f"pad_mask_{hp}", m, persistent=False)
                self._masks[(hp, hp)] = f"pad_mask_{hp}"

    # -- neuron ---------------------------------------------------------------------------------
    def lif(self, x: torch.Tensor, neuron: MultiStepLIF, rest: tuple[int, ...]) -> torch.Tensor:
        """``x``: ``[T*B, *rest]`` -> spikes ``[T*B, *rest]`` (float32 0/1)."""
        T = self.T
        tau, vth = neuron.tau, neuron.v_threshold
        xs = x.reshape((T, -1) + tuple(rest))
        v = torch.zeros((), dtype=x.dtype)  # V[-1] = 0, broadcast
        spikes = []
        for t in range(T):
            h = v + (xs[t] - v) / tau
            s = (h >= vth).to(x.dtype)
            spikes.append(s)
            if t + 1 < T:
                v = (1.0 - s) * h
        return spikes[0] if T == 1 else torch.cat(spikes, 0)

    # -- blocks ---------------------------------------------------------------------------------
    def repconv(self, x: torch.Tensor, rc: RepConv, H: int, W: int) -> torch.Tensor:
        conv1x1, bnpad, conv3x3 = rc.body
        y = bnpad.bn(conv1x1(x))
        if bnpad.pad_pixels != 1:
            raise ValueError("RepConv padding other than 1 pixel is not supported")
        pv = bnpad.pad_values().to(y.dtype).view(1, -1, 1, 1)
        mask = getattr(self, self._masks[(H + 2, W + 2)])
        y = torch.where(mask, _ZeroPad1.apply(y), pv)
        return conv3x3(y)

    def downsample(self, x, ds: MS_DownSampling, C: int, H: int, W: int, k: int, s: int, p: int):
        if hasattr(ds, "encode_lif"):
            x = self.lif(x, ds.encode_lif, (C, H, W))
        x = ds.encode_bn(ds.encode_conv(x))
        return x, _conv_out(H, k, s, p), _conv_out(W, k, s, p)

    def convblock(self, x, blk: MS_ConvBlock, C: int, H: int, W: int):
        sep = blk.Conv
        y = self.lif(x, sep.lif1, (C, H, W))
        y = sep.bn1(sep.pwconv1(y))
        y = self.lif(y, sep.lif2, (sep.pwconv1.out_channels, H, W))
        y = sep.dwconv(y)
        y = sep.bn2(sep.pwconv2(y))
        x = y + x
        x_feat = x
        y = blk.bn1(blk.conv1(self.lif(x, blk.lif1, (C, H, W))))
        y = blk.bn2(blk.conv2(self.lif(y, blk.lif2, (blk.conv1.out_channels, H, W))))
        return x_feat + y

    def attention(self, x, at, C: int, H: int, W: int):
        N = H * W
        nh = at.num_heads
        d = C // nh
        s = self.lif(x, at.head_lif, (C, H, W))
        qkv = []
        for conv, lif in ((at.q_conv, at.q_lif), (at.k_conv, at.k_lif), (at.v_conv, at.v_lif)):
            y = conv[1](self.repconv(s, conv[0], H, W))
            qkv.append(self.lif(y, lif, (C, H, W)).reshape(-1, nh, d, N))  # [TB, heads, d, N]
        q, k, v = qkv
        kv = k @ v.transpose(-2, -1)                          # K^T V: [TB, heads, d, d]
        y = (q.transpose(-2, -1) @ kv) * at.scale             # [TB, heads, N, d]
        y = y.transpose(-2, -1).reshape(-1, C, N)             # channel = head * d + j
        y = self.lif(y, at.attn_lif, (C, N)).reshape(-1, C, H, W)
        return at.proj_conv[1](self.repconv(y, at.proj_conv[0], H, W))

    def mlp(self, x, mlp, C: int, H: int, W: int):
        N = H * W
        y = self.lif(x.reshape(-1, C, N), mlp.fc1_lif, (C, N))
        y = mlp.fc1_bn(mlp.fc1_conv(y))
        y = self.lif(y, mlp.fc2_lif, (mlp.c_hidden, N))
        y = mlp.fc2_bn(mlp.fc2_conv(y))
        return y.reshape(-1, C, H, W)

    def block(self, x, blk: MS_Block, C: int, H: int, W: int):
        x = x + self.attention(x, blk.attn, C, H, W)
        x = x + self.mlp(x, blk.mlp, C, H, W)
        return x

    # -- whole network --------------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        m, T = self.m, self.T
        cfg = m.cfg
        d = cfg.embed_dim
        H = W = cfg.img_size
        # Direct encoding: the stem sees the same image at every step, so run it once and repeat.
        x, H, W = self.downsample(images, m.downsample1_1, cfg.in_channels, H, W, 7, 2, 3)
        if T > 1:
            x = torch.cat([x] * T, 0)                          # [T*B, d0/2, H, W], t-major
        for blk in m.ConvBlock1_1:
            x = self.convblock(x, blk, d[0] // 2, H, W)
        x, H, W = self.downsample(x, m.downsample1_2, d[0] // 2, H, W, 3, 2, 1)
        for blk in m.ConvBlock1_2:
            x = self.convblock(x, blk, d[0], H, W)
        x, H, W = self.downsample(x, m.downsample2, d[0], H, W, 3, 2, 1)
        for blk in list(m.ConvBlock2_1) + list(m.ConvBlock2_2):
            x = self.convblock(x, blk, d[1], H, W)
        x, H, W = self.downsample(x, m.downsample3, d[1], H, W, 3, 2, 1)
        for blk in m.block3:
            x = self.block(x, blk, d[2], H, W)
        x, H, W = self.downsample(x, m.downsample4, d[2], H, W, 3, 1, 1)
        for blk in m.block4:
            x = self.block(x, blk, d[3], H, W)
        x = x.reshape(-1, d[3], H * W).mean(2)                 # [T*B, d3]
        s = self.lif(x, m.lif, (d[3],))
        y = m.head(s).reshape(T, -1, cfg.num_classes).mean(0)
        if cfg.kd:
            y_kd = m.head_kd(s).reshape(T, -1, cfg.num_classes).mean(0)
            y = (y + y_kd) / 2
        return y


def export_float_onnx(model: MetaSpikeFormer, path: str, T: int | None = None,
                      batch_dynamic: bool = True) -> dict:
    """Write ``model`` (float, eval semantics) to ``path`` as ONNX with T time steps unrolled.

    ``T`` defaults to ``model.cfg.T``. With ``batch_dynamic`` the batch dimension is symbolic
    (``"batch"``); otherwise the graph is declared for batch 1. The file is checked with
    ``onnx.checker`` (with shape inference) before it is renamed into place. Returns a summary:
    ``{"path", "T", "opset", "nodes", "bytes", "input": [..], "output": [..]}``.
    """
    import onnx

    cfg = model.cfg
    T = int(model.cfg.T if T is None else T)
    if T < 1:
        raise ValueError(f"T must be >= 1, not {T}")
    graph = _FloatGraph(model, T)
    was_training = model.training
    model.eval()
    example = torch.zeros(1, cfg.in_channels, cfg.img_size, cfg.img_size, dtype=torch.float32)
    dyn = {"images": {0: "batch"}, "logits": {0: "batch"}} if batch_dynamic else None
    try:
        with atomic_path(path, ".onnx") as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(graph, (example,), tmp, input_names=["images"], output_names=["logits"],
                              dynamic_axes=dyn, opset_version=OPSET, do_constant_folding=True,
                              dynamo=False)
            proto = onnx.load(tmp)
            proto.producer_name = "spikegate"
            meta = {"spikegate.kind": "float", "spikegate.T": str(T),
                    "spikegate.config": json.dumps(cfg.replace(T=T).to_json(), sort_keys=True)}
            for k, v in meta.items():
                p = proto.metadata_props.add()
                p.key, p.value = k, v
            onnx.checker.check_model(proto, full_check=True)
            onnx.save(proto, tmp)
            n_nodes = len(proto.graph.node)
        size = os.path.getsize(path)
    finally:
        model.train(was_training)
    b = "batch" if batch_dynamic else 1
    return {"path": path, "T": T, "opset": OPSET, "nodes": n_nodes, "bytes": size,
            "input": [b, cfg.in_channels, cfg.img_size, cfg.img_size], "output": [b, cfg.num_classes]}
