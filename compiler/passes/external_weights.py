"""Pass: a Program with its weights on chip -> the same program with its weights in external memory.

When a target's block RAM cannot hold the weights but the target has external memory (the ULX3S's
32 MB SDRAM: ``Target.external_bits``), the compiler (``compiler/build.py: compile_ir``) moves
them there: each CONV and HEAD gets a WLOAD before it that copies exactly its weight words from
the external image into an on-chip WMEM buffer at word 0, and reads them there (its ``wbase``
becomes 0). The buffer is as deep as the largest layer's words, so the on-chip budget counts that
layer, not all the weights; the external image holds every layer's words PACKED (``word_bits`` =
``lanes * weight_bits`` bits each, no padding to a beat except at the end of a layer), in program
order, each layer starting on a beat boundary (``machine/external_memory.py: pack_words``, for WMEM rows
vectorised as ``pack_rows``; ``docs/accelerator.md``, "WLOAD").

Each weight crosses the port once per image: the layers run over all T time steps with their
weights resident. When that buffer does not fit on chip beside the other memories,
:func:`place_external` makes it as deep as the free on-chip memory allows and runs every layer
larger than it in output-channel tiles: ordinary CONVs of a run of output channels, one per time
step, each after a WLOAD of just its words (then each weight crosses the port once per image and
time step; ``docs/accelerator.md``, "Output-channel tiling").
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikegate.machine.external_memory import pack_rows
from spikegate.machine.program import (IN_INT, LANES_CO, LANES_TAP, OP_HEAD, OP_WLOAD, Instr, Program,
                                       validate_program, wmem_reads)

from .budget import BudgetError, buffer_words_that_fit, on_chip_fits


def largest_layer(p: Program) -> tuple[str, int]:
    """``(name, words)`` of the CONV/HEAD reading the most WMEM words (the buffer's depth)."""
    return max(((ins.name, wmem_reads(p, ins)) for ins in p.instrs if wmem_reads(p, ins)),
               key=lambda t: t[1], default=("", 1))


def _tile_rows(p: Program, ins: Instr, c0: int, c1: int) -> np.ndarray:
    """The WMEM rows of output channels ``[c0, c1)`` of the CONV ``ins`` (``c0`` a multiple of the
    lanes for LANES_CO), in the layout a CONV of ``c1 - c0`` channels reads from its ``wbase``:
    LANES_CO words are ``[cin][ky][kx][group]`` (``iss._unpack_conv``), so a tile is a slice of
    the group axis; LANES_TAP words are ``[channel][tap group]``, a tile a run of channels."""
    P, n = p.lanes, wmem_reads(p, ins)
    rows = np.asarray(p.wmem[ins.wbase: ins.wbase + n])
    if ins.lane_mode == LANES_CO:
        G = -(-ins.cout // P)
        return rows.reshape(ins.cin, ins.k, ins.k, G, P)[:, :, :, c0 // P: -(-c1 // P)].reshape(-1, P)
    Gt = -(-ins.k * ins.k // P)
    return rows[c0 * Gt: c1 * Gt]


def _tiles(p: Program, ins: Instr, buffer_words: int) -> list[tuple[int, int]]:
    """Output-channel tiles ``[c0, c1)`` of the CONV ``ins`` whose weights fill at most
    ``buffer_words`` words each (as many channels as fit, the last tile shorter); a layer that
    cannot hold even one lane group (LANES_CO) or one channel (LANES_TAP) is a :class:`BudgetError`."""
    P = p.lanes
    if ins.lane_mode == LANES_CO:
        unit, per = P, ins.cin * ins.k * ins.k            # channels per lane group, its words
    else:
        unit, per = 1, -(-ins.k * ins.k // P)
    units = buffer_words // per
    if units < 1:
        raise BudgetError(f"layer {ins.name}: one output-channel tile ({unit} channel(s)) needs {per:,} words of "
                          f"weights, the on-chip buffer the target leaves holds {buffer_words:,}: quantize with "
                          f"fewer --weight-bits, use fewer lanes or a smaller model")
    step = units * unit
    return [(c0, min(c0 + step, ins.cout)) for c0 in range(0, ins.cout, step)]


def _tile_instrs(ins: Instr, c0: int, c1: int) -> list[Instr]:
    """The CONV ``ins`` restricted to output channels ``[c0, c1)``, one instruction per time step
    (tensors are ``[t][c][y][x]``, so a tile's time steps are not contiguous): ``T = 1``, reading
    frame ``t`` of the input (frame 0 for a broadcast input, ``src2 = 1``; LANES_TAP: its channels
    ``[c0, c1)``), writing channels ``[c0, c1)`` of frame ``t``, with the tile's bias/shift entries.
    OUT_ACCUM adds per element, so a tile keeps it."""
    n_in, n_out = ins.cin * ins.h * ins.w, ins.cout * ins.ho * ins.wo
    out = []
    for t in range(ins.T):
        src = ins.src + (0 if ins.src2 else t * n_in)
        cin = ins.cin
        if ins.lane_mode == LANES_TAP:
            src, cin = src + c0 * ins.h * ins.w, c1 - c0
        out.append(dataclasses.replace(ins, T=1, src=src, cin=cin, cout=c1 - c0, wbase=0, pbase=ins.pbase + c0,
                                       dst=ins.dst + t * n_out + c0 * ins.ho * ins.wo))
    return out


def _check_tileable(p: Program, ins: Instr) -> None:
    """A layer the tiling would change: a HEAD (its classes would need an ACC offset the ISA
    lacks), a depthwise CONV whose input and output channels differ, or a CONV whose output
    overlaps its input (a later tile would read what an earlier one wrote). One line naming it."""
    if ins.opcode == OP_HEAD:
        raise BudgetError(f"layer {ins.name}: the classifier head's weights ({wmem_reads(p, ins):,} words) do not fit "
                          f"the on-chip weight buffer, and tiling its classes needs an ACC offset the ISA lacks: "
                          f"use fewer classes, fewer --weight-bits or a bigger target")
    if ins.lane_mode == LANES_TAP and ins.cin != ins.cout:
        raise BudgetError(f"layer {ins.name}: a depthwise CONV with {ins.cin} input and {ins.cout} output channels "
                          f"cannot be tiled by channel groups")
    n_src = ins.cin * ins.h * ins.w * (1 if ins.src2 else ins.T)
    same_mem = ins.in_kind == IN_INT
    if same_mem and ins.src < ins.dst + ins.cout * ins.ho * ins.wo * ins.T and ins.dst < ins.src + n_src:
        raise BudgetError(f"layer {ins.name}: its output overlaps its input in ACT, which output-channel tiles "
                          f"cannot run in place")


def external_weights(p: Program, port_bits: int, buffer_words: int | None = None) -> Program:
    """``p`` (weights on chip, no WLOAD) with its weights in an external image of ``port_bits``-wide
    beats: a WLOAD before every CONV/HEAD into an on-chip WMEM buffer at word 0.

    ``buffer_words`` None: the buffer holds the largest layer, every layer loads once. Otherwise
    the buffer holds at most ``buffer_words``: a layer that fits loads whole, a larger CONV runs in
    output-channel tiles (:func:`_tiles`, :func:`_tile_instrs`), each tile and time step with its
    own WLOAD of just its words (a tile's words are in the image once, its T WLOADs read the same
    beats); the buffer is then as deep as the largest WLOAD. Validated; ``p`` is not changed."""
    if p.external or any(i.opcode == OP_WLOAD for i in p.instrs):
        raise ValueError("external_weights: the program's weights are in external memory already")
    instrs: list[Instr] = []
    beats: list[np.ndarray] = []
    top = 0

    def load(rows: np.ndarray) -> int:
        nonlocal top
        beats.append(pack_rows(rows, p.weight_bits, port_bits))
        top += len(beats[-1])
        return top - len(beats[-1])

    for ins in p.instrs:
        n = wmem_reads(p, ins)
        if not n:
            instrs.append(ins)
        elif buffer_words is None or n <= buffer_words:
            src = load(p.wmem[ins.wbase: ins.wbase + n])
            instrs += [Instr.wload(src, n, 0, name=ins.name, tag=ins.tag), dataclasses.replace(ins, wbase=0)]
        else:
            _check_tileable(p, ins)
            for c0, c1 in _tiles(p, ins, buffer_words):
                rows = _tile_rows(p, ins, c0, c1)
                src = load(rows)
                for tile in _tile_instrs(ins, c0, c1):
                    instrs += [Instr.wload(src, len(rows), 0, name=ins.name, tag=ins.tag), tile]
    words = max([i.n_words for i in instrs if i.opcode == OP_WLOAD], default=1)
    return validate_program(dataclasses.replace(
        p, instrs=instrs, wmem=np.zeros((words, p.lanes), dtype=np.int64),
        wmem_external=np.concatenate(beats) if beats else np.zeros(0, dtype=np.uint64), port_bits=port_bits))


def tiled_layers(ext: Program) -> list[str]:
    """The layers of a program with external weights that run in output-channel tiles (more than
    one WLOAD), in program order."""
    names = [i.name for i in ext.instrs if i.opcode == OP_WLOAD]
    return [n for n in dict.fromkeys(names) if names.count(n) > 1]


def place_external(p: Program, t, port_bits: int) -> Program:
    """``p`` with its weights in the target ``t``'s external memory: whole layers in a buffer of
    the largest layer if that fits on chip beside the other memories; else the buffer as deep as
    the free on-chip memory allows (``budget.buffer_words_that_fit``), the layers larger than it in
    output-channel tiles. Tiles add instructions (a larger program ROM), so the buffer is sized
    again on the tiled program until it fits. The result is ``external_weights(p, port_bits,
    len(result.wmem))`` (the buffer's depth gives the tiling back: ``build.read_build`` rebuilds
    it from ``report.json``'s ``buffer_words``). If even the other memories do not fit, the
    whole-layer program is returned for ``check_budget``'s table."""
    ext = external_weights(p, port_bits)
    words = buffer_words_that_fit(ext, t)
    if on_chip_fits(ext, t) or words < 1:
        return ext
    sized = ext
    for _ in range(8):
        sized = external_weights(p, port_bits, words)
        while len(sized.wmem) < words:       # the tiling the buffer's own depth gives (read_build's)
            words = len(sized.wmem)
            sized = external_weights(p, port_bits, words)
        if on_chip_fits(sized, t):
            return sized
        words = buffer_words_that_fit(sized, t)  # the tiles' instructions took program memory
        if words < 1:
            break
    name, n = largest_layer(ext)
    raise BudgetError(f"layer {name}: its weights ({n:,} words of {p.lanes * p.weight_bits} bits) do not fit the "
                      f"on-chip weight buffer of {t.name} beside the other memories, nor do output-channel tiles "
                      f"(their {len(sized.instrs) - len(ext.instrs):,} extra instructions need program memory too): "
                      f"quantize with fewer --weight-bits or use a smaller model")
