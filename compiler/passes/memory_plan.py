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
        for d in m.dsts:
            first_def.setdefault(d, i)
            last_use.setdefault(d, i)
            last_use[d] = max(last_use[d], i)
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
        for d in m.dsts:
            if d in live:
                continue
            info = s.tensors[d]
            size = tensor_words(info)
            start = alloc(info["mem"], size)
            live[d] = (info["mem"], start, size)
            addresses[d] = start
            sizes[d] = size
            peak[info["mem"]] = max(peak[info["mem"]], top[info["mem"]])
        for t in sorted(set(m.srcs) | set(m.dsts)):
            if last_use.get(t) == i and t in live:
                mem, start, size = live.pop(t)
                release(mem, start, size)
    return MemoryPlan(addresses, {k: max(v, 1) for k, v in peak.items()}, sizes)
