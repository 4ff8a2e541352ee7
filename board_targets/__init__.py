"""Board targets: one record per board (``boards``: budgets, clocks, UART, platform, and the compile
target each produces), PLL settings (``pll``), the board top level (``top``), and the synthesis flow
(``flow``, with the log parsing of ``utilisation``)."""

from .boards import (BOARDS, Board, Resources, compile_target, compile_targets,  # noqa: F401
                     demo_boards, get_board, known_boards)
