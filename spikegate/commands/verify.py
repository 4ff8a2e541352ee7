"""spikegate verify: emitted Verilog vs the golden model, under cocotb."""

from __future__ import annotations

from spikegate.commands._common import print_json


def register(sub):
    p = sub.add_parser("verify", help="simulate a build directory's Verilog and compare with the golden model")
    p.add_argument("build_dir")
    p.add_argument("--inputs", required=True, help="float32 .npy [B, C, H, W]")
    p.add_argument("--sim", default="verilator", help="verilator (default) or icarus")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)


def run(args):
    from spikegate.verify import verify

    r = verify(args.build_dir, args.inputs, sim=args.sim)
    if args.json:
        print_json(r)
    else:
        print(f"{r['samples']} samples on {r['sim']}: {'BIT-EXACT' if r['bit_exact'] else 'MISMATCH'}")
        print(f"  cycles measured  {r['cycles']}")
        print(f"  cycles predicted {r['predicted_cycles']}")
        for m in r["mismatches"]:
            where = m.get("layer", "logits only")
            extra = ""
            if "time_step" in m:
                extra = f", time step {m['time_step']}, neuron {m['neuron']} (RTL {m['rtl_spike']}, golden {m['golden_spike']})"
            print(f"  sample {m['sample']}: first difference at {where}{extra}")
    return 0 if r["bit_exact"] else 1
