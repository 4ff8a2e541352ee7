"""Every code block in the README runs as written, as a new user would run it.

The README's fenced ``bash`` and ``python`` blocks run in order in one scratch folder (not the
repository), with this venv's ``spikegate`` first on PATH: the quickstart from an embedded
checkpoint to ``verify`` and ``synth``, then the Python API block. A block that must not run here
(``pip install``, ``run`` on a real board) carries an explicit marker on the line before it::

    <!-- no-test: why -->

Any other block, in any language, or an indented code block (which could not carry a marker) fails
the test, so a new example cannot slip into the README untested.

Cost: about 3 minutes of CPU, most of it the quickstart's synthesis of ``fpga-tiny-t2`` for the
OrangeCrab, the cheapest real synthesis (103 s of CPU measured with ``/usr/bin/time``; the
iCEBreaker's takes 229 s), and two Verilator builds (the quickstart's OrangeCrab build and the
Python block's ``sim`` build).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
RUNNABLE = ("bash", "python")
FENCE = re.compile(r"^```([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
MARKER = re.compile(r"^<!--\s*no-test:\s*(\S.*?)\s*-->$")


@dataclass
class Block:
    line: int              # 1-based line of the opening fence
    lang: str
    code: str
    skip: str | None       # the no-test reason, if marked


def blocks(text: str) -> list[Block]:
    """Every fenced code block with its language and its no-test reason (None: it must run)."""
    out = []
    for m in FENCE.finditer(text):
        above = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        mark = MARKER.match(above)
        out.append(Block(text.count("\n", 0, m.start()) + 1, m.group(1), m.group(2),
                         mark.group(1) if mark else None))
    return out


def indented_code(text: str) -> list[int]:
    """Lines that open an indented code block (4+ spaces after a blank line, outside fences)."""
    found, in_fence, prev_blank = [], False, True
    for i, line in enumerate(text.split("\n"), 1):
        if line.startswith("```"):
            in_fence = not in_fence
        elif not in_fence and line.startswith("    ") and line.strip() and prev_blank:
            found.append(i)
        prev_blank = not line.strip()
    return found


def problems(text: str) -> list[str]:
    """Blocks that would be neither run nor explicitly skipped."""
    bad = [f"README.md:{b.line}: a ```{b.lang or '(no language)'} block is neither run (bash, python) "
           f"nor marked <!-- no-test: reason -->" for b in blocks(text) if b.skip is None and b.lang not in RUNNABLE]
    bad += [f"README.md:{n}: an indented code block; use a fenced ```bash/```python block (or mark a fenced "
            f"one no-test)" for n in indented_code(text)]
    return bad


def test_every_block_is_run_or_marked():
    text = README.read_text()
    assert not problems(text), "\n".join(problems(text))
    run = [b for b in blocks(text) if b.skip is None]
    quick = "\n".join(b.code for b in run if b.lang == "bash")
    for verb in ("quantize", "golden", "compile", "verify", "synth"):   # the quickstart
        assert re.search(rf"^spikegate {verb} ", quick, re.M), f"the tested quickstart has no `spikegate {verb}`"
    assert any(b.lang == "python" for b in run), "no tested Python block"


def test_the_checker_can_fail():
    text = ("x\n\n```sh\nls\n```\n\n<!-- no-test: a board -->\n```bash\nrun\n```\n\n```python\n1\n```\n"
            "\nsome text:\n\n    indented code\n")
    assert [b.skip for b in blocks(text)] == [None, "a board", None]
    found = problems(text)
    assert len(found) == 2 and "README.md:3: a ```sh block" in found[0] and "README.md:18: an indented" in found[1]


@pytest.mark.slow
def test_readme_blocks_run_in_a_scratch_folder(tmp_path):
    """The quickstart and the Python block, in README order, in an empty folder."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONDONTWRITEBYTECODE="1")
    env.pop("PYTHONPATH", None)          # the installed spikegate, not the checkout on a path
    ran = 0
    for b in blocks(README.read_text()):
        if b.skip is not None:
            continue
        argv = ["bash", "-euo", "pipefail", "-c", b.code] if b.lang == "bash" else [sys.executable, "-c", b.code]
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
        assert r.returncode == 0, (f"README.md:{b.line} ({b.lang}) failed with exit {r.returncode} in {tmp_path}:\n"
                                   f"{b.code}\n--- stdout ---\n{r.stdout[-4000:]}\n--- stderr ---\n{r.stderr[-4000:]}")
        ran += 1
    assert ran >= 2
    assert list((tmp_path / "build-oc" / "orangecrab").glob("*.bit"))   # synth wrote the bitstream
    assert (tmp_path / "report" / "report.html").is_file()       # the Python block's report
