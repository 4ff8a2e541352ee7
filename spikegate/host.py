"""Host side of the spikegate host protocol (``docs/host-protocol.md``): talk to a board over a
serial port, and a pure-Python model of the device for tests.

    from spikegate.host import Device
    with Device.open("/dev/ttyUSB1", baud=115200) as dev:
        info = dev.info()                 # num_pixels, widths, clock, runtime weights
        if info.weights_needed and info.sdram:   # weights in SDRAM (ULX3S builds): upload + check
            image = open("BUILD/sdram.bin", "rb").read()
            dev.load_sdram(image)
            dev.check_sdram(image)
        elif info.weights_needed:         # weights in SPRAM (iCE40 builds): upload them first
            dev.load_weights(open("BUILD/weights.bin", "rb").read())
        r = dev.infer(pixels)             # LOAD, START, READ (polling while busy)
        print(r.cls, r.logits, r.cycles, r.latency_us(info.clk_hz))

Every failure is a :class:`spikegate.errors.SpikegateError` subclass with one clear line:
:class:`DeviceTimeout` (nothing, or not enough, came back in time), :class:`FrameError` (bytes came
back but not a valid frame: bad sync, bad checksum, unexpected response), :class:`DeviceError` (the
device answered with an ERROR frame; ``.code`` and ``.cmd`` say which).

The protocol numbers come from :mod:`spikegate.hw.host_link`, the gateware that implements it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from spikegate.errors import SpikegateError
from spikegate.machine.host_protocol import (CLASS_BYTES, ERROR_RESPONSE, INFO_LENGTH, INFO_LENGTH_WEIGHTS,
                                     INFO_RUNTIME_WEIGHTS, INFO_SDRAM, INFO_SDRAM_VERIFIED, INFO_WEIGHTS_LOADED,
                                     LOGIT_BYTES, MAX_FRAME_PAYLOAD, PROTOCOL_VERSION, PROTOCOL_VERSION_SDRAM,
                                     PROTOCOL_VERSION_WEIGHTS, RESPONSE_FLAG, SDRAM_ACK_BYTES, SDRAM_CHECK_BYTES,
                                     SDRAM_CRC_BYTES, SDRAM_OFFSET_BYTES, SDRAM_WORD_BYTES, SYNC,
                                     WEIGHT_ACK_BYTES, WEIGHT_OFFSET_BYTES, Cmd, Err, bytes_per_pixel,
                                     bytes_per_word, checksum, info_payload, result_length, sdram_crc)

__all__ = ["Device", "DeviceInfo", "Result", "DeviceError", "DeviceTimeout", "FrameError",
           "encode_frame", "encode_pixels", "FrameParser", "ProtocolModel", "ERROR_NAMES"]

ERROR_NAMES = {
    Err.BAD_CHECKSUM: "bad checksum",
    Err.BAD_LENGTH: "wrong payload length",
    Err.UNKNOWN_CMD: "unknown command",
    Err.NOT_LOADED: "no image loaded",
    Err.BUSY: "busy",
    Err.NO_RESULT: "no result yet",
    Err.TIMEOUT: "frame timed out",
    Err.WEIGHTS_NOT_LOADED: "weights not loaded (they live in SPRAM: upload them, e.g. "
                            "`spikegate run --build BUILD_DIR`)",
    Err.BAD_OFFSET: "weight offset is neither 0 nor the end of the words loaded so far",
    Err.WEIGHTS_NOT_VERIFIED: "SDRAM weights not verified (upload and check them, e.g. "
                              "`spikegate run --build BUILD_DIR`)",
    Err.OVERRUN: "SDRAM words came faster than the SDRAM took them (some were not written)",
}
MAX_GARBAGE = 64   # bytes tolerated before a response's sync byte
VERSIONS = {PROTOCOL_VERSION: INFO_LENGTH, PROTOCOL_VERSION_WEIGHTS: INFO_LENGTH_WEIGHTS,
            PROTOCOL_VERSION_SDRAM: INFO_LENGTH_WEIGHTS}
WEIGHT_CHUNK_BYTES = 4096   # LOAD_WEIGHTS payload per frame (about 0.36 s at 115200 baud)
SDRAM_CHUNK_BYTES = 16384   # LOAD_SDRAM words per frame (about 55 ms at 3 Mbaud)


class DeviceError(SpikegateError):
    """The device answered a request with an ERROR frame."""

    def __init__(self, code: int, cmd: int):
        self.code, self.cmd = code, cmd
        try:
            what = ERROR_NAMES[Err(code)]
        except ValueError:
            what = f"error code {code:#04x}"
        try:
            name = Cmd(cmd).name
        except ValueError:
            name = f"{cmd:#04x}"
        super().__init__(f"device refused {name}: {what}")


class DeviceTimeout(SpikegateError):
    """No (complete) response within the timeout."""


class FrameError(SpikegateError):
    """A response that is not a valid frame, or not the expected one."""


def encode_frame(cmd: int, payload: bytes = b"") -> bytes:
    if len(payload) > 0xFFFF:
        raise ValueError(f"payload must be at most 65535 bytes, not {len(payload)}")
    body = bytes([cmd, len(payload) & 0xFF, len(payload) >> 8]) + bytes(payload)
    return bytes([SYNC]) + body + bytes([checksum(body)])


def encode_pixels(pixels: Sequence[int], pixel_bits: int) -> bytes:
    """Pixels as little-endian two's complement, ``ceil(pixel_bits / 8)`` bytes each. Values must
    fit ``pixel_bits`` signed bits."""
    lo, hi = -(1 << (pixel_bits - 1)), (1 << (pixel_bits - 1)) - 1
    n = bytes_per_pixel(pixel_bits)
    out = bytearray()
    for i, p in enumerate(pixels):
        p = int(p)
        if not lo <= p <= hi:
            raise SpikegateError(f"pixel {i} = {p} does not fit {pixel_bits} signed bits ({lo}..{hi})")
        out += p.to_bytes(n, "little", signed=True)
    return bytes(out)


class FrameParser:
    """Incremental frame decoder: ``feed(bytes)`` returns the complete frames ``(code, payload)``.

    Bytes before a sync byte are skipped (counted in ``skipped``); a bad checksum raises
    :class:`FrameError`."""

    def __init__(self):
        self._buf = bytearray()
        self.skipped = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buf += data
        frames = []
        while True:
            i = self._buf.find(SYNC)
            if i < 0:
                self.skipped += len(self._buf)
                self._buf.clear()
                return frames
            if i:
                self.skipped += i
                del self._buf[:i]
            if len(self._buf) < 4:
                return frames
            n = self._buf[2] | self._buf[3] << 8
            if len(self._buf) < 5 + n:
                return frames
            frame = bytes(self._buf[:5 + n])
            del self._buf[:5 + n]
            if checksum(frame[1:-1]) != frame[-1]:
                raise FrameError(f"response frame {frame[:4].hex()}...: bad checksum "
                                 f"({frame[-1]:#04x}, expected {checksum(frame[1:-1]):#04x})")
            frames.append((frame[1], frame[4:-1]))

    @property
    def pending(self) -> int:
        return len(self._buf)


@dataclass(frozen=True)
class DeviceInfo:
    version: int
    pixel_bits: int
    logit_bits: int
    bytes_per_pixel: int
    num_pixels: int
    num_classes: int
    clk_hz: int
    runtime_weights: bool = False     # version 2: the weights are loaded at run time ...
    weights_loaded: bool = False      # ... and they are
    weight_words: int = 0
    weight_bytes_per_word: int = 0
    sdram: bool = False               # version 3: the weights live in SDRAM (weight_words 16-bit words) ...
    sdram_verified: bool = False      # ... and a CHECK_SDRAM over all of them matched

    @property
    def weights_needed(self) -> bool:
        """The device refuses START until LOAD_WEIGHTS has written every word (SPRAM), or until a
        CHECK_SDRAM over the whole image has matched (SDRAM)."""
        return self.runtime_weights and not self.weights_loaded

    @classmethod
    def decode(cls, payload: bytes) -> "DeviceInfo":
        version = payload[0] if payload else None
        if version not in VERSIONS:
            raise FrameError(f"protocol version {version}, this host speaks "
                             f"{' and '.join(map(str, VERSIONS))}")
        if len(payload) != VERSIONS[version]:
            raise FrameError(f"INFO response has {len(payload)} bytes, expected {VERSIONS[version]} "
                             f"(protocol version {version})")
        extra = {}
        if version in (PROTOCOL_VERSION_WEIGHTS, PROTOCOL_VERSION_SDRAM):
            flags = payload[INFO_LENGTH]
            extra = dict(runtime_weights=bool(flags & INFO_RUNTIME_WEIGHTS),
                         weights_loaded=bool(flags & INFO_WEIGHTS_LOADED),
                         sdram=bool(flags & INFO_SDRAM), sdram_verified=bool(flags & INFO_SDRAM_VERIFIED),
                         weight_bytes_per_word=payload[INFO_LENGTH + 1],
                         weight_words=int.from_bytes(payload[INFO_LENGTH + 2:INFO_LENGTH + 6], "little"))
        return cls(version=version, pixel_bits=payload[1], logit_bits=payload[2],
                   bytes_per_pixel=payload[3], num_pixels=int.from_bytes(payload[4:8], "little"),
                   num_classes=int.from_bytes(payload[8:10], "little"),
                   clk_hz=int.from_bytes(payload[10:14], "little") * 1000, **extra)


@dataclass(frozen=True)
class Result:
    cls: int
    logits: list[int]
    cycles: int
    wall_s: float = 0.0

    @classmethod
    def decode(cls, payload: bytes, num_classes: int) -> "Result":
        if len(payload) != result_length(num_classes):
            raise FrameError(f"RESULT response has {len(payload)} bytes, expected "
                             f"{result_length(num_classes)} for {num_classes} classes")
        k = int.from_bytes(payload[:CLASS_BYTES], "little")
        logits = [int.from_bytes(payload[CLASS_BYTES + LOGIT_BYTES * i:CLASS_BYTES + LOGIT_BYTES * (i + 1)],
                                 "little", signed=True) for i in range(num_classes)]
        cycles = int.from_bytes(payload[-4:], "little")
        if k >= num_classes:
            raise FrameError(f"RESULT names class {k}, but there are {num_classes}")
        return cls(k, logits, cycles)

    def latency_us(self, clk_hz: float) -> float | None:
        return self.cycles / clk_hz * 1e6 if clk_hz else None


class Device:
    """A device speaking the host protocol over ``port`` (a pyserial ``Serial`` or anything with
    ``write``, ``read(n)`` honouring its own short timeout, ``reset_input_buffer`` and ``close``)."""

    def __init__(self, port, *, timeout: float = 2.0, name: str = "device"):
        self._port = port
        self._timeout = float(timeout)
        self._name = name
        self._info: DeviceInfo | None = None

    @classmethod
    def open(cls, url: str, *, baud: int = 115200, timeout: float = 2.0) -> "Device":
        import serial  # pyserial

        try:
            port = serial.serial_for_url(url, baudrate=baud, timeout=0.05, write_timeout=timeout)
        except (serial.SerialException, ValueError, OSError) as e:
            raise SpikegateError(f"cannot open {url}: {e}") from None
        return cls(port, timeout=timeout, name=url)

    def close(self):
        self._port.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- frames -------------------------------------------------------------------------------

    def _read_frame(self, what: str) -> tuple[int, bytes]:
        parser = FrameParser()
        deadline = time.monotonic() + self._timeout
        got = 0
        while True:
            chunk = self._port.read(max(1, getattr(self._port, "in_waiting", 0)))
            if chunk:
                got += len(chunk)
                frames = parser.feed(chunk)
                if parser.skipped > MAX_GARBAGE:
                    raise FrameError(f"{self._name}: {parser.skipped} bytes of garbage instead of a "
                                     f"response to {what} (wrong baud rate or not a spikegate device?)")
                if frames:
                    if len(frames) > 1 or parser.pending:
                        raise FrameError(f"{self._name}: more than one frame in response to {what}")
                    return frames[0]
            if time.monotonic() > deadline:
                if got:
                    raise DeviceTimeout(f"{self._name}: incomplete response to {what} "
                                        f"({got} bytes in {self._timeout:g} s)")
                raise DeviceTimeout(f"{self._name}: no response to {what} in {self._timeout:g} s "
                                    f"(board not programmed, wrong port or baud rate?)")

    def request(self, cmd: int, payload: bytes = b"") -> bytes:
        """Send one request, return the payload of its successful response."""
        what = Cmd(cmd).name if cmd in Cmd._value2member_map_ else f"command {cmd:#04x}"
        self._port.reset_input_buffer()
        self._port.write(encode_frame(cmd, payload))
        code, body = self._read_frame(what)
        if code == ERROR_RESPONSE:
            if len(body) != 2:
                raise FrameError(f"{self._name}: ERROR response with {len(body)} bytes, expected 2")
            raise DeviceError(body[0], body[1])
        if code != cmd | RESPONSE_FLAG:
            raise FrameError(f"{self._name}: response {code:#04x} to {what}, expected "
                             f"{cmd | RESPONSE_FLAG:#04x}")
        return body

    # -- commands -----------------------------------------------------------------------------

    def info(self) -> DeviceInfo:
        body = self.request(Cmd.INFO)
        try:
            info = DeviceInfo.decode(body)
        except FrameError as e:
            raise FrameError(f"{self._name}: {e}") from None
        self._info = info
        return info

    def load_weights(self, image: bytes, *, chunk_bytes: int = WEIGHT_CHUNK_BYTES,
                     progress: Callable[[int], None] | None = None, retries: int = 2) -> DeviceInfo:
        """Upload the runtime weight image (``weights.bin`` of the build: every weight-memory word,
        ``weight_bytes_per_word`` little-endian bytes each) with LOAD_WEIGHTS frames of at most
        ``chunk_bytes`` bytes of words, in order from word 0. Each acknowledgement must name the
        words loaded so far; a chunk answered BAD_CHECKSUM or TIMEOUT (a corrupted or lost frame)
        is sent again, up to ``retries`` times. ``progress(words)`` is called after each chunk.
        Returns the device's INFO afterwards, which must say the weights are loaded."""
        info = self.info()
        if not info.runtime_weights:
            raise SpikegateError(f"{self._name}: the device's weights are in its bitstream; it takes "
                                  f"no LOAD_WEIGHTS")
        bpw, words = info.weight_bytes_per_word, info.weight_words
        if bpw < 1 or len(image) != words * bpw:
            raise SpikegateError(f"the weight image has {len(image):,} bytes; the device takes "
                                  f"{words:,} words of {bpw} bytes ({words * bpw:,} bytes): another build?")
        per_frame = max(1, min(chunk_bytes, MAX_FRAME_PAYLOAD - WEIGHT_OFFSET_BYTES) // bpw)
        offset = 0
        while offset < words:
            n = min(per_frame, words - offset)
            payload = offset.to_bytes(WEIGHT_OFFSET_BYTES, "little") + image[offset * bpw:(offset + n) * bpw]
            for attempt in range(retries + 1):
                try:
                    body = self.request(Cmd.LOAD_WEIGHTS, payload)
                    break
                except DeviceError as e:
                    if e.code not in (Err.BAD_CHECKSUM, Err.TIMEOUT) or attempt == retries:
                        raise
            if len(body) != WEIGHT_ACK_BYTES:
                raise FrameError(f"{self._name}: LOAD_WEIGHTS acknowledged with {len(body)} bytes, "
                                 f"expected {WEIGHT_ACK_BYTES}")
            done = int.from_bytes(body, "little")
            if done != offset + n:
                raise FrameError(f"{self._name}: LOAD_WEIGHTS of words {offset}..{offset + n - 1} "
                                 f"acknowledged with {done} words loaded, expected {offset + n}")
            offset += n
            if progress is not None:
                progress(n)
        info = self.info()
        if not info.weights_loaded:
            raise FrameError(f"{self._name}: all {words:,} weight words acknowledged, but INFO says "
                             f"the weights are not loaded")
        return info

    def load_sdram(self, image: bytes, *, chunk_bytes: int = SDRAM_CHUNK_BYTES,
                   progress: Callable[[int], None] | None = None, retries: int = 2) -> None:
        """Write the SDRAM image (``sdram.bin`` of the build: the device's ``weight_words`` 16-bit
        words, little-endian) with LOAD_SDRAM frames of at most ``chunk_bytes`` bytes of words, in
        order from word 0. Each acknowledgement must name the word after the chunk's last; a chunk
        answered BAD_CHECKSUM, TIMEOUT or OVERRUN is sent again, up to ``retries`` times.
        ``progress(words)`` is called after each chunk. The words are not trusted until
        :meth:`check_sdram` has matched: START is refused until then."""
        info = self.info()
        if not info.sdram:
            raise SpikegateError(f"{self._name}: the device's weights are not in SDRAM; it takes no LOAD_SDRAM")
        words = info.weight_words
        if len(image) != words * SDRAM_WORD_BYTES:
            raise SpikegateError(f"the SDRAM image has {len(image):,} bytes; the device takes {words:,} "
                                  f"16-bit words ({words * SDRAM_WORD_BYTES:,} bytes): another build?")
        per_frame = max(1, min(chunk_bytes, MAX_FRAME_PAYLOAD - SDRAM_OFFSET_BYTES) // SDRAM_WORD_BYTES)
        for offset in range(0, words, per_frame):
            n = min(per_frame, words - offset)
            payload = offset.to_bytes(SDRAM_OFFSET_BYTES, "little") + \
                image[offset * SDRAM_WORD_BYTES:(offset + n) * SDRAM_WORD_BYTES]
            body = self._retried(Cmd.LOAD_SDRAM, payload, retries, (Err.BAD_CHECKSUM, Err.TIMEOUT, Err.OVERRUN))
            if len(body) != SDRAM_ACK_BYTES or int.from_bytes(body, "little") != offset + n:
                raise FrameError(f"{self._name}: LOAD_SDRAM of words {offset}..{offset + n - 1} acknowledged "
                                 f"with {body.hex() or 'nothing'}, expected word {offset + n}")
            if progress is not None:
                progress(n)

    def check_sdram(self, image: bytes) -> DeviceInfo:
        """Have the device read the whole SDRAM image back (CHECK_SDRAM) and compare its CRC-32
        with ``image``'s; a mismatch is one clear :class:`SpikegateError`. Returns INFO afterwards,
        which must then say the weights are verified."""
        want = sdram_crc(image)
        got = self.read_sdram_crc(self.cached_info.weight_words, want)
        if got != want:
            raise SpikegateError(f"{self._name}: the SDRAM read back as CRC-32 {got:#010x}, the image's is "
                                  f"{want:#010x}: the upload did not arrive intact (run again; if it persists, "
                                  f"the board's SDRAM is at fault)")
        info = self.info()
        if not info.sdram_verified:
            raise FrameError(f"{self._name}: CHECK_SDRAM matched, but INFO says the SDRAM is not verified")
        return info

    def read_sdram_crc(self, count: int, expected: int) -> int:
        """CHECK_SDRAM: the CRC-32 of SDRAM words ``[0, count)`` as the device reads them back (it
        sets its verified flag if ``count`` is the whole image and the CRC is ``expected``)."""
        body = self.request(Cmd.CHECK_SDRAM, int(count).to_bytes(4, "little") + int(expected).to_bytes(4, "little"))
        if len(body) != SDRAM_CRC_BYTES:
            raise FrameError(f"{self._name}: CHECK_SDRAM answered with {len(body)} bytes, expected {SDRAM_CRC_BYTES}")
        return int.from_bytes(body, "little")

    def _retried(self, cmd: int, payload: bytes, retries: int, codes) -> bytes:
        """``request``, sent again (up to ``retries`` times) while it is refused with one of ``codes``."""
        for attempt in range(retries + 1):
            try:
                return self.request(cmd, payload)
            except DeviceError as e:
                if e.code not in codes or attempt == retries:
                    raise

    @property
    def cached_info(self) -> DeviceInfo:
        return self._info if self._info is not None else self.info()

    def load(self, pixels: Sequence[int]):
        info = self.cached_info
        if len(pixels) != info.num_pixels:
            raise SpikegateError(f"an image has {len(pixels)} pixels; the device takes {info.num_pixels}")
        self._expect_empty(self.request(Cmd.LOAD, encode_pixels(pixels, info.pixel_bits)), "LOAD")

    def start(self):
        self._expect_empty(self.request(Cmd.START), "START")

    def read(self, *, wait_s: float | None = None) -> Result:
        """READ, polling while the device is busy, for up to ``wait_s`` (default: the timeout)."""
        info = self.cached_info
        deadline = time.monotonic() + (self._timeout if wait_s is None else wait_s)
        while True:
            try:
                return Result.decode(self.request(Cmd.READ), info.num_classes)
            except DeviceError as e:
                if e.code != Err.BUSY or time.monotonic() > deadline:
                    if e.code == Err.BUSY:
                        raise DeviceTimeout(f"{self._name}: still busy after {wait_s or self._timeout:g} s")
                    raise
            time.sleep(0.001)

    def infer(self, pixels: Sequence[int], *, wait_s: float | None = None) -> Result:
        t0 = time.perf_counter()
        self.load(pixels)
        self.start()
        r = self.read(wait_s=wait_s)
        return Result(r.cls, r.logits, r.cycles, time.perf_counter() - t0)

    def _expect_empty(self, body: bytes, what: str):
        if body:
            raise FrameError(f"{self._name}: {what} acknowledged with {len(body)} unexpected bytes")


# ------------------------------------------------------------------------------------- model


@dataclass
class ProtocolModel:
    """The device side of the protocol in Python: bytes in, bytes out, same rules as the gateware
    (``spikegate.hw.host_link.HostLink``). ``compute(pixels) -> (logits, cycles)`` stands in for
    the core; ``busy_reads`` makes the first N READs after each START answer BUSY.

    ``weight_words > 0`` models a device whose weights are loaded at run time (``weight_bits``
    per word): LOAD_WEIGHTS writes ``weights`` (None = never written) word by word as the bytes
    arrive, INFO is version 2, START is refused until they are loaded, and ``compute`` is called as
    ``compute(pixels, weights)``.

    ``sdram_words > 0`` models a device whose weights live in SDRAM: LOAD_SDRAM writes ``sdram``
    (16-bit words, None = never written; ``sdram_faults`` maps a word address to bits the SDRAM
    flips on writing it, a broken board) as the words arrive, CHECK_SDRAM reads words back into a
    CRC-32 and sets ``sdram_verified`` only when it covers the whole image and matches, any write
    clears it, INFO is version 3, START is refused until it is set, and ``compute`` is called as
    ``compute(pixels, sdram)``.

    ``feed(data)`` returns the response bytes; ``timeout()`` is what the inter-byte timeout does
    when a frame stops arriving.
    """

    num_pixels: int
    num_classes: int
    pixel_bits: int
    logit_bits: int
    compute: Callable[..., tuple[list[int], int]]
    clk_hz: int = 0
    busy_reads: int = 0
    weight_words: int = 0
    weight_bits: int = 0
    weights: list = field(default_factory=list)
    weights_loaded: bool = False
    sdram_words: int = 0
    sdram: list = field(default_factory=list)
    sdram_verified: bool = False
    sdram_faults: dict = field(default_factory=dict)
    _state: str = "sync"
    _cmd: int = 0
    _len: int = 0
    _payload: bytearray = field(default_factory=bytearray)
    _sum: int = 0
    _image: list[int] | None = None
    _result: tuple[int, list[int], int] | None = None
    _busy_left: int = 0
    _w_next: int = 0             # words [0, _w_next) came through good frames, in order
    _w: dict = field(default_factory=dict)   # this LOAD_WEIGHTS frame: busy, offset bytes, ok, ...

    def __post_init__(self):
        self.weights = [None] * self.weight_words
        self.sdram = [None] * self.sdram_words

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            out += self._byte(b)
        return bytes(out)

    def timeout(self) -> bytes:
        if self._state == "sync":
            return b""
        cmd = self._cmd if self._state != "cmd" else 0
        if cmd == Cmd.LOAD and self._state in ("payload", "check"):
            self._image = None
        self._state = "sync"
        return self._error(Err.TIMEOUT, cmd)

    def _error(self, code: int, cmd: int) -> bytes:
        return encode_frame(ERROR_RESPONSE, bytes([code, cmd & 0xFF]))

    def _byte(self, b: int) -> bytes:
        s = self._state
        if s == "sync":
            if b == SYNC:
                self._state, self._sum, self._cmd = "cmd", 0, 0
            return b""
        if s != "check":
            self._sum = (self._sum + b) & 0xFF
        if s == "cmd":
            self._cmd, self._state = b, "len_lo"
        elif s == "len_lo":
            self._len, self._state = b, "len_hi"
        elif s == "len_hi":
            self._len |= b << 8
            self._payload = bytearray()
            self._state = "payload" if self._len else "check"
            if self._cmd == Cmd.LOAD and self._len == self._load_len() and not self._busy_left:
                self._image = None   # about to be overwritten
            self._w = {"busy": bool(self._busy_left), "off": bytearray(), "ok": False, "over": False,
                       "addr": 0, "word": bytearray()}
        elif s == "payload":
            self._payload.append(b)
            if self.weight_words and self._cmd == Cmd.LOAD_WEIGHTS:
                self._weight_byte(b)
            if self.sdram_words and self._cmd == Cmd.LOAD_SDRAM:
                self._sdram_byte(b)
            if len(self._payload) == self._len:
                self._state = "check"
        elif s == "check":
            self._state = "sync"
            if b != self._sum:
                return self._error(Err.BAD_CHECKSUM, self._cmd)
            return self._execute()
        return b""

    def _load_len(self) -> int:
        return self.num_pixels * bytes_per_pixel(self.pixel_bits)

    def _weight_byte(self, b: int) -> None:
        """One LOAD_WEIGHTS payload byte, as the gateware takes it: the offset, then words written
        as they complete (before the checksum is known)."""
        w, n = self._w, self.weight_words
        if len(w["off"]) < WEIGHT_OFFSET_BYTES:
            w["off"].append(b)
            if len(w["off"]) == WEIGHT_OFFSET_BYTES:
                off = int.from_bytes(w["off"], "little")
                w["addr"], w["over"] = off, off > n
                if not w["busy"] and off in (0, self._w_next):
                    w["ok"], self.weights_loaded, self._w_next = True, False, off
            return
        w["word"].append(b)
        if len(w["word"]) == bytes_per_word(self.weight_bits):
            word = int.from_bytes(w["word"], "little") & ((1 << self.weight_bits) - 1)
            w["word"] = bytearray()
            if w["addr"] == n:
                w["over"] = True
            else:
                if w["ok"]:
                    self.weights[w["addr"]] = word
                w["addr"] += 1

    def _sdram_byte(self, b: int) -> None:
        """One LOAD_SDRAM payload byte, as the gateware (``hw/host_link_sdram.py``) takes it: the
        offset, then each word written as it completes, up to the image's end."""
        w, n = self._w, self.sdram_words
        if len(w["off"]) < SDRAM_OFFSET_BYTES:
            w["off"].append(b)
            if len(w["off"]) == SDRAM_OFFSET_BYTES:
                off = int.from_bytes(w["off"], "little")
                w["addr"], w["over"], w["ok"] = off, off >= n, not w["busy"]
                if w["ok"]:
                    self.sdram_verified = False
            return
        w["word"].append(b)
        if len(w["word"]) == SDRAM_WORD_BYTES:
            word = int.from_bytes(w["word"], "little")
            w["word"] = bytearray()
            if w["addr"] == n:
                w["over"] = True
            else:
                if w["ok"] and not w["over"]:
                    self.sdram[w["addr"]] = word ^ self.sdram_faults.get(w["addr"], 0)
                w["addr"] += 1

    def _sdram_command(self, cmd: int, n: int) -> bytes:
        """LOAD_SDRAM's and CHECK_SDRAM's verdicts and responses (checks in the gateware's order)."""
        w = self._w
        if cmd == Cmd.LOAD_SDRAM:
            if n < SDRAM_OFFSET_BYTES + SDRAM_WORD_BYTES or (n - SDRAM_OFFSET_BYTES) % SDRAM_WORD_BYTES or w["over"]:
                return self._error(Err.BAD_LENGTH, cmd)
            if w["busy"]:
                return self._error(Err.BUSY, cmd)
            return encode_frame(cmd | RESPONSE_FLAG, w["addr"].to_bytes(SDRAM_ACK_BYTES, "little"))
        count = int.from_bytes(self._payload[:4], "little") if n == SDRAM_CHECK_BYTES else 0
        if n != SDRAM_CHECK_BYTES or not 1 <= count <= self.sdram_words:
            return self._error(Err.BAD_LENGTH, cmd)
        if w["busy"]:
            return self._error(Err.BUSY, cmd)
        crc = sdram_crc(b"".join((v or 0).to_bytes(SDRAM_WORD_BYTES, "little") for v in self.sdram[:count]))
        self.sdram_verified = count == self.sdram_words and crc == int.from_bytes(self._payload[4:8], "little")
        return encode_frame(cmd | RESPONSE_FLAG, crc.to_bytes(SDRAM_CRC_BYTES, "little"))

    def _execute(self) -> bytes:
        cmd, n = self._cmd, self._len
        ack = encode_frame(cmd | RESPONSE_FLAG)
        if cmd == Cmd.INFO:
            if n:
                return self._error(Err.BAD_LENGTH, cmd)
            return encode_frame(cmd | RESPONSE_FLAG, info_payload(
                num_pixels=self.num_pixels, num_classes=self.num_classes,
                pixel_bits=self.pixel_bits, logit_bits=self.logit_bits, clk_hz=self.clk_hz,
                weight_words=self.weight_words, weight_bits=self.weight_bits,
                weights_loaded=self.weights_loaded, sdram_words=self.sdram_words,
                sdram_verified=self.sdram_verified))
        if cmd in (Cmd.LOAD_SDRAM, Cmd.CHECK_SDRAM) and self.sdram_words:
            return self._sdram_command(cmd, n)
        if cmd == Cmd.LOAD_WEIGHTS and self.weight_words:
            w = self._w
            if n < WEIGHT_OFFSET_BYTES + bytes_per_word(self.weight_bits) or w["word"] or w["over"]:
                return self._error(Err.BAD_LENGTH, cmd)
            if w["busy"]:
                return self._error(Err.BUSY, cmd)
            if not w["ok"]:
                return self._error(Err.BAD_OFFSET, cmd)
            self._w_next = w["addr"]
            self.weights_loaded = w["addr"] == self.weight_words
            return encode_frame(cmd | RESPONSE_FLAG, self._w_next.to_bytes(WEIGHT_ACK_BYTES, "little"))
        if cmd == Cmd.LOAD:
            if n != self._load_len():
                return self._error(Err.BAD_LENGTH, cmd)
            if self._busy_left:
                return self._error(Err.BUSY, cmd)
            k, mask = bytes_per_pixel(self.pixel_bits), (1 << self.pixel_bits) - 1
            img = []
            for i in range(self.num_pixels):
                v = int.from_bytes(self._payload[i * k:(i + 1) * k], "little") & mask
                img.append(v - (1 << self.pixel_bits) if v >> (self.pixel_bits - 1) else v)
            self._image = img
            return ack
        if cmd in (Cmd.START, Cmd.READ):
            if n:
                return self._error(Err.BAD_LENGTH, cmd)
            if self._busy_left:
                if cmd == Cmd.READ:
                    self._busy_left -= 1
                return self._error(Err.BUSY, cmd)
            if cmd == Cmd.START:
                if self.weight_words and not self.weights_loaded:
                    return self._error(Err.WEIGHTS_NOT_LOADED, cmd)
                if self.sdram_words and not self.sdram_verified:
                    return self._error(Err.WEIGHTS_NOT_VERIFIED, cmd)
                if self._image is None:
                    return self._error(Err.NOT_LOADED, cmd)
                if self.weight_words or self.sdram_words:
                    logits, cycles = self.compute(list(self._image), list(self.weights or self.sdram))
                else:
                    logits, cycles = self.compute(list(self._image))
                bits = self.logit_bits
                logits = [((v + (1 << (bits - 1))) % (1 << bits)) - (1 << (bits - 1)) for v in logits]
                self._result = (logits.index(max(logits)), logits, cycles & 0xFFFFFFFF)
                self._busy_left = self.busy_reads
                return ack
            if self._result is None:
                return self._error(Err.NO_RESULT, cmd)
            k, logits, cycles = self._result
            payload = k.to_bytes(CLASS_BYTES, "little") + b"".join(
                v.to_bytes(LOGIT_BYTES, "little", signed=True) for v in logits) + cycles.to_bytes(4, "little")
            return encode_frame(cmd | RESPONSE_FLAG, payload)
        return self._error(Err.UNKNOWN_CMD, cmd)
