"""The machine's memory geometry: where weights live when they are not in block RAM.

On the iCE40 UP5K the weights that do not fit block RAM go to the SB_SPRAM256KA blocks (16K words
of 16 bits, writes masked per nibble). :func:`spram_plan` is the one mapping of WMEM words onto
them: the compiler's budget counts blocks with it, ``hw/spram.py`` builds the memory from it, and
the weight image the host uploads is laid out by it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SPRAM_WORDS", "SPRAM_WIDTH", "SPRAM_NIBBLE", "SPRAMPlan", "spram_plan"]

SPRAM_WORDS = 16384     # iCE40 UP5K SB_SPRAM256KA: 16K x 16 bits, writes masked per nibble
SPRAM_WIDTH = 16
SPRAM_NIBBLE = 4


@dataclass(frozen=True)
class SPRAMPlan:
    """Where WMEM word ``a`` (``width`` bits) lives in a set of SB_SPRAM256KA blocks.

    Narrow words are packed ``per_row`` to a 16-bit row, each in a ``slot_bits``-wide slot that the
    nibble write masks can write alone (``slot_bits`` is 4, 8 or 16); words wider than 16 bits span
    ``columns`` blocks side by side. Row ``a // per_row`` of the memory is row ``(a // per_row) %
    16384`` of bank ``(a // per_row) // 16384``; slot ``a % per_row`` holds bits ``[s * slot_bits,
    (s + 1) * slot_bits)`` of the row (of each column block: column ``c`` holds bits ``[16c, 16c +
    16)`` of the word). ``blocks = banks * columns`` instances in all.
    """

    words: int
    width: int
    per_row: int
    slot_bits: int
    columns: int
    banks: int

    @property
    def rows(self) -> int:
        return -(-self.words // self.per_row)

    @property
    def blocks(self) -> int:
        return self.banks * self.columns

    @property
    def bits(self) -> int:
        """Bits of SPRAM the plan occupies (whole blocks)."""
        return self.blocks * SPRAM_WORDS * SPRAM_WIDTH

    def describe(self) -> dict:
        return {"blocks": self.blocks, "banks": self.banks, "columns": self.columns,
                "words_per_row": self.per_row, "slot_bits": self.slot_bits}


def spram_plan(words: int, width: int) -> SPRAMPlan:
    """The densest packing of ``words`` words of ``width`` bits into SB_SPRAM256KA blocks."""
    if not isinstance(words, int) or words < 1:
        raise ValueError(f"words must be a positive integer, not {words!r}")
    if not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be a positive integer, not {width!r}")
    if width > SPRAM_WIDTH:
        per_row, slot, columns = 1, SPRAM_WIDTH, -(-width // SPRAM_WIDTH)
    else:
        slot = SPRAM_NIBBLE
        while slot < width:
            slot *= 2
        per_row, columns = SPRAM_WIDTH // slot, 1
    rows = -(-words // per_row)
    return SPRAMPlan(words=words, width=width, per_row=per_row, slot_bits=slot, columns=columns,
                     banks=-(-rows // SPRAM_WORDS))
