"""spikegate data: held-out inputs of a data set as an .npy array a model takes.

The images are encoded exactly as for training and evaluation (``spikegate.quantize.data``):
for ``digits``, pixel / 16 upscaled by nearest neighbour to the model's input size; for ``mnist``,
pixel / 255 at 28x28 or zero-padded to 32x32. They come from
the held-out split, which no embedded model was trained on.
"""

from __future__ import annotations

from spikegate.commands._common import add_verb, check_model_arg, one_of
from spikegate.errors import SpikegateError


def register(sub):
    from spikegate.quantize.data import DATASETS

    p = add_verb(sub, "data", "write held-out inputs of a data set (and their labels) as .npy", [
        "spikegate data digits --count 4 -o x.npy --labels y.npy",
        "spikegate data digits --count 16 --model fpga-tiny-t2 -o x16.npy",
        "spikegate data mnist --count 8 --size 28 -o m.npy --labels my.npy"])
    p.add_argument("name", **one_of("data set", DATASETS, "NAME"),
                   help="data set: " + "; ".join(f"{k}: {d.description}" for k, d in DATASETS.items()).replace("%", "%%"))
    p.add_argument("--count", type=int, default=16, help="number of images, from the first (default 16)")
    p.add_argument("-o", "--out", required=True, metavar="X.npy", help="images [B, C, S, S] float32")
    p.add_argument("--labels", metavar="Y.npy", help="also write the true classes [B] int64")
    p.add_argument("--model", default="default", metavar="CKPT|MODEL.sgir",
                   help="size the images for this model's input (default: the embedded 'default')")
    p.add_argument("--size", type=int, help="image side S instead of the model's (a multiple of the "
                                            "data set's native side)")
    p.add_argument("--split", choices=("test", "train"), default="test",
                   help="test: the held-out split (default); train: the training split")
    p.set_defaults(func=run)


def model_input(path: str) -> tuple[int, int]:
    """(channels, side) of a checkpoint's or an IR's input."""
    from spikegate.quantize.irfile import is_ir_file

    if is_ir_file(path):
        from spikegate.quantize.irfile import load_ir

        qi = load_ir(path).ops[0].attrs
        return int(qi["channels"]), int(qi["size"])
    from spikegate.quantize.checkpoint import infer_config, load_checkpoint

    check_model_arg(path, "--model")
    cfg = infer_config(load_checkpoint(path))
    return cfg.in_channels, cfg.img_size


def run(args):
    import numpy as np

    from spikegate.commands._common import checked_int
    from spikegate.io import check_output_path, save_npy
    from spikegate.quantize.data import dataset

    ds = dataset(args.name)
    count = checked_int(args, "count", "--count", 1)
    check_output_path(args.out, "file", "-o")
    if args.labels:
        check_output_path(args.labels, "file", "--labels")
    if args.size is not None:
        size = args.size
    else:
        channels, size = model_input(args.model)
        if channels != ds.channels:
            raise SpikegateError(f"--model {args.model} takes {channels} channels; {ds.name} has {ds.channels}")
    try:
        size = ds.check_size(size)
    except ValueError as e:
        raise SpikegateError(f"--size: {e}") from None
    x, y = ds.split_xy(args.split, size)
    if count > len(x):
        raise SpikegateError(f"--count {count}: the {ds.name} {args.split} split has {len(x)} images")
    x, y = x[:count], y[:count]
    save_npy(args.out, np.ascontiguousarray(x, dtype=np.float32))
    if args.labels:
        save_npy(args.labels, np.asarray(y, dtype=np.int64))
    lo, hi = ds.value_range
    print(f"wrote {args.out}: {count} {ds.name} {args.split} images {tuple(x.shape)} float32, values in "
          f"[{lo:g}, {hi:g}]" + (f"; labels {args.labels}: {y.tolist()[:16]}" + (" ..." if count > 16 else "")
                                  if args.labels else ""))
    return 0
