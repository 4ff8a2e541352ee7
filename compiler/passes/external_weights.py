"""Pass: a Program with its weights on chip -> the same program with its weights in external memory.

When a target's block RAM cannot hold the weights but the target has external memory (the ULX3S's
32 MB SDRAM: ``Target.external_bits``), the compiler (``compiler/build.py: compile_ir``) moves
them there: each CONV and HEAD gets a WLOAD before it that copies exactly its weight words from
the external image into an on-chip WMEM buffer at word 0, and reads them there (its ``wbase``
becomes 0). The buffer is as deep as the largest layer's words, so the on-chip budget counts that
layer, not all the weights; the external image holds every layer's words PACKED (``word_bits`` =
``lanes * weight_bits`` bits each, no padding to a beat except at the end of a layer), in program
order, each layer starting on a beat boundary (``machine/external_memory.py: pack_words``, here
vectorised as :func:`pack_rows`; ``docs/accelerator.md``, "WLOAD").

Each weight crosses the port once per image: the layers run over all T time steps with their
weights resident. A layer whose own weights do not fit on chip needs its output channels tiled
(issue 24's next step); :func:`largest_layer` names it for the refusal.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from spikegate.machine.program import OP_WLOAD, Instr, Program, validate_program, wmem_reads


def word_ints(rows: np.ndarray, weight_bits: int) -> list[int]:
    """WMEM rows ``[words, lanes]`` as unsigned integers: lane ``p``'s weight in bits
    ``[p*weight_bits, (p+1)*weight_bits)`` (two's complement)."""
    mask = (1 << weight_bits) - 1
    out = []
    for row in np.asarray(rows):
        w = 0
        for lane, v in enumerate(row):
            w |= (int(v) & mask) << (lane * weight_bits)
        out.append(w)
    return out


def pack_rows(rows: np.ndarray, weight_bits: int, port_bits: int) -> np.ndarray:
    """The beats (uint64) of WMEM rows ``[words, lanes]`` packed as ``external_memory.pack_words``
    packs their :func:`word_ints` (the one definition; tests hold the two equal), vectorised: that
    one builds the whole bit string as one integer, quadratic in a layer's size."""
    rows = np.asarray(rows, dtype=np.int64)
    bits = (rows[..., None] >> np.arange(weight_bits)) & 1          # [words, lanes, bit], two's complement
    stream = bits.reshape(-1).astype(np.uint64)
    stream = np.concatenate([stream, np.zeros(-len(stream) % port_bits, dtype=np.uint64)])
    return (stream.reshape(-1, port_bits) << np.arange(port_bits, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


def unpack_rows(beats: np.ndarray, n_words: int, lanes: int, weight_bits: int, port_bits: int) -> np.ndarray:
    """The inverse of :func:`pack_rows` (``external_memory.unpack_beats``, vectorised): the first
    ``n_words`` packed words of ``beats`` as signed ``[n_words, lanes]`` rows."""
    beats = np.asarray(beats, dtype=np.uint64)
    stream = ((beats[:, None] >> np.arange(port_bits, dtype=np.uint64)) & np.uint64(1)).reshape(-1)
    bits = stream[: n_words * lanes * weight_bits].astype(np.int64).reshape(n_words, lanes, weight_bits)
    vals = (bits << np.arange(weight_bits)).sum(axis=2)
    return np.where(vals >= 1 << (weight_bits - 1), vals - (1 << weight_bits), vals)


def largest_layer(p: Program) -> tuple[str, int]:
    """``(name, words)`` of the CONV/HEAD reading the most WMEM words (the buffer's depth)."""
    return max(((ins.name, wmem_reads(p, ins)) for ins in p.instrs if wmem_reads(p, ins)),
               key=lambda t: t[1], default=("", 1))


def external_weights(p: Program, port_bits: int) -> Program:
    """``p`` (weights on chip, no WLOAD) with its weights in an external image of ``port_bits``-wide
    beats: a WLOAD before every CONV/HEAD, the on-chip WMEM a buffer of the largest layer's words.
    Validated; ``p`` is not changed."""
    if p.external or any(i.opcode == OP_WLOAD for i in p.instrs):
        raise ValueError("external_weights: the program's weights are in external memory already")
    word_bits = p.lanes * p.weight_bits
    instrs: list[Instr] = []
    beats: list[np.ndarray] = []
    top = 0
    for ins in p.instrs:
        n = wmem_reads(p, ins)
        if n:
            image = pack_rows(p.wmem[ins.wbase: ins.wbase + n], p.weight_bits, port_bits)
            instrs.append(Instr.wload(top, n, 0, name=ins.name, tag=ins.tag))
            beats.append(image)
            top += len(image)
            ins = dataclasses.replace(ins, wbase=0)
        instrs.append(ins)
    _, buffer_words = largest_layer(p)
    return validate_program(dataclasses.replace(
        p, instrs=instrs, wmem=np.zeros((buffer_words, p.lanes), dtype=np.int64),
        wmem_external=np.concatenate(beats) if beats else np.zeros(0, dtype=np.uint64), port_bits=port_bits))
