"""Pass: depthwise CONVs in channel tiles, so that the ACC banks fit on chip with the weights.

A depthwise CONV (LANES_TAP) spreads each spike's taps over the lanes, so every ACC bank holds
every channel's output pixels (``machine/program.py: acc_reads``: ``cout * ho * wo`` words per
bank), where a dense one (LANES_CO) holds one lane group's. At many lanes the banks multiply: the
default model at 32 lanes needs 32 banks of 2,048 words, 96 of the ULX3S's 208 block RAMs, and its
memories then miss the chip by four. Running the depthwise layers in runs of channels (each tile an
ordinary CONV of ``c1 - c0`` channels, its weights at ``wbase + c0 * Gt`` where they already are,
``passes/external_weights.py: _tile_instrs``) bounds the banks' depth at ``acc_words`` for the cost
of a few cycles of fetch and drain per tile, and keeps the weights on chip. ``compiler/build.py:
place_weights`` tries it before sending the weights to external memory; ``read_build`` rebuilds
the tiling from ``report.json``'s ``memories.acc_words``.
"""

from __future__ import annotations

import dataclasses

from spikegate.machine.program import LANES_TAP, OP_CONV, Instr, Program, acc_reads

from .budget import BudgetError, on_chip_fits
from .external_weights import _check_tileable, _tile_instrs, _tiles

__all__ = ["acc_tiled", "acc_tiled_to_fit"]


def acc_tiled(p: Program, acc_words: int) -> Program | None:
    """``p`` with every depthwise CONV whose ACC words exceed ``acc_words`` in channel tiles of at
    most ``acc_words`` words per bank, and ``acc_words`` the largest need left; None when a dense
    CONV or a HEAD needs more than ``acc_words`` (only depthwise layers are tiled here). Not
    validated; ``p`` is not changed."""
    instrs: list[Instr] = []
    for ins in p.instrs:
        need = acc_reads(ins, p.lanes)
        if need <= acc_words:
            instrs.append(ins)
            continue
        if ins.opcode != OP_CONV or ins.lane_mode != LANES_TAP or acc_words < ins.ho * ins.wo:
            return None
        try:
            _check_tileable(p, ins)
        except BudgetError:
            return None
        words = -(-ins.k * ins.k // p.lanes)         # a depthwise channel's WMEM words (its tap groups)
        for c0, c1 in _tiles(p, ins, buffer_words=1 << 30, acc_words=acc_words):
            instrs += [dataclasses.replace(t, wbase=ins.wbase + c0 * words) for t in _tile_instrs(ins, c0, c1)]
    return dataclasses.replace(p, instrs=instrs, acc_words=max([1] + [acc_reads(i, p.lanes) for i in instrs]))


def acc_tiled_to_fit(p: Program, t) -> Program | None:
    """The deepest power-of-two ACC depth below ``p``'s at which :func:`acc_tiled` fits the target
    ``t`` on chip with the weights, as that program; None if none does."""
    d = 1 << max(0, (p.acc_words - 1).bit_length() - 1)
    while d >= 1:
        q = acc_tiled(p, d)
        if q is None:
            return None
        if on_chip_fits(q, t):
            return q
        d //= 2
    return None
