"""spikegate compile: IR -> accelerator build directory (Verilog, memory images, report)."""

from __future__ import annotations

from spikegate.board_build import lookup_target, target_names
from spikegate.commands._common import add_verb, checked_int, one_of, print_json, steps


def register(sub):
    p = add_verb(sub, "compile", "compile an .sgir IR into an accelerator build directory", [
        "spikegate compile m.sgir --target sim -o build/",
        "spikegate compile m.sgir --target icebreaker --weights runtime -o build-ice/"])
    p.add_argument("model", metavar="MODEL.sgir", help="IR file from `spikegate quantize`")
    p.add_argument("--target", required=True, **one_of("target", target_names()),
                   help="what to build for: " + ", ".join(target_names()))
    p.add_argument("--lanes", type=int, help="parallel accumulate lanes, 1..256 (default: the target's)")
    p.add_argument("--weights", choices=("auto", "bitstream", "runtime"), default="auto",
                   help="where the weights live: auto (in block RAM, initialised by the bitstream, unless "
                        "they only fit the iCE40's SPRAM), bitstream, or runtime (SPRAM, uploaded by "
                        "`spikegate run`; iCE40 UP5K targets only)")
    p.add_argument("-o", "--out", required=True, metavar="BUILD_DIR",
                   help="build directory to create (or replace, if it is a spikegate build)")
    p.add_argument("--json", action="store_true", help="print report.json instead of the summary")
    p.set_defaults(func=run)


def run(args):
    from spikegate.compiler.build import compile_ir

    from spikegate.io import check_output_path

    lanes = checked_int(args, "lanes", "--lanes", 1, 256)
    target = lookup_target(args.target)
    check_output_path(args.out, "dir", "-o")
    with steps("compile", quiet=args.json) as step:
        step("lowering to a program")
        rep = compile_ir(args.model, target, lanes, args.out, weights=args.weights, progress=step)
    if args.json:
        print_json(rep)
        return 0
    w = rep["widths"]
    print(f"compiled {args.model} for {rep['target']} with {rep['lanes']} lanes -> {args.out}")
    print(f"  widths: act {w['act_bits']}b, acc {w['acc_bits']}b, membrane {w['membrane_bits']}b, "
          f"weights {w['weight_bits']}b; {rep['instructions']} instructions")
    for r in rep["resources"]:
        print(f"  {r['resource']:<40}{r['needed']:>10,} of {r['available']:,}")
    wt = rep["weights"]
    if wt["loading"] == "runtime-loaded":
        print(f"  weights: {wt['words']:,} words of {wt['word_bits']} bits in SPRAM, runtime-loaded: "
              f"`spikegate run --build {args.out}` uploads {wt['image']} (sha256 {wt['sha256'][:16]}...)")
    if wt.get("where") == "sdram":
        print(f"  weights go to SDRAM: {wt['why']}; image {wt['external_image']} "
              f"(sha256 {wt['external_sha256'][:16]}...), {wt['wloads']} WLOADs")
        print("  Verilog: the WLOAD engine streams them through the burst port `mem` "
              "(`spikegate verify` serves it from the image)")
    if rep["predicted_cycles"]:
        print(f"  predicted cycles per inference ({rep['predicted_on']}): {rep['predicted_cycles']}")
    if rep.get("predicted_images_per_s"):
        print(f"  predicted images/s at the requested {rep['clock_mhz']:g} MHz: {rep['predicted_images_per_s']:,.2f} "
              f"({rep['images_per_s_from']})")
    est = rep["cycle_estimates"]
    print("  cycle estimate at firing rate " + ", ".join(f"{e['rate']}: {e['cycles']:,}" for e in est))
    return 0
