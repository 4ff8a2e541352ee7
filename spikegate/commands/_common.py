"""Argument helpers shared by the verbs."""

from __future__ import annotations

import contextlib
import json
import sys
import time

from spikegate.errors import SpikegateError


def positive_int(name: str, lo: int = 1, hi: int | None = None):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise SpikegateError(f"{name} must be an integer, not {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            raise SpikegateError(f"{name} must be in {rng}, not {v}")
        return v
    return parse


def checked_int(args, attr: str, name: str, lo: int = 1, hi: int | None = None):
    """Validate an optional integer option after parsing (so the error goes through main())."""
    v = getattr(args, attr)
    if v is None:
        return None
    return positive_int(name, lo, hi)(str(v))


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=1)
    sys.stdout.write("\n")


def add_verb(sub, name: str, help: str, examples: list[str] | str, description: str | None = None):
    """A verb's sub-parser with its one-line help and, in ``NAME --help``, worked examples."""
    import argparse

    examples = [examples] if isinstance(examples, str) else examples
    epilog = "example" + ("s" if len(examples) > 1 else "") + ":\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(name, help=help, description=description or help[:1].upper() + help[1:] + ".",
                          epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)


@contextlib.contextmanager
def steps(verb: str, quiet: bool = False):
    """Show which step of a long verb is running and for how long: one status line on stderr,
    on a terminal only (never in pipes, captured output or with ``--json``). Yields ``step(name)``.
    """
    from spikegate import progress

    def nothing(name: str) -> None:
        pass

    if quiet:
        yield nothing
        return
    bar = progress.bar(None, verb, unit="s", bar_format="{desc}  {elapsed}")
    if bar.disable:
        bar.close()
        yield nothing
        return

    def step(name: str) -> None:
        bar.set_description_str(f"{verb}: {name}", refresh=True)

    try:
        with progress.poll(lambda: int(time.monotonic() * 2), lambda _: bar.refresh()):
            yield step
    finally:
        bar.close()


def embedded_names() -> list[str]:
    from spikegate.quantize.checkpoint import EMBEDDED_CHECKPOINTS

    return list(EMBEDDED_CHECKPOINTS)


def check_model_arg(path: str, what: str = "") -> str:
    """A checkpoint argument that is neither a file nor an embedded name: say which names exist."""
    import os

    if path and not os.path.exists(path) and path not in embedded_names():
        name = f"{what} {path}".strip()
        raise SpikegateError(f"{name}: no such file, nor an embedded model (embedded: "
                             f"{', '.join(embedded_names())}; `spikegate models` lists them)")
    return path


def checkpoint_input_range(ck) -> tuple[float, float] | None:
    """The value range of the data a checkpoint was trained on, if its arguments name a known set."""
    from spikegate.quantize.data import DATASETS

    data = (getattr(ck, "args", None) or {}).get("data")
    return DATASETS[data].value_range if data in DATASETS else None


def ir_input_range(g) -> tuple[tuple[float, float], str]:
    """(range, wording) of the inputs an IR expects (:func:`spikegate.api.input_range`)."""
    from spikegate.api import input_range

    return input_range(g)


class ClosedSet(list):
    """The names an option accepts, as argparse ``choices``: listed in the help and visible to
    completion, but checked after parsing by :func:`check_choices` so that an unknown name ends
    like every other user error (one line through ``main``, exit 2) with spikegate's wording."""

    def __init__(self, kind: str, names, message: str):
        super().__init__(names)
        self.kind, self.message = kind, message

    def __contains__(self, value) -> bool:  # argparse's own check lets everything through
        return True


def one_of(kind: str, names, metavar: str | None = None,
           message: str = "unknown {kind} {value!r}; known {kind}s: {names}") -> dict:
    """``add_argument`` keywords for a closed set of names (see :class:`ClosedSet`)."""
    return {"choices": ClosedSet(kind, names, message), "metavar": metavar or kind.upper().replace(" ", "_")}


def check_choices(parser, args) -> None:
    """Raise the one-line error for an option given a name outside its :class:`ClosedSet`."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            verb = action.choices.get(getattr(args, action.dest, None) or "")
            if verb is not None:
                check_choices(verb, args)
        elif isinstance(action.choices, ClosedSet):
            value = getattr(args, action.dest, None)
            if value is not None and value not in list(action.choices):
                c = action.choices
                opt = action.option_strings[0] if action.option_strings else action.metavar
                raise SpikegateError(c.message.format(opt=opt, kind=c.kind, value=value,
                                                      names=", ".join(c)))
