"""spikegate infer: float logits for an image batch."""

from __future__ import annotations

from spikegate.commands._common import add_verb, check_model_arg, checked_int, checkpoint_input_range, steps


def register(sub):
    p = add_verb(sub, "infer", "float logits [B, classes] for inputs [B, C, H, W]", [
        "spikegate data digits --count 4 -o x.npy && spikegate infer default --inputs x.npy --out y.npy"])
    p.add_argument("checkpoint", metavar="CKPT",
                   help="checkpoint file (.pth), or an embedded model such as 'default' (`spikegate models`)")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="float32 images [B, C, H, W] in the range the model was trained on")
    p.add_argument("--out", required=True, metavar="Y.npy", help="where to write the logits (.npy, float32)")
    p.add_argument("--T", dest="T", type=int, help="time steps, 1..64 (default: the checkpoint's)")
    p.add_argument("--heads", type=int, help="attention heads (default: as recorded in the checkpoint, else 8)")
    p.set_defaults(func=run)


def run(args):
    import numpy as np
    import torch

    from spikegate.io import check_images, check_output_path, load_array, save_npy, warn_input_range
    from spikegate.quantize.checkpoint import load_model

    T = checked_int(args, "T", "--T", 1, 64)
    heads = checked_int(args, "heads", "--heads", 1)
    check_model_arg(args.checkpoint)
    model, ck = load_model(args.checkpoint, heads=heads, T=T)
    x = check_images(load_array(args.inputs), model.cfg.in_channels, args.inputs)
    check_output_path(args.out, "file", "--out")
    warn_input_range(x, args.inputs, checkpoint_input_range(ck), "--inputs")
    with steps("infer") as step, torch.no_grad():
        step(f"{len(x)} images")
        y = model(torch.from_numpy(x), T=T).numpy().astype(np.float32)
    save_npy(args.out, y)
    print(f"wrote {args.out}: logits {tuple(y.shape)}, T={T or model.cfg.T}")
    return 0
