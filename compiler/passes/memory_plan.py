"""Pass: give every tensor an address in ACT or SPK, reusing space once a tensor is dead.

Liveness is computed over the schedule; allocation is first-fit in each memory, in schedule
order, so the plan is deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass

from .schedule import Schedule


@dataclass
class MemoryPlan:
    addresses: dict[str, int]   # tensor -> base address in its memory
    words: dict[str, int]       # "ACT" / "SPK" -> words needed
    sizes: dict[str, int]       # tensor -> words

    def describe(self) -> str:
        rows = [f"ACT {self.words['ACT']} words, SPK {self.words['SPK']} words"]
        rows += [f"  {n:<40} @ {a:>7} ({self.sizes[n]} words)" for n, a in self.addresses.items()]
        return "\n".join(rows)


def tensor_words(info: dict) -> int:
    n = 1
    for s in info["shape"]:
        n *= int(s)
    return n * int(info["steps"])


def memory_plan(s: Schedule) -> MemoryPlan:
    last_use: dict[str, int] = {}
    first_def: dict[str, int] = {}
    for i, m in enumerate(s.mops):
        for t in m.srcs:
            last_use[t] = i
        if m.dst is not None:
            first_def.setdefault(m.dst, i)
            last_use.setdefault(m.dst, i)
            last_use[m.dst] = max(last_use[m.dst], i)
    free: dict[str, list[tuple[int, int]]] = {"ACT": [], "SPK": []}  # (start, size) holes
    top = {"ACT": 0, "SPK": 0}
    live: dict[str, tuple[str, int, int]] = {}
    addresses: dict[str, int] = {}
    sizes: dict[str, int] = {}

    def alloc(mem: str, size: int) -> int:
        holes = free[mem]
        for k, (start, n) in enumerate(holes):
            if n >= size:
                holes[k] = (start + size, n - size)
                if holes[k][1] == 0:
                    holes.pop(k)
                return start
        start = top[mem]
        top[mem] += size
        return start

    def release(mem: str, start: int, size: int) -> None:
        holes = free[mem]
        holes.append((start, size))
        holes.sort()
        merged = []
        for st, n in holes:
            if merged and merged[-1][0] + merged[-1][1] == st:
                merged[-1] = (merged[-1][0], merged[-1][1] + n)
            else:
                merged.append((st, n))
        if merged and merged[-1][0] + merged[-1][1] == top[mem]:
            top[mem] = merged[-1][0]
            merged.pop()
        free[mem] = merged

    peak = {"ACT": 0, "SPK": 0}
    for i, m in enumerate(s.mops):
        if m.dst is not None and m.dst not in live:
            info = s.tensors[m.dst]
            size = tensor_words(info)
            start = alloc(info["mem"], size)
            live[m.dst] = (info["mem"], start, size)
            addresses[m.dst] = start
            sizes[m.dst] = size
            peak[info["mem"]] = max(peak[info["mem"]], top[info["mem"]])
        for t in set(m.srcs) | ({m.dst} if m.dst else set()):
            if last_use.get(t) == i and t in live:
                mem, start, size = live.pop(t)
                release(mem, start, size)
    return MemoryPlan(addresses, {k: max(v, 1) for k, v in peak.items()}, sizes)


# ------------------------------------------------------------------------------ weights in SPRAM

SPRAM_WORDS = 16384     # iCE40 UP5K SB_SPRAM256KA: 16K x 16 bits, writes masked per nibble
SPRAM_WIDTH = 16
SPRAM_NIBBLE = 4


@dataclass(frozen=True)
class SPRAMPlan:
    """Where WMEM word ``a`` (``width`` bits) lives in a set of SB_SPRAM256KA blocks.

    Narrow words are packed ``per_row`` to a 16-bit row, each in a ``slot_bits``-wide slot that the
    nibble write masks can write alone (``slot_bits`` is 4, 8 or 16); words wider than 16 bits span
    ``columns`` blocks side by side. Row ``a // per_row`` of the memory is row ``(a // per_row) %
    16384`` of bank ``(a // per_row) // 16384``; slot ``a % per_row`` holds bits ``[s * slot_bits,
    (s + 1) * slot_bits)`` of the row (of each column block: column ``c`` holds bits ``[16c, 16c +
    16)`` of the word). ``blocks = banks * columns`` instances in all.
    """

    words: int
    width: int
    per_row: int
    slot_bits: int
    columns: int
    banks: int

    @property
    def rows(self) -> int:
        return -(-self.words // self.per_row)

    @property
    def blocks(self) -> int:
        return self.banks * self.columns

    @property
    def bits(self) -> int:
        """Bits of SPRAM the plan occupies (whole blocks)."""
        return self.blocks * SPRAM_WORDS * SPRAM_WIDTH

    def describe(self) -> dict:
        return {"blocks": self.blocks, "banks": self.banks, "columns": self.columns,
                "words_per_row": self.per_row, "slot_bits": self.slot_bits}


def spram_plan(words: int, width: int) -> SPRAMPlan:
    """The densest packing of ``words`` words of ``width`` bits into SB_SPRAM256KA blocks."""
    if not isinstance(words, int) or words < 1:
        raise ValueError(f"words must be a positive integer, not {words!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, not {width!r}")
    if width > SPRAM_WIDTH:
        per_row, slot, columns = 1, SPRAM_WIDTH, -(-width // SPRAM_WIDTH)
    else:
        slot = SPRAM_NIBBLE
        while slot < width:
            slot *= 2
        per_row, columns = SPRAM_WIDTH // slot, 1
    rows = -(-words // per_row)
    return SPRAMPlan(words=words, width=width, per_row=per_row, slot_bits=slot, columns=columns,
                     banks=-(-rows // SPRAM_WORDS))
