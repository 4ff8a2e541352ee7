"""spikegate ir show: print an .sgir IR for humans, one line per op."""

from __future__ import annotations

from spikegate.errors import SpikegateError


def register(sub):
    p = sub.add_parser("ir", help="inspect an .sgir IR file ('ir show MODEL.sgir')")
    p.add_argument("action", choices=["show"], help="show: one line per op")
    p.add_argument("model", help="IR file (.sgir)")
    p.set_defaults(func=run)


def run(args):
    from spikegate.quantize.irfile import load_ir

    g = load_ir(args.model)
    m = g.meta.get("model", {})
    print(f"{args.model}: spikegate IR, {len(g.ops)} ops, T={g.meta.get('T')}, "
          f"weight bits {g.meta.get('weight_bits')}, embed_dim {m.get('embed_dim')}, heads {m.get('num_heads')}, "
          f"logit scale {g.meta.get('logit_scale', 1):.6g}")
    for o in g.ops:
        print(o.describe())
    return 0
