"""What the compiler plans a build for: a :class:`Target`, memory and logic budgets and the clock.

Pure data, so that both sides of the import rule can use it: the board records
(``board_targets/boards.py``) each produce the Target of their board (``Board.target``), and the
compiler (``compiler/targets.py``) defines the targets that are not boards (``sim``, ``large``) and
plans against whichever Target it is given, never importing a board.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Target"]


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    family: str          # ice40, ecp5, sim
    clock_mhz: float     # requested accelerator clock
    luts: int
    ffs: int
    bram_bits: int       # block RAM, total bits
    bram_blocks: int
    spram_bits: int      # iCE40 single-port RAM (SB_SPRAM256KA), total bits
    dsps: int            # hardware multipliers
    external_bits: int = 0  # off-chip memory usable for weights/activations
    spram_blocks: int = 0   # SB_SPRAM256KA instances (16K x 16 each)
    default_lanes: int = 8
    board: str | None = None  # the board record this target is, for `spikegate synth`
    bigger: str = "large"     # the target a budget error suggests when the model does not fit
