"""``BoardTop``: an accelerator core on a board, reachable over the board's USB-UART.

Clocking: when the accelerator clock differs from the board oscillator, a PLL makes it (iCE40:
``SB_PLL40_PAD`` straight from the clock pin; ECP5: ``EHXPLLL`` behind the input buffer), and the
``sync`` domain runs at what the PLL actually produces (the nearest reachable frequency; more than
1 % away is an error). Otherwise ``sync`` runs from the oscillator pin directly.

Reset: ``sync`` is held in reset until the PLL reports lock and then for another 15 us (counted in a
reset-less domain on the same clock; iCE40 block RAMs read as zero for about 3 us after
configuration, so Amaranth's own iCE40 platform waits as long), released through a
``ResetSynchronizer``.

Inside: :class:`spikegate.hw.host_link.UARTAccelerator` (UART at ``baud``, inter-byte timeout
``timeout_ms``) around the core from ``core_factory()``; a core with runtime-loaded weights (the
iCE40 build with WMEM in SPRAM) gets ``weight_words`` words through LOAD_WEIGHTS. LEDs, where the
board lists them, show "image loaded" and "running".
"""

from __future__ import annotations

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Module, Signal
from amaranth.lib import io
from amaranth.lib.cdc import ResetSynchronizer

from spikegate.hw.host_link import UARTAccelerator

from .boards import Board, get_board
from .pll import pll_instance, pll_params

__all__ = ["BoardTop", "clock_plan"]

POR_SECONDS = 15e-6
PLL_TOLERANCE = 0.01


def clock_plan(board: Board, clock_mhz: float | None = None) -> dict:
    """How ``board`` makes ``clock_mhz`` (default: the board's): oscillator or PLL, and the actual
    frequency. Raises ``ValueError`` when no PLL setting comes within 1 %."""
    want = float(clock_mhz if clock_mhz is not None else board.clock_mhz)
    if want <= 0:
        raise ValueError(f"clock must be a positive frequency in MHz, not {want!r}")
    if abs(want - board.oscillator_mhz) <= 1e-6 * want:
        return {"requested_mhz": want, "actual_mhz": board.oscillator_mhz, "pll": None}
    params = pll_params(board.family, board.oscillator_mhz, want)
    if abs(params.fout_mhz - want) > PLL_TOLERANCE * want:
        raise ValueError(f"the {board.name} PLL cannot make {want:g} MHz from its "
                         f"{board.oscillator_mhz:g} MHz oscillator (nearest {params.fout_mhz:g} MHz)")
    return {"requested_mhz": want, "actual_mhz": params.fout_mhz, "pll": params}


class BoardTop(Elaboratable):
    """Top level for ``board`` (a :class:`Board` or its name) around ``core_factory()``.

    ``num_pixels``/``num_classes`` (and ``weight_words``, for a core whose weights are loaded at
    run time) describe the core (they are not in its signature); the pixel and logit widths are
    read from the core's signature.
    """

    def __init__(self, core_factory, board, *, num_pixels: int, num_classes: int,
                 clock_mhz: float | None = None, baud: int | None = None, timeout_ms: float = 100.0,
                 weight_words: int = 0):
        self._board = board if isinstance(board, Board) else get_board(board)
        self._core_factory = core_factory
        self._core = None
        self._num_pixels, self._num_classes = num_pixels, num_classes
        self._weight_words = weight_words
        self._clock = clock_plan(self._board, clock_mhz)
        self._baud = int(baud or self._board.baud)
        if self._baud <= 0:
            raise ValueError(f"baud must be a positive integer, not {baud!r}")
        clk_hz = self._clock["actual_mhz"] * 1e6
        self._divisor = round(clk_hz / self._baud)
        self._timeout = max(1, int(clk_hz * timeout_ms / 1000))

    @property
    def board(self) -> Board:
        return self._board

    @property
    def core(self):
        """The accelerator core (``core_factory()``, called once, on first use)."""
        if self._core is None:
            self._core = self._core_factory()
        return self._core

    @property
    def clock(self) -> dict:
        return dict(self._clock)

    @property
    def uart_divisor(self) -> int:
        return self._divisor

    @property
    def baud(self) -> int:
        return self._baud

    @property
    def actual_baud(self) -> float:
        return self._clock["actual_mhz"] * 1e6 / self._divisor

    @property
    def uart_timeout(self) -> int:
        """The host link's inter-byte timeout, in clock cycles."""
        return self._timeout

    @property
    def por_cycles(self) -> int:
        """Clock cycles after PLL lock before ``sync`` leaves reset (then two synchroniser stages)."""
        return max(1, int(POR_SECONDS * self._clock["actual_mhz"] * 1e6))

    def elaborate(self, platform):
        m = Module()
        board = self._board
        pll = self._clock["pll"]
        clk_hz = self._clock["actual_mhz"] * 1e6
        clk_res = platform.default_clk

        clk = Signal(name="accel_clk")
        locked = Signal(name="pll_locked")
        pad = platform.request(clk_res, 0, dir="-")
        if pll is None:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", pad)
            m.d.comb += [clk.eq(clk_buf.i), locked.eq(1)]
        else:
            if board.family == "ice40":
                clk_in = pad.io      # SB_PLL40_PAD takes the pin itself
            else:
                m.submodules.clk_buf = clk_buf = io.Buffer("i", pad)
                clk_in = clk_buf.i
            m.submodules.pll = pll_instance(pll, clk_in=clk_in, clk_out=clk, locked=locked)
            if board.family == "ice40":
                platform.add_clock_constraint(clk, clk_hz)
            # (nextpnr-ecp5 takes the output frequency from the EHXPLLL's FREQUENCY_PIN_CLKOP
            # attribute; a net constraint would name a net that global promotion renames.)

        m.domains.sync = ClockDomain("sync")
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += [ClockSignal("sync").eq(clk), ClockSignal("por").eq(clk)]
        delay = self.por_cycles
        por_count = Signal(range(delay + 1))
        por_done = Signal()
        m.d.comb += por_done.eq(por_count == delay)
        with m.If(~locked):
            m.d.por += por_count.eq(0)
        with m.Elif(~por_done):
            m.d.por += por_count.eq(por_count + 1)
        m.submodules.reset_sync = ResetSynchronizer(~por_done, domain="sync")

        m.submodules.system = system = UARTAccelerator(
            self.core, num_pixels=self._num_pixels, num_classes=self._num_classes,
            divisor=self._divisor, timeout=self._timeout, clk_hz=int(round(clk_hz)),
            weight_words=self._weight_words,
            # the ECP5's host link starts the core from a register (hw/host_link.py); the UP5K's
            # netlist stays as it was, its Fmax margin being a placement's
            registered_start=board.family == "ecp5")

        uart = platform.request(*board.uart, dir="-")
        m.submodules.uart_rx_buf = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buf = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [system.rx.eq(rx_buf.i), tx_buf.o.eq(system.tx)]

        for n, ((res, num), sig) in enumerate(zip(board.leds, (system.loaded, system.running))):
            m.submodules[f"led_buf{n}"] = led_buf = io.Buffer("o", platform.request(res, num, dir="-"))
            m.d.comb += led_buf.o.eq(sig)
        return m
