"""Pass: the program's memory and logic needs against a target's budget.

Memory needs are exact (from the program's widths and sizes). Logic is an estimate (a linear model
in the lane count, fitted to synthesis results of the accelerator, see bench/); the hard checks are
memory and multipliers, and `spikeforge synth` has the final word on LUTs.

Where the weights live (:func:`weight_storage`): in block RAM, initialised by the bitstream, unless
the target has SPRAM (the iCE40 UP5K) and the memories do not all fit its block RAM; then WMEM
moves to SB_SPRAM256KA blocks (packed by ``memory_plan.spram_plan``), which the bitstream cannot
initialise: the weights are *runtime-loaded* over the host link, and the block RAM budget covers
everything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeforge.errors import SpikeforgeError

from ..program import Program
from ..targets import Target
from .memory_plan import SPRAMPlan, spram_plan

LUT_BASE = 3500        # sequencer, engines, address generators (estimate from synthesis: 4.8k LUT4
LUT_PER_LANE = 350     # + 1k carry cells for 4 lanes on the ECP5, 5.6k LUT4 on the iCE40)


class BudgetError(SpikeforgeError):
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
    from ..program import OP_ATTN
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
ROW_TOTAL = "memory bits (total)"
ROW_BRAM = "memory bits (block RAM, all but weights)"
ROW_SPRAM = "SPRAM blocks (weights, runtime-loaded)"


WEIGHT_MODES = ("auto", "bitstream", "runtime")


def weight_storage(p: Program, t: Target, mode: str = "auto") -> SPRAMPlan | None:
    """``None``: the weights go to block RAM with the rest, initialised by the bitstream. A plan: they
    go to the target's SPRAM, loaded at run time: with ``mode="auto"`` only when the target has SPRAM
    and the memories do not all fit its block RAM, with ``"runtime"`` always (an error on a target
    without SPRAM), with ``"bitstream"`` never."""
    if mode not in WEIGHT_MODES:
        raise ValueError(f"weights must be one of {', '.join(WEIGHT_MODES)}, not {mode!r}")
    if mode == "bitstream":
        return None
    if not t.spram_blocks:
        if mode == "runtime":
            raise BudgetError(f"--weights runtime: target {t.name} ({t.description}) has no SPRAM; "
                              f"runtime-loaded weights live in the iCE40 UP5K's SPRAM (--target icebreaker)")
        return None
    if mode == "auto" and sum(memory_bits(p).values()) <= t.bram_bits + t.external_bits:
        return None
    return spram_plan(max(1, len(p.wmem)), p.lanes * p.weight_bits)


def needs(p: Program, t: Target, weights: str = "auto") -> tuple[Needs, dict[str, int], SPRAMPlan | None]:
    mem = memory_bits(p)
    total = sum(mem.values())
    plan = weight_storage(p, t, weights)
    # one multiplier per lane for multi-bit inputs, split into 18x18 blocks when wider, plus the
    # sequencer's shared one
    per_lane = math.ceil(max(p.act_bits, 2) / 18) * math.ceil(max(p.weight_bits, 2) / 18)
    if plan is None:
        out = [(ROW_TOTAL, total, t.bram_bits + t.external_bits)]
    else:
        out = [(ROW_BRAM, total - mem[WMEM], t.bram_bits + t.external_bits),
               (ROW_SPRAM, plan.blocks, t.spram_blocks)]
    out += [("multipliers (DSP)", p.lanes * per_lane + 1, t.dsps),
            ("LUTs (estimate)", LUT_BASE + LUT_PER_LANE * p.lanes, t.luts)]
    return Needs(out), mem, plan


def check_budget(p: Program, t: Target, lanes_given: bool, weights: str = "auto") -> dict:
    """The budget as a dict (``memory_bits``, ``resources``, ``weights``: where they live), or a
    :class:`BudgetError` with the needs-vs-has table and what would make the model fit."""
    n, mem, plan = needs(p, t, weights)
    if n.fits():
        if plan is None:
            weights = {"storage": "block RAM", "loading": "bitstream"}
        else:
            weights = {"storage": "SPRAM", "loading": "runtime-loaded", "spram": plan.describe()}
        return {"memory_bits": mem, "weights": weights,
                "resources": [{"resource": r, "needed": a, "available": b} for r, a, b in n.rows]}
    hints = []
    over = {r for r, a, b in n.rows if a > b}
    if "multipliers (DSP)" in over or "LUTs (estimate)" in over:
        fit = max(1, min(t.dsps - 1, (t.luts - LUT_BASE) // LUT_PER_LANE))
        hints.append(f"fewer lanes (--lanes {fit})")
    if over & {ROW_TOTAL, ROW_BRAM, ROW_SPRAM}:
        w = mem[WMEM]
        if p.weight_bits > 4 and over & {ROW_TOTAL, ROW_SPRAM}:   # (SPRAM weights: not in block RAM)
            hints.append(f"fewer weight bits (quantize with --weight-bits 4 saves about "
                         f"{w - w * 4 // p.weight_bits:,} bits)")
        hints.append("a smaller model (a smaller preset)")
    bigger = "ulx3s-85f" if t.name in ("icebreaker", "orangecrab") else "large"
    hints.append(f"a bigger target (--target {bigger})")
    detail = "; ".join(f"{k} {v:,}" for k, v in mem.items())
    where = ""
    if plan is not None:
        where = (f"\nweights: {len(p.wmem):,} words of {p.lanes * p.weight_bits} bits in SPRAM "
                 f"({plan.per_row} per 16-bit row, {plan.blocks} of {t.spram_blocks} blocks), "
                 f"loaded at run time; block RAM holds the rest")
    raise BudgetError(
        f"the model does not fit target {t.name} ({t.description}) with {p.lanes} lanes:\n{n.table()}\n"
        f"memory needed: {detail}{where}\nwhat would make it fit: {', or '.join(hints)}")
