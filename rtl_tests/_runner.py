"""Runs a datapath testbench through :func:`spikegate.rtl_tests.cocotb_util.run_cocotb`, with two
savings that together cut the suite's CPU time by about four fifths.

Assertion rewriting: cocotb 2 installs pytest's assertion rewriter for every imported ``*.py``
by default (``COCOTB_REWRITE_ASSERTION_FILES``), so the simulator's Python re-compiles all of
``torch`` (imported by ``intops``) on every run: about 10 CPU seconds per simulation here, against
1.6 without. Only the testbench modules (``tb_*.py``) are rewritten here; their assertion
messages stay detailed.

Verilator runtime objects: reused between designs (below).

Most of a Verilator build of a small design is compiling Verilator's own runtime
(``verilated.cpp``, ``verilated_vpi.cpp``, ``verilated_dpi.cpp``, ``verilated_threads.cpp``:
about 14 of 17 CPU seconds here). Those objects do not depend on the design, only on the
Verilator installation and the build options. After a successful build they are copied to a
cache folder (keyed by Verilator's version and the build options) and copied into the build
folder of every new design before its build. Verilator's makefile makes them depend on the
generated ``Vtop.mk``, which the build writes after the copy, so the copies are dated
``FUTURE_SECONDS`` ahead: ``make`` then links them as they are (it prints a clock-skew warning
into ``build.log``, nothing else). The model (``Vtop__ALL``) and cocotb's ``verilator.cpp`` (which
includes the design's header) are always compiled. Waveform builds (other ``VM_TRACE``) skip the
cache. Set ``SPIKEGATE_NO_RUNTIME_CACHE=1`` to turn it off.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from spikegate.rtl_tests import cocotb_util
from spikegate.rtl_tests.cocotb_util import run_cocotb, sim_build_dir

__all__ = ["run_design"]

RUNTIME_OBJECTS = ("verilated", "verilated_vpi", "verilated_dpi", "verilated_threads")
FUTURE_SECONDS = 600


def _cache_dir(build_args) -> Path:
    from importlib.metadata import version
    key = hashlib.sha256(repr((version("verilator"), version("cocotb"), list(getattr(cocotb_util, "VERILATOR_LINT_OFF", ())),
                               list(build_args))).encode()).hexdigest()[:12]
    return sim_build_dir(f"_verilator-runtime-{key}", "cache")


def _seed(build_dir: Path, cache: Path) -> None:
    if not all((cache / (n + ext)).exists() for n in RUNTIME_OBJECTS for ext in (".o", ".d")):
        return
    build_dir.mkdir(parents=True, exist_ok=True)
    if (build_dir / "Vtop.mk").exists():       # built before: make knows what to do
        return
    future = time.time() + FUTURE_SECONDS
    for name in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            dst = build_dir / (name + ext)
            shutil.copyfile(cache / (name + ext), dst)
            os.utime(dst, (future, future))


def _save(build_dir: Path, cache: Path) -> None:
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
            os.replace(tmp, cache / (name + ext))   # atomic: parallel workers never see halves


def run_design(component, module: str, tb_module: str, sim: str, name: str, *, config: dict,
               build_args=(), **kwargs):
    """Build ``component`` as ``module`` in the build folder ``name``-``sim`` and run the cocotb
    tests in ``spikegate.rtl_tests.<tb_module>`` with ``config`` (see ``run_cocotb``)."""
    build_dir = sim_build_dir(name, sim)
    use_cache = (sim == "verilator" and not kwargs.get("waves")
                 and not os.environ.get("SPIKEGATE_NO_RUNTIME_CACHE"))
    cache = _cache_dir(build_args) if use_cache else None
    if use_cache:
        _seed(build_dir, cache)
    extra_env = {"COCOTB_REWRITE_ASSERTION_FILES": "tb_*.py", **kwargs.pop("extra_env", {})}
    result = run_cocotb(component, module, f"spikegate.rtl_tests.{tb_module}", sim, build_dir,
                        config=config, build_args=build_args, extra_env=extra_env, **kwargs)
    if use_cache:
        _save(build_dir, cache)
    return result
