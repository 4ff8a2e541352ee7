"""spikegate quantize: checkpoint -> integer IR (.sgir) with a per-layer report."""

from __future__ import annotations

from spikegate.commands._common import checked_int, print_json


def register(sub):
    p = sub.add_parser("quantize", help="fold, re-parameterise and quantise a checkpoint into an .sgir IR")
    p.add_argument("checkpoint", help="checkpoint file, or an embedded name such as 'default'")
    p.add_argument("-o", "--out", required=True, help="output IR file (.sgir)")
    p.add_argument("--calib", help="calibration images: X.npy [B, C, H, W] float32, or 'digits'")
    p.add_argument("--weight-bits", type=int, default=8, help="weight bits, 4..16 (default 8)")
    p.add_argument("--input-bits", type=int, default=8, help="input pixel bits, 2..16 (default 8)")
    p.add_argument("--heads", type=int, help="attention heads (default 8)")
    p.add_argument("--T", dest="T", type=int, help="time steps (default: the checkpoint's)")
    p.add_argument("--preset", help="name the preset instead of inferring the configuration")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def print_report(rep: dict) -> None:
    print(f"{'op':<36}{'kind':<12}{'w bits':>7}{'acc/mem bits':>13}  {'scale':<34}{'error':>10}")
    for r in rep["layers"]:
        if r["kind"] in ("conv", "head"):
            err = f"{r['weight_error'] * 100:.2f}%w"
            bits = r["widths"].get("acc", r["widths"].get("out"))
            print(f"{r['op']:<36}{r['kind']:<12}{r['weight_bits']:>7}{bits:>13}  {r['scale'][:33]:<34}{err:>10}")
        elif r["kind"] == "lif":
            th = r["threshold"]
            th = f"threshold {th[0]}" if th[0] == th[1] else f"threshold {th[0]}..{th[1]}"
            err = f"{r['spike_mismatch'] * 100:.2f}%s"
            print(f"{r['op']:<36}{'lif':<12}{'':>7}{r['widths']['membrane']:>13}  {th:<34}{err:>10}")
    s = rep["summary"]
    print(f"errors: %w = relative RMS weight rounding error; %s = spikes differing from the exact model "
          f"(cumulative)")
    if "float_top1" in s:
        print(f"top-1 on {s['samples']} held-out samples: float {s['float_top1']:.2f}%, integer "
              f"{s['int_top1']:.2f}%; argmax agreement {s['argmax_agreement']:.2f}%")
    else:
        print(f"argmax agreement float vs integer on {s['samples']} calibration samples: "
              f"{s['argmax_agreement']:.2f}%")


def run(args):
    from spikegate.quantize.irfile import save_ir
    from spikegate.quantize.pipeline import quantize_checkpoint

    wb = checked_int(args, "weight_bits", "--weight-bits", 4, 16)
    ib = checked_int(args, "input_bits", "--input-bits", 2, 16)
    T = checked_int(args, "T", "--T", 1, 64)
    heads = checked_int(args, "heads", "--heads", 1)
    g, rep = quantize_checkpoint(args.checkpoint, calib=args.calib, weight_bits=wb, input_bits=ib,
                                 heads=heads, T=T, preset=args.preset)
    save_ir(g, args.out)
    if args.json:
        print_json(rep)
    else:
        print_report(rep)
        print(f"wrote {args.out}: {len(g.ops)} ops")
    return 0
