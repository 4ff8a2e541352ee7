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
time step; ``docs/accelerator.md``, "Output-channel tiling"). The same tiles bound the ACC banks: a
layer whose accumulators exceed the ACC depth the placement chose runs in tiles too (the paper
presets' depthwise convolutions need far more ACC than their weights need WMEM). A classifier head
larger than the buffer is tiled by input channels instead (its classes share the ACC words that
OUTPUT reads): every tile adds into the same logits.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikegate.machine.external_memory import beats_for, pack_rows
from spikegate.machine.program import (IN_INT, LANES_CO, LANES_TAP, OP_CONV, OP_HEAD, OP_WLOAD, WLOAD_MAX_WORDS, Instr,
                                       Program, acc_reads, validate_program, wmem_reads)

from .budget import WMEM_BANK_WORDS, BudgetError, deep_acc_pipeline, buffer_words_that_fit, on_chip_fits


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


def _tiles(p: Program, ins: Instr, buffer_words: int, acc_words: int) -> list[tuple[int, int]]:
    """Output-channel tiles ``[c0, c1)`` of the CONV ``ins`` whose weights fill at most
    ``buffer_words`` words and whose accumulators at most ``acc_words`` words per ACC bank each (as
    many channels as fit, the last tile shorter); a layer that cannot hold even one lane group
    (LANES_CO) or one channel (LANES_TAP) is a :class:`BudgetError`."""
    P = p.lanes
    if ins.lane_mode == LANES_CO:
        unit, per = P, ins.cin * ins.k * ins.k            # channels per lane group, its words
    else:
        unit, per = 1, -(-ins.k * ins.k // P)
    if buffer_words // per < 1:
        raise BudgetError(f"layer {ins.name}: one output-channel tile ({unit} channel(s)) needs {per:,} words of "
                          f"weights, the on-chip buffer the target leaves holds {buffer_words:,}: quantize with "
                          f"fewer --weight-bits, use fewer lanes or a smaller model")
    if acc_words // (ins.ho * ins.wo) < 1:
        raise BudgetError(f"layer {ins.name}: one output-channel tile needs {ins.ho * ins.wo:,} accumulators per "
                          f"ACC bank (one per output pixel), the target leaves room for {acc_words:,}: use a "
                          f"smaller input size or a smaller model")
    units = min(buffer_words // per, acc_words // (ins.ho * ins.wo))
    step = units * unit
    return [(c0, min(c0 + step, ins.cout)) for c0 in range(0, ins.cout, step)]


def _tile_instrs(ins: Instr, c0: int, c1: int) -> list[Instr]:
    """The CONV ``ins`` restricted to output channels ``[c0, c1)``, one instruction per time step
    (tensors are ``[t][c][y][x]``, so a tile's time steps are not contiguous): ``T = 1``, reading
    frame ``t`` of the input (frame 0 for a broadcast input, ``src2 = 1``; LANES_TAP: its channels
    ``[c0, c1)``), writing channels ``[c0, c1)`` of frame ``t``, with the tile's bias/shift entries.
    OUT_ACCUM adds per element, so a tile keeps it; so does ``fire`` (its spikes at the tile's channels).""" 
    n_in, n_out = ins.cin * ins.h * ins.w, ins.cout * ins.ho * ins.wo
    out = []
    for t in range(ins.T):
        src = ins.src + (0 if ins.src2 else t * n_in)
        cin = ins.cin
        if ins.lane_mode == LANES_TAP:
            src, cin = src + c0 * ins.h * ins.w, c1 - c0
        out.append(dataclasses.replace(ins, T=1, src=src, cin=cin, cout=c1 - c0, wbase=0, pbase=ins.pbase + c0,
                                       dst=ins.dst + t * n_out + c0 * ins.ho * ins.wo,
                                       src3=ins.src3 + t * n_out + c0 * ins.ho * ins.wo if ins.fire else ins.src3))
    return out


def _head_tiles(p: Program, ins: Instr, buffer_words: int) -> list[tuple[int, int]]:
    """Input-channel tiles ``[c0, c1)`` of the HEAD ``ins`` whose weights (``G`` words per input
    channel, ``passes/pack.py``) fill at most ``buffer_words`` words each."""
    G = -(-ins.cout // p.lanes)
    per = buffer_words // G
    if per < 1:
        raise BudgetError(f"layer {ins.name}: one input channel of the classifier head needs {G:,} words of "
                          f"weights, the on-chip buffer the target leaves holds {buffer_words:,}: use fewer "
                          f"classes, fewer --weight-bits or a bigger target")
    return [(c0, min(c0 + per, ins.cin)) for c0 in range(0, ins.cin, per)]


def _head_tile_instrs(ins: Instr, c0: int, c1: int, zero_pbase: int) -> list[Instr]:
    """The HEAD ``ins`` restricted to input channels ``[c0, c1)``, one instruction per time step
    (spikes are ``[t][c]``). Every tile adds into the same ACC words (the logits: HEAD accumulates,
    OUTPUT clears), so the class biases, which HEAD adds once per time step, come with the first
    tile of each step; the others read ``zero_pbase``, a block of zero biases."""
    return [dataclasses.replace(ins, T=1, src=ins.src + t * ins.cin + c0, cin=c1 - c0, wbase=0,
                                pbase=ins.pbase if c0 == 0 else zero_pbase) for t in range(ins.T)]


def _check_tileable(p: Program, ins: Instr) -> None:
    """A layer the tiling would change: a depthwise CONV whose input and output channels differ, or
    a CONV whose output overlaps its input (a later tile would read what an earlier one wrote). One
    line naming it."""
    if ins.lane_mode == LANES_TAP and ins.cin != ins.cout:
        raise BudgetError(f"layer {ins.name}: a depthwise CONV with {ins.cin} input and {ins.cout} output channels "
                          f"cannot be tiled by channel groups")
    n_src = ins.cin * ins.h * ins.w * (1 if ins.src2 else ins.T)
    same_mem = ins.in_kind == IN_INT
    if same_mem and ins.src < ins.dst + ins.cout * ins.ho * ins.wo * ins.T and ins.dst < ins.src + n_src:
        raise BudgetError(f"layer {ins.name}: its output overlaps its input in ACT, which output-channel tiles "
                          f"cannot run in place")


def external_weights(p: Program, port_bits: int, buffer_words: int | None = None,
                     acc_words: int | None = None, *, pack: bool = True) -> Program:
    """``p`` (weights on chip, no WLOAD) with its weights in an external image of ``port_bits``-wide
    beats: a WLOAD before every CONV/HEAD into an on-chip WMEM buffer at word 0.

    ``buffer_words`` None: the buffer holds the largest layer, every layer loads once (up to
    ``WLOAD_MAX_WORDS``, the most one WLOAD copies: a layer larger than that is tiled). Otherwise
    the buffer holds at most ``buffer_words``: a layer that fits loads whole, a larger CONV runs in
    output-channel tiles (:func:`_tiles`, :func:`_tile_instrs`), each tile and time step with its
    own WLOAD of just its words (a tile's words are in the image once, its T WLOADs read the same
    beats); the buffer is then as deep as the largest WLOAD. ``acc_words`` (None: no limit) bounds
    the ACC banks the same way: a CONV whose accumulators (``machine/program.py: acc_reads``) exceed it runs in
    tiles too, and the program's ``acc_words`` is the largest need left. Validated; ``p`` is not
    changed. ``pack=False``: the plan only, for sizing (:func:`place_external`): the same
    instructions and sizes, but the external image is all zeros and nothing is validated."""
    if p.external or any(i.opcode == OP_WLOAD for i in p.instrs):
        raise ValueError("external_weights: the program's weights are in external memory already")
    # no WLOAD copies more than its count field holds: a layer larger than that is tiled anyway
    buffer_words = WLOAD_MAX_WORDS if buffer_words is None else min(buffer_words, WLOAD_MAX_WORDS)
    instrs: list[Instr] = []
    beats: list[np.ndarray] = []
    top = 0
    zero_pbase, zero_entries = None, 0       # the zero biases of a tiled HEAD (_head_tile_instrs)

    def load(rows: np.ndarray) -> int:
        nonlocal top
        n = beats_for(len(rows), p.lanes * p.weight_bits, port_bits)
        if pack:
            beats.append(pack_rows(rows, p.weight_bits, port_bits))
            assert len(beats[-1]) == n
        top += n
        return top - n

    for ins in p.instrs:
        n = wmem_reads(p, ins)
        if not n:
            instrs.append(ins)
        elif n <= buffer_words and (acc_words is None or acc_reads(ins, p.lanes) <= acc_words):
            src = load(p.wmem[ins.wbase: ins.wbase + n])
            instrs += [Instr.wload(src, n, 0, name=ins.name, tag=ins.tag), dataclasses.replace(ins, wbase=0)]
        elif ins.opcode == OP_HEAD:
            G = -(-ins.cout // p.lanes)
            if zero_pbase is None:
                zero_pbase = len(p.bias)
            zero_entries = max(zero_entries, G * p.lanes)
            for c0, c1 in _head_tiles(p, ins, buffer_words):
                src = load(p.wmem[ins.wbase + c0 * G: ins.wbase + c1 * G])
                for tile in _head_tile_instrs(ins, c0, c1, zero_pbase):
                    instrs += [Instr.wload(src, (c1 - c0) * G, 0, name=ins.name, tag=ins.tag), tile]
        else:
            _check_tileable(p, ins)
            for c0, c1 in _tiles(p, ins, buffer_words, acc_words or acc_reads(ins, p.lanes)):
                rows = _tile_rows(p, ins, c0, c1)
                src = load(rows)
                for tile in _tile_instrs(ins, c0, c1):
                    instrs += [Instr.wload(src, len(rows), 0, name=ins.name, tag=ins.tag), tile]
    words = max([i.n_words for i in instrs if i.opcode == OP_WLOAD], default=1)
    acc = p.acc_words if acc_words is None else max([1] + [acc_reads(i, p.lanes) for i in instrs])
    zeros = np.zeros(zero_entries, dtype=np.int64)
    image = np.concatenate(beats) if beats else np.zeros(0 if pack else top, dtype=np.uint64)
    return (validate_program if pack else (lambda q: q))(dataclasses.replace(
        p, instrs=instrs, wmem=np.zeros((words, p.lanes), dtype=np.int64), acc_words=acc,
        bias=np.concatenate([np.asarray(p.bias, dtype=np.int64), zeros]),
        shift=np.concatenate([np.asarray(p.shift, dtype=np.int64), zeros]),
        wmem_external=image, port_bits=port_bits))


def tiled_layers(ext: Program) -> list[str]:
    """The layers of a program with external weights that run in output-channel tiles (more than
    one WLOAD), in program order."""
    names = [i.name for i in ext.instrs if i.opcode == OP_WLOAD]
    return [n for n in dict.fromkeys(names) if names.count(n) > 1]


def _acc_limits(ext: Program) -> list[int]:
    """ACC depths to try, largest first: the whole program's, then powers of two down to the
    smallest one every layer can still be tiled into (one lane group's or channel's output pixels;
    a HEAD's lane groups: its tiles split input channels, not classes)."""
    floor = max([1] + [i.ho * i.wo for i in ext.instrs if i.opcode == OP_CONV]
                + [acc_reads(i, ext.lanes) for i in ext.instrs if i.opcode == OP_HEAD])
    out, d = [ext.acc_words], 1 << (ext.acc_words.bit_length() - 1)
    while d >= floor:
        if d < out[-1]:
            out.append(d)
        d //= 2
    return out + ([floor] if floor < out[-1] else [])


def _sized(p: Program, t, port_bits: int, acc_words: int | None) -> Program | None:
    """The plan (``pack=False``) of ``p`` external with ACC at most ``acc_words`` deep and the
    deepest WMEM buffer that fits on chip beside the rest (the layers larger than either in tiles);
    None if none fits. Tiles add instructions (a larger program ROM), so a buffer is tried from the
    free memory of the untiled plan downwards (a banked WMEM one bank, ``WMEM_BANK_WORDS``, at a time). A layer
    that cannot be tiled that small is a :class:`BudgetError`."""
    sized = external_weights(p, port_bits, None, acc_words, pack=False)
    if on_chip_fits(sized, t):
        return sized
    words = buffer_words_that_fit(sized, t)
    while words >= 1:
        sized = external_weights(p, port_bits, words, acc_words, pack=False)
        while len(sized.wmem) < words:       # the tiling the buffer's own depth gives (read_build's)
            words = len(sized.wmem)
            sized = external_weights(p, port_bits, words, acc_words, pack=False)
        if on_chip_fits(sized, t):
            return sized
        step = WMEM_BANK_WORDS if deep_acc_pipeline(p.lanes) else 1     # banked WMEM grows a bank at a time
        words = min(buffer_words_that_fit(sized, t), (words - 1) // step * step)
    return None


def place_external(p: Program, t, port_bits: int) -> Program:
    """``p`` with its weights in the target ``t``'s external memory: whole layers in a buffer of
    the largest layer if that fits on chip beside the other memories; else, for each ACC depth of
    :func:`_acc_limits`, the buffer as deep as the free on-chip memory allows
    (``budget.buffer_words_that_fit``) and the layers larger than the buffer or ACC in
    output-channel tiles, keeping the fitting one the cycle model (``iss.estimate_cycles`` at a
    10 % spike rate) predicts fastest. The result is ``external_weights(p, port_bits,
    len(result.wmem), result.acc_words)`` (``build.read_build`` rebuilds the tiling from
    ``report.json``'s ``buffer_words`` and ``acc_words``). If even the memories besides WMEM and
    ACC do not fit, the whole-layer program is returned for ``check_budget``'s table."""
    from spikegate.compiler.iss import estimate_cycles

    ext = external_weights(p, port_bits)
    if on_chip_fits(ext, t):
        return ext
    fits, errors = [], []
    for a in _acc_limits(ext):
        try:
            fits.append(_sized(p, t, port_bits, a))
        except BudgetError as e:
            errors.append(e)
    fits = [q for q in fits if q is not None]
    if fits:
        best = min(fits, key=lambda q: estimate_cycles(q, 0.1)["cycles"])
        return external_weights(p, port_bits, len(best.wmem), best.acc_words)
    if errors:              # the shallowest ACC leaves the most room for weights: its reason
        raise errors[-1]
    if buffer_words_that_fit(external_weights(p, port_bits, None, _acc_limits(ext)[-1]), t) < 1:
        return ext
    name, n = largest_layer(ext)
    raise BudgetError(f"layer {name}: its weights ({n:,} words of {p.lanes * p.weight_bits} bits) do not fit the "
                      f"on-chip weight buffer of {t.name} beside the other memories, nor do output-channel tiles "
                      f"(their extra instructions need program memory too): quantize with fewer --weight-bits or "
                      f"use a smaller model")
