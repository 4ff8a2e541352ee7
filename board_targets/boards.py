"""Boards as data: one record per board, the only place a board is described.

Each :class:`Board` names its amaranth-boards platform class (imported only when a build needs it),
the FPGA (family, device, package), datasheet resource budgets (:class:`Resources`), the oscillator,
the accelerator clock its builds request, the lanes the compiler gives it by default, and where the
host UART is. Everything else that lists boards derives from ``BOARDS``:

* the compiler's board targets: ``Board.target`` / :func:`compile_target` make the
  :class:`~spikegate.machine.target.Target` (pure data) the compiler plans against (the compiler
  never imports this package; ``spikegate compile --target NAME`` resolves a board name here);
* ``spikegate synth``'s boards (``board_targets/flow.py``), ``make demo``'s boards
  (:func:`demo_boards`) and the bench's board rows (:func:`known_boards`).

Resource figures are datasheet numbers (shared/notes/toolchain.md and the Lattice ECP5 family data
sheet): LUT4s, flip-flops, block RAMs (count and bits each), iCE40 SPRAMs, hardware multipliers.
The synth flow reports nextpnr's own count of what the device offers beside them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from spikegate.errors import SpikegateError
from spikegate.machine.target import Target

__all__ = ["Resources", "Board", "BOARDS", "known_boards", "get_board", "compile_target",
           "compile_targets", "demo_boards"]


@dataclass(frozen=True)
class Resources:
    luts: int
    ffs: int
    bram_blocks: int
    bram_block_bits: int
    spram_blocks: int = 0
    spram_block_bits: int = 0
    dsps: int = 0
    external_bits: int = 0         # off-chip memory for weights (the ULX3S's SDRAM; issue 24)

    @property
    def bram_bits(self) -> int:
        return self.bram_blocks * self.bram_block_bits

    @property
    def spram_bits(self) -> int:
        return self.spram_blocks * self.spram_block_bits


@dataclass(frozen=True)
class Board:
    name: str
    description: str               # one line: "<board>: <FPGA>" (the compile target's description)
    details: str                   # the rest a user needs to know: maker, package, USB-UART
    platform_class: str            # "module:Class" in amaranth_boards
    family: str                    # "ice40" or "ecp5"
    device: str
    package: str
    resources: Resources
    oscillator_mhz: float
    # The accelerator clock its builds request (report.json ``clock_mhz``, which ``--clock-mhz``
    # overrides at synthesis; a PLL makes it from the oscillator when they differ)
    clock_mhz: float
    default_lanes: int             # the compiler's lanes when --lanes is not given
    uart: tuple[str, int] = ("uart", 0)
    baud: int = 115200
    leds: tuple[tuple[str, int], ...] = ()     # (resource, number) for "loaded", "running"
    # Resources this board lacks in amaranth-boards but we need (added before the build), as a
    # callable returning a list of amaranth.build.Resource (data, but built lazily).
    extra_resources: str | None = None
    # Tools the platform insists on even when not programming; pointed at `true`.
    dummy_tools: tuple[str, ...] = ()
    notes: str = ""
    bigger: str = "large"          # the target a budget error suggests when a model does not fit
    # Position in `make demo` (spikegate/demo.py), which synthesises its boards in this order, the
    # first while the RTL verification runs: the longest synthesis first. None: not in the demo.
    demo_order: int | None = None

    def platform(self):
        """A fresh amaranth-boards platform instance for this board (with our extra resources)."""
        mod, cls = self.platform_class.split(":")
        plat = getattr(importlib.import_module(mod), cls)()
        if self.extra_resources:
            mod, fn = self.extra_resources.split(":")
            plat.add_resources(getattr(importlib.import_module(mod), fn)())
        return plat

    @property
    def target(self) -> Target:
        """The compile target of this board: its budgets, clock and default lanes."""
        r = self.resources
        return Target(self.name, self.description, self.family, self.clock_mhz, r.luts, r.ffs,
                      r.bram_bits, r.bram_blocks, r.spram_bits, r.dsps, spram_blocks=r.spram_blocks,
                      external_bits=r.external_bits, default_lanes=self.default_lanes, board=self.name, bigger=self.bigger)

    def describe(self) -> dict:
        r = self.resources
        return {"board": self.name, "description": f"{self.description} ({self.details})",
                "family": self.family, "device": self.device, "package": self.package,
                "oscillator_mhz": self.oscillator_mhz, "clock_mhz": self.clock_mhz,
                "default_lanes": self.default_lanes,
                "uart": f"{self.uart[0]}#{self.uart[1]}", "baud": self.baud,
                "resources": {"luts": r.luts, "ffs": r.ffs, "bram_blocks": r.bram_blocks,
                              "bram_bits": r.bram_bits, "spram_blocks": r.spram_blocks,
                              "spram_bits": r.spram_bits, "dsps": r.dsps}}


def orangecrab_uart():
    """The OrangeCrab has no USB-UART bridge (its USB goes straight to the FPGA). We put the host
    UART on the Feather header: pin 0 (RX, into the FPGA) and pin 1 (TX); wire a 3.3 V USB-UART
    adapter there."""
    from amaranth.build import Attrs
    from amaranth_boards.resources import UARTResource
    return [UARTResource(0, rx="0", tx="1", conn=("io", 0), attrs=Attrs(IO_TYPE="LVCMOS33"))]


# Clocks are what the shipped builds meet with margin (seed 1, `spikegate synth`): the default
# model at 8 lanes closes at 101.7 MHz on the ULX3S requesting 60 MHz (99.6 to 108.7 over seeds 1
# to 8, median 105.8; PLL from 25; its worst paths are the host link's argmax and the program ROM
# into the opcode flags; the requested clock does not change nextpnr's placement; 60 stays until a
# higher request is measured over seeds with its own PLL and UART divisor), fpga-tiny-t2 at 32.0 MHz
# on the iCEBreaker (30.35 to 31.97 over seeds 1 to 4; requested 21 MHz, PLL from 12: a 27 MHz
# request gave 29.9 to 30.5 on this round's netlists, no better; it uses 5,030 of 5,280 logic
# cells; its worst path is the host link's command decode, 31.3 ns); 24 MHz on the OrangeCrab,
# whose 48 MHz oscillator's PLL cannot make 25. The goals are 100 MHz (ECP5) and 30 MHz (UP5K).
# The UP5K's SPRAM cannot be initialised by the bitstream (and Yosys never maps an Amaranth memory
# to it: shared/notes/toolchain.md), so it holds only what is loaded at run time: the weights
# (WMEM), as SB_SPRAM256KA instances, when they do not fit the block RAM
# (compiler/passes/budget.py; the host uploads them, docs/host-protocol.md).
BOARDS: dict[str, Board] = {b.name: b for b in [
    Board(
        name="icebreaker",
        description="iCEBreaker: Lattice iCE40 UP5K",
        details="1BitSquared; SG48 package; FTDI FT2232H USB-UART",
        platform_class="amaranth_boards.icebreaker:ICEBreakerPlatform",
        family="ice40", device="iCE40UP5K", package="SG48",
        resources=Resources(luts=5280, ffs=5280, bram_blocks=30, bram_block_bits=4096,
                            spram_blocks=4, spram_block_bits=256 * 1024, dsps=8),
        oscillator_mhz=12.0, clock_mhz=21.0, default_lanes=1,
        leds=(("led", 1), ("led", 0)),   # green: image loaded, red: running
        bigger="ulx3s-85f", demo_order=1,
    ),
    Board(
        name="ulx3s-85f",
        description="ULX3S: Lattice ECP5 LFE5U-85F",
        details="Radiona; CABGA381 package; FTDI FT231X USB-UART",
        platform_class="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        family="ecp5", device="LFE5U-85F", package="BG381",
        resources=Resources(luts=83640, ffs=83640, bram_blocks=208, bram_block_bits=18432,
                            dsps=156, external_bits=32 * 2**20 * 8),   # 32 MB SDRAM (MT48LC16M16A2)
        oscillator_mhz=25.0, clock_mhz=60.0, default_lanes=8,
        # the FT231X does 3 Mbaud; at 60 MHz (every ULX3S build, SDRAM or not) the divisor is 20,
        # exact (at --clock-mhz 100 it is 33: +1.0 %). The MNIST build's sdram.bin (3,057,744 bytes)
        # takes 10.2 s on the wire, against 4.4 minutes at 115200.
        baud=3_000_000,
        leds=(("led", 0), ("led", 1)),
        dummy_tools=("openFPGALoader",),
        demo_order=0,
    ),
    Board(
        name="orangecrab",
        description="OrangeCrab r0.2: Lattice ECP5 LFE5U-25F",
        details="Good Stuff Department; csfBGA285 package; host UART on Feather header pins 0 (RX) "
                "/ 1 (TX) via a 3.3 V USB-UART adapter",
        platform_class="amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform",
        family="ecp5", device="LFE5U-25F", package="MG285",
        resources=Resources(luts=24288, ffs=24288, bram_blocks=56, bram_block_bits=18432, dsps=28),
        oscillator_mhz=48.0, clock_mhz=24.0, default_lanes=4,
        extra_resources="spikegate.board_targets.boards:orangecrab_uart",
        dummy_tools=("dfu-suffix",),
        notes="the bitstream has no DFU suffix; run `dfu-suffix -v 1209 -p 5af0 -a top.bit` "
              "before `dfu-util`",
        bigger="ulx3s-85f",
    ),
]}


def known_boards() -> list[str]:
    return list(BOARDS)


def demo_boards() -> list[str]:
    """The boards `make demo` builds, in the order it synthesises them."""
    return sorted((b.name for b in BOARDS.values() if b.demo_order is not None),
                  key=lambda n: BOARDS[n].demo_order)


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise SpikegateError(f"unknown board {name!r}; known boards: {', '.join(known_boards())}") from None


def compile_target(name: str) -> Target:
    """The compile target of board ``name`` (an unknown name: one line listing the boards)."""
    return get_board(name).target


def compile_targets() -> dict[str, Target]:
    """name -> compile target of every board."""
    return {name: b.target for name, b in BOARDS.items()}
