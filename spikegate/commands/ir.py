"""spikegate ir show: print an .sgir IR for humans, one line per op."""

from __future__ import annotations

from spikegate.commands._common import add_verb
from spikegate.errors import SpikegateError

ACTIONS = {"show": "one line per op, after a header with T, weight bits and the model's shape"}


def register(sub):
    p = add_verb(sub, "ir", "inspect an .sgir IR file ('ir show MODEL.sgir')", "spikegate ir show m.sgir")
    p.add_argument("action", metavar="ACTION",
                   help="what to do; " + "; ".join(f"{k}: {v}" for k, v in ACTIONS.items()))
    p.add_argument("model", metavar="MODEL.sgir", nargs="?", help="IR file from `spikegate quantize`")
    p.set_defaults(func=run)


def run(args):
    from spikegate.quantize.irfile import load_ir

    if args.action not in ACTIONS:
        raise SpikegateError(f"unknown action {args.action!r}; actions: {', '.join(ACTIONS)} "
                             f"(e.g. `spikegate ir show MODEL.sgir`)")
    if not args.model:
        raise SpikegateError(f"give the IR file: `spikegate ir {args.action} MODEL.sgir`")
    g = load_ir(args.model)
    m = g.meta.get("model", {})
    print(f"{args.model}: spikegate IR, {len(g.ops)} ops, T={g.meta.get('T')}, "
          f"weight bits {g.meta.get('weight_bits')}, embed_dim {m.get('embed_dim')}, heads {m.get('num_heads')}, "
          f"logit scale {g.meta.get('logit_scale', 1):.6g}")
    for o in g.ops:
        print(o.describe())
    return 0
