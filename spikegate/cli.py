"""The ``spikegate`` command line.

Each verb lives in its own module under ``spikegate.commands`` and exposes ``register(sub)``, which
adds its sub-parser and sets ``func``. User errors (``SpikegateError``) end as one line on stderr
and exit status 2; nothing else is caught here, so a traceback always means a spikegate bug.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from spikegate import __version__
from spikegate.commands._common import check_choices
from spikegate.errors import SpikegateError

# Order is the order of `spikegate --help`.
VERB_MODULES = [
    "models", "data", "info", "init", "infer", "train", "export_onnx",
    "quantize", "ir", "golden", "eval", "stats",
    "compile", "verify", "synth", "run", "sweep",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other user error
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="spikegate",
                     description="Meta-SpikeFormer checkpoints to bit-exact, verified FPGA accelerators.")
    parser.add_argument("--version", action="version", version=f"spikegate {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", parser_class=_Parser)
    for name in VERB_MODULES:
        try:
            mod = importlib.import_module(f"spikegate.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"spikegate.commands.{name}":
                continue  # verb not built yet
            raise
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        check_choices(parser, args)
        rc = args.func(args)
    except SpikegateError as e:
        print(f"spikegate {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. `spikegate info --json | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print(f"spikegate {args.verb}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
