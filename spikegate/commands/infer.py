"""spikegate infer: float logits for an image batch."""

from __future__ import annotations

from spikegate.commands._common import checked_int


def register(sub):
    p = sub.add_parser("infer", help="float logits [B, classes] for inputs [B, C, H, W]")
    p.add_argument("checkpoint")
    p.add_argument("--inputs", required=True, help="float32 .npy array [B, C, H, W]")
    p.add_argument("--out", required=True, help="where to write the logits (.npy)")
    p.add_argument("--T", dest="T", type=int, help="time steps (default: the checkpoint's)")
    p.add_argument("--heads", type=int, help="attention heads (default 8)")
    p.set_defaults(func=run)


def run(args):
    import numpy as np
    import torch

    from spikegate.io import check_images, load_array, save_npy
    from spikegate.quantize.checkpoint import load_model

    T = checked_int(args, "T", "--T", 1, 64)
    heads = checked_int(args, "heads", "--heads", 1)
    model, _ = load_model(args.checkpoint, heads=heads, T=T)
    x = check_images(load_array(args.inputs), model.cfg.in_channels, args.inputs)
    with torch.no_grad():
        y = model(torch.from_numpy(x), T=T).numpy().astype(np.float32)
    save_npy(args.out, y)
    print(f"wrote {args.out}: logits {tuple(y.shape)}, T={T or model.cfg.T}")
    return 0
