"""Board targets: boards as data (``boards``), PLL settings (``pll``), the board top level (``top``)."""

from .boards import BOARDS, Board, Resources, get_board, known_boards  # noqa: F401
