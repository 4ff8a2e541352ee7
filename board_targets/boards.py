"""Boards as data: what ``spikegate synth`` can build for, and what each board offers.

Every entry names its amaranth-boards platform class (imported only when a build needs it), the FPGA
(family, device, package), datasheet resource budgets, the oscillator, the default accelerator clock
(a build directory's ``report.json`` ``clock_mhz`` or ``--clock-mhz`` overrides it; a PLL makes it
from the oscillator when they differ), and where the host UART is.

Resource figures are datasheet numbers (shared/notes/toolchain.md and the Lattice ECP5 family data
sheet): LUT4s, flip-flops, block RAMs (count and bits each), iCE40 SPRAMs, hardware multipliers.
The synth flow reports nextpnr's own count of what the device offers beside them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from spikegate.errors import SpikegateError

__all__ = ["Resources", "Board", "BOARDS", "known_boards", "get_board"]


@dataclass(frozen=True)
class Resources:
    luts: int
    ffs: int
    bram_blocks: int
    bram_block_bits: int
    spram_blocks: int = 0
    spram_block_bits: int = 0
    dsps: int = 0

    @property
    def bram_bits(self) -> int:
        return self.bram_blocks * self.bram_block_bits

    @property
    def spram_bits(self) -> int:
        return self.spram_blocks * self.spram_block_bits


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    platform_class: str            # "module:Class" in amaranth_boards
    family: str                    # "ice40" or "ecp5"
    device: str
    package: str
    resources: Resources
    oscillator_mhz: float
    clock_mhz: float               # default accelerator clock
    uart: tuple[str, int] = ("uart", 0)
    baud: int = 115200
    leds: tuple[tuple[str, int], ...] = ()     # (resource, number) for "loaded", "running"
    # Resources this board lacks in amaranth-boards but we need (added before the build), as a
    # callable returning a list of amaranth.build.Resource (data, but built lazily).
    extra_resources: str | None = None
    # Tools the platform insists on even when not programming; pointed at `true`.
    dummy_tools: tuple[str, ...] = ()
    notes: str = ""

    def platform(self):
        """A fresh amaranth-boards platform instance for this board (with our extra resources)."""
        mod, cls = self.platform_class.split(":")
        plat = getattr(importlib.import_module(mod), cls)()
        if self.extra_resources:
            mod, fn = self.extra_resources.split(":")
            plat.add_resources(getattr(importlib.import_module(mod), fn)())
        return plat

    def describe(self) -> dict:
        r = self.resources
        return {"board": self.name, "description": self.description, "family": self.family,
                "device": self.device, "package": self.package,
                "oscillator_mhz": self.oscillator_mhz, "clock_mhz": self.clock_mhz,
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


BOARDS: dict[str, Board] = {b.name: b for b in [
    Board(
        name="icebreaker",
        description="1BitSquared iCEBreaker: Lattice iCE40 UP5K (SG48), FTDI FT2232H USB-UART",
        platform_class="amaranth_boards.icebreaker:ICEBreakerPlatform",
        family="ice40", device="iCE40UP5K", package="SG48",
        resources=Resources(luts=5280, ffs=5280, bram_blocks=30, bram_block_bits=4096,
                            spram_blocks=4, spram_block_bits=256 * 1024, dsps=8),
        oscillator_mhz=12.0, clock_mhz=30.0,
        leds=(("led", 1), ("led", 0)),   # green: image loaded, red: running
    ),
    Board(
        name="ulx3s-85f",
        description="Radiona ULX3S: Lattice ECP5 LFE5U-85F (CABGA381), FTDI FT231X USB-UART",
        platform_class="amaranth_boards.ulx3s:ULX3S_85F_Platform",
        family="ecp5", device="LFE5U-85F", package="BG381",
        resources=Resources(luts=83640, ffs=83640, bram_blocks=208, bram_block_bits=18432,
                            dsps=156),
        oscillator_mhz=25.0, clock_mhz=100.0,
        leds=(("led", 0), ("led", 1)),
        dummy_tools=("openFPGALoader",),
    ),
    Board(
        name="orangecrab",
        description="Good Stuff Department OrangeCrab r0.2: Lattice ECP5 LFE5U-25F (csfBGA285); "
                    "host UART on Feather header pins 0 (RX) / 1 (TX) via a 3.3 V USB-UART adapter",
        platform_class="amaranth_boards.orangecrab_r0_2:OrangeCrabR0_2_25FPlatform",
        family="ecp5", device="LFE5U-25F", package="MG285",
        resources=Resources(luts=24288, ffs=24288, bram_blocks=56, bram_block_bits=18432, dsps=28),
        oscillator_mhz=48.0, clock_mhz=100.0,
        extra_resources="spikegate.board_targets.boards:orangecrab_uart",
        dummy_tools=("dfu-suffix",),
        notes="the bitstream has no DFU suffix; run `dfu-suffix -v 1209 -p 5af0 -a top.bit` "
              "before `dfu-util`",
    ),
]}


def known_boards() -> list[str]:
    return list(BOARDS)


def get_board(name: str) -> Board:
    try:
        return BOARDS[name]
    except KeyError:
        raise SpikegateError(f"unknown board {name!r}; known boards: {', '.join(known_boards())}") from None
