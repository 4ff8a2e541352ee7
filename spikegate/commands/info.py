"""spikegate info: configuration, parameter count and a per-stage table."""

from __future__ import annotations

from spikegate.errors import SpikegateError
from spikegate.commands._common import add_verb, check_model_arg, one_of, print_json


def register(sub):
    from spikegate.quantize.model import PRESETS

    p = add_verb(sub, "info", "show a model's configuration, parameter count and stages", [
        "spikegate info default", "spikegate info --preset fpga-tiny --json",
        "spikegate models    (lists the embedded models)"])
    p.add_argument("checkpoint", nargs="?", metavar="CKPT",
                   help="checkpoint file (.pth), or an embedded model such as 'default' (`spikegate models`)")
    p.add_argument("--preset", **one_of("preset", PRESETS),
                   help="describe a preset instead of a checkpoint: " + ", ".join(PRESETS))
    p.add_argument("--heads", type=int, help="attention heads (default: as recorded in the checkpoint, else 8)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def stage_table(model) -> list[dict]:
    cfg = model.cfg
    groups = {
        "stage1_1": ["downsample1_1", "ConvBlock1_1"],
        "stage1_2": ["downsample1_2", "ConvBlock1_2"],
        "stage2": ["downsample2", "ConvBlock2_1", "ConvBlock2_2"],
        "stage3": ["downsample3", "block3"],
        "stage4": ["downsample4", "block4", "head", "head_kd"],
    }
    rows = []
    for (name, ch, side) in cfg.stage_shapes():
        n = 0
        for mod in groups[name]:
            if hasattr(model, mod):
                n += sum(p.numel() for p in getattr(model, mod).parameters())
        blocks = {"stage1_1": "1 conv block", "stage1_2": "1 conv block", "stage2": "2 conv blocks",
                  "stage3": f"{cfg.depths[0]} transformer blocks",
                  "stage4": f"{cfg.depths[1]} transformer blocks + head"}[name]
        rows.append({"stage": name, "channels": ch, "resolution": side, "blocks": blocks, "params": n})
    return rows


def run(args):
    from spikegate.quantize.model import build, count_parameters, preset
    from spikegate.quantize.checkpoint import load_model

    if bool(args.checkpoint) == bool(args.preset):
        raise SpikegateError("give either a checkpoint file or --preset NAME")
    if args.heads is not None and args.heads < 1:
        raise SpikegateError(f"--heads must be >= 1, not {args.heads}")
    if args.preset:
        try:
            cfg = preset(args.preset)
            if args.heads:
                cfg = cfg.replace(num_heads=args.heads)
        except ValueError as e:
            raise SpikegateError(str(e)) from None
        model = build(cfg)
        source = f"preset {args.preset}"
    else:
        check_model_arg(args.checkpoint)
        model, _ = load_model(args.checkpoint, heads=args.heads)
        cfg = model.cfg
        source = args.checkpoint
    params = count_parameters(model)
    stages = stage_table(model)
    if args.json:
        d = cfg.to_json()
        d.update(params=params, source=source, stages=stages)
        print_json(d)
        return 0
    print(f"{source}")
    print(f"  embed_dim   {list(cfg.embed_dim)}   heads {cfg.num_heads}   mlp_ratio {cfg.mlp_ratio}")
    print(f"  input       {cfg.in_channels} x {cfg.img_size} x {cfg.img_size}   T {cfg.T}   "
          f"classes {cfg.num_classes}   kd {cfg.kd}")
    print(f"  parameters  {params:,}")
    print(f"  {'stage':<10}{'channels':>9}{'size':>7}  {'blocks':<30}{'params':>12}")
    for r in stages:
        print(f"  {r['stage']:<10}{r['channels']:>9}{r['resolution']:>7}  {r['blocks']:<30}{r['params']:>12,}")
    return 0
