"""spikegate golden: run the bit-exact integer model on inputs."""

from __future__ import annotations

from spikegate.commands._common import checked_int


def register(sub):
    p = sub.add_parser("golden", help="integer logits of the bit-exact golden model (optionally a trace)")
    p.add_argument("model", help="IR file (.sgir)")
    p.add_argument("--inputs", required=True, help="float32 .npy [B, C, H, W]")
    p.add_argument("--out", required=True, help="integer logits [B, classes] (.npy, int64)")
    p.add_argument("--trace", metavar="DIR", help="write every LIF's spikes and membranes into DIR")
    p.add_argument("--T", dest="T", type=int, help="time steps (default: the IR's)")
    p.set_defaults(func=run)


def run(args):
    import numpy as np

    from spikegate.io import check_images, load_array, save_npy
    from spikegate.quantize.golden import execute, write_trace
    from spikegate.quantize.irfile import load_ir

    T = checked_int(args, "T", "--T", 1, 64)
    g = load_ir(args.model)
    qi = g.ops[0].attrs
    x = check_images(load_array(args.inputs), qi["channels"], args.inputs, size=qi["size"])
    trace = {} if args.trace else None
    y = execute(g, x, T=T, trace=trace)
    if args.trace:
        n = len(write_trace(g, trace, args.trace))
        print(f"wrote {n} trace files into {args.trace}")
    save_npy(args.out, np.asarray(y, dtype=np.int64))
    print(f"wrote {args.out}: integer logits {tuple(y.shape)}; classes {np.argmax(y, axis=1).tolist()[:16]}"
          + (" ..." if len(y) > 16 else ""))
    return 0
