"""spikegate golden: run the bit-exact integer model on inputs."""

from __future__ import annotations

from spikegate.commands._common import add_verb, checked_int, ir_input_range, steps


def register(sub):
    p = add_verb(sub, "golden", "integer logits of the bit-exact golden model (optionally a trace)", [
        "spikegate data digits --count 8 -o x.npy && spikegate golden m.sgir --inputs x.npy --out y.npy",
        "spikegate golden m.sgir --inputs x.npy --out y.npy --trace trace/"])
    p.add_argument("model", metavar="MODEL.sgir", help="IR file from `spikegate quantize`")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="float32 images [B, C, H, W] in the range the model was trained on")
    p.add_argument("--out", required=True, metavar="Y.npy", help="integer logits [B, classes] (.npy, int64)")
    p.add_argument("--trace", metavar="DIR", help="write every LIF's spikes and membranes into DIR")
    p.add_argument("--T", dest="T", type=int, help="time steps, 1..64 (default: the IR's)")
    p.set_defaults(func=run)


def run(args):
    import numpy as np

    from spikegate.io import check_images, check_output_path, load_array, save_npy, warn_input_range
    from spikegate.quantize.golden import execute, write_trace
    from spikegate.quantize.irfile import load_ir

    T = checked_int(args, "T", "--T", 1, 64)
    g = load_ir(args.model)
    qi = g.ops[0].attrs
    x = check_images(load_array(args.inputs), qi["channels"], args.inputs, size=qi["size"])
    check_output_path(args.out, "file", "--out")
    if args.trace:
        check_output_path(args.trace, "dir", "--trace")
    rng, source = ir_input_range(g)
    warn_input_range(x, args.inputs, rng, "--inputs", source)
    trace = {} if args.trace else None
    saturations: dict = {}
    with steps("golden") as step:
        step(f"{len(x)} images")
        y = execute(g, x, T=T, trace=trace, saturations=saturations)
        if args.trace:
            step("writing the trace")
            n = len(write_trace(g, trace, args.trace))
            _write_saturations(saturations, args.trace)
    if args.trace:
        print(f"wrote {n} trace files into {args.trace}")
    if saturations:
        hits = {k: v for k, v in saturations.items() if v["count"]}
        print(f"saturation: {len(saturations)} op(s) saturate; {sum(v['count'] for v in hits.values())} value(s) "
              f"clamped" + (" at " + ", ".join(f"{k} ({v['count']} of {v['values']})" for k, v in
                                              sorted(hits.items())) if hits else ""))
    save_npy(args.out, np.asarray(y, dtype=np.int64))
    print(f"wrote {args.out}: integer logits {tuple(y.shape)}; classes {np.argmax(y, axis=1).tolist()[:16]}"
          + (" ..." if len(y) > 16 else ""))
    return 0


def _write_saturations(saturations: dict, trace_dir: str) -> None:
    """``DIR/saturation.json``: per saturating op, how many values its clamp changed, of how many."""
    import json
    import os

    with open(os.path.join(trace_dir, "saturation.json"), "w") as f:
        json.dump(saturations, f, indent=1, sort_keys=True)
