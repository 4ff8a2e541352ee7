"""The host protocol: the framed request/response protocol between a host and the accelerator's
host link, as data and pure functions (no Amaranth, no numpy).

``docs/host-protocol.md`` specifies it; this module is its single source. The gateware
(``hw/host_link.py``) and the host client (:mod:`spikegate.host`) both import it, so the client
runs on a machine without the hardware generator.
"""

from __future__ import annotations

import enum

__all__ = [
    "PROTOCOL_VERSION", "PROTOCOL_VERSION_WEIGHTS", "PROTOCOL_VERSION_SDRAM", "SYNC", "RESPONSE_FLAG", "ERROR_RESPONSE",
    "MAX_FRAME_PAYLOAD", "INFO_LENGTH", "INFO_LENGTH_WEIGHTS", "INFO_RUNTIME_WEIGHTS",
    "INFO_WEIGHTS_LOADED", "WEIGHT_OFFSET_BYTES", "WEIGHT_ACK_BYTES", "LOGIT_BYTES", "CYCLES_BYTES",
    "CLASS_BYTES", "INFO_SDRAM", "INFO_SDRAM_VERIFIED", "SDRAM_WORD_BYTES", "SDRAM_OFFSET_BYTES",
    "SDRAM_ACK_BYTES", "SDRAM_CHECK_BYTES", "SDRAM_CRC_BYTES", "sdram_crc", "Cmd", "Err", "checksum", "bytes_per_pixel", "bytes_per_word", "result_length",
    "info_payload",
]

# ------------------------------------------------------------------------------- protocol constants

PROTOCOL_VERSION = 1            # devices whose weights are in the bitstream
PROTOCOL_VERSION_WEIGHTS = 2    # devices whose weights are loaded at run time (LOAD_WEIGHTS)
PROTOCOL_VERSION_SDRAM = 3      # devices whose weights live in SDRAM (LOAD_SDRAM, CHECK_SDRAM)
SYNC = 0xA5
RESPONSE_FLAG = 0x80       # a successful response carries the request's command | 0x80
ERROR_RESPONSE = 0xFF      # an error response; payload = [error code, command that failed]
MAX_FRAME_PAYLOAD = 0xFFFF
INFO_LENGTH = 14
INFO_LENGTH_WEIGHTS = 20         # version 2: + weight flags, bytes per word, words (u32)
INFO_RUNTIME_WEIGHTS = 0x01      # weight flags: the weights must be loaded at run time
INFO_WEIGHTS_LOADED = 0x02       #               and they are (every word, since reset)
INFO_SDRAM = 0x04                #               they live in SDRAM (version 3)
INFO_SDRAM_VERIFIED = 0x08       #               and a CHECK_SDRAM over the whole image matched
WEIGHT_OFFSET_BYTES = 4          # LOAD_WEIGHTS payload: word offset (u32), then the words
WEIGHT_ACK_BYTES = 4             # LOAD_WEIGHTS response: words loaded so far (u32)
SDRAM_WORD_BYTES = 2             # LOAD_SDRAM words: the SDRAM's 16-bit words, little-endian
SDRAM_OFFSET_BYTES = 4           # LOAD_SDRAM payload: word offset (u32), then the words
SDRAM_ACK_BYTES = 4              # LOAD_SDRAM response: the word after the last one written (u32)
SDRAM_CHECK_BYTES = 8            # CHECK_SDRAM payload: word count (u32), expected CRC-32 (u32)
SDRAM_CRC_BYTES = 4              # CHECK_SDRAM response: the CRC-32 the device read back (u32)
LOGIT_BYTES = 4
CYCLES_BYTES = 4
CLASS_BYTES = 2


class Cmd(enum.IntEnum):
    INFO = 0x01
    LOAD = 0x02
    START = 0x03
    READ = 0x04
    LOAD_WEIGHTS = 0x05
    LOAD_SDRAM = 0x06
    CHECK_SDRAM = 0x07


class Err(enum.IntEnum):
    BAD_CHECKSUM = 0x01
    BAD_LENGTH = 0x02
    UNKNOWN_CMD = 0x03
    NOT_LOADED = 0x04
    BUSY = 0x05
    NO_RESULT = 0x06
    TIMEOUT = 0x07
    WEIGHTS_NOT_LOADED = 0x08
    BAD_OFFSET = 0x09
    WEIGHTS_NOT_VERIFIED = 0x0A     # START before a CHECK_SDRAM over the whole image matched
    OVERRUN = 0x0B                  # LOAD_SDRAM words came faster than the SDRAM took them


def checksum(body: bytes) -> int:
    """Checksum of a frame: the sum, modulo 256, of every byte after the sync byte."""
    return sum(body) & 0xFF


def bytes_per_pixel(pixel_bits: int) -> int:
    return (pixel_bits + 7) // 8


def bytes_per_word(word_bits: int) -> int:
    """Bytes per weight-memory word in LOAD_WEIGHTS (little-endian)."""
    return (word_bits + 7) // 8


def sdram_crc(image: bytes) -> int:
    """CHECK_SDRAM's checksum of SDRAM words ``image`` (their little-endian bytes): CRC-32 as zlib
    computes it (reflected polynomial 0xEDB88320, initial value and final XOR all ones). A CRC and
    not a sum because a sum misses swapped words, the error an address bug makes."""
    import zlib
    return zlib.crc32(bytes(image)) & 0xFFFFFFFF


def result_length(num_classes: int) -> int:
    return CLASS_BYTES + LOGIT_BYTES * num_classes + CYCLES_BYTES


def info_payload(*, num_pixels, num_classes, pixel_bits, logit_bits, clk_hz=0, weight_words=0,
                 weight_bits=0, weights_loaded=False, sdram_words=0, sdram_verified=False) -> bytes:
    """The INFO response payload a device with these parameters sends: ``INFO_LENGTH`` bytes
    (version 1), or with runtime-loaded weights (``weight_words > 0``) ``INFO_LENGTH_WEIGHTS``
    bytes (version 2: the weight flags, bytes per word and the number of words follow), or with
    weights in SDRAM (``sdram_words > 0``, the image's 16-bit words) the same layout as version 3:
    flags runtime | SDRAM, with loaded and verified both set once CHECK_SDRAM matched, 2 bytes
    per word, the image's words."""
    if sdram_words:
        flags = INFO_RUNTIME_WEIGHTS | INFO_SDRAM | \
            ((INFO_WEIGHTS_LOADED | INFO_SDRAM_VERIFIED) if sdram_verified else 0)
        return _info_common(PROTOCOL_VERSION_SDRAM, num_pixels, num_classes, pixel_bits, logit_bits, clk_hz) + \
            bytes([flags, SDRAM_WORD_BYTES]) + int(sdram_words).to_bytes(4, "little")
    version = PROTOCOL_VERSION_WEIGHTS if weight_words else PROTOCOL_VERSION
    out = _info_common(version, num_pixels, num_classes, pixel_bits, logit_bits, clk_hz)
    if weight_words:
        flags = INFO_RUNTIME_WEIGHTS | (INFO_WEIGHTS_LOADED if weights_loaded else 0)
        out += bytes([flags, bytes_per_word(weight_bits)]) + int(weight_words).to_bytes(4, "little")
    return out


def _info_common(version, num_pixels, num_classes, pixel_bits, logit_bits, clk_hz) -> bytes:
    """The first ``INFO_LENGTH`` bytes of INFO, every version's."""
    return bytes([version, pixel_bits, logit_bits, bytes_per_pixel(pixel_bits)]) + \
        num_pixels.to_bytes(4, "little") + num_classes.to_bytes(2, "little") + \
        (int(clk_hz) // 1000).to_bytes(4, "little")
