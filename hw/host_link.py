"""The host link: a framed request/response protocol over a byte stream (the UART), driving one
accelerator core (any component with the signature of :mod:`spikegate.hw.accel_interface`).

The protocol is specified in ``docs/host-protocol.md``; its constants and framing functions are
:mod:`spikegate.machine.host_protocol`, which the host client (:mod:`spikegate.host`) imports too. Layers, each a ``wiring.Component``:

* :class:`Deframer`  bytes -> frame events (header, payload bytes, end with checksum verdict, or
  timeout). Drops bytes outside frames; an inter-byte timeout resets it, so a truncated frame
  cannot wedge the link.
* :class:`Enframer`  header + payload bytes -> bytes on the wire, with sync and checksum.
* :class:`HostLink`  executes commands: LOAD writes pixels into a ``lib.memory.Memory``, START
  streams them into the core, the logits are kept in a second memory while a running argmax is
  taken, READ / INFO / errors are answered through the enframer. For a core whose weights are
  loaded at run time (``weight_words > 0``), LOAD_WEIGHTS writes them through the core's
  ``weights`` port, INFO (protocol version 2) says how many words and whether they are loaded,
  and START is refused until they are.
* :class:`UARTAccelerator`  UART receiver + host link + UART transmitter + the core: the whole
  system behind two pins, as simulated by the testbench and placed on the boards.
"""

from __future__ import annotations

from amaranth.lib import enum as hdl_enum
from amaranth.hdl import Array, Cat, Const, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from spikegate.hw.accel_interface import (CYCLE_COUNTER_BITS, accelerator_signature,
                                           weight_port_signature)
from spikegate.hw.uart import UARTRx, UARTTx, byte_stream
from spikegate.machine.host_protocol import (CLASS_BYTES, CYCLES_BYTES, ERROR_RESPONSE, INFO_LENGTH,
                                             INFO_RUNTIME_WEIGHTS,
                                             LOGIT_BYTES, MAX_FRAME_PAYLOAD, RESPONSE_FLAG, SYNC,
                                             WEIGHT_ACK_BYTES, WEIGHT_OFFSET_BYTES, Cmd, Err,
                                             bytes_per_pixel, bytes_per_word, checksum, info_payload,
                                             result_length)

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


def _index(n: int, name: str) -> Signal:
    """A signal for an index in ``0..n-1``, at least one bit wide: for ``n = 1`` a zero-width
    signal would be emitted as ``wire [-1:0]``, which Verilator rejects (ASCRANGE lint). The case
    of ``byte_idx`` whenever pixels take one byte (``pixel_bits <= 8``, the default input width)."""
    return Signal(range(max(n, 2)), name=name)


def _check_int(name, value, lo, hi=None):
    if not isinstance(value, int) or isinstance(value, bool) or value < lo or (hi is not None and value > hi):
        rng = f">= {lo}" if hi is None else f"in {lo}..{hi}"
        raise ValueError(f"{name} must be an integer {rng}, not {value!r}")
    return value


# ---------------------------------------------------------------------------------------- deframer


class EventKind(hdl_enum.Enum, shape=3):
    HEADER = 0     # cmd and length are valid
    DATA = 1       # one payload byte in ``data``
    END_OK = 2     # checksum matched
    END_BAD = 3    # checksum mismatch
    TIMEOUT = 4    # the frame stopped arriving


EVENT_LAYOUT = data.StructLayout({
    "kind": EventKind,
    "cmd": unsigned(8),
    "length": unsigned(16),
    "data": unsigned(8),
})


class Deframer(wiring.Component):
    """Byte stream in, frame event stream out.

    Bytes before a sync byte are dropped. ``timeout`` is the most clock cycles the deframer waits
    for the next byte of a frame it has started; then it emits a ``TIMEOUT`` event and hunts for
    sync again. While the consumer stalls, no time is counted.
    """

    def __init__(self, *, timeout: int):
        self._timeout = _check_int("timeout", timeout, 1)
        super().__init__({"i": In(byte_stream()), "o": Out(stream.Signature(EVENT_LAYOUT))})

    def elaborate(self, platform):
        m = Module()
        i, o = self.i, self.o

        cmd = Signal(8)
        length = Signal(16)
        remaining = Signal(16)
        total = Signal(8)
        timer = Signal(range(self._timeout + 1))

        m.d.comb += [o.payload.cmd.eq(cmd), o.payload.length.eq(length), o.payload.data.eq(i.payload)]
        got = i.valid & i.ready

        waiting = Signal()   # inside a frame, waiting for the next input byte
        with m.If(got | ~waiting):
            m.d.sync += timer.eq(0)
        with m.Elif(~i.valid):
            m.d.sync += timer.eq(timer + 1)
        expired = waiting & ~i.valid & (timer == self._timeout)

        with m.FSM():
            with m.State("SYNC"):
                m.d.comb += i.ready.eq(1)
                with m.If(i.valid & (i.payload == SYNC)):
                    m.d.sync += [total.eq(0), cmd.eq(0), length.eq(0)]
                    m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += [i.ready.eq(1), waiting.eq(1)]
                with m.If(i.valid):
                    m.d.sync += [cmd.eq(i.payload), total.eq(total + i.payload)]
                    m.next = "LEN_LO"
                with m.Elif(expired):
                    m.next = "TIMEOUT"
            with m.State("LEN_LO"):
                m.d.comb += [i.ready.eq(1), waiting.eq(1)]
                with m.If(i.valid):
                    m.d.sync += [length[:8].eq(i.payload), total.eq(total + i.payload)]
                    m.next = "LEN_HI"
                with m.Elif(expired):
                    m.next = "TIMEOUT"
            with m.State("LEN_HI"):
                m.d.comb += [i.ready.eq(1), waiting.eq(1)]
                with m.If(i.valid):
                    m.d.sync += [length[8:].eq(i.payload), total.eq(total + i.payload),
                                 remaining.eq(Cat(length[:8], i.payload))]
                    m.next = "HEADER"
                with m.Elif(expired):
                    m.next = "TIMEOUT"
            with m.State("HEADER"):
                m.d.comb += [o.valid.eq(1), o.payload.kind.eq(EventKind.HEADER)]
                with m.If(o.ready):
                    m.next = "PAYLOAD"
                    with m.If(remaining == 0):
                        m.next = "CHECK"
            with m.State("PAYLOAD"):
                m.d.comb += [o.valid.eq(i.valid), o.payload.kind.eq(EventKind.DATA),
                             i.ready.eq(o.ready), waiting.eq(1)]
                with m.If(got):
                    m.d.sync += [total.eq(total + i.payload), remaining.eq(remaining - 1)]
                    with m.If(remaining == 1):
                        m.next = "CHECK"
                with m.Elif(expired):
                    m.next = "TIMEOUT"
            with m.State("CHECK"):
                m.d.comb += [o.valid.eq(i.valid), i.ready.eq(o.ready), waiting.eq(1),
                             o.payload.kind.eq(Mux(i.payload == total, EventKind.END_OK,
                                                   EventKind.END_BAD))]
                with m.If(got):
                    m.next = "SYNC"
                with m.Elif(expired):
                    m.next = "TIMEOUT"
            with m.State("TIMEOUT"):
                m.d.comb += [o.valid.eq(1), o.payload.kind.eq(EventKind.TIMEOUT)]
                with m.If(o.ready):
                    m.next = "SYNC"
        return m


# ---------------------------------------------------------------------------------------- enframer

HEADER_LAYOUT = data.StructLayout({"cmd": unsigned(8), "length": unsigned(16)})


class Enframer(wiring.Component):
    """Header (``cmd``, ``length``) and exactly ``length`` payload bytes in; a frame out."""

    def __init__(self):
        super().__init__({
            "hdr": In(stream.Signature(HEADER_LAYOUT)),
            "i": In(byte_stream()),
            "o": Out(byte_stream()),
        })

    def elaborate(self, platform):
        m = Module()
        hdr, i, o = self.hdr, self.i, self.o
        cmd = Signal(8)
        length = Signal(16)
        remaining = Signal(16)
        total = Signal(8)
        # The checksum adds each byte sent a cycle later, from a register: the byte's source (the
        # host link's payload mux) and the adder in one cycle were the UP5K's critical path. CHECK
        # waits for the last byte's add (``pending``).
        sent = Signal(8)
        pending = Signal()

        m.d.sync += pending.eq(0)
        with m.If(pending):
            m.d.sync += total.eq(total + sent)
        with m.If(o.valid & o.ready):
            m.d.sync += [sent.eq(o.payload), pending.eq(1)]

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += hdr.ready.eq(1)
                with m.If(hdr.valid):
                    m.d.sync += [cmd.eq(hdr.payload.cmd), length.eq(hdr.payload.length),
                                 remaining.eq(hdr.payload.length)]
                    m.next = "SYNC"
            with m.State("SYNC"):
                m.d.comb += [o.valid.eq(1), o.payload.eq(SYNC)]
                with m.If(o.ready):
                    m.d.sync += [total.eq(0), pending.eq(0)]   # the sync byte is not summed
                    m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += [o.valid.eq(1), o.payload.eq(cmd)]
                with m.If(o.ready):
                    m.next = "LEN_LO"
            with m.State("LEN_LO"):
                m.d.comb += [o.valid.eq(1), o.payload.eq(length[:8])]
                with m.If(o.ready):
                    m.next = "LEN_HI"
            with m.State("LEN_HI"):
                m.d.comb += [o.valid.eq(1), o.payload.eq(length[8:])]
                with m.If(o.ready):
                    m.next = "CHECK"
                    with m.If(remaining != 0):
                        m.next = "PAYLOAD"
            with m.State("PAYLOAD"):
                m.d.comb += [o.valid.eq(i.valid), o.payload.eq(i.payload), i.ready.eq(o.ready)]
                with m.If(i.valid & o.ready):
                    m.d.sync += remaining.eq(remaining - 1)
                    with m.If(remaining == 1):
                        m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += [o.valid.eq(~pending), o.payload.eq(total)]
                with m.If(~pending & o.ready):
                    m.next = "IDLE"
        return m


# ---------------------------------------------------------------------------------------- host link


class _Resp(hdl_enum.Enum, shape=3):
    ACK = 0
    INFO = 1
    RESULT = 2
    ERROR = 3
    WACK = 4       # LOAD_WEIGHTS acknowledged: payload = words loaded so far (u32)


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
    (the core's weight address width; default: just enough for ``weight_words``).
    """

    def __init__(self, *, num_pixels: int, num_classes: int, pixel_bits: int, logit_bits: int,
                 timeout: int, clk_hz: int = 0, weight_words: int = 0, weight_bits: int = 0,
                 weight_addr_bits: int | None = None, registered_start: bool = False):
        self._registered_start = bool(registered_start)
        _check_int("pixel_bits", pixel_bits, 2, 32)
        _check_int("logit_bits", logit_bits, 2, 32)
        bpp = bytes_per_pixel(pixel_bits)
        _check_int("num_pixels", num_pixels, 1, MAX_FRAME_PAYLOAD // bpp)
        _check_int("num_classes", num_classes, 1, (MAX_FRAME_PAYLOAD - CLASS_BYTES - CYCLES_BYTES) // LOGIT_BYTES)
        _check_int("timeout", timeout, 1)
        _check_int("clk_hz", clk_hz, 0, 2**32 * 1000 - 1)
        self._num_pixels, self._num_classes = num_pixels, num_classes
        self._pixel_bits, self._logit_bits = pixel_bits, logit_bits
        self._timeout, self._clk_hz = timeout, clk_hz
        _check_int("weight_words", weight_words, 0, 2**32 - 1)
        members = {
            "rx": In(byte_stream()),
            "tx": Out(byte_stream()),
            "accel": In(accelerator_signature(pixel_bits=pixel_bits, logit_bits=logit_bits)),
            "running": Out(1),
            "loaded": Out(1),
        }
        if weight_words:
            _check_int("weight_bits", weight_bits, 1, 8 * 255)
            need = max(1, (weight_words - 1).bit_length())
            if weight_addr_bits is None:
                weight_addr_bits = need
            _check_int("weight_addr_bits", weight_addr_bits, need, 32)
            members["weights"] = Out(weight_port_signature(addr_bits=weight_addr_bits, word_bits=weight_bits))
            members["weights_loaded"] = Out(1)
        else:
            weight_bits = 0
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

    def info_payload(self, weights_loaded: bool = False) -> bytes:
        return info_payload(num_pixels=self._num_pixels, num_classes=self._num_classes,
                            pixel_bits=self._pixel_bits, logit_bits=self._logit_bits,
                            clk_hz=self._clk_hz, weight_words=self._weight_words,
                            weight_bits=self._weight_bits, weights_loaded=weights_loaded)

    def elaborate(self, platform):
        m = Module()
        npix, ncls = self._num_pixels, self._num_classes
        bpp = bytes_per_pixel(self._pixel_bits)
        accel = self.accel

        m.submodules.deframer = deframer = Deframer(timeout=self._timeout)
        m.submodules.enframer = enframer = Enframer()
        wiring.connect(m, wiring.flipped(self.rx), deframer.i)
        wiring.connect(m, enframer.o, wiring.flipped(self.tx))

        m.submodules.pixel_mem = pixel_mem = Memory(shape=signed(self._pixel_bits), depth=npix, init=[])
        m.submodules.logit_mem = logit_mem = Memory(shape=signed(self._logit_bits), depth=ncls, init=[])
        pix_wr = pixel_mem.write_port()
        pix_rd = pixel_mem.read_port()
        logit_wr = logit_mem.write_port()
        logit_rd = logit_mem.read_port()

        running = Signal()        # from an accepted START until the last logit
        loaded = Signal()         # the pixel memory holds a complete, checksum-verified image
        have_result = Signal()    # the logit memory holds the result of the last START
        # one-cycle pulse: START accepted (start_cmd); it starts the streamer and the collector
        # (start) in that cycle, or with ``registered_start`` (the ECP5 boards: the frame decode
        # behind the deframer's register, into the collector's and streamer's resets, was the
        # ECP5's worst path on some placements) a cycle later from a register. Nothing can meet
        # the cycle in between: the next command is a whole frame later.
        start_cmd = Signal(name="start_cmd" if self._registered_start else "start")
        if self._registered_start:
            start = Signal()
            m.d.sync += start.eq(start_cmd)
        else:
            start = start_cmd
        busy = running | accel.busy
        m.d.comb += [self.running.eq(running), self.loaded.eq(loaded)]

        # ---- pixel streamer: memory -> core ------------------------------------------------------
        # Two stages (memory read, output register) under one stall signal, so the core sees a
        # flip-flop, not the block RAM's clock-to-out; one pixel per cycle when the core keeps up.
        rd_addr = Signal(range(npix + 1))
        streaming = Signal()
        s1_valid = Signal()
        out_valid = Signal()
        out_data = Signal(signed(self._pixel_bits))
        stall = out_valid & ~accel.pixels.ready
        m.d.comb += [pix_rd.addr.eq(rd_addr), pix_rd.en.eq(~stall),
                     accel.pixels.valid.eq(out_valid), accel.pixels.payload.eq(out_data)]
        with m.If(start):
            m.d.sync += [rd_addr.eq(0), streaming.eq(1)]
        with m.Elif(~stall):
            fetch = streaming & (rd_addr != npix)
            m.d.sync += [s1_valid.eq(fetch), out_valid.eq(s1_valid), out_data.eq(pix_rd.data)]
            with m.If(fetch):
                m.d.sync += rd_addr.eq(rd_addr + 1)
            with m.Else():
                m.d.sync += streaming.eq(0)

        # ---- result collector: core -> logit memory, running argmax -----------------------------
        # Logits are registered on arrival and processed a cycle later (again: flip-flops in front
        # of the comparator, whatever the core's output logic looks like).
        k_in = Signal(range(ncls))
        best = Signal(signed(self._logit_bits))
        best_idx = Signal(range(ncls))
        got_valid = Signal()
        got = Signal.like(accel.logits.payload)
        m.d.comb += accel.logits.ready.eq(1)     # always drained; recorded only while running
        m.d.sync += [got_valid.eq(accel.logits.valid & running), got.eq(accel.logits.payload)]
        m.d.comb += [logit_wr.addr.eq(k_in), logit_wr.data.eq(got.value),
                     logit_wr.en.eq(got_valid & running)]
        with m.If(start):
            m.d.sync += [k_in.eq(0), running.eq(1), have_result.eq(0)]
        with m.Elif(got_valid & running):
            with m.If((k_in == 0) | (got.value > best)):   # strictly greater: first max wins
                m.d.sync += [best.eq(got.value), best_idx.eq(k_in)]
            with m.If(got.last | (k_in == ncls - 1)):
                m.d.sync += [running.eq(0), have_result.eq(1)]
            with m.Else():
                m.d.sync += k_in.eq(k_in + 1)

        # ---- command executor: frame events -> memory writes, control, responses ----------------
        ev = deframer.o
        cmd = ev.payload.cmd
        length = ev.payload.length
        load_ok = Signal()           # this frame is a well-formed LOAD accepted for writing
        wr_addr = Signal(range(npix + 1))
        byte_idx = _index(bpp, "byte_idx")
        shreg = Signal(8 * bpp)
        word = Cat(shreg[8:], ev.payload.data)

        resp_valid = Signal()        # a response is requested and not yet taken by the responder
        resp_kind = Signal(_Resp)
        resp_cmd = Signal(8)
        resp_err = Signal(8)

        m.d.comb += [pix_wr.addr.eq(wr_addr), pix_wr.data.eq(word[:self._pixel_bits])]

        # runtime weights (LOAD_WEIGHTS): words are written as they arrive (registered, one per
        # cycle, to the core's weight port); ``w_next`` counts the words [0, w_next) written by
        # frames that ended well, each starting at 0 or where the previous one ended, so that
        # ``w_loaded`` (w_next reached the end) means every word came through a good frame.
        nw = self._weight_words
        bpw = bytes_per_word(self._weight_bits) if nw else 1
        w_loaded = Signal()
        w_next = Signal(range(nw + 1))
        w_busy = Signal()            # the frame's header came while the core was busy
        w_off = Signal(8 * WEIGHT_OFFSET_BYTES)
        w_off_idx = Signal(range(WEIGHT_OFFSET_BYTES + 1))
        w_ok = Signal()              # the frame's offset is accepted: its words are written
        w_over = Signal()            # the frame runs past the last word
        w_addr = Signal(range(nw + 1))
        w_byte = _index(bpw, "w_byte")
        w_shreg = Signal(8 * bpw)
        w_word = Cat(w_shreg[8:], ev.payload.data)
        if nw:
            wp = self.weights
            m.d.comb += self.weights_loaded.eq(w_loaded)
            m.d.sync += wp.en.eq(0)

        is_end = ev.payload.kind.as_value().matches(EventKind.END_OK, EventKind.END_BAD, EventKind.TIMEOUT)
        m.d.comb += ev.ready.eq(~is_end | ~resp_valid)

        def respond(kind, err=0):
            m.d.sync += [resp_valid.eq(1), resp_kind.eq(kind), resp_cmd.eq(cmd), resp_err.eq(err)]

        with m.If(ev.valid & ev.ready):
            with m.Switch(ev.payload.kind):
                with m.Case(EventKind.HEADER):
                    accept = (cmd == Cmd.LOAD) & (length == npix * bpp) & ~busy
                    m.d.sync += [load_ok.eq(accept), wr_addr.eq(0), byte_idx.eq(0)]
                    with m.If(accept):
                        m.d.sync += loaded.eq(0)   # about to be overwritten
                    if nw:
                        m.d.sync += [w_busy.eq(busy), w_off_idx.eq(0), w_ok.eq(0), w_over.eq(0),
                                     w_byte.eq(0)]
                with m.Case(EventKind.DATA):
                    with m.If(load_ok):
                        m.d.sync += shreg.eq(word)
                        with m.If(byte_idx == bpp - 1):
                            m.d.sync += [byte_idx.eq(0), wr_addr.eq(wr_addr + 1)]
                            m.d.comb += pix_wr.en.eq(wr_addr != npix)
                        with m.Else():
                            m.d.sync += byte_idx.eq(byte_idx + 1)
                    if nw:
                        with m.If((cmd == Cmd.LOAD_WEIGHTS) & (w_off_idx != WEIGHT_OFFSET_BYTES)):
                            off = Cat(w_off[8:], ev.payload.data)      # little-endian u32
                            m.d.sync += [w_off.eq(off), w_off_idx.eq(w_off_idx + 1)]
                            with m.If(w_off_idx == WEIGHT_OFFSET_BYTES - 1):
                                m.d.sync += [w_addr.eq(off), w_over.eq(off > nw)]
                                with m.If(~w_busy & ((off == 0) | (off == w_next))):
                                    # from here on the words from `off` are being replaced
                                    m.d.sync += [w_ok.eq(1), w_loaded.eq(0), w_next.eq(off)]
                        with m.Elif(cmd == Cmd.LOAD_WEIGHTS):
                            m.d.sync += w_shreg.eq(w_word)
                            with m.If(w_byte == bpw - 1):
                                m.d.sync += w_byte.eq(0)
                                with m.If(w_addr == nw):
                                    m.d.sync += w_over.eq(1)
                                with m.Else():
                                    m.d.sync += [w_addr.eq(w_addr + 1), wp.en.eq(w_ok),
                                                 wp.addr.eq(w_addr), wp.data.eq(w_word)]
                            with m.Else():
                                m.d.sync += w_byte.eq(w_byte + 1)
                with m.Case(EventKind.TIMEOUT):
                    respond(_Resp.ERROR, Err.TIMEOUT)
                with m.Case(EventKind.END_BAD):
                    respond(_Resp.ERROR, Err.BAD_CHECKSUM)
                with m.Case(EventKind.END_OK):
                    with m.Switch(cmd):
                        with m.Case(Cmd.INFO):
                            with m.If(length != 0):
                                respond(_Resp.ERROR, Err.BAD_LENGTH)
                            with m.Else():
                                respond(_Resp.INFO)
                        with m.Case(Cmd.LOAD):
                            with m.If(length != npix * bpp):
                                respond(_Resp.ERROR, Err.BAD_LENGTH)
                            with m.Elif(~load_ok):
                                respond(_Resp.ERROR, Err.BUSY)
                            with m.Else():
                                m.d.sync += loaded.eq(1)
                                respond(_Resp.ACK)
                        with m.Case(Cmd.START):
                            with m.If(length != 0):
                                respond(_Resp.ERROR, Err.BAD_LENGTH)
                            with m.Elif(busy):
                                respond(_Resp.ERROR, Err.BUSY)
                            if nw:
                                with m.Elif(~w_loaded):
                                    respond(_Resp.ERROR, Err.WEIGHTS_NOT_LOADED)
                            with m.Elif(~loaded):
                                respond(_Resp.ERROR, Err.NOT_LOADED)
                            with m.Else():
                                m.d.comb += start_cmd.eq(1)
                                respond(_Resp.ACK)
                        with m.Case(Cmd.READ):
                            with m.If(length != 0):
                                respond(_Resp.ERROR, Err.BAD_LENGTH)
                            with m.Elif(busy):
                                respond(_Resp.ERROR, Err.BUSY)
                            with m.Elif(~have_result):
                                respond(_Resp.ERROR, Err.NO_RESULT)
                            with m.Else():
                                respond(_Resp.RESULT)
                        if nw:
                            with m.Case(Cmd.LOAD_WEIGHTS):
                                with m.If((length < WEIGHT_OFFSET_BYTES + bpw) | (w_byte != 0) | w_over):
                                    respond(_Resp.ERROR, Err.BAD_LENGTH)
                                with m.Elif(w_busy):
                                    respond(_Resp.ERROR, Err.BUSY)
                                with m.Elif(~w_ok):
                                    respond(_Resp.ERROR, Err.BAD_OFFSET)
                                with m.Else():
                                    m.d.sync += [w_next.eq(w_addr), w_loaded.eq(w_addr == nw)]
                                    respond(_Resp.WACK)
                        with m.Default():
                            respond(_Resp.ERROR, Err.UNKNOWN_CMD)

        # ---- responder: response request -> header + payload bytes for the enframer -------------
        info_bytes = [Const(b, 8) for b in self.info_payload()]
        if nw:     # the weight flags: runtime weights, and whether they are loaded
            info_bytes[INFO_LENGTH] = Cat(Const(INFO_RUNTIME_WEIGHTS, 1), w_loaded, Const(0, 6))
        info_len = len(info_bytes)
        info = Array(info_bytes)
        idx = Signal(range(max(info_len, 4)))
        k_out = Signal(range(ncls))
        cycles = Signal(CYCLE_COUNTER_BITS)
        class16 = Signal(8 * CLASS_BYTES)
        m.d.comb += class16.eq(best_idx)
        logit32 = Signal(signed(32))
        m.d.comb += [logit_rd.addr.eq(k_out), logit32.eq(logit_rd.data)]
        pay = enframer.i

        with m.FSM():
            with m.State("IDLE"):
                with m.If(resp_valid):
                    m.next = "HEADER"
            with m.State("HEADER"):
                m.d.comb += [
                    enframer.hdr.valid.eq(1),
                    enframer.hdr.payload.cmd.eq(Mux(resp_kind == _Resp.ERROR, ERROR_RESPONSE,
                                                    resp_cmd | RESPONSE_FLAG)),
                ]
                with m.Switch(resp_kind):
                    with m.Case(_Resp.ACK):
                        m.d.comb += enframer.hdr.payload.length.eq(0)
                    with m.Case(_Resp.INFO):
                        m.d.comb += enframer.hdr.payload.length.eq(info_len)
                    with m.Case(_Resp.WACK):
                        m.d.comb += enframer.hdr.payload.length.eq(WEIGHT_ACK_BYTES)
                    with m.Case(_Resp.ERROR):
                        m.d.comb += enframer.hdr.payload.length.eq(2)
                    with m.Case(_Resp.RESULT):
                        m.d.comb += enframer.hdr.payload.length.eq(result_length(ncls))
                with m.If(enframer.hdr.ready):
                    m.d.sync += [idx.eq(0), k_out.eq(0), cycles.eq(accel.cycles)]
                    if nw:      # the WACK payload goes out through the CYCLES state
                        with m.If(resp_kind == _Resp.WACK):
                            m.d.sync += cycles.eq(w_next)
                    with m.Switch(resp_kind):
                        with m.Case(_Resp.ACK):
                            m.next = "DONE"
                        with m.Case(_Resp.INFO):
                            m.next = "INFO"
                        with m.Case(_Resp.ERROR):
                            m.next = "ERROR"
                        with m.Case(_Resp.RESULT):
                            m.next = "CLASS"
                        with m.Case(_Resp.WACK):
                            m.next = "CYCLES"
            with m.State("INFO"):
                m.d.comb += [pay.valid.eq(1), pay.payload.eq(info[idx])]
                with m.If(pay.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == info_len - 1):
                        m.next = "DONE"
            with m.State("ERROR"):
                m.d.comb += [pay.valid.eq(1), pay.payload.eq(Mux(idx == 0, resp_err, resp_cmd))]
                with m.If(pay.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == 1):
                        m.next = "DONE"
            with m.State("CLASS"):
                m.d.comb += [pay.valid.eq(1), pay.payload.eq(class16.word_select(idx[0], 8))]
                with m.If(pay.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == CLASS_BYTES - 1):
                        m.d.sync += idx.eq(0)
                        m.next = "FETCH"
            with m.State("FETCH"):     # logit_rd.addr = k_out was presented this cycle
                m.next = "LOGIT"
            with m.State("LOGIT"):
                m.d.comb += [pay.valid.eq(1),
                             pay.payload.eq(logit32.as_unsigned().word_select(idx[:2], 8))]
                with m.If(pay.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == LOGIT_BYTES - 1):
                        m.d.sync += [idx.eq(0), k_out.eq(k_out + 1)]
                        m.next = "FETCH"
                        with m.If(k_out == ncls - 1):
                            m.d.sync += k_out.eq(0)
                            m.next = "CYCLES"
            with m.State("CYCLES"):
                m.d.comb += [pay.valid.eq(1), pay.payload.eq(cycles.word_select(idx[:2], 8))]
                with m.If(pay.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == CYCLES_BYTES - 1):
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.sync += resp_valid.eq(0)
                m.next = "IDLE"
        return m


# ---------------------------------------------------------------------------------------- system


class UARTAccelerator(wiring.Component):
    """UART receiver + :class:`HostLink` + UART transmitter + ``core``: the system behind two pins.

    ``core`` is an elaboratable component with the accelerator signature (its pixel and logit
    widths are read from the signature); ``num_pixels``/``num_classes`` describe what it computes;
    ``divisor`` is clock cycles per UART bit; ``timeout`` the inter-byte timeout in cycles;
    ``clk_hz`` the clock frequency reported by INFO.

    A core with a runtime weight port (``weights``, see :func:`accel_weights`) needs
    ``weight_words``, the number of words the host must load (LOAD_WEIGHTS) before START.

    Members: ``rx`` (In, idles high), ``tx`` (Out, idles high), ``running``, ``loaded``,
    ``rx_error`` (Out, pulses on a UART framing error or overrun).
    """

    def __init__(self, core, *, num_pixels: int, num_classes: int, divisor: int, timeout: int,
                 clk_hz: int = 0, weight_words: int = 0, registered_start: bool = False):
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
                              weight_addr_bits=addr_bits, registered_start=registered_start)
        self._uart_rx = UARTRx(divisor=divisor)
        self._uart_tx = UARTTx(divisor=divisor)
        super().__init__({
            "rx": In(1, init=1),
            "tx": Out(1, init=1),
            "running": Out(1),
            "loaded": Out(1),
            "rx_error": Out(1),
        })

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
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx), self.running.eq(link.running),
                     self.loaded.eq(link.loaded), self.rx_error.eq(urx.frame_error | urx.overrun)]
        return m
