"""Argument helpers shared by the verbs."""

from __future__ import annotations

import json
import sys

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
