"""spikegate sweep: models x targets x lanes x weight bits (x nextpnr seeds) on Ray, resumable."""

from __future__ import annotations

from spikegate.commands._common import add_verb, check_model_arg, one_of, positive_int, print_json
from spikegate.errors import SpikegateError


def register(sub):
    from spikegate.quantize.data import DATASETS

    p = add_verb(sub, "sweep", "sweep lanes x weight bits x boards (x nextpnr seeds) on Ray; resumable", [
        "spikegate sweep --model default --target sim --lanes 1,4 --weight-bits 4,8 --out sweep/ --json",
        "spikegate sweep --model default --target ulx3s-85f --lanes 1,4 --seeds 1-4 --synth --out sweep/",
        "spikegate sweep --model default --target sim --lanes 1,2,4,8 --out sweep/ --address head-node:6379"],
        description="Run quantize, compile, the cycle model and (--synth) synthesis for every point "
                    "(model, target, lanes, weight bits, seed) as Ray tasks, each shared stage once. "
                    "Finished points go to OUT/points.jsonl as they finish; rerunning skips them. "
                    "OUT/report.html plots the Pareto front (images/s vs LUTs) per board.")
    p.add_argument("--model", action="append", required=True, metavar="M",
                   help="checkpoint (.pth) or embedded model name; repeat for more models")
    p.add_argument("--target", required=True, metavar="T[,T2...]", help="targets (`spikegate compile --help`)")
    p.add_argument("--lanes", required=True, metavar="N[,N2...]", help="lane counts, each 1..256")
    p.add_argument("--weight-bits", default="8", metavar="B[,B2...]", help="weight bits, each 4..16 (default 8)")
    p.add_argument("--seeds", metavar="S", help="nextpnr seeds with --synth: a range 1-8, a list 1,3,7 or both "
                                                "(default 1)")
    p.add_argument("--synth", action="store_true", help="synthesise each point (Yosys once per build, nextpnr "
                                                        "per seed): LUTs, Fmax, timing")
    p.add_argument("--data", default="digits", **one_of("data set", DATASETS),
                   help="data for calibration and the held-out accuracy: " + ", ".join(DATASETS))
    p.add_argument("--out", required=True, metavar="DIR", help="sweep folder (points.jsonl, report.html, stages/)")
    p.add_argument("--address", metavar="ADDR", help="an existing Ray cluster (host:port) instead of Ray "
                                                     "embedded on this machine")
    p.add_argument("--jobs", help="CPUs for the embedded Ray (default: this machine's)")
    p.add_argument("--cycle-images", default="8", metavar="N",
                   help="held-out images the cycle model averages over (default 8)")
    p.add_argument("--retry-failed", action="store_true", help="run again the points recorded as failed")
    p.add_argument("--json", action="store_true", help='print {"engine", "points", "skipped"} as JSON')
    p.set_defaults(func=run)


def int_list(text: str, name: str, lo: int, hi: int) -> tuple[int, ...]:
    parse = positive_int(name, lo, hi)
    vals = [parse(v.strip()) for v in text.split(",") if v.strip()]
    if not vals:
        raise SpikegateError(f"{name}: give at least one value")
    return tuple(dict.fromkeys(vals))


def targets(text: str, synth: bool) -> dict:
    from spikegate.board_targets import BOARDS, known_boards
    from spikegate.board_build import lookup_target

    names = [t.strip() for t in text.split(",") if t.strip()]
    if not names:
        raise SpikegateError("--target: give at least one target")
    out = {n: (lookup_target(n), n if n in BOARDS else None) for n in dict.fromkeys(names)}
    if synth:
        bad = [n for n, (_, b) in out.items() if b is None]
        if bad:
            raise SpikegateError(f"--synth: {', '.join(bad)} is not a board, so there is nothing to synthesise; "
                                 f"boards: {', '.join(known_boards())}")
    return out


def spec_from(args):
    from spikegate.sweep import Spec
    from spikegate.sweep_stages import parse_seeds

    if args.seeds is not None and not args.synth:
        raise SpikegateError("--seeds are nextpnr placement seeds: they need --synth")
    try:
        seeds = tuple(parse_seeds(args.seeds or "1"))
    except ValueError as e:
        raise SpikegateError(str(e)) from None
    models = tuple(dict.fromkeys(check_model_arg(m, "--model") for m in args.model))
    return Spec(models=models, targets=targets(args.target, args.synth),
                lanes=int_list(args.lanes, "--lanes", 1, 256),
                weight_bits=int_list(args.weight_bits, "--weight-bits", 4, 16), seeds=seeds,
                synth=args.synth, data=args.data,
                cycle_images=positive_int("--cycle-images", 1, 450)(args.cycle_images))


def run(args):
    from spikegate.sweep import POINTS, REPORT, run_sweep

    spec = spec_from(args)
    jobs = positive_int("--jobs", 1, 1024)(args.jobs) if args.jobs is not None else None
    res = run_sweep(spec, args.out, address=args.address, jobs=jobs, retry_failed=args.retry_failed)
    if args.json:
        print_json(res)
    else:
        print(summary(res, args.out, POINTS, REPORT))
    return 0


def summary(res: dict, out: str, points: str, report: str) -> str:
    import os

    head = f"{'model':<14}{'target':<12}{'lanes':>6}{'bits':>5}{'seed':>5}  {'status':<8}{'top1':>7}" \
           f"{'cycles':>10}{'images/s':>10}{'LUTs':>8}{'Fmax':>8}"
    lines = [head]
    for r in res["points"]:
        def f(k, fmt):
            return format(r[k], fmt) if r.get(k) is not None else "-"
        lines.append(f"{r['model'][:13]:<14}{r['target']:<12}{r['lanes']:>6}{r['weight_bits']:>5}"
                     f"{r['seed'] if r['seed'] is not None else '-':>5}  {r['status']:<8}{f('top1', '.2f'):>7}"
                     f"{f('mean_cycles', ',.0f'):>10}{f('images_per_s', ',.1f'):>10}{f('luts', ','):>8}"
                     f"{f('fmax_mhz', '.1f'):>8}" + (f"  {r['error']}" if r.get("error") else ""))
    lines.append(f"{len(res['points'])} points ({res['skipped']} already in {os.path.join(out, points)}); "
                 f"report: {os.path.join(out, report)}")
    return "\n".join(lines)
