"""Parameter checks shared by the datapath components (one wording everywhere).

Every component checks its keyword-only parameters in ``__init__`` with these helpers, so a bad
parameter fails at construction with ``TypeError`` (wrong kind of value) or ``ValueError`` (right
kind, wrong value), worded "NAME must be ..., not VALUE!r". The tests pin the wording.

It also holds the two small arithmetic helpers the components share: :func:`bits_for` (width of an
unsigned counter) and :func:`mul_const` (a product by a constant built from shifts and adds, so that
synthesis never infers a multiplier for address arithmetic).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from amaranth.hdl import Const, Value, unsigned

__all__ = ["check_int", "check_width", "check_choice", "check_bool", "check_int_array",
           "check_divides", "bits_for", "mul_const", "signed_range"]


def check_int(name: str, value, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` in ``[minimum, maximum]``; ``bool`` and floats are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    value = int(value)
    if minimum is not None and maximum is not None and not minimum <= value <= maximum:
        raise ValueError(f"{name} must be an integer between {minimum} and {maximum}, not {value!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, not {value!r}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be an integer <= {maximum}, not {value!r}")
    return value


def check_width(name: str, value, *, minimum: int = 1) -> int:
    """A bit width: a positive integer (at least 2 for signed quantities, pass ``minimum=2``)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be a positive integer bit width, not {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be a bit width >= {minimum}, not {value!r}")
    return int(value)


def check_choice(name: str, value, choices: Iterable):
    choices = tuple(choices)
    if isinstance(value, bool) or value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}, not {value!r}")
    return value


def check_bool(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return value


def check_divides(name: str, value: int, of_name: str, of: int) -> None:
    if of % value:
        raise ValueError(f"{name} must divide {of_name} ({of}), not {value!r}")


def signed_range(bits: int) -> tuple[int, int]:
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def check_int_array(name: str, value, *, shape: tuple[int, ...] | None = None,
                    bits: int | None = None, signed: bool = True,
                    minimum: int | None = None) -> np.ndarray:
    """An integer numpy array (a copy, ``int64``) of the given shape whose values fit ``bits``."""
    arr = np.asarray(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        what = f"an array of {arr.dtype}" if isinstance(value, np.ndarray) else _short(value)
        raise TypeError(f"{name} must be an integer array, not {what}")
    arr = arr.astype(np.int64)
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, not {arr.shape!r}")
    if arr.size and minimum is not None and int(arr.min()) < minimum:
        raise ValueError(f"{name} must hold integers >= {minimum}, not {int(arr.min())!r}")
    if bits is not None and arr.size:
        lo, hi = signed_range(bits) if signed else (0, (1 << bits) - 1)
        bad = arr[(arr < lo) | (arr > hi)]
        if bad.size:
            kind = "signed" if signed else "unsigned"
            raise ValueError(f"{name} must fit {bits}-bit {kind} integers [{lo}, {hi}], "
                             f"not {int(bad.flat[0])!r}")
    return arr


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def bits_for(n: int) -> int:
    """Width of an unsigned counter holding ``0..n`` (at least 1)."""
    return max(1, int(n).bit_length())


def mul_const(value: Value, constant: int) -> Value:
    """``value * constant`` for a non-negative constant, as a sum of shifted copies of ``value``.

    Used for address arithmetic (``row * width`` and the like): written this way synthesis sees
    adders, never a ``$mul`` cell that it could map to a DSP block.
    """
    constant = int(constant)
    if constant < 0:
        raise ValueError(f"constant must be a non-negative integer, not {constant!r}")
    value = Value.cast(value)
    terms = [value << i for i in range(constant.bit_length()) if (constant >> i) & 1]
    if not terms:
        return Const(0, unsigned(1))
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total
