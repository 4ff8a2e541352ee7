"""Memories of the datapath: thin, validated wrappers over :class:`amaranth.lib.memory.Memory`.

Each is a :class:`~amaranth.lib.memory.Memory` (add ports with ``read_port()``/``write_port()``)
whose shape and depth come from parameters, i.e. from the widths the IR declares:

* :class:`WeightMemory`: signed integer weights, initialised from an integer numpy array (any shape;
  flattened in C order), checked to fit ``width`` bits. Also used for per-channel constants
  (biases, shifts, thresholds) with ``signed=False`` where they are non-negative.
* :class:`MembraneMemory`: one signed membrane word per neuron, initially 0.
* :class:`SpikeBuffer`: ``depth`` words of ``width`` spike bits (a spike-map row per word), initially 0.

Every memory has at least 2 rows (a 1-row memory is padded): its address port is then never
zero bits wide, which Verilog cannot express (Amaranth would emit ``[-1:0]``).

Note (see ``notes/toolchain.md``): an Amaranth memory always carries initial contents, so Yosys maps
it to block RAM (EBR/DP16KD), never to the iCE40 UP5K's SPRAM.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import signed as signed_shape
from amaranth.hdl import unsigned
from amaranth.lib.memory import Memory

from .params import check_bool, check_int, check_int_array, check_width

__all__ = ["WeightMemory", "MembraneMemory", "SpikeBuffer"]


class WeightMemory(Memory):
    """Read-mostly memory initialised from an integer array.

    Parameters (keyword-only)
    -------------------------
    values : integer array-like, non-empty
        Contents, flattened in C order; row ``i`` holds ``values.flat[i]``.
    width : int
        Bits per row (the IR's declared weight width). Every value must fit.
    signed : bool
        Two's-complement rows (default) or unsigned rows.
    depth : int or None
        Rows; default ``values.size``. Larger depths are zero-padded.
    """

    def __init__(self, *, values, width: int, signed: bool = True, depth: int | None = None):
        self._signed = check_bool("signed", signed)
        self._width = check_width("width", width, minimum=2 if signed else 1)
        arr = check_int_array("values", values, bits=self._width, signed=self._signed)
        if arr.size == 0:
            raise ValueError(f"values must not be empty, not an array of shape {arr.shape!r}")
        flat = arr.reshape(-1)
        if depth is None:
            depth = flat.size
        depth = check_int("depth", depth, minimum=flat.size)
        self._values = flat.copy()
        depth = max(depth, 2)
        init = [int(v) for v in flat] + [0] * (depth - flat.size)
        shape = signed_shape(self._width) if self._signed else unsigned(self._width)
        super().__init__(shape=shape, depth=depth, init=init)

    @property
    def width(self) -> int:
        return self._width

    @property
    def values(self) -> np.ndarray:
        """The initial contents (flattened, without padding), a copy."""
        return self._values.copy()


class MembraneMemory(Memory):
    """One signed ``width``-bit membrane word per neuron (address = neuron index), initially 0."""

    def __init__(self, *, neurons: int, width: int):
        self._neurons = check_int("neurons", neurons, minimum=1)
        self._width = check_width("width", width, minimum=2)
        super().__init__(shape=signed_shape(self._width), depth=max(2, self._neurons), init=[])

    @property
    def neurons(self) -> int:
        return self._neurons

    @property
    def width(self) -> int:
        return self._width


class SpikeBuffer(Memory):
    """``depth`` words of ``width`` spike bits (bit ``x`` of a word is column ``x``), initially 0."""

    def __init__(self, *, depth: int, width: int):
        self._depth_ = check_int("depth", depth, minimum=1)
        self._width = check_width("width", width)
        super().__init__(shape=unsigned(self._width), depth=max(2, self._depth_), init=[])

    @property
    def width(self) -> int:
        return self._width
