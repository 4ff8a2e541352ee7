"""Progress bars for the long steps (RTL simulation, synthesis, the demo).

Bars go to stderr and only appear on a terminal (``tqdm(disable=None)``), so logs, ``--json``
output and captured test output stay clean. Work that runs in a child process (a cocotb simulation,
the Yosys/nextpnr script) reports progress through a file the child appends to; :func:`poll`
polls it from a thread and moves the bar.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from typing import Callable, Iterator


def bar(total: int | None, desc: str, unit: str = "it", **options):
    """A tqdm bar on stderr, disabled when stderr is not a terminal (``options``: more tqdm ones)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, disable=None,
                dynamic_ncols=True, **options)


@contextlib.contextmanager
def poll(probe: Callable[[], object], update: Callable[[object], None], interval: float = 0.5) -> Iterator[None]:
    """While the block runs, call ``update(value)`` whenever ``probe()`` returns something new."""
    stop = threading.Event()
    seen = [object()]

    def loop():
        while True:
            try:
                value = probe()
                if value != seen[0]:
                    seen[0] = value
                    update(value)
            except Exception:   # a progress bar must never break the work it shows
                return
            if stop.wait(interval):
                return

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join()


def read_text(path: str) -> str:
    """The file's text, or "" while it does not exist."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
