"""spikegate models: the trained models that ship inside spikegate, usable by name anywhere a
checkpoint is accepted (``spikegate quantize default``).

The accuracy listed is the held-out top-1 that ``spikegate train`` measured and stored in the
checkpoint's own arguments when it built the model (``held_out_top1``), so a listing does not
re-run 450 images per model; ``--measure`` re-evaluates instead (``spikegate eval`` on each), and
tests/test_cli_polish.py checks that the two agree.
"""

from __future__ import annotations

from spikegate.commands._common import add_verb, print_json, steps


def register(sub):
    p = add_verb(sub, "models", "list the embedded models: name, preset, data, T, held-out accuracy", [
        "spikegate models", "spikegate models --json", "spikegate quantize default -o m.sgir"])
    p.add_argument("--measure", action="store_true",
                   help="re-evaluate each model on its held-out split (seconds per model) instead of "
                        "reading the accuracy recorded when it was trained")
    p.add_argument("--json", action="store_true",
                   help="print a JSON list: name, preset, data, T, channels, img_size, classes, heads, "
                        "params, accuracy (held-out float top-1, %%), samples")
    p.set_defaults(func=run)


def describe(name: str, measure: bool = False) -> dict:
    """One embedded model's row (the API's :func:`spikegate.api.model_info`)."""
    from spikegate.api import model_info

    row = model_info(name)
    if measure:
        from spikegate.commands.eval import evaluate_checkpoint

        res = evaluate_checkpoint(name, data=row["data"] or "digits")
        row.update(accuracy=round(res["top1"], 4), samples=res["samples"])
    return row


def run(args):
    from spikegate.commands._common import embedded_names

    rows = []
    with steps("models", quiet=args.json or not args.measure) as step:
        for name in embedded_names():
            step(f"evaluating {name}")
            rows.append(describe(name, measure=args.measure))
    if args.json:
        print_json(rows)
        return 0
    print(f"{'name':<15}{'preset':<13}{'data':<8}{'T':>3}{'input':>10}{'params':>11}{'held-out top-1':>17}")
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.2f}% of {r['samples']}"
        inp = f"{r['channels']}x{r['img_size']}x{r['img_size']}"
        print(f"{r['name']:<15}{r['preset'] or 'custom':<13}{r['data'] or '-':<8}{r['T']:>3}{inp:>10}"
              f"{r['params']:>11,}{acc:>17}")
    print("use a name wherever a checkpoint is accepted, e.g. `spikegate quantize default -o m.sgir`")
    return 0
