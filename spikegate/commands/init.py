"""spikegate init: a randomly initialised checkpoint of any preset or shape, in the official layout.

For sizing a model on a board before (or without) training it: the checkpoint loads in every verb
(info, quantize, eval, export-onnx, compile ...). ``--img-size`` sizes a paper preset at 32x32 as
well as 224x224; ``--embed-dim``/``--depths``/``--in-channels``/``--heads``/``--kd`` reshape it
into any official-layout network. ``--bn-stats N`` makes it look briefly trained
(``spikegate.quantize.random_init``: fixture-like BatchNorm affine parameters, running statistics
from N seeded forward passes), so its spiking layers fire.
"""

from __future__ import annotations

from spikegate.commands._common import add_verb, checked_int, one_of, print_json
from spikegate.errors import SpikegateError

MAX_IMG_SIZE = 512


def register(sub):
    from spikegate.quantize.model import PRESETS
    from spikegate.quantize.random_init import MAX_BN_STATS

    p = add_verb(sub, "init", "write a randomly initialised checkpoint of a preset (official layout)", [
        "spikegate init --preset meta-spikeformer-15m --img-size 32 --classes 10 -o m15-32.pth",
        "spikegate init --preset fpga-small --embed-dim 32,64,128,160 --depths 6,2 --T 4 --kd "
        "--classes 100 --img-size 64 --heads 8 --bn-stats 3 -o big.pth"])
    p.add_argument("--preset", required=True, **one_of("preset", PRESETS),
                   help="the shape to start from: " + ", ".join(PRESETS))
    p.add_argument("--img-size", type=int, metavar="N",
                   help=f"input side, 8..{MAX_IMG_SIZE} (default: the preset's, 224 for the paper presets)")
    p.add_argument("--classes", type=int, metavar="K", help="classes, >= 1 (default: the preset's)")
    p.add_argument("--T", dest="T", type=int, help="time steps, 1..64 (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--in-channels", type=int, metavar="C", help="input channels, 1..3 (default: the preset's)")
    p.add_argument("--heads", type=int, help="attention heads; must divide embed dims 3 and 4 "
                                             "(default: the preset's)")
    p.add_argument("--embed-dim", metavar="D1,D2,D3,D4",
                   help="the four stage widths, e.g. 32,64,128,160 (default: the preset's)")
    p.add_argument("--depths", metavar="N3,N4",
                   help="transformer blocks in stages 3 and 4, e.g. 6,2 (default: the preset's)")
    p.add_argument("--kd", action="store_true", help="add the distillation head head_kd, as the official "
                                                     "distillation training leaves")
    p.add_argument("--bn-stats", type=int, default=0, metavar="N",
                   help=f"0..{MAX_BN_STATS}: look briefly trained: BatchNorm weights ~1.5+-0.3, biases "
                        "~0.5+-0.5 and running statistics from N train-mode forward passes on seeded "
                        "random images (num_batches_tracked = N); default 0: the plain random init")
    p.add_argument("-o", "--out", required=True, metavar="CKPT", help="checkpoint to write (.pth)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=run)


def _int_list(text: str | None, opt: str, n: int) -> tuple[int, ...] | None:
    if text is None:
        return None
    parts = [t.strip() for t in text.split(",")]
    try:
        vals = tuple(int(t) for t in parts)
    except ValueError:
        vals = ()
    if len(vals) != n or any(v < 1 for v in vals):
        raise SpikegateError(f"{opt} must be {n} positive integers separated by commas, not {text!r}")
    return vals


def config_from_args(args):
    """The :class:`ModelConfig` the options describe (one-line errors for what does not fit)."""
    from spikegate.quantize.model import preset
    from spikegate.quantize.random_init import MAX_BN_STATS

    repl = {}
    for attr, key, opt, lo, hi in (("img_size", "img_size", "--img-size", 8, MAX_IMG_SIZE),
                                   ("classes", "num_classes", "--classes", 1, None),
                                   ("T", "T", "--T", 1, 64),
                                   ("in_channels", "in_channels", "--in-channels", 1, 3),
                                   ("heads", "num_heads", "--heads", 1, None)):
        v = checked_int(args, attr, opt, lo, hi)
        if v is not None:
            repl[key] = v
    checked_int(args, "seed", "--seed", 0, 2**32 - 1)
    checked_int(args, "bn_stats", "--bn-stats", 0, MAX_BN_STATS)
    ed = _int_list(args.embed_dim, "--embed-dim", 4)
    if ed:
        repl["embed_dim"] = ed
    depths = _int_list(args.depths, "--depths", 2)
    if depths:
        repl["depths"] = depths
    if args.kd:
        repl["kd"] = True
    try:
        return preset(args.preset).replace(**repl)
    except ValueError as e:
        raise SpikegateError(f"preset {args.preset} with these options: {e}") from None


def run(args):
    from spikegate.io import check_output_path
    from spikegate.quantize.model import count_parameters
    from spikegate.quantize.random_init import write_random_checkpoint

    cfg = config_from_args(args)
    check_output_path(args.out, "file", "-o")
    model = write_random_checkpoint(cfg, args.out, seed=args.seed, bn_stats=args.bn_stats,
                                    extra_args={"preset": args.preset})
    res = {"path": args.out, "preset": args.preset, "config": cfg.to_json(), "seed": args.seed,
           "bn_stats": args.bn_stats, "params": count_parameters(model)}
    if args.json:
        print_json(res)
        return 0
    ed = ",".join(map(str, cfg.embed_dim))
    print(f"wrote {args.out}: random {args.preset} ({res['params']:,} parameters), embed dims {ed}, "
          f"depths {cfg.depths[0]}+{cfg.depths[1]}, {cfg.in_channels}x{cfg.img_size}x{cfg.img_size} input, "
          f"{cfg.num_classes} classes, T={cfg.T}, heads {cfg.num_heads}{', head_kd' if cfg.kd else ''}, "
          f"seed {args.seed}, " + (f"BatchNorm statistics from {args.bn_stats} passes" if args.bn_stats
                                   else "plain initialisation"))
    return 0
