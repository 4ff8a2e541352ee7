"""spikegate quantize: checkpoint -> integer IR (.sgir) with a per-layer report."""

from __future__ import annotations

from spikegate.commands._common import add_verb, check_model_arg, checked_int, one_of, print_json, steps


def register(sub):
    from spikegate.quantize.model import PRESETS
    from spikegate.quantize.lower import REPCONV_MODES
    from spikegate.quantize.pipeline import ROUNDINGS

    p = add_verb(sub, "quantize", "fold, re-parameterise and quantise a checkpoint into an .sgir IR", [
        "spikegate quantize default -o m.sgir",
        "spikegate quantize model.pth --calib x.npy --weight-bits 6 --verbose -o m6.sgir"])
    p.add_argument("checkpoint", metavar="CKPT",
                   help="checkpoint file (.pth), or an embedded model such as 'default' (`spikegate models`)")
    p.add_argument("-o", "--out", required=True, metavar="MODEL.sgir", help="output IR file (.sgir)")
    p.add_argument("--calib", metavar="X.npy|digits|mnist",
                   help="calibration images: X.npy [B, C, H, W] float32, or a data set's training split, "
                        "'digits' or 'mnist' (which also measures held-out accuracy; default: the set the "
                        "checkpoint was trained on, else digits for 1-channel, 10-class models)")
    p.add_argument("--weight-bits", type=int, default=8, help="weight bits, 4..16 (default 8)")
    p.add_argument("--input-bits", type=int, default=8, help="input pixel bits, 2..16 (default 8)")
    p.add_argument("--max-bits", type=int, default=32,
                   help="no declared integer width exceeds this, 8..48 (default 32); activations that the "
                        "range analysis cannot bound within it saturate (docs/integer-semantics.md)")
    p.add_argument("--stream-bits", type=int, default=24,
                   help="keep activations this narrow where the calibration data allows, 8..48 (default 24); "
                        "wider ones saturate at a width chosen from the calibration data")
    p.add_argument("--rounding", default="nearest", **one_of("rounding", ROUNDINGS),
                   help="how weights are rounded: 'nearest' (default) or 'adaround' (each weight up or down, "
                        "learned on the calibration images to keep the float model's outputs; no labels; "
                        "minutes on the digits models)")
    p.add_argument("--repconv", default="merge", **one_of("repconv", REPCONV_MODES),
                   help="each attention RepConv as one dense 3x3 convolution ('merge', default: the paper's "
                        "inference form) or as its 1x1, depthwise 3x3 and 1x1 convolutions ('split': about "
                        "4.5x fewer weights for it, for models whose weights live in external memory)")
    p.add_argument("--heads", type=int, help="attention heads (default: as recorded in the checkpoint, else 8)")
    p.add_argument("--T", dest="T", type=int, help="time steps, 1..64 (default: the checkpoint's)")
    p.add_argument("--preset", **one_of("preset", PRESETS),
                   help="name the preset instead of inferring the configuration: " + ", ".join(PRESETS))
    p.add_argument("-v", "--verbose", action="store_true",
                   help="print the per-op table (bits, scale, rounding error of every op)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def print_table(rep: dict) -> None:
    """Per op: weight and accumulator bits, scale (in full) and rounding error."""
    rows = []
    for r in rep["layers"]:
        if r["kind"] in ("conv", "head"):
            bits = r["widths"].get("acc", r["widths"].get("out"))
            rows.append((r["op"], r["kind"], str(r["weight_bits"]), str(bits), str(r["scale"]),
                         f"{r['weight_error'] * 100:.2f}%w"))
        elif r["kind"] == "lif":
            th = r["threshold"]
            th = f"threshold {th[0]}" if th[0] == th[1] else f"threshold {th[0]}..{th[1]}"
            rows.append((r["op"], "lif", "", str(r["widths"]["membrane"]), th,
                         f"{r['spike_mismatch'] * 100:.2f}%s"))
    wop = max([len("op")] + [len(r[0]) for r in rows]) + 2
    wsc = max([len("scale")] + [len(r[4]) for r in rows]) + 2
    print(f"{'op':<{wop}}{'kind':<12}{'w bits':>7}{'acc/mem bits':>13}  {'scale':<{wsc}}{'error':>10}")
    for op, kind, wb, bits, scale, err in rows:
        print(f"{op:<{wop}}{kind:<12}{wb:>7}{bits:>13}  {scale:<{wsc}}{err:>10}")
    print("errors: %w = relative RMS weight rounding error; %s = spikes differing from the exact model "
          "(cumulative)")


def summary_line(rep: dict) -> str:
    s = rep["summary"]
    if "float_top1" in s:
        return (f"top-1 on {s['samples']} held-out samples: float {s['float_top1']:.2f}%, integer "
                f"{s['int_top1']:.2f}%; argmax agreement {s['argmax_agreement']:.2f}%")
    return (f"argmax agreement float vs integer on {s['samples']} calibration samples: "
            f"{s['argmax_agreement']:.2f}%")


def worst_line(rep: dict) -> str:
    """The largest rounding errors, so the default output still points at a bad layer."""
    w = [r for r in rep["layers"] if "weight_error" in r]
    s = [r for r in rep["layers"] if "spike_mismatch" in r]
    parts = []
    if w:
        r = max(w, key=lambda r: r["weight_error"])
        parts.append(f"weights {r['weight_error'] * 100:.2f}% ({r['op']})")
    if s:
        r = max(s, key=lambda r: r["spike_mismatch"])
        parts.append(f"spikes {r['spike_mismatch'] * 100:.2f}% ({r['op']})")
    return "largest rounding error: " + ", ".join(parts) + "; --verbose prints every op"


def print_report(rep: dict) -> None:
    """The full report: the per-op table, then the summary line (kept for callers of the old name)."""
    print_table(rep)
    print(summary_line(rep))


def run(args):
    from spikegate.io import check_output_path
    from spikegate.quantize.irfile import save_ir
    from spikegate.quantize.pipeline import quantize_checkpoint

    wb = checked_int(args, "weight_bits", "--weight-bits", 4, 16)
    ib = checked_int(args, "input_bits", "--input-bits", 2, 16)
    T = checked_int(args, "T", "--T", 1, 64)
    heads = checked_int(args, "heads", "--heads", 1)
    max_bits = checked_int(args, "max_bits", "--max-bits", 8, 48)
    stream_bits = checked_int(args, "stream_bits", "--stream-bits", 8, 48)
    check_output_path(args.out, "file", "-o")
    check_model_arg(args.checkpoint)
    from spikegate.quantize.data import DATASETS

    if args.calib and args.calib not in DATASETS:
        _warn_calibration_range(args)
    with steps("quantize", quiet=args.json) as step:
        step("loading the checkpoint and data")
        g, rep = quantize_checkpoint(args.checkpoint, calib=args.calib, weight_bits=wb, input_bits=ib,
                                     heads=heads, T=T, preset=args.preset, progress=step,
                                     max_bits=max_bits, stream_bits=stream_bits, rounding=args.rounding,
                                     repconv=args.repconv)
        step("writing the IR")
        save_ir(g, args.out)
    if args.json:
        print_json(rep)
        return 0
    if args.verbose:
        print_table(rep)
    else:
        print(worst_line(rep))
    if "rounding" in rep:
        print(rounding_line(rep["rounding"]))
    print(f"wrote {args.out}: {len(g.ops)} ops, {wb}-bit weights")
    print(width_line(rep["widths"]))
    print(summary_line(rep))
    return 0


def rounding_line(r: dict) -> str:
    """What AdaRound learned: how many weights it rounded the other way than nearest, and its cost."""
    return (f"rounding: AdaRound, {r['flipped_vs_nearest']} of {r['weights']} weights rounded the other way "
            f"than nearest ({r['iters']} steps on {r['calib_samples']} calibration images, seed {r['seed']}, "
            f"{r['seconds']:.0f} s)")


def width_line(w: dict) -> str:
    """The widest declared width, and a warning with numbers when calibration hit a clamp."""
    sat = w["saturating_ops"]
    line = f"widths: widest {w['max_declared']} bits (limit --max-bits {w['max_bits']})"
    if not sat:
        return line + "; nothing saturates"
    line += f"; {len(sat)} op(s) saturate at {sat[0]['bits']} bits (`spikegate ir show` marks them)"
    hit = [r for r in sat if r["hits"]]
    if hit:
        worst = max(hit, key=lambda r: r["hits"] / max(r["values"], 1))
        line += (f"\nwarning: the calibration data saturated {w['saturated_values']} value(s) at "
                 f"{len(hit)} op(s); most often {worst['op']}: {worst['hits']} of {worst['values']} "
                 f"({100.0 * worst['hits'] / max(worst['values'], 1):.3f}%); a larger --max-bits "
                 "keeps more range")
    return line


def _warn_calibration_range(args) -> None:
    """Calibrating on unnormalised images scales the whole model for the wrong range: say so."""
    import os

    import numpy as np

    from spikegate.commands._common import checkpoint_input_range
    from spikegate.io import warn_input_range
    from spikegate.quantize.checkpoint import load_checkpoint

    if not os.path.isfile(args.calib):
        return  # the pipeline reports a missing or bad file
    try:
        x = np.load(args.calib, allow_pickle=False, mmap_mode="r")
    except (OSError, ValueError):
        return
    if getattr(x, "dtype", None) is None or x.dtype.kind not in "fiu":
        return
    rng = checkpoint_input_range(load_checkpoint(args.checkpoint))
    warn_input_range(np.asarray(x), args.calib, rng, "--calib")
