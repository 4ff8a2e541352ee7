"""What the Yosys / nextpnr logs of a board build say: utilisation, over-use, the first error.

nextpnr's JSON report (``--report``) has the utilisation of a design that fits; for one that does
not fit, only its log's "Device utilisation" table has the numbers. iCE40 flip-flops come from
Yosys' cell statistics (nextpnr's iCE40 report counts logic cells, each a LUT, a flip-flop or
both). The files are those amaranth-boards' build script writes: ``top.tim`` (nextpnr's log),
``top.rpt`` (Yosys' log) and the flow's own ``synth.log``.
"""

from __future__ import annotations

import os
import re

__all__ = ["CELLS", "utilisation", "log_utilisation", "overused", "first_error", "yosys_ff_count"]

# nextpnr cell types per resource and family
CELLS = {
    "ice40": {"luts": "ICESTORM_LC", "bram": "ICESTORM_RAM", "spram": "ICESTORM_SPRAM",
              "dsp": "ICESTORM_DSP"},
    "ecp5": {"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "bram": "DP16KD", "dsp": "MULT18X18D"},
}
_UTIL_LINE = r"^Info:\s+(\w+):\s+(\d+)/\s*(\d+)\s+\d+%"


def first_error(out_dir: str, log: str) -> str:
    """The first ``ERROR:`` line of nextpnr's log, the flow's log (``log``) or Yosys' log."""
    for name in ("top.tim", log, "top.rpt"):
        path = os.path.join(out_dir, name)
        if not os.path.exists(path):
            continue
        with open(path, errors="replace") as f:
            for line in f:
                if line.startswith("ERROR:") or line.lstrip().startswith("ERROR:"):
                    return line.strip()
    return "no ERROR line in the logs"


def log_utilisation(out_dir: str) -> dict:
    """nextpnr's "Device utilisation" table from its log, as its report's ``utilization`` (``{cell:
    {"used", "available"}}``): the numbers of a design that did not fit (no report is written)."""
    path = os.path.join(out_dir, "top.tim")
    util = {}
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            for line in f:
                mt = re.match(_UTIL_LINE, line)
                if mt:
                    util[mt.group(1)] = {"used": int(mt.group(2)), "available": int(mt.group(3))}
    return util


def overused(out_dir: str) -> str:
    """From nextpnr's "Device utilisation" table: the resources used beyond what the device has,
    e.g. "120 of 30 ICESTORM_RAM"."""
    path = os.path.join(out_dir, "top.tim")
    if not os.path.exists(path):
        return ""
    over = []
    with open(path, errors="replace") as f:
        for line in f:
            mt = re.match(_UTIL_LINE, line)
            if mt and int(mt.group(2)) > int(mt.group(3)):
                over.append(f"{mt.group(2)} of {mt.group(3)} {mt.group(1)}")
    return ", ".join(dict.fromkeys(over))


def yosys_ff_count(out_dir: str, family: str) -> int | None:
    """Flip-flops from the last cell-count table of Yosys' log (nextpnr's iCE40 report only counts
    logic cells, each of which may hold a LUT, a flip-flop or both)."""
    path = os.path.join(out_dir, "top.rpt")
    if not os.path.exists(path):
        return None
    prefix = "SB_DFF" if family == "ice40" else "TRELLIS_FF"
    counts: dict[str, int] = {}
    with open(path, errors="replace") as f:
        for line in f:
            mt = re.match(r"^\s+(\d+)\s+(\S+)\s*$", line)
            # primitive names only: with -dff, Yosys' tables also list ABC9's temporary boxes
            # (SB_DFFESR_$abc9_flop, ...), which the final table replaces by the primitives
            if mt and re.fullmatch(prefix + r"[A-Z0-9]*", mt.group(2)):
                counts[mt.group(2)] = int(mt.group(1))   # later tables overwrite earlier ones
    return sum(counts.values()) if counts else None


def utilisation(nextpnr: dict, board, out_dir: str) -> dict:
    """``luts``, ``ffs``, ``bram``, ``spram``, ``dsp`` as ``{"used", "available", "cell"}`` from
    nextpnr's report (``available``: nextpnr's figure, else the board's datasheet figure)."""
    util = nextpnr.get("utilization", {})
    cells = CELLS[board.family]
    r = board.resources
    datasheet = {"luts": r.luts, "ffs": r.ffs, "bram": r.bram_blocks, "spram": r.spram_blocks,
                 "dsp": r.dsps}
    out = {}
    for key in ("luts", "ffs", "bram", "spram", "dsp"):
        cell = cells.get(key)
        if cell is not None:
            u = util.get(cell, {})
            out[key] = {"used": int(u.get("used", 0)),
                        "available": int(u.get("available", datasheet[key])), "cell": cell}
        else:
            out[key] = {"used": 0, "available": datasheet[key]}
    if board.family == "ice40":
        ffs = yosys_ff_count(out_dir, "ice40")
        out["ffs"] = {"used": ffs if ffs is not None else 0,
                      "available": out["luts"]["available"], "cell": "SB_DFF*"}
    return out
