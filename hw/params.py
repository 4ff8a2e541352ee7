"""Width arithmetic shared by the engines: :func:`bits_for`, the width of an unsigned counter.

(What was here besides it, the parameter checks of the stream-component library, went with that
library: the shipped accelerator's engines take their widths from ``MachineConfig``.)
"""

from __future__ import annotations

__all__ = ["bits_for"]


def bits_for(n: int) -> int:
    """Width of an unsigned counter holding ``0..n`` (at least 1)."""
    return max(1, int(n).bit_length())
