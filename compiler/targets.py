"""Compilation targets as data: memory and logic budgets and the clock.

Figures are the datasheet numbers in shared/notes/toolchain.md. ``sim`` and ``large`` are not
boards: ``sim`` is for simulation (generous on-chip memory), ``large`` models an accelerator with
external memory, for sizing the paper presets.
"""

from __future__ import annotations

from dataclasses import dataclass

from spikegate.errors import SpikegateError


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
    board: str | None = None  # board_targets name for `spikegate synth`


TARGETS: dict[str, Target] = {t.name: t for t in [
    Target("sim", "simulation only: 64 Mbit on-chip, no logic limit", "sim", 100.0, 10**9, 10**9,
           64 * 2**20, 10**6, 0, 10**6, default_lanes=8),
    Target("large", "sizing target with 1 GiB external memory (paper presets)", "sim", 200.0, 10**9, 10**9,
           64 * 2**20, 10**6, 0, 10**6, external_bits=8 * 2**30, default_lanes=32),
    # Clocks are what the shipped builds meet with margin (seed 1, `spikegate synth`): the default
    # model at 8 lanes closes at 101.7 MHz on the ULX3S requesting 60 MHz (99.6 to 108.7 over
    # seeds 1 to 8, median 105.8; PLL from 25; its worst paths are the host link's argmax and
    # the program ROM into the opcode flags; the requested clock does not change nextpnr's
    # placement; 60 stays until a higher request is measured over seeds with its own PLL and
    # UART divisor), fpga-tiny-t2 at 32.0 MHz on the iCEBreaker
    # (30.35 to 31.97 over seeds 1 to 4; requested 21 MHz, PLL from 12: a 27 MHz request gave
    # 29.9 to 30.5 on this round's netlists, no better; it uses 5,030 of 5,280 logic cells; its
    # worst path is the host link's command decode, 31.3 ns); 24 MHz on the OrangeCrab, whose
    # 48 MHz oscillator's PLL cannot make 25. The goals are 100 MHz (ECP5) and 30 MHz (UP5K).
    # The UP5K's SPRAM cannot be initialised by the bitstream (and Yosys never maps an
    # Amaranth memory to it: shared/notes/toolchain.md), so it holds only what is loaded at run
    # time: the weights (WMEM), as SB_SPRAM256KA instances, when they do not fit the block RAM
    # (compiler/passes/budget.py; the host uploads them, docs/host-protocol.md).
    Target("icebreaker", "iCEBreaker: Lattice iCE40 UP5K", "ice40", 21.0, 5280, 5280, 30 * 4096, 30,
           4 * 16384 * 16, 8, default_lanes=1, board="icebreaker", spram_blocks=4),
    Target("ulx3s-85f", "ULX3S: Lattice ECP5 LFE5U-85F", "ecp5", 60.0, 83640, 83640, 208 * 18432, 208,
           0, 156, default_lanes=8, board="ulx3s-85f"),
    Target("orangecrab", "OrangeCrab r0.2: Lattice ECP5 LFE5U-25F", "ecp5", 24.0, 24288, 24288, 56 * 18432, 56,
           0, 28, default_lanes=4, board="orangecrab"),
]}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise SpikegateError(f"unknown target {name!r}; known targets: {', '.join(TARGETS)}") from None
