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

SDRAM builds (``sdram=True``: a core whose weights live in the ULX3S's SDRAM, with the burst port
``mem``): the LiteDRAM controller (:class:`.sdram.SDRAMController`) cannot run at the core's clock
(alone on the LFE5U-85F it reaches 94.5-98.4 MHz asked for 100; docs/sdram.md), so it gets a domain
of its own, ``dram``, at ``DRAM_MHZ`` (50: LiteX's own ULX3S default, nearly half the controller's
measured Fmax, and one division of the 600 MHz VCO that makes 60 or 100 MHz for the core). The PLL
always runs then: CLKOP is the core's clock, CLKOS ``dram``, CLKOS2 ``dram`` 90 degrees later,
which drives the SDRAM's clock pin through an ``ODDRX1F`` (the chip samples commands a quarter
cycle after the PHY launches them; docs/sdram.md, "Clocks"). :class:`.sdram_bridge.SDRAMBridge`
carries the core's bursts into ``dram`` and the beats back. ``dram`` leaves reset with the PLL's
lock; ``sync`` (and with it the host link and the core) stays in reset until the controller's
power-up sequence has run (``init_done``, about 200 us), so the core never reads the SDRAM before
it works. The SDRAM is empty at power-up: the host writes the image (``sdram.bin``, ``sdram_words``
16-bit words) over the host link (LOAD_SDRAM) and has it read back (CHECK_SDRAM); the link's SDRAM
port reaches the controller through the bridge's ``host`` port, and START is refused until the
check over the whole image has matched (docs/host-protocol.md).
"""

from __future__ import annotations

from amaranth.hdl import (ClockDomain, ClockSignal, DomainRenamer, Elaboratable, Instance, Module, Shape,
                          Signal)
from amaranth.lib import data, io, wiring
from amaranth.lib.cdc import FFSynchronizer, ResetSynchronizer

from spikegate.hw.host_link import UARTAccelerator

from .boards import Board, get_board
from .litedram_core import ULX3S_SDRAM
from .pll import ecp5_add_output, pll_instance, pll_params

__all__ = ["BoardTop", "CoreWithoutBurstPort", "clock_plan", "DRAM_MHZ"]

POR_SECONDS = 15e-6
PLL_TOLERANCE = 0.01
DRAM_MHZ = 50.0      # the SDRAM controller's clock, at most (module docstring)


def clock_plan(board: Board, clock_mhz: float | None = None, *, sdram: bool = False) -> dict:
    """How ``board`` makes ``clock_mhz`` (default: the board's): oscillator or PLL, and the actual
    frequency; with ``sdram``, also the controller's clock ``dram_mhz`` (the PLL's fastest division
    at most ``DRAM_MHZ``) and its 90-degree copy. Raises ``ValueError`` when no PLL setting comes
    within 1 %, or for ``sdram`` on a board that is not an ECP5."""
    want = float(clock_mhz if clock_mhz is not None else board.clock_mhz)
    if want <= 0:
        raise ValueError(f"clock must be a positive frequency in MHz, not {want!r}")
    if sdram and board.family != "ecp5":
        raise ValueError(f"the SDRAM board top is for the ULX3S (ECP5), not {board.name}")
    if abs(want - board.oscillator_mhz) <= 1e-6 * want and not sdram:
        return {"requested_mhz": want, "actual_mhz": board.oscillator_mhz, "pll": None}
    params = pll_params(board.family, board.oscillator_mhz, want)
    if abs(params.fout_mhz - want) > PLL_TOLERANCE * want:
        raise ValueError(f"the {board.name} PLL cannot make {want:g} MHz from its "
                         f"{board.oscillator_mhz:g} MHz oscillator (nearest {params.fout_mhz:g} MHz)")
    plan = {"requested_mhz": want, "actual_mhz": params.fout_mhz, "pll": params}
    if sdram:
        params = ecp5_add_output(ecp5_add_output(params, DRAM_MHZ), DRAM_MHZ, 90.0)
        plan.update(pll=params, dram_mhz=params.secondary[0].fout_mhz)
    return plan


class CoreWithoutBurstPort(wiring.Component):
    """An SDRAM core as the host link sees it: every member but the burst port ``mem``, which the
    board top connects to the SDRAM bridge itself (``mem`` reaches through to the core). Why: ``hw/host_link.accel_widths`` admits members beyond the accelerator signature only
    as outputs or as the runtime weight port, and the burst port is neither."""

    def __init__(self, core):
        self.inner = core
        super().__init__(wiring.Signature({name: member for name, member in core.signature.members.items()
                                           if name != "mem"}))

    @property
    def mem(self):
        return self.inner.mem

    @property
    def burst_port(self):
        """The core's :class:`~spikegate.machine.external_memory.BurstPort`, read from ``mem``'s
        signature (beat and address widths; the longest burst is the ULX3S port's). A ``mem``
        that is not that port's signature is a ``ValueError``."""
        from spikegate.hw.wload import burst_port_signature
        from spikegate.machine.external_memory import ULX3S_PORT, BurstPort

        members = self.inner.signature.members["mem"].signature.members
        beat = Shape.cast(members["rdata"].signature.members["payload"].shape)
        cmd = data.Layout.cast(members["cmd"].signature.members["payload"].shape)
        port = BurstPort(port_bits=beat.width, max_burst=ULX3S_PORT.max_burst,
                         addr_bits=Shape.cast(cmd["addr"].shape).width)
        if self.inner.signature.members["mem"] != wiring.Out(burst_port_signature(port)):
            raise ValueError(f"the core's burst port 'mem' is not the ULX3S's ({port}): "
                             f"{self.inner.signature.members['mem']!r}")
        return port

    def elaborate(self, platform):
        m = Module()
        m.submodules.core = self.inner
        for name, member in self.signature.members.items():
            ours, theirs = getattr(self, name), getattr(self.inner, name)
            if not member.is_port:
                wiring.connect(m, wiring.flipped(ours), theirs)
            elif member.flow == wiring.Out:
                m.d.comb += ours.eq(theirs)
            else:
                m.d.comb += theirs.eq(ours)
        return m


class BoardTop(Elaboratable):
    """Top level for ``board`` (a :class:`Board` or its name) around ``core_factory()``.

    ``num_pixels``/``num_classes`` (and ``weight_words``, for a core whose weights are loaded at
    run time, or ``sdram_words``, the 16-bit words of the SDRAM image of a core whose weights live
    there) describe the core (they are not in its signature); the pixel and logit widths are
    read from the core's signature.
    """

    def __init__(self, core_factory, board, *, num_pixels: int, num_classes: int,
                 clock_mhz: float | None = None, baud: int | None = None, timeout_ms: float = 100.0,
                 weight_words: int = 0, sdram: bool = False, sdram_words: int = 0):
        self._board = board if isinstance(board, Board) else get_board(board)
        self._core_factory = core_factory
        self._core = None
        self._num_pixels, self._num_classes = num_pixels, num_classes
        self._weight_words = weight_words
        self._sdram = bool(sdram)
        if self._sdram and not (isinstance(sdram_words, int) and sdram_words > 0):
            raise ValueError(f"sdram=True needs sdram_words, the image's 16-bit words (> 0), not {sdram_words!r}")
        self._sdram_words = int(sdram_words) if self._sdram else 0
        self._clock = clock_plan(self._board, clock_mhz, sdram=self._sdram)
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
    def sdram(self) -> bool:
        """The core's weights are in the SDRAM (module docstring)."""
        return self._sdram

    @property
    def dram_clock_hz(self) -> int | None:
        """The SDRAM controller's clock (the LiteDRAM core is generated for it), or None."""
        return int(round(self._clock["dram_mhz"] * 1e6)) if self._sdram else None

    @property
    def core(self):
        """The accelerator core (``core_factory()``, called once, on first use; a core with a burst
        port as :class:`CoreWithoutBurstPort`)."""
        if self._core is None:
            core = self._core_factory()
            if "mem" in core.signature.members:
                core = CoreWithoutBurstPort(core)
            self._core = core
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
        dram_clks = (Signal(name="dram_clk"), Signal(name="dram_clk_ps")) if self._sdram else ()
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
            m.submodules.pll = pll_instance(pll, clk_in=clk_in, clk_out=clk, locked=locked,
                                            secondary_out=dram_clks)
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
        # (an SDRAM build's core waits for the controller's power-up sequence: module docstring)
        held = ~locked
        if self._sdram:     # (a board without SDRAM keeps exactly the logic it had before)
            held = held | ~self._sdram_side(m, platform, *dram_clks, locked)
        with m.If(held):
            m.d.por += por_count.eq(0)
        with m.Elif(~por_done):
            m.d.por += por_count.eq(por_count + 1)
        m.submodules.reset_sync = ResetSynchronizer(~por_done, domain="sync")

        m.submodules.system = system = UARTAccelerator(
            self.core, num_pixels=self._num_pixels, num_classes=self._num_classes,
            divisor=self._divisor, timeout=self._timeout, clk_hz=int(round(clk_hz)),
            weight_words=self._weight_words, sdram_words=self._sdram_words,
            sdram_addr_bits=ULX3S_SDRAM.word_address_bits if self._sdram else None,
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
        if self._sdram:
            wiring.connect(m, self.core.mem, m.submodules.sdram_bridge.mem)
            wiring.connect(m, system.sdram, m.submodules.sdram_bridge.host)
        return m

    def _sdram_side(self, m, platform, dram_clk, dram_clk_ps, locked):
        """The ``dram`` domain: controller on the board's ``sdram`` pins, its clock pin, the bridge
        (its burst side connected to the core in ``elaborate``). Returns ``init_done`` in ``sync``."""
        from .sdram import SDRAMController, board_pins
        from .sdram_bridge import SDRAMBridge

        if not isinstance(self.core, CoreWithoutBurstPort):
            raise ValueError("sdram=True needs a core with a burst port 'mem' (weights='sdram')")
        m.domains.dram = ClockDomain("dram")
        m.d.comb += ClockSignal("dram").eq(dram_clk)
        m.submodules.dram_reset_sync = ResetSynchronizer(~locked, domain="dram")
        pins = platform.request("sdram", 0, dir="-")
        m.submodules.sdram_ctrl = ctrl = DomainRenamer("dram")(
            SDRAMController(self.dram_clock_hz, pins=board_pins(pins)))
        m.submodules.sdram_clk = Instance("ODDRX1F", i_SCLK=dram_clk_ps, i_RST=0, i_D0=1, i_D1=0,
                                          o_Q=pins.clk.io)
        m.submodules.sdram_bridge = bridge = SDRAMBridge(self.core.burst_port)
        wiring.connect(m, bridge.dram_cmd, ctrl.cmd)
        wiring.connect(m, bridge.dram_wdata, ctrl.wdata)
        wiring.connect(m, ctrl.rdata, bridge.dram_rdata)
        init_done = Signal()
        m.submodules.init_sync = FFSynchronizer(ctrl.init_done, init_done, o_domain="sync")
        return init_done
