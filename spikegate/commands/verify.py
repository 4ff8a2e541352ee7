"""spikegate verify: emitted Verilog vs the golden model, under cocotb."""

from __future__ import annotations

from spikegate.commands._common import add_verb, one_of, print_json

SIMS = ("verilator", "icarus")      # (spikegate.verify.SIMS; not imported here: the CLI loads lazily)


def _probability(name: str):
    def parse(text) -> float:
        from spikegate.errors import SpikegateError
        try:
            v = float(text)
        except ValueError:
            raise SpikegateError(f"{name} must be a probability in [0, 1), not {text!r}") from None
        if not 0.0 <= v < 1.0:
            raise SpikegateError(f"{name} must be a probability in [0, 1), not {v}")
        return v
    return parse


def register(sub):
    p = add_verb(sub, "verify", "simulate a build directory's Verilog and compare with the golden model", [
        "spikegate data digits --count 4 -o x.npy && spikegate verify build/ --inputs x.npy",
        "spikegate verify build/ --inputs x.npy --sim icarus --no-stalls --json",
        "spikegate verify build/ --inputs x1.npy --waves run.vcd   # then: gtkwave run.vcd"],
        description="Simulate a build directory's Verilog under cocotb and compare, image by image, the\n"
                    "logits and every LIF layer's spike map with the golden model, and the measured cycles\n"
                    "with the cycle model (exactly, the testbench's idle and back-pressure cycles excluded).\n"
                    "On a mismatch it simulates the first differing image once more, observing every memory\n"
                    "write, and names the first instruction whose result in the RTL's memories differs: its\n"
                    "op, time step, channel, position, and the RTL's and the golden model's values.\n"
                    "Exit 0 when bit-exact, 1 on a mismatch, 2 on bad input.")
    p.add_argument("build_dir", metavar="BUILD_DIR", help="build directory from `spikegate compile`")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="float32 images [B, C, H, W] (e.g. from `spikegate data`)")
    p.add_argument("--sim", default="verilator", **one_of("simulator", SIMS, metavar="SIM"),
                   help="RTL simulator: verilator (default, fast) or icarus")
    p.add_argument("--idle", default="0.2", metavar="P",
                   help="probability of 1..3 idle cycles before each pixel (default 0.2); the cycles "
                        "compared exclude them (the cycle model counts a stall-free stream)")
    p.add_argument("--backpressure", default="0.2", metavar="P",
                   help="probability of `ready` low on the logit stream in a cycle a logit is offered "
                        "(default 0.2); excluded from the compared cycles likewise")
    p.add_argument("--no-stalls", action="store_true",
                   help="no idle pixels and no back-pressure (same as --idle 0 --backpressure 0)")
    p.add_argument("--memory", default="deterministic", **one_of("memory timing", ("deterministic", "random"),
                                                                  metavar="MODE"),
                   help="for a build whose weights live in SDRAM: the burst port's memory, deterministic "
                        "(default: the cycle model's, so the cycles must equal the prediction) or random "
                        "(latency, beat gaps and stalled commands from the seed: bit-exactness only)")
    p.add_argument("--seed", type=int, metavar="N",
                   help="seed of the idle and back-pressure draws (default: a fresh one, printed)")
    p.add_argument("--waves", metavar="FILE.vcd",
                   help="write a VCD waveform of every signal of the run into FILE.vcd (Verilator "
                        "only; builds a traced simulator beside the plain one; about 7 MB per thousand "
                        "cycles: fpga-tiny-t2's one image of 35k cycles makes 237 MB, so give one image)")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON (the keys of `spikegate.verify.verify`; among them, "
                        "per run: `ops`, each sample's SOPs + MACs from the golden model, `lanes`, and "
                        "`utilisation` = sum(ops) / (lanes x sum(cycles)))")
    p.set_defaults(func=run)


def run(args):
    from spikegate.io import check_output_path
    from spikegate.verify import verify

    if args.waves:
        check_output_path(args.waves, "file", "--waves")
    # (checked here, not as argparse types, so that a bad value ends through main(): one line, exit 2)
    idle, bp = _probability("--idle")(args.idle), _probability("--backpressure")(args.backpressure)
    if args.no_stalls:
        idle = bp = 0.0
    r = verify(args.build_dir, args.inputs, sim=args.sim, idle=idle, backpressure=bp, seed=args.seed,
               waves=args.waves, memory=args.memory)
    if args.json:
        print_json(r)
        return 0 if r["bit_exact"] else 1
    for line in summary(r):
        print(line)
    return 0 if r["bit_exact"] else 1


def summary(r: dict) -> list[str]:
    """The result for a person: one fact per line."""
    bad = len(r["mismatches"])
    lines = [f"{r['samples']} samples on {r['sim']}: " + ("BIT-EXACT" if r["bit_exact"] else
                                                           f"MISMATCH in {bad} of {r['samples']}"),
             f"  seed {r['seed']} (idle {r['idle']}, back-pressure {r['backpressure']}; "
             f"stall cycles per image {[i + b for i, b in zip(r['idle_cycles'], r['backpressure_cycles'])]})",
             f"  cycles measured  {r['cycles']} (stalls excluded)",
             f"  cycles predicted {r['predicted_cycles']}"
             + ("  (random memory timing: not comparable)" if r.get("memory") == "random" else
                "" if r["cycles"] == r["predicted_cycles"] else "  DIFFER"),
             f"  ops (SOPs + MACs) {r['ops']}; utilisation {r['utilisation']:.3f} at {r['lanes']} "
             f"lane{'s' if r['lanes'] != 1 else ''} (sum of ops / (lanes x sum of cycles))"]
    if r.get("waves"):
        lines.append(f"  waveform {r['waves']}")
    for m in r["mismatches"]:
        where = m.get("layer", "logits only")
        extra = ""
        if "time_step" in m:
            extra = (f", time step {m['time_step']}, neuron {m['neuron']} "
                     f"(RTL {m['rtl_spike']}, golden {m['golden_spike']})")
        lines.append(f"  sample {m['sample']}: first differing spike map: {where}{extra}")
    d = r.get("first_difference")
    if d:
        s = f"  sample {d['sample']}:"
        if d.get("instruction") is None:
            lines.append(f"{s} first differing instruction: none ({d['detail']})")
            return lines
        lines.append(f"{s} first differing instruction: #{d['instruction']} {d.get('op')} {d.get('layer')}")
        for key, label in (("time_step", "time step"), ("channel", "channel"), ("position", "position (y, x)"),
                           ("memory", "memory"), ("address", "address"), ("rtl", "RTL value"),
                           ("golden", "golden value"), ("differing_values", "differing values in it"),
                           ("detail", "note")):
            if key in d:
                v = d[key]
                lines.append(f"{s} {label}: {'-' if v is None else v}")
    return lines
