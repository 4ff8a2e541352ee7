"""The host link: a framed request/response protocol over a byte stream (the UART), driving one
accelerator core (any component with the signature of :mod:`spikegate.hw.accel_interface`).

The protocol is specified in ``docs/host-protocol.md``; its constants and framing functions are
:mod:`spikegate.machine.host_protocol`, which the host client (:mod:`spikegate.host`) imports too. Layers, each a ``wiring.Component``:

* :class:`~spikegate.hw.host_link_framing.Deframer`  bytes -> frame events, and
  :class:`~spikegate.hw.host_link_framing.Enframer`  header + payload bytes -> a frame
  (``hw/host_link_framing.py``).
* :class:`HostLink`  executes commands, from its parts:
  :class:`~spikegate.hw.host_link_commands.CommandDispatcher` (frame events -> control and one
  response request per frame), :class:`~spikegate.hw.host_link_pixels.PixelLoader` (LOAD writes
  pixels into a ``lib.memory.Memory``), :class:`~spikegate.hw.host_link_pixels.PixelStreamer`
  (START streams them into the core), :class:`~spikegate.hw.host_link_results.ResultKeeper` (the
  logits are kept in a second memory while a running argmax is taken) and
  :class:`~spikegate.hw.host_link_response.ResponseBuilder` (READ / INFO / errors are answered
  through the enframer). For a core whose weights are loaded at run time (``weight_words > 0``),
  :class:`~spikegate.hw.host_link_weights.WeightLoader` writes LOAD_WEIGHTS' words through the
  core's ``weights`` port, INFO (protocol version 2) says how many words and whether they are
  loaded, and START is refused until they are. For a core whose weights live in SDRAM
  (``sdram_words > 0``), :class:`~spikegate.hw.host_link_sdram.SDRAMLoader` writes LOAD_SDRAM's
  words through the link's ``sdram`` port and reads them back for CHECK_SDRAM; INFO (protocol
  version 3) says whether the last check over the whole image matched, and START is refused until
  it has.
* :class:`UARTAccelerator`  UART receiver + host link + UART transmitter + the core: the whole
  system behind two pins, as simulated by the testbench and placed on the boards.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, signed
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikegate.hw.accel_interface import accelerator_signature, weight_port_signature
from spikegate.hw.uart import UARTRx, UARTTx, byte_stream
from spikegate.machine.host_protocol import (CLASS_BYTES, CYCLES_BYTES, LOGIT_BYTES, MAX_FRAME_PAYLOAD,
                                             bytes_per_pixel, info_payload)

from .host_link_commands import CommandDispatcher
from .host_link_framing import Deframer, Enframer, EventRegister
from .host_link_framing import check_int
from .host_link_pixels import PixelLoader, PixelStreamer
from .host_link_response import ResponseBuilder
from .host_link_results import ResultKeeper
from .host_link_sdram import SDRAMLoader, sdram_access_signature
from .host_link_weights import WeightLoader

__all__ = ["Deframer", "Enframer", "HostLink", "UARTAccelerator", "accel_widths", "accel_weights", "connect_core"]


def accel_widths(core) -> tuple[int, int]:
    """``(pixel_bits, logit_bits)`` read from an accelerator core's signature.

    The core must have every member of :func:`accelerator_signature` as specified; it may have
    more, if they are outputs (debug ports, say), which the host link leaves unconnected, and the
    runtime weight port ``weights`` (see :func:`accel_weights`)."""
    try:
        members = core.signature.members
        pixel_bits = members["pixels"].signature.members["payload"].shape.width
        logit_bits = data.Layout.cast(members["logits"].signature.members["payload"].shape)["value"].shape.width
    except (AttributeError, KeyError, TypeError, wiring.SignatureError) as e:
        raise TypeError(f"core must be a component with the accelerator signature, not {core!r} "
                        f"({e})") from None
    expected = accelerator_signature(pixel_bits=pixel_bits, logit_bits=logit_bits).members
    for name, member in expected.items():
        if name not in members or members[name] != member:
            raise TypeError(f"core must have the accelerator signature: member {name!r} must be "
                            f"{member!r}, not {members[name] if name in members else None!r}")
    for name, member in members.items():
        if name == "weights":
            accel_weights(core)
        elif name not in expected and not (member.is_port and member.flow == Out):
            raise TypeError(f"core may add only output ports to the accelerator signature, not "
                            f"{name!r}: {member!r}")
    return pixel_bits, logit_bits


def accel_weights(core) -> tuple[int, int] | None:
    """``(addr_bits, word_bits)`` of a core's runtime weight port (``weights``, an ``In`` member of
    :func:`~spikegate.hw.accel_interface.weight_port_signature`), or ``None`` if it has none
    (its weights are in the bitstream)."""
    members = core.signature.members
    if "weights" not in members:
        return None
    member = members["weights"]
    try:
        ports = member.signature.members
        addr_bits = Shape.cast(ports["addr"].shape).width
        word_bits = Shape.cast(ports["data"].shape).width
        ok = member == In(weight_port_signature(addr_bits=addr_bits, word_bits=word_bits))
    except (AttributeError, KeyError, TypeError, ValueError, wiring.SignatureError):
        ok = False
    if not ok:
        raise TypeError(f"core member 'weights' must be In(weight_port_signature(...)), not {member!r}")
    return addr_bits, word_bits


def connect_core(m: Module, accel, core, weights=None) -> None:
    """Connect a host link's ``accel`` interface to ``core`` member by member (the core may have
    extra output ports, see :func:`accel_widths`), and the link's ``weights`` port to the core's
    when given."""
    wiring.connect(m, accel.pixels, core.pixels)
    wiring.connect(m, core.logits, accel.logits)
    m.d.comb += [accel.cycles.eq(core.cycles), accel.busy.eq(core.busy)]
    if weights is not None:
        wiring.connect(m, weights, core.weights)


class HostLink(wiring.Component):
    """Executes host commands on an accelerator core.

    Members: ``rx`` (In byte stream, from the UART receiver), ``tx`` (Out byte stream, to the UART
    transmitter), ``accel`` (the core's interface, flipped: connect with
    ``connect_core(m, link.accel, core)``), ``running`` and ``loaded`` (Out, for status LEDs);
    with runtime weights also ``weights`` (Out, :func:`weight_port_signature`, registered: one
    word per cycle, to the core's ``weights``) and ``weights_loaded`` (Out).

    Parameters (keyword-only): ``num_pixels``, ``num_classes``, ``pixel_bits``, ``logit_bits``
    (<= 32, logits travel as 32-bit words), ``timeout`` (inter-byte timeout in clock cycles) and
    ``clk_hz`` (reported by INFO so the host can turn cycles into time; 0 = unknown). For a core
    whose weights are loaded at run time: ``weight_words`` (> 0: the words LOAD_WEIGHTS must
    write before START is accepted), ``weight_bits`` (bits per word) and ``weight_addr_bits``
    (the core's weight address width; default: just enough for ``weight_words``). For a core
    whose weights live in SDRAM: ``sdram_words`` (> 0: the image's 16-bit words, from SDRAM word
    0) and ``sdram_addr_bits`` (the SDRAM's word address width); members ``sdram`` (Out,
    :func:`~spikegate.hw.host_link_sdram.sdram_access_signature`, to the SDRAM bridge) and
    ``sdram_verified`` (Out).
    """

    def __init__(self, *, num_pixels: int, num_classes: int, pixel_bits: int, logit_bits: int,
                 timeout: int, clk_hz: int = 0, weight_words: int = 0, weight_bits: int = 0,
                 weight_addr_bits: int | None = None, registered_start: bool = False,
                 sdram_words: int = 0, sdram_addr_bits: int | None = None):
        self._registered_start = bool(registered_start)
        check_int("pixel_bits", pixel_bits, 2, 32)
        check_int("logit_bits", logit_bits, 2, 32)
        bpp = bytes_per_pixel(pixel_bits)
        check_int("num_pixels", num_pixels, 1, MAX_FRAME_PAYLOAD // bpp)
        check_int("num_classes", num_classes, 1, (MAX_FRAME_PAYLOAD - CLASS_BYTES - CYCLES_BYTES) // LOGIT_BYTES)
        check_int("timeout", timeout, 1)
        check_int("clk_hz", clk_hz, 0, 2**32 * 1000 - 1)
        self._num_pixels, self._num_classes = num_pixels, num_classes
        self._pixel_bits, self._logit_bits = pixel_bits, logit_bits
        self._timeout, self._clk_hz = timeout, clk_hz
        check_int("weight_words", weight_words, 0, 2**32 - 1)
        members = {
            "rx": In(byte_stream()),
            "tx": Out(byte_stream()),
            "accel": In(accelerator_signature(pixel_bits=pixel_bits, logit_bits=logit_bits)),
            "running": Out(1),
            "loaded": Out(1),
        }
        if weight_words:
            check_int("weight_bits", weight_bits, 1, 8 * 255)
            need = max(1, (weight_words - 1).bit_length())
            if weight_addr_bits is None:
                weight_addr_bits = need
            check_int("weight_addr_bits", weight_addr_bits, need, 32)
            members["weights"] = Out(weight_port_signature(addr_bits=weight_addr_bits, word_bits=weight_bits))
            members["weights_loaded"] = Out(1)
        else:
            weight_bits = 0
        check_int("sdram_words", sdram_words, 0, 2**32 - 1)
        if sdram_words:
            if weight_words:
                raise ValueError("a core's weights are loaded into SPRAM (weight_words) or live in SDRAM "
                                 "(sdram_words), not both")
            need = max(1, (sdram_words - 1).bit_length())
            sdram_addr_bits = need if sdram_addr_bits is None else sdram_addr_bits
            check_int("sdram_addr_bits", sdram_addr_bits, need, 32)
            members["sdram"] = Out(sdram_access_signature(sdram_addr_bits))
            members["sdram_verified"] = Out(1)
        self._sdram_words, self._sdram_addr_bits = sdram_words, sdram_addr_bits
        self._weight_words, self._weight_bits = weight_words, weight_bits
        super().__init__(members)

    num_pixels = property(lambda self: self._num_pixels)
    num_classes = property(lambda self: self._num_classes)
    pixel_bits = property(lambda self: self._pixel_bits)
    logit_bits = property(lambda self: self._logit_bits)
    timeout = property(lambda self: self._timeout)
    clk_hz = property(lambda self: self._clk_hz)
    weight_words = property(lambda self: self._weight_words)
    weight_bits = property(lambda self: self._weight_bits)
    sdram_words = property(lambda self: self._sdram_words)

    def info_payload(self, weights_loaded: bool = False) -> bytes:
        return info_payload(num_pixels=self._num_pixels, num_classes=self._num_classes,
                            pixel_bits=self._pixel_bits, logit_bits=self._logit_bits,
                            clk_hz=self._clk_hz, weight_words=self._weight_words,
                            weight_bits=self._weight_bits, weights_loaded=weights_loaded,
                            sdram_words=self._sdram_words, sdram_verified=weights_loaded)

    def elaborate(self, platform):
        m = Module()
        npix, ncls, nw = self._num_pixels, self._num_classes, self._weight_words
        accel = self.accel

        m.submodules.deframer = deframer = Deframer(timeout=self._timeout)
        m.submodules.events = events = EventRegister()
        m.submodules.enframer = enframer = Enframer()
        m.submodules.commands = commands = CommandDispatcher(
            num_pixels=npix, pixel_bits=self._pixel_bits, weight_words=nw, weight_bits=self._weight_bits,
            registered_start=self._registered_start, sdram_words=self._sdram_words)
        m.submodules.pixel_loader = loader = PixelLoader(num_pixels=npix, pixel_bits=self._pixel_bits)
        m.submodules.pixel_streamer = streamer = PixelStreamer(num_pixels=npix, pixel_bits=self._pixel_bits)
        m.submodules.results = results = ResultKeeper(num_classes=ncls, logit_bits=self._logit_bits)
        m.submodules.responder = responder = ResponseBuilder(
            info=self.info_payload(), num_classes=ncls, logit_bits=self._logit_bits, weight_words=nw,
            sdram_words=self._sdram_words)
        m.submodules.pixel_mem = pixel_mem = Memory(shape=signed(self._pixel_bits), depth=npix, init=[])
        m.submodules.logit_mem = logit_mem = Memory(shape=signed(self._logit_bits), depth=ncls, init=[])

        # frames in: events to the dispatcher, and the events it takes to the loaders
        wiring.connect(m, wiring.flipped(self.rx), deframer.i)
        wiring.connect(m, deframer.o, events.i)
        wiring.connect(m, events.o, commands.events)
        wiring.connect(m, commands.event, loader.event)
        wiring.connect(m, loader.write, pixel_mem.write_port())
        m.d.comb += [loader.accept.eq(commands.accept), commands.load_ok.eq(loader.load_ok)]
        # the image to the core, the core's logits into the logit memory
        wiring.connect(m, streamer.read, pixel_mem.read_port())
        wiring.connect(m, streamer.pixels, wiring.flipped(accel.pixels))
        wiring.connect(m, wiring.flipped(accel.logits), results.logits)
        wiring.connect(m, results.write, logit_mem.write_port())
        m.d.comb += [streamer.start.eq(commands.start), results.start.eq(commands.start)]
        # responses out
        wiring.connect(m, commands.request, responder.request)
        wiring.connect(m, responder.hdr, enframer.hdr)
        wiring.connect(m, responder.payload, enframer.i)
        wiring.connect(m, responder.logits, logit_mem.read_port())
        wiring.connect(m, enframer.o, wiring.flipped(self.tx))
        m.d.comb += [responder.best_idx.eq(results.best_idx), responder.cycles.eq(accel.cycles)]

        busy = results.running | accel.busy
        if self._sdram_words:
            busy = self._sdram(m, commands, responder, busy)
        m.d.comb += [commands.busy.eq(busy), commands.have_result.eq(results.have_result),
                     self.running.eq(results.running), self.loaded.eq(commands.loaded)]
        if nw:
            m.submodules.weight_loader = weights = WeightLoader(
                weight_words=nw, weight_bits=self._weight_bits, weight_addr_bits=len(self.weights.addr))
            wiring.connect(m, commands.event, weights.event)
            wiring.connect(m, weights.status, commands.weights)
            wiring.connect(m, weights.weights, wiring.flipped(self.weights))
            m.d.comb += [weights.busy.eq(busy), self.weights_loaded.eq(weights.status.loaded),
                         responder.weights_next.eq(weights.next),
                         responder.weights_loaded.eq(weights.status.loaded)]
        return m

    def _sdram(self, m, commands, responder, core_busy):
        """The SDRAM loader, wired; returns the dispatcher's ``busy`` (a running check counts)."""
        m.submodules.sdram_loader = sdram = SDRAMLoader(words=self._sdram_words, addr_bits=self._sdram_addr_bits)
        wiring.connect(m, commands.event, sdram.event)
        wiring.connect(m, sdram.status, commands.sdram)
        wiring.connect(m, sdram.sdram, wiring.flipped(self.sdram))
        m.d.comb += [sdram.busy.eq(core_busy), self.sdram_verified.eq(sdram.status.verified),
                     responder.sdram_next.eq(sdram.next), responder.sdram_crc.eq(sdram.crc),
                     responder.sdram_verified.eq(sdram.status.verified),
                     responder.sdram_checking.eq(sdram.status.checking)]
        return core_busy | sdram.status.checking


# ---------------------------------------------------------------------------------------- system


class UARTAccelerator(wiring.Component):
    """UART receiver + :class:`HostLink` + UART transmitter + ``core``: the system behind two pins.

    ``core`` is an elaboratable component with the accelerator signature (its pixel and logit
    widths are read from the signature); ``num_pixels``/``num_classes`` describe what it computes;
    ``divisor`` is clock cycles per UART bit; ``timeout`` the inter-byte timeout in cycles;
    ``clk_hz`` the clock frequency reported by INFO.

    A core with a runtime weight port (``weights``, see :func:`accel_weights`) needs
    ``weight_words``, the number of words the host must load (LOAD_WEIGHTS) before START. A core
    whose weights live in SDRAM needs ``sdram_words`` (its image's 16-bit words) and
    ``sdram_addr_bits``; the link's SDRAM port is then the member ``sdram`` (for the SDRAM bridge;
    the core's own burst port is the board top's to connect).

    Members: ``rx`` (In, idles high), ``tx`` (Out, idles high), ``running``, ``loaded``,
    ``rx_error`` (Out, pulses on a UART framing error or overrun).
    """

    def __init__(self, core, *, num_pixels: int, num_classes: int, divisor: int, timeout: int,
                 clk_hz: int = 0, weight_words: int = 0, registered_start: bool = False,
                 sdram_words: int = 0, sdram_addr_bits: int | None = None):
        pixel_bits, logit_bits = accel_widths(core)
        port = accel_weights(core)
        if (port is None) != (not weight_words):
            raise ValueError(f"weight_words must be given (> 0) exactly when the core has a runtime "
                             f"weight port; the core has {'one' if port else 'none'}, weight_words is "
                             f"{weight_words!r}")
        addr_bits, word_bits = port or (None, 0)
        if port is not None and weight_words > 1 << addr_bits:
            raise ValueError(f"weight_words must be at most {1 << addr_bits} (the core's weight "
                             f"address is {addr_bits} bits), not {weight_words}")
        self._core = core
        self._link = HostLink(num_pixels=num_pixels, num_classes=num_classes, pixel_bits=pixel_bits,
                              logit_bits=logit_bits, timeout=timeout, clk_hz=clk_hz,
                              weight_words=weight_words, weight_bits=word_bits,
                              weight_addr_bits=addr_bits, registered_start=registered_start,
                              sdram_words=sdram_words, sdram_addr_bits=sdram_addr_bits)
        self._uart_rx = UARTRx(divisor=divisor)
        self._uart_tx = UARTTx(divisor=divisor)
        members = {
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "running": Out(1),
            "loaded": Out(1),
            "rx_error": Out(1),
        }
        if sdram_words:
            members["sdram"] = Out(self._link.signature.members["sdram"].signature)
        super().__init__(members)

    @property
    def link(self) -> HostLink:
        return self._link

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = self._uart_rx
        m.submodules.uart_tx = utx = self._uart_tx
        m.submodules.link = link = self._link
        m.submodules.core = core = self._core
        wiring.connect(m, urx.o, link.rx)
        wiring.connect(m, link.tx, utx.i)
        connect_core(m, link.accel, core, link.weights if link.weight_words else None)
        if link.sdram_words:
            wiring.connect(m, link.sdram, wiring.flipped(self.sdram))
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), self.running.eq(link.running),
                     self.loaded.eq(link.loaded), self.rx_error.eq(urx.frame_error | urx.overrun)]
        return m
