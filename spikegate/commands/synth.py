"""spikegate synth: a compiled build directory -> a bitstream for a board, with utilisation and Fmax.

The flow itself (checks, the board top, the yowasp tools, ``synth.json``) is
``spikegate.board_targets.flow``; this verb parses the arguments, gives the flow the compiler's
core loader (the board package does not import the compiler) and prints the summary. It exits
non-zero with one line when the flow fails (no fit, a tool error, timing not met).
"""

from __future__ import annotations

import os

from spikegate.commands._common import print_json
from spikegate.errors import SpikegateError


def register(sub):
    import argparse

    from spikegate.board_targets import known_boards
    from spikegate.commands._common import one_of

    p = sub.add_parser("synth", help="synthesise, place and route a build directory for a board",
                       description="Synthesise, place and route a build directory for a board.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  spikegate compile m.sgir --target icebreaker -o build/ && "
                              "spikegate synth build/ --board icebreaker")
    p.add_argument("build_dir", metavar="BUILD_DIR", help="build directory from `spikegate compile`")
    p.add_argument("--board", required=True, **one_of("board", known_boards()),
                   help=f"board name: {', '.join(known_boards())}")
    p.add_argument("--seed", default="1", help="nextpnr placement seed (default 1)")
    p.add_argument("--clock-mhz", help="accelerator clock (default: report.json clock_mhz, else the "
                                       "board's)")
    p.add_argument("--baud", help="host UART baud rate (default: the board's: 115200, the ULX3S 3000000)")
    p.add_argument("--json", action="store_true", help="print synth.json")
    p.set_defaults(func=run)


def compiled_core(build_dir: str):
    """The core of a compiled build directory (``spikegate.compiler.build.load_core``), or one line
    saying why it cannot be built (the compiler or the hardware generator is not installed)."""
    try:
        from spikegate.compiler.build import load_core
        return load_core(build_dir)
    except ImportError as e:
        raise SpikegateError(f"{build_dir}: cannot build its core: {e}") from None


def run(args):
    from spikegate.board_targets.flow import synthesize
    from spikegate.commands._common import positive_int

    seed = positive_int("--seed", 1, 2**31 - 1)(args.seed)
    baud = positive_int("--baud", 300, 12_000_000)(args.baud) if args.baud is not None else None
    clock = None
    if args.clock_mhz is not None:
        try:
            clock = float(args.clock_mhz)
        except ValueError:
            raise SpikegateError(f"--clock-mhz must be a number, not {args.clock_mhz!r}") from None
        if not 1 <= clock <= 500:
            raise SpikegateError(f"--clock-mhz must be in 1..500, not {args.clock_mhz}")
    result = synthesize(args.build_dir, args.board, load_core=compiled_core, seed=seed,
                        clock_mhz=clock, baud=baud)
    if args.json:
        print_json(result)
        return 0
    print(summary(result, args.build_dir))
    return 0


def summary(r: dict, build_dir: str) -> str:
    def row(name, key):
        u = r[key]
        pct = f"  ({100 * u['used'] / u['available']:.1f}%)" if u["available"] else ""
        return f"  {name:<6}{u['used']:>8,} / {u['available']:,}{pct}"

    clock = f"{r['clock_mhz']:g} MHz" + (f" (PLL from {r['oscillator_mhz']:g} MHz)" if r["pll"] else "")
    lines = [f"{r['board']} ({r['device']} {r['package']}): timing met, Fmax {r['fmax_mhz']:.2f} MHz "
             f"for {clock}",
             row("LUTs", "luts"), row("FFs", "ffs"), row("BRAM", "bram"), row("SPRAM", "spram"),
             row("DSP", "dsp"),
             f"  UART  {r['baud']} baud (divisor {r['uart_divisor']})",
             *([f"  weights runtime-loaded (SPRAM): `spikegate run --build` uploads them"]
               if r.get("weights") == "runtime-loaded" else []),
             f"  bitstream {os.path.join(build_dir, r['bitstream'])}  sha256 {r['bitstream_sha256'][:16]}...  "
             f"({r['seconds']:.0f} s)"]
    return "\n".join(lines)
