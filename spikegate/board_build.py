"""A model onto a board: compile it, fall back to the smaller embedded model where the board
refuses it, then synthesise. One code path for `make demo` (``spikegate/demo.py``) and `make bench`
(``bench/run.py``).

Every step is one of the CLI's own verbs, so what the demo and the bench build is what a user
builds. :func:`compile_for_board` takes the caller's way of running a verb (the demo runs them
in-process and times each step for its report; the bench runs them as child processes and logs
them), so only the policy lives here: which model, in which order, what a refusal means.
:func:`synth_board` runs ``spikegate synth`` as a child process (Yosys and nextpnr take minutes;
the callers run it beside other work).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["SMALL_CHECKPOINT", "BoardCompile", "compile_for_board", "synth_board", "target_names", "lookup_target"]

SMALL_CHECKPOINT = "fpga-tiny-t2"


def target_names() -> list[str]:
    """Every compile target: the compiler's own (``sim``, ``large``), then the boards."""
    from spikegate.board_targets import known_boards
    from spikegate.compiler.targets import TARGETS

    return [*TARGETS, *known_boards()]


def lookup_target(name: str):
    """The ``Target`` called ``name``: a board's from its record, else one of the compiler's own.
    The one lookup behind ``--target`` (CLI), the Python API and the sweep."""
    from spikegate.board_targets import BOARDS
    from spikegate.compiler.targets import TARGETS
    from spikegate.errors import SpikegateError

    if name in BOARDS:
        return BOARDS[name].target
    if name in TARGETS:
        return TARGETS[name]
    raise SpikegateError(f"unknown target {name!r}; known targets: {', '.join(target_names())}")

# run(step, argv) -> (exit code, stdout, stderr); step is "compile", "quantize small" or "compile small"
RunVerb = Callable[[str, list], tuple[int, str, str]]


@dataclass
class BoardCompile:
    """What :func:`compile_for_board` built for one board."""

    board: str
    build_dir: str
    report: dict | None             # `spikegate compile --json`'s report; None: nothing was compiled
    fell_back: bool = False         # the small checkpoint's build (the model asked for was refused)
    refused: str | None = None      # compile's message refusing the model asked for
    error: str | None = None        # why nothing was compiled


def compile_for_board(run: RunVerb, sgir: str, board: str, build_dir: str, *,
                      small_checkpoint: str | None = SMALL_CHECKPOINT,
                      small_sgir: str | None = None) -> BoardCompile:
    """Compile the IR ``sgir`` for ``board`` into ``build_dir``; where compile refuses it (it does
    not fit the board), quantize ``small_checkpoint`` (on the digits) to ``small_sgir``, unless
    that file exists already (one quantisation serves every board), and compile that instead.
    ``small_checkpoint=None``: no fallback."""
    def compile_argv(ir: str) -> list:
        return ["compile", ir, "--target", board, "-o", build_dir, "--json"]

    rc, out, err = run("compile", compile_argv(sgir))
    if rc == 0:
        return BoardCompile(board, build_dir, json.loads(out))
    refused = err.strip()
    if not small_checkpoint:
        return BoardCompile(board, build_dir, None, refused=refused, error=f"compile failed: {refused}")
    if small_sgir is None:
        small_sgir = os.path.join(os.path.dirname(os.path.abspath(build_dir)), "small.sgir")
    if not os.path.isfile(small_sgir):
        rc, _, qerr = run("quantize small", ["quantize", small_checkpoint, "--calib", "digits", "-o", small_sgir,
                                             "--json"])
        if rc != 0:
            return BoardCompile(board, build_dir, None, refused=refused,
                                error=f"quantize {small_checkpoint} failed: {qerr.strip()}")
    rc, out, err = run("compile small", compile_argv(small_sgir))
    if rc != 0:
        return BoardCompile(board, build_dir, None, fell_back=True, refused=refused,
                            error=f"compile failed: {err.strip()}")
    return BoardCompile(board, build_dir, json.loads(out), fell_back=True, refused=refused)


def synth_board(board: str, build_dir: str, console: str) -> tuple[int, str, str, float]:
    """``spikegate synth BUILD_DIR --board BOARD --json`` as a child process, its stderr (the flow's
    progress) into the file ``console``. Returns ``(exit code, stdout, error message, seconds)``;
    the message is the console's last line (empty on success). Never raises: a failure to start is
    that board's failure."""
    t0 = time.time()
    try:
        with open(console, "w") as log:
            p = subprocess.run([sys.executable, "-m", "spikegate", "synth", build_dir, "--board", board, "--json"],
                               stdout=subprocess.PIPE, stderr=log, text=True)
        err = ""
        if p.returncode != 0:
            with open(console, errors="replace") as f:
                lines = [ln for ln in f.read().splitlines() if ln.strip()]
            err = (lines[-1] if lines else f"exit {p.returncode}") + f" (console: {console})"
        return p.returncode, p.stdout, err, round(time.time() - t0, 2)
    except Exception as e:   # reported as this board's failure, never a hang in the caller
        return 1, "", f"{type(e).__name__}: {e}", round(time.time() - t0, 2)
