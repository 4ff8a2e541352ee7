"""The compiler's own targets, the ones that are not boards, and resolving a target argument.

A :class:`~spikegate.machine.target.Target` is pure data (``machine/target.py``). Board targets
come from their board records (``spikegate.board_targets``: ``Board.target``,
``compile_target(name)``); the compiler never imports a board, so callers that start from a board
name (the CLI's ``--target``) resolve it there and hand the compiler the Target. The compiler itself
resolves only the names below: ``sim`` is for simulation (generous on-chip memory), ``large``
models an accelerator with 64 Mbit on chip and 1 GiB of external memory behind the same port and
timing as the ULX3S's SDRAM (``compiler/cycle_model.py: EXTERNAL_TIMING``), for sizing the paper
presets: weights that do not fit on chip are streamed from there (``passes/external_weights.py``).
"""

from __future__ import annotations

from spikegate.errors import SpikegateError
from spikegate.machine.target import Target

__all__ = ["Target", "TARGETS", "get_target", "resolve_target"]

# name -> Target of every target that is not a board
TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("sim", "simulation only: 64 Mbit on-chip, no logic limit", "sim", 100.0, 10**9, 10**9,
           64 * 2**20, 10**6, 0, 10**6, default_lanes=8),
    Target("large", "sizing target: 64 Mbit on chip, 1 GiB external memory like the ULX3S's SDRAM (paper presets)", "sim", 200.0, 10**9, 10**9,
           64 * 2**20, 10**6, 0, 10**6, external_bits=8 * 2**30, default_lanes=32),
]}


def get_target(name: str) -> Target:
    """The compiler's own target ``name`` (``sim`` or ``large``)."""
    try:
        return TARGETS[name]
    except KeyError:
        raise SpikegateError(f"unknown target {name!r}; the compiler's own targets are "
                              f"{', '.join(TARGETS)} (a board's Target comes from "
                              f"spikegate.board_targets.compile_target)") from None


def resolve_target(target: Target | str) -> Target:
    """``target`` itself if it is a Target, else the compiler's own target of that name."""
    return target if isinstance(target, Target) else get_target(target)
