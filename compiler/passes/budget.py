"""Pass: the program's memory and logic needs against a target's budget.

Memory needs come from the program's widths and sizes, counted in the block RAM primitives of the
target's family as Yosys maps them (:func:`bram_blocks`: whole blocks per memory, in the best
aspect ratio; tiny memories in flip-flops; constant ROM columns dropped), including the host link's
pixel and logit buffers. Logic is an estimate (:func:`lut_estimate`, per family, calibrated on
synthesis results); `spikegate synth` has the final word. Checked against the iCE40 UP5K build of
fpga-tiny-t2 (estimate 30 blocks, 30 measured; LUT estimate 5,030, 5,030 logic cells measured;
1 DSP) and the ULX3S build of the default model (estimate 124 DP16KD, 123 measured: errs high;
9,262 LUTs, 9,262 measured; 8 DSPs).

Where the weights live (:func:`weight_storage`): in block RAM, initialised by the bitstream, unless
the target has SPRAM (the iCE40 UP5K) and the memories do not all fit its block RAM; then WMEM
moves to SB_SPRAM256KA blocks (packed by ``machine/memory.py: spram_plan``), which the bitstream cannot
initialise: the weights are *runtime-loaded* over the host link, and the block RAM budget covers
everything else. When the memories do not fit on chip and the target has external memory
(``Target.external_bits``: the ULX3S's SDRAM), :func:`external_reason` says why the weights go
there (``passes/external_weights.py``): then WMEM is an on-chip buffer of the largest layer's
words, written by WLOAD (a RAM, not a ROM), and the external memory holds the packed image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikegate.errors import SpikegateError

from spikegate.machine.config import WMEM_BANK_WORDS, deep_acc_pipeline
from spikegate.machine.program import Program
from ..targets import Target
from spikegate.machine.memory import SPRAMPlan, spram_plan

# Logic: LUTs = base + per_lane * lanes, per family, calibrated on what synthesis measured (not a
# general model of the widths; `spikegate synth` has the final word):
#   iCE40 UP5K, fpga-tiny-t2 at 1 lane (act 23 b, acc 21 b, weights in SPRAM, UART host link):
#     5,030 logic cells (nextpnr ICESTORM_LC) with a 12-bit lane multiplier and ACT without
#     emulated read/write order (5,077 with the instruction products in the program ROM,
#     5,255 with the decode multiplier; 5,266 with the first Fmax pipeline stages, 4,999 before
#     them; 5,801 before the program-width specialisation);
#     one lane (AccumulateLane, its ACC bank's port multiplexers, the readout's selection) is about
#     110 of them (Yosys hierarchy statistics, `synth_ice40 -noflatten`).
#   ECP5 85F, default at 8 lanes: 9,262 TRELLIS_COMB (9,407 with WMEM's last bank unpadded, a
#     block RAM depth mux behind it; 9,243 before ACT's banks and WMEM's group registers; 9,125
#     before the TW stage and the registered ACT write, 9,307 before the first pipeline stages,
#     11,140 before the specialisation);
#     an ECP5 lane about 200 (carry chains count twice as COMB).
#   With more than one lane the deep ACC pipeline (compiler/cycle_model.py: deep_acc_pipeline) adds
#   logic of its own: `synth_ice40 -dsp -dff -device u` + `stat` of fpga-tiny-t2's core grows from
#   3,244 to 3,677 LUT4 (and 1,641 to 2,186 flip-flops) from 1 to 2 lanes, so beside the ~110 of
#   the lane about 325 (first measured at +125 cells, before the SV, TW and registered-operand
#   stages); the ECP5 calibration build has it already (8 lanes), so there it is in the base.
LUT_MODEL = {"ice40": (4920, 110), "ecp5": (7662, 200)}
LUT_MODEL_DEFAULT = (7710, 200)   # sim / large: no limit worth modelling
DEEP_PIPELINE_LUTS = {"ice40": 325}
WMEM_NAME = "WMEM"


def lut_estimate(lanes: int, family: str) -> int:
    base, per_lane = LUT_MODEL.get(family, LUT_MODEL_DEFAULT)
    deep = DEEP_PIPELINE_LUTS.get(family, 0) if deep_acc_pipeline(lanes) else 0
    return base + per_lane * lanes + deep


# Block RAM primitives as (depth, width) aspect ratios: iCE40 SB_RAM40_4K, ECP5 DP16KD.
BRAM_MODES = {"ice40": ((256, 16), (512, 8), (1024, 4), (2048, 2)),
              "ecp5": ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))}
FF_MEMORY_BITS = 64      # memories this small become flip-flops (Yosys' memory_libmap)
LOGIC_ROM_BITS = 2048    # initialised memories: rows past the last whole block up to this many bits
                         # become logic (Yosys); measured on the UP5K: 564 x 20 -> 4 blocks, 564 x 5 -> 1


def bram_blocks(depth: int, width: int, family: str, rom: bool = False) -> int:
    """Block RAM primitives a ``depth`` x ``width`` memory takes on ``family`` as Yosys maps it
    (calibrated: see the module docstring). ``rom``: initialised and never written."""
    modes = BRAM_MODES.get(family)
    if modes is None or depth * width <= FF_MEMORY_BITS or width == 0:
        return 0
    if rom and width >= modes[0][1]:
        modes = modes[:1]       # wide read-only tables: the widest aspect ratio (as Yosys picks)
    best = None
    for d, w in modes:
        cols = -(-width // w)
        rows = -(-depth // d)
        if rom and depth >= d and (depth % d) * width <= LOGIC_ROM_BITS:
            rows = depth // d
        n = cols * rows
        best = n if best is None else min(best, n)
    return best


def memories(p: Program) -> list[tuple[str, int, int, bool]]:
    """Every memory of the accelerator built for ``p`` and of the host link around it, as
    ``(name, depth, width, read_only)``; WMEM last. The program ROM (two words per instruction:
    ``program.rom_image``) counts only the bit columns that differ between its words (the others
    are constants; the debug tag is not read on a board), as synthesis keeps it."""
    from spikegate.machine.program import OP_ATTN, rom_image
    words = rom_image(p.instrs, p.lanes, without=("tag",))
    width = max(w.bit_length() for w in words)
    rom_bits = sum(1 for b in range(width) if len({(w >> b) & 1 for w in words}) > 1)
    attn = [i for i in p.instrs if i.opcode == OP_ATTN]
    d = max([i.cout // max(i.heads, 1) for i in attn] + [1])
    y_bits = min(p.act_bits, max(1, (d * ((1 << p.kv_bits) - 1)).bit_length()))
    first, last = p.instrs[0], p.instrs[-1]
    out = [("ACT", max(2, p.act_words), p.act_bits, False), ("SPK", max(2, p.spk_words), 1, False)]
    out += [(f"ACC{q}", max(2, p.acc_words), p.acc_bits, False) for q in range(p.lanes)]
    out += [("BIAS", max(2, len(p.bias)), p.bias_bits, True), ("SHIFT", max(2, len(p.shift)), p.shift_bits, True),
            ("THRESH", max(2, len(p.thresh)), p.thresh_bits, True), ("program", max(2, len(words)), rom_bits, True),
            ("KV", max(2, d * d), p.kv_bits, False), ("Y", max(2, d), y_bits, False),
            ("host pixels", first.cin * first.h * first.w, p.pixel_bits, False),
            ("host logits", last.cout, p.logit_bits, False),
            (WMEM_NAME, max(2, len(p.wmem)), p.lanes * p.weight_bits, not p.external)]
    return out


def blocks_needed(p: Program, family: str, with_wmem: bool) -> int:
    """Block RAM primitives of every memory (``with_wmem``: WMEM's too). With the deep pipeline
    WMEM and ACT are split into banks of ``WMEM_BANK_WORDS`` words (``hw/banked_rom.py``,
    ``hw/banked_ram.py``), the last one padded to the same depth, each mapped on its own."""

    banked = (WMEM_NAME, "ACT") if deep_acc_pipeline(p.lanes) else ()
    total = 0
    for name, d, w, rom in memories(p):
        if name == WMEM_NAME:
            total += wmem_blocks(p, d, family) if with_wmem else 0
        elif name in banked and d > WMEM_BANK_WORDS:
            total += -(-d // WMEM_BANK_WORDS) * bram_blocks(WMEM_BANK_WORDS, w, family, rom)
        else:
            total += bram_blocks(d, w, family, rom)
    return total


def wmem_blocks(p: Program, words: int, family: str) -> int:
    """Block RAM primitives of ``p``'s WMEM were it ``words`` deep (banked as in
    :func:`blocks_needed`): a RAM for a program with external weights (the buffer WLOAD writes),
    else a ROM."""
    d, w, rom = max(2, words), p.lanes * p.weight_bits, not p.external
    if deep_acc_pipeline(p.lanes) and d > WMEM_BANK_WORDS:
        return -(-d // WMEM_BANK_WORDS) * bram_blocks(WMEM_BANK_WORDS, w, family, rom)
    return bram_blocks(d, w, family, rom)


def buffer_words_that_fit(p: Program, t: Target) -> int:
    """The most WMEM words an on-chip weight buffer can have beside ``p``'s other memories on the
    target ``t`` (its free block RAM, else its free on-chip bits); 0 if none. Used to size the
    buffer of a program whose layers stream in output-channel tiles (``passes/external_weights.py``)."""
    if t.family in BRAM_MODES:
        free = t.bram_blocks - blocks_needed(p, t.family, False)
        if free < 0:
            return 0
        lo, hi = 0, (1 << 20) - 1             # the largest count a WLOAD's dst (and wbase) can hold
        while lo < hi:                        # WMEM's blocks grow with its depth
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if wmem_blocks(p, mid, t.family) <= free else (lo, mid - 1)
        return lo
    mem = memory_bits(p)
    return max(0, (t.bram_bits - (sum(mem.values()) - mem[WMEM])) // (p.lanes * p.weight_bits))


class BudgetError(SpikegateError):
    pass


@dataclass
class Needs:
    rows: list[tuple[str, int, int]]  # (resource, needed, available)

    def fits(self) -> bool:
        return all(n <= a for _, n, a in self.rows)

    def table(self) -> str:
        w = max([26] + [len(r) + 2 for r, _, _ in self.rows])
        out = [f"{'resource':<{w}}{'needed':>14}{'available':>14}"]
        for r, n, a in self.rows:
            out.append(f"{r:<{w}}{n:>14,}{a:>14,}{'  <-- too much' if n > a else ''}")
        return "\n".join(out)


def memory_bits(p: Program) -> dict[str, int]:
    from spikegate.machine.program import OP_ATTN
    attn = [i for i in p.instrs if i.opcode == OP_ATTN]
    d = max((i.cout // i.heads for i in attn), default=0)
    n = max((i.ho * i.wo for i in attn), default=0)
    kv = d * d * (n.bit_length() + 1) + d * (d * n).bit_length()  # KV counts and the Y row
    return {
        "weights (WMEM)": len(p.wmem) * p.lanes * p.weight_bits,
        "activations (ACT)": p.act_words * p.act_bits,
        "spikes (SPK)": p.spk_words,
        "accumulators (ACC)": p.lanes * p.acc_words * p.acc_bits,
        "parameters": len(p.bias) * (p.bias_bits + p.shift_bits) + len(p.thresh) * p.thresh_bits + kv,
        "program": len(p.instrs) * 256,
    }


WMEM = "weights (WMEM)"
ROW_TOTAL = "block RAMs (all memories)"
ROW_BRAM = "block RAMs (all but weights)"
ROW_SPRAM = "SPRAM blocks (weights, runtime-loaded)"
ROW_LUTS = "LUTs (estimate)"
ROW_EXTERNAL = "external memory bits (weights, packed)"
ROW_ONCHIP_BITS = "on-chip memory bits"


WEIGHT_MODES = ("auto", "bitstream", "runtime", "external")


def external_image_bits(p: Program) -> int:
    """Bits of the external weight image (its beats), 0 for a program with on-chip weights."""
    return int(len(p.wmem_external)) * p.port_bits if p.external else 0


def on_chip_fits(p: Program, t: Target) -> bool:
    """Whether every memory of ``p`` (its weights included) fits the target's on-chip memory: its
    block RAM in blocks (BRAM families), else its on-chip bits (``bram_bits``)."""
    if t.family in BRAM_MODES:
        return blocks_needed(p, t.family, True) <= t.bram_blocks
    return sum(memory_bits(p).values()) <= t.bram_bits


def external_reason(p: Program, t: Target, mode: str = "auto") -> str | None:
    """Why ``p``'s weights (on chip as lowered) go to the target's external memory, or None if
    they stay on chip: with ``mode="auto"`` when the memories do not fit on chip and the target has
    external memory (before SPRAM: a target with both keeps the SPRAM for what fits), with
    ``"external"`` always (an error on a target without external memory)."""
    if mode not in WEIGHT_MODES:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_MODES)}, not {mode!r}")
    if mode == "external" and not t.external_bits:
        raise BudgetError(f"weights in external memory: target {t.name} ({t.description}) has none; "
                          f"the ULX3S's SDRAM holds them (--target ulx3s-85f)")
    if mode == "external":
        return "asked for (weights=external)"
    if mode != "auto" or not t.external_bits or on_chip_fits(p, t):
        return None
    if t.family in BRAM_MODES:
        return (f"all memories need {blocks_needed(p, t.family, True):,} block RAMs, the target has "
                f"{t.bram_blocks:,}")
    return f"all memories need {sum(memory_bits(p).values()):,} bits, the target has {t.bram_bits:,} on chip"


def weight_storage(p: Program, t: Target, mode: str = "auto") -> SPRAMPlan | None:
    """``None``: the weights go to block RAM with the rest, initialised by the bitstream. A plan: they
    go to the target's SPRAM, loaded at run time: with ``mode="auto"`` only when the target has SPRAM
    and the memories do not all fit its block RAM, with ``"runtime"`` always (an error on a target
    without SPRAM), with ``"bitstream"`` never."""
    if mode not in WEIGHT_MODES:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_MODES)}, not {mode!r}")
    if mode in ("bitstream", "external") or p.external:
        return None
    if not t.spram_blocks:
        if mode == "runtime":
            raise BudgetError(f"--weights runtime: target {t.name} ({t.description}) has no SPRAM; "
                              f"runtime-loaded weights live in the iCE40 UP5K's SPRAM (--target icebreaker)")
        return None
    if mode == "auto" and (t.external_bits or blocks_needed(p, t.family, True) <= t.bram_blocks):
        return None
    return spram_plan(max(1, len(p.wmem)), p.lanes * p.weight_bits)


def dsps_per_lane(p: Program) -> int:
    """DSP blocks of one lane's multiplier (``mul_x_bits`` x ``weight_bits`` in 18x18 blocks)."""
    return math.ceil(max(p.mul_x_bits, 2) / 18) * math.ceil(max(p.weight_bits, 2) / 18)


def needs(p: Program, t: Target, weights: str = "auto") -> tuple[Needs, dict[str, int], SPRAMPlan | None]:
    mem = memory_bits(p)
    total = sum(mem.values())
    plan = weight_storage(p, t, weights)
    # one multiplier per lane for multi-bit inputs (mul_x_bits x weight_bits), split into 18x18
    # blocks when wider; nothing else multiplies (the instructions' products come from the ROM)
    per_lane = dsps_per_lane(p)
    # block RAM in primitives of the family (a memory takes whole blocks); targets with external
    # memory (``large``) or none to speak of (``sim``) count bits against their bits
    # (a program with its weights in external memory: the on-chip memories, its WMEM buffer among
    # them, against the on-chip budget, and the packed image against the external memory)
    if t.family in BRAM_MODES:
        if plan is None:
            out = [(ROW_TOTAL, blocks_needed(p, t.family, True), t.bram_blocks)]
        else:
            out = [(ROW_BRAM, blocks_needed(p, t.family, False), t.bram_blocks),
                   (ROW_SPRAM, plan.blocks, t.spram_blocks)]
    elif p.external:
        out = [(ROW_ONCHIP_BITS, total, t.bram_bits)]
    else:
        out = [("memory bits (total)", total, t.bram_bits + t.external_bits)]
    if p.external:
        out.append((ROW_EXTERNAL, external_image_bits(p), t.external_bits))
    out += [("multipliers (DSP)", p.lanes * per_lane, t.dsps),
            (ROW_LUTS, lut_estimate(p.lanes, t.family), t.luts)]
    return Needs(out), mem, plan


def check_budget(p: Program, t: Target, lanes_given: bool, weights: str = "auto") -> dict:
    """The budget as a dict (``memory_bits``, ``resources``, ``weights``: where they live), or a
    :class:`BudgetError` with the needs-vs-has table and what would make the model fit."""
    n, mem, plan = needs(p, t, weights)
    if n.fits():
        if p.external:
            weights = {"storage": "SDRAM", "loading": "streamed", "where": "sdram",
                       "buffer_words": int(len(p.wmem)), "acc_words": int(p.acc_words), "port_bits": p.port_bits,
                       "external_beats": int(len(p.wmem_external)), "external_bits": external_image_bits(p)}
        elif plan is None:
            weights = {"storage": "block RAM", "loading": "bitstream", "where": "bram"}
        else:
            weights = {"storage": "SPRAM", "loading": "runtime-loaded", "where": "spram", "spram": plan.describe()}
        return {"memory_bits": mem, "weights": weights,
                "resources": [{"resource": r, "needed": a, "available": b} for r, a, b in n.rows]}
    hints = []
    over = {r for r, a, b in n.rows if a > b}
    if "multipliers (DSP)" in over or ROW_LUTS in over:
        per_lane = dsps_per_lane(p)
        fit = max([0] + [q for q in range(1, t.dsps // per_lane + 1) if lut_estimate(q, t.family) <= t.luts])
        if fit >= 1 and fit < p.lanes:
            hints.append(f"fewer lanes (--lanes {fit})")
    if over & {ROW_TOTAL, ROW_BRAM, ROW_SPRAM, "memory bits (total)", ROW_ONCHIP_BITS, ROW_EXTERNAL}:
        w = mem[WMEM]
        if p.weight_bits > 4 and over & {ROW_TOTAL, ROW_SPRAM, "memory bits (total)", ROW_EXTERNAL}:   # (SPRAM weights: not in block RAM)
            hints.append(f"fewer weight bits (quantize with --weight-bits 4 saves about "
                         f"{w - w * 4 // p.weight_bits:,} bits)")
        hints.append("a smaller model (a smaller preset)")
    hints.append(f"a bigger target (--target {t.bigger})")
    detail = "; ".join(f"{k} {v:,}" for k, v in mem.items())
    where = ""
    if plan is not None:
        where = (f"\nweights: {len(p.wmem):,} words of {p.lanes * p.weight_bits} bits in SPRAM "
                 f"({plan.per_row} per 16-bit row, {plan.blocks} of {t.spram_blocks} blocks), "
                 f"loaded at run time; block RAM holds the rest")
    if p.external:
        where = (f"\nweights: {external_image_bits(p):,} bits packed in external memory, streamed into an "
                 f"on-chip buffer of {len(p.wmem):,} words of {p.lanes * p.weight_bits} bits (the largest layer's)")
    raise BudgetError(
        f"the model does not fit target {t.name} ({t.description}) with {p.lanes} lanes:\n{n.table()}\n"
        f"memory needed: {detail}{where}\nwhat would make it fit: {', or '.join(hints)}")
