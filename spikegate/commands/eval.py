"""spikegate eval: top-1 on a data set's held-out split (the digits, MNIST), of a float checkpoint or
a quantized ``.sgir`` model."""

from __future__ import annotations

from spikegate.commands._common import add_verb, check_model_arg, checked_int, one_of, print_json, steps
from spikegate.errors import SpikegateError

from spikegate.quantize.data import DATASETS as _REGISTRY

DATASETS = tuple(_REGISTRY)


def register(sub):
    p = add_verb(sub, "eval", "held-out top-1 of a checkpoint (float) or an .sgir model (integer)", [
        "spikegate eval default", "spikegate eval m.sgir --json"])
    p.add_argument("model", metavar="CKPT|MODEL.sgir",
                   help="checkpoint (.pth, or an embedded name such as 'default') or quantized model (.sgir)")
    p.add_argument("--data", default="digits", **one_of("data set", DATASETS, "DATA", "{opt} must be one of {names}, not {value!r}"),
                   help="data set (default digits): " + "; ".join(
                       f"{k}: {d.description}" for k, d in _REGISTRY.items()).replace("%", "%%"))
    p.add_argument("--T", dest="T", type=int, help="time steps, 1..16 (default: the checkpoint's)")
    p.add_argument("--heads", type=int,
                   help="attention heads (default: as recorded by spikegate train, else 8)")
    p.add_argument("--json", action="store_true",
                   help="print JSON: top1, correct, samples, model, kind, data, T, img_size, heads")
    p.set_defaults(func=run)


def evaluate_checkpoint(path: str, data: str = "digits", T: int | None = None,
                        heads: int | None = None) -> dict:
    """Float top-1 of a checkpoint on the held-out split, at the checkpoint's own input size."""
    from spikegate.quantize.checkpoint import load_model
    from spikegate.quantize.data import check_model_fits, dataset, evaluate_float

    # heads=None: the count `spikegate train` recorded in the checkpoint's args, else 8.
    model, _ = load_model(path, heads=heads, T=T)
    cfg = model.cfg
    ds = dataset(data)
    try:
        check_model_fits(ds, cfg.in_channels, cfg.num_classes, cfg.img_size, f"{path}: the model")
    except ValueError as e:
        raise SpikegateError(f"{e}; --data {data} does not fit it") from None
    x, y = ds.split_xy("test", cfg.img_size)
    res = evaluate_float(model, x, y, T=T)
    return dict(res, model=path, kind="float", data=data, T=T or cfg.T, img_size=cfg.img_size,
                heads=cfg.num_heads)


def run(args):
    from spikegate.quantize.irfile import is_ir_file
    if args.data not in DATASETS:
        raise SpikegateError(f"--data must be one of {', '.join(DATASETS)}, not {args.data!r}")
    T = checked_int(args, "T", "--T", 1, 16)
    heads = checked_int(args, "heads", "--heads", 1)
    if is_ir_file(args.model):
        if T is not None or heads is not None:
            raise SpikegateError("--T and --heads apply to float checkpoints only; an .sgir model fixes both")
        from spikegate.quantize.golden import evaluate_ir
        from spikegate.quantize.irfile import load_ir

        with steps("eval", quiet=args.json) as step:
            step("golden model on the held-out split")
            res = evaluate_ir(args.model, data=args.data)
        res.setdefault("model", args.model)
        res.setdefault("kind", "sgir")
        g = load_ir(args.model)
        model_cfg = g.meta.get("model") or {}
        # The same keys as a checkpoint's evaluation, so scripts can compare the two.
        res.setdefault("data", args.data)
        res.setdefault("T", g.meta.get("T", model_cfg.get("T")))
        res.setdefault("img_size", g.ops[0].attrs["size"])
        res.setdefault("heads", model_cfg.get("num_heads"))
    else:
        check_model_arg(args.model)
        with steps("eval", quiet=args.json) as step:
            step("float model on the held-out split")
            res = evaluate_checkpoint(args.model, data=args.data, T=T, heads=heads)
    if args.json:
        print_json(res)
        return 0
    extra = f", T={res['T']}" if "T" in res else ""
    print(f"{args.model}: {res.get('kind', '')} top-1 {res['top1']:.2f}% ({res['correct']}/{res['samples']}) "
          f"on the {args.data} held-out split{extra}")
    return 0
