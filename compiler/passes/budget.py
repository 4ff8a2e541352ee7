"""Pass: the program's memory and logic needs against a target's budget.

Memory needs are exact (from the program's widths and sizes). Logic is an estimate (a linear model
in the lane count, fitted to synthesis results of the accelerator, see bench/); the hard checks are
memory and multipliers, and `spikeforge synth` has the final word on LUTs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from spikeforge.errors import SpikeforgeError

from ..program import Program
from ..targets import Target

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
        out = [f"{'resource':<26}{'needed':>14}{'available':>14}"]
        for r, n, a in self.rows:
            out.append(f"{r:<26}{n:>14,}{a:>14,}{'  <-- too much' if n > a else ''}")
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


def needs(p: Program, t: Target) -> tuple[Needs, dict[str, int]]:
    mem = memory_bits(p)
    total = sum(mem.values())
    on_chip = t.bram_bits + t.spram_bits + t.external_bits
    # one multiplier per lane for multi-bit inputs, split into 18x18 blocks when wider, plus the
    # sequencer's shared one
    per_lane = math.ceil(max(p.act_bits, 2) / 18) * math.ceil(max(p.weight_bits, 2) / 18)
    out = [("memory bits (total)", total, on_chip),
           ("multipliers (DSP)", p.lanes * per_lane + 1, t.dsps),
           ("LUTs (estimate)", LUT_BASE + LUT_PER_LANE * p.lanes, t.luts)]
    return Needs(out), mem


def check_budget(p: Program, t: Target, lanes_given: bool) -> dict:
    n, mem = needs(p, t)
    if n.fits():
        return {"memory_bits": mem, "resources": [{"resource": r, "needed": a, "available": b} for r, a, b in n.rows]}
    hints = []
    over = {r for r, a, b in n.rows if a > b}
    if "multipliers (DSP)" in over or "LUTs (estimate)" in over:
        fit = max(1, min(t.dsps - 1, (t.luts - LUT_BASE) // LUT_PER_LANE))
        hints.append(f"fewer lanes (--lanes {fit})")
    if "memory bits (total)" in over:
        w = mem["weights (WMEM)"]
        if p.weight_bits > 4:
            hints.append(f"fewer weight bits (quantize with --weight-bits 4 saves about "
                         f"{w - w * 4 // p.weight_bits:,} bits)")
        hints.append("a smaller model (a smaller preset)")
    bigger = "ulx3s-85f" if t.name in ("icebreaker", "orangecrab") else "large"
    hints.append(f"a bigger target (--target {bigger})")
    detail = "; ".join(f"{k} {v:,}" for k, v in mem.items())
    raise BudgetError(
        f"the model does not fit target {t.name} ({t.description}) with {p.lanes} lanes:\n{n.table()}\n"
        f"memory needed: {detail}\nwhat would make it fit: {', or '.join(hints)}")
