"""External memory (issue 24): the burst port, the packed weight image, and the deterministic timing
model that the WLOAD engine (``hw/wload.py``) is cycle-exact against.

One definition of each fact the compiler (memory plan, ISS, cycle model), the engine and its
testbench (``rtl_tests/burst_memory.py``) share:

* :class:`BurstPort`: the port's width (``port_bits``: 16 for the ULX3S's SDRAM), the longest burst
  one command asks for (``max_burst`` beats) and the width of its beat address.
* The packed image (:func:`pack_words` / :func:`unpack_beats`): the ``n`` WMEM words of one WLOAD
  (``word_bits = lanes * weight_bits`` each, lane 0 in the low bits as in today's WMEM rows) are one
  bit string, word ``i`` in bits ``[i * word_bits, (i + 1) * word_bits)``, cut into beats of
  ``port_bits`` little-endian (the first beat holds bits ``0 .. port_bits - 1``); the last beat is
  zero-padded. Every WLOAD starts on a beat boundary. :func:`pack_rows` / :func:`unpack_rows` are
  the same format for WMEM rows ``[words, lanes]`` of signed weights, vectorised (the compiler
  packs whole models with them, the ISS unpacks each WLOAD; tests hold them equal to the above).
* :func:`burst_plan`: the bursts the engine issues, in address order, at most ``max_burst`` beats
  each (the last one shorter).
* :class:`MemoryTiming` and :func:`wload_cycles`: the deterministic memory model and the exact
  cycles of one WLOAD under it.

The deterministic model (what ``rtl_tests/burst_memory.py`` does in its cycle-exact mode). Cycle
numbers are clock edges; a transfer happens at an edge where valid and ready are both high.

* A burst command accepted at edge ``c`` offers its first beat at edge ``c + latency``, then the
  next beat one edge after the previous one was taken. A beat not taken (reader not ready) is
  held.
* The next command is accepted from the edge after the previous burst's last beat on.
* Refresh: a beat whose index counted from the start of the image (``beats_before`` plus its index
  in this WLOAD) is a positive multiple of ``refresh_every`` is offered ``refresh_cycles`` edges
  later than it would otherwise be (the refresh comes between the ``refresh_every``-th beat and the
  next one, wherever that falls, also at a burst's start).

The engine's side (constants read off ``hw/wload.py``, see :func:`wload_cycles`): ``start`` sampled
at edge ``s`` puts its first command up for edge ``s + 1``; the next command is up from the edge
after a burst's last beat (so with an always-ready memory it is accepted then); a word is written
(registered) at the edge after its last bit came in, at most one word per edge; the engine takes a
beat only when no complete word would be left after this edge's write (so it stalls the port when
``word_bits < port_bits``: WMEM takes one word per cycle); ``done`` rises at the edge that writes
the last word. The engine's cycles are ``done``'s edge minus ``start``'s; the ISS adds the
sequencer's fetch (``compiler/cycle_model.FETCH``) as for every instruction.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikegate.errors import SpikegateError

__all__ = ["ExternalMemoryError", "BurstPort", "MemoryTiming", "ULX3S_PORT", "ULX3S_TIMING",
           "ULX3S_CONTROLLER_100MHZ", "timing_from_controller", "WLOAD_FIRST_CMD", "WLOAD_NEXT_CMD", "WLOAD_WRITE", "beats_for", "burst_plan",
           "pack_words", "unpack_beats", "word_ints", "pack_rows", "unpack_rows", "refreshes", "wload_cycles", "beat_edges"]


class ExternalMemoryError(SpikegateError, ValueError):
    """A burst port, timing or WLOAD that the external memory cannot serve (one line)."""


def _positive(name: str, v, minimum: int = 1) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
        raise ExternalMemoryError(f"{name} must be an integer >= {minimum}, not {v!r}")
    return v


@dataclass(frozen=True)
class BurstPort:
    """The accelerator's burst port: ``cmd`` {``addr`` (beat address, ``addr_bits``), ``len``
    (1 .. ``max_burst`` beats)} out, ``rdata`` (``port_bits``) in, both valid/ready streams."""

    port_bits: int = 16
    max_burst: int = 16
    addr_bits: int = 24

    def __post_init__(self):
        _positive("port_bits", self.port_bits, 8)
        if self.port_bits & (self.port_bits - 1):
            raise ExternalMemoryError(f"port_bits must be a power of two (16, 32, 64), not {self.port_bits}")
        _positive("max_burst", self.max_burst)
        _positive("addr_bits", self.addr_bits)

    @property
    def len_bits(self) -> int:
        """Width of a command's ``len`` (it holds ``max_burst``)."""
        return self.max_burst.bit_length()

    @property
    def beats(self) -> int:
        """Beats the port addresses."""
        return 1 << self.addr_bits


@dataclass(frozen=True)
class MemoryTiming:
    """The deterministic memory model (module docstring): per burst ``latency`` edges from command
    to first beat; every ``refresh_every`` beats of an image a ``refresh_cycles`` stall."""

    latency: int
    refresh_every: int
    refresh_cycles: int

    def __post_init__(self):
        _positive("latency", self.latency)
        _positive("refresh_every", self.refresh_every)
        _positive("refresh_cycles", self.refresh_cycles, 0)


# The ULX3S: LiteDRAM's native port on the MT48LC16M16A2 (docs/sdram.md), 16-bit words, 24-bit word
# address (32 MB). max_burst 16 = the SDRAMController's rdata FIFO (rdata_depth): a burst adapter
# on the native port can have a whole burst's reads in flight without the FIFO overflowing.
ULX3S_PORT = BurstPort(port_bits=16, max_burst=16, addr_bits=24)

# Cycles of the path around the chip's own timings (an estimate from the structure, not yet
# measured: the burst adapter on the native port does not exist yet, issue 24):
CMD_PATH = 2            # a command through LiteDRAM's crossbar into its bank machine
PHY_READ_EXTRA = 1      # GENSDRPHY's read latency is CL + 1 (its input registers)
RDATA_FIFO = 2          # SDRAMController's SyncFIFOBuffered on rdata
REFRESH_HANDSHAKE = 1   # the refresher's request/grant before it closes the banks


def timing_from_controller(ctrl) -> MemoryTiming:
    """The deterministic model for LiteDRAM's SDR controller from its timing in cycles (a mapping
    with ``tRP``, ``tRCD``, ``tRFC``, ``tREFI``, ``CL``: ``board_targets/litedram_core.py:
    controller_timing(sys_clk_hz)``).

    * ``latency``: command path, a row miss (PRECHARGE ``tRP`` + ACTIVE ``tRCD``: every burst is
      charged one, which folds in the row changes the model has no term for), READ to data
      (``CL`` + the PHY's register) and the rdata FIFO.
    * ``refresh_every``: ``tREFI`` (one beat per cycle while streaming, so beats ~ cycles).
    * ``refresh_cycles``: the refresher's handshake, closing the row (``tRP``), AUTO REFRESH
      (``tRFC``), reopening it (``tRCD``) and refilling the read pipeline (``CL`` + 1)."""
    try:
        trp, trcd, trfc, trefi, cl = (int(ctrl[k]) for k in ("tRP", "tRCD", "tRFC", "tREFI", "CL"))
    except KeyError as e:
        raise ExternalMemoryError(f"controller timing lacks {e.args[0]} (needs tRP, tRCD, tRFC, "
                                  "tREFI, CL in cycles)") from None
    return MemoryTiming(latency=CMD_PATH + trp + trcd + cl + PHY_READ_EXTRA + RDATA_FIFO,
                        refresh_every=trefi,
                        refresh_cycles=REFRESH_HANDSHAKE + trp + trfc + trcd + cl + PHY_READ_EXTRA)


# LiteDRAM's MT48LC16M16 timing at 100 MHz (controller_timing(100_000_000); tests/ check the copy)
ULX3S_CONTROLLER_100MHZ = {"tRP": 2, "tRCD": 2, "tRFC": 7, "tREFI": 782, "CL": 2}
ULX3S_TIMING = timing_from_controller(ULX3S_CONTROLLER_100MHZ)     # latency 11, every 782, 15

# The engine's constants (hw/wload.py), in edges:
WLOAD_FIRST_CMD = 1     # start's edge -> the first command is up (IDLE -> CMD)
WLOAD_NEXT_CMD = 1      # a burst's last beat -> the next command is up (RECV -> CMD at that beat's edge)
WLOAD_WRITE = 1         # a word's last beat -> its WMEM write (registered) and, for the last, done


def beats_for(n_words: int, word_bits: int, port_bits: int) -> int:
    """Beats holding ``n_words`` packed words: ``ceil(n_words * word_bits / port_bits)``."""
    return -(-n_words * word_bits // port_bits)


def _check_wload(n_words, word_bits):
    _positive("n_words", n_words)
    _positive("word_bits", word_bits)


def burst_plan(src: int, n_words: int, word_bits: int, port: BurstPort) -> list[tuple[int, int]]:
    """The ``(addr, len)`` bursts of one WLOAD: from beat ``src`` on, ``max_burst`` beats each, the
    last one shorter, in address order."""
    _check_wload(n_words, word_bits)
    _positive("src", src, 0)
    beats = beats_for(n_words, word_bits, port.port_bits)
    if src + beats > port.beats:
        raise ExternalMemoryError(f"WLOAD of {n_words} words at beat {src} runs past the port's "
                                  f"{port.beats} beats ({port.addr_bits}-bit address)")
    return [(src + a, min(port.max_burst, beats - a)) for a in range(0, beats, port.max_burst)]


def pack_words(words, word_bits: int, port_bits: int) -> list[int]:
    """The beats of the packed words (unsigned, each ``< 2**word_bits``): word ``i`` in bits
    ``[i * word_bits, (i + 1) * word_bits)`` of the stream, the last beat zero-padded."""
    _positive("word_bits", word_bits)
    _positive("port_bits", port_bits)
    stream = 0
    for i, w in enumerate(words):
        w = int(w)
        if not 0 <= w < 1 << word_bits:
            raise ExternalMemoryError(f"word {i} = {w} does not fit {word_bits} unsigned bits")
        stream |= w << (i * word_bits)
    mask = (1 << port_bits) - 1
    return [(stream >> (b * port_bits)) & mask for b in range(beats_for(len(words), word_bits, port_bits))]


def unpack_beats(beats, n_words: int, word_bits: int, port_bits: int) -> list[int]:
    """The ``n_words`` words packed in ``beats`` (the inverse of :func:`pack_words`)."""
    _check_wload(n_words, word_bits)
    need = beats_for(n_words, word_bits, port_bits)
    if len(beats) < need:
        raise ExternalMemoryError(f"{n_words} words of {word_bits} bits need {need} beats of "
                                  f"{port_bits} bits, got {len(beats)}")
    stream = 0
    for b, v in enumerate(beats[:need]):
        stream |= (int(v) & ((1 << port_bits) - 1)) << (b * port_bits)
    mask = (1 << word_bits) - 1
    return [(stream >> (i * word_bits)) & mask for i in range(n_words)]


def word_ints(rows: np.ndarray, weight_bits: int) -> list[int]:
    """WMEM rows ``[words, lanes]`` as unsigned integers: lane ``p``'s weight in bits
    ``[p*weight_bits, (p+1)*weight_bits)`` (two's complement)."""
    mask = (1 << weight_bits) - 1
    out = []
    for row in np.asarray(rows):
        w = 0
        for lane, v in enumerate(row):
            w |= (int(v) & mask) << (lane * weight_bits)
        out.append(w)
    return out


def pack_rows(rows: np.ndarray, weight_bits: int, port_bits: int) -> np.ndarray:
    """The beats (uint64) of WMEM rows ``[words, lanes]`` packed as ``external_memory.pack_words``
    packs their :func:`word_ints` (the definition; tests hold the two equal), vectorised: that
    one builds the whole bit string as one integer, quadratic in a layer's size."""
    rows = np.asarray(rows, dtype=np.int64)
    bits = (rows[..., None] >> np.arange(weight_bits)) & 1          # [words, lanes, bit], two's complement
    stream = bits.reshape(-1).astype(np.uint64)
    stream = np.concatenate([stream, np.zeros(-len(stream) % port_bits, dtype=np.uint64)])
    return (stream.reshape(-1, port_bits) << np.arange(port_bits, dtype=np.uint64)).sum(axis=1, dtype=np.uint64)


def unpack_rows(beats: np.ndarray, n_words: int, lanes: int, weight_bits: int, port_bits: int) -> np.ndarray:
    """The inverse of :func:`pack_rows` (``external_memory.unpack_beats``, vectorised): the first
    ``n_words`` packed words of ``beats`` as signed ``[n_words, lanes]`` rows."""
    beats = np.asarray(beats, dtype=np.uint64)
    stream = ((beats[:, None] >> np.arange(port_bits, dtype=np.uint64)) & np.uint64(1)).reshape(-1)
    bits = stream[: n_words * lanes * weight_bits].astype(np.int64).reshape(n_words, lanes, weight_bits)
    vals = (bits << np.arange(weight_bits)).sum(axis=2)
    return np.where(vals >= 1 << (weight_bits - 1), vals - (1 << weight_bits), vals)


def refreshes(beats_before: int, beats: int, timing: MemoryTiming) -> int:
    """Refresh stalls inside ``beats`` beats that follow ``beats_before`` beats of the image: beats
    whose image index is a positive multiple of ``refresh_every``."""
    first = max(beats_before, 1)
    last = beats_before + beats - 1
    e = timing.refresh_every
    return max(0, last // e - (first - 1) // e)


def beat_edges(n_words: int, word_bits: int, port: BurstPort, timing: MemoryTiming,
               beats_before: int = 0) -> tuple[list[int], list[int], list[int]]:
    """The deterministic schedule of one WLOAD, edges counted from ``start``'s: each command's
    acceptance, each beat's transfer, each word's write. The definition :func:`wload_cycles`
    evaluates and the testbench compares against, beat by beat.

    Beat ``j`` is offered at ``cmd + latency`` (first of its burst) or one edge after beat ``j - 1``
    was taken, plus ``refresh_cycles`` when a refresh falls before it; it is taken at the first
    edge from then on at which the engine is ready: all ``floor(j * port_bits / word_bits)`` words
    complete in the earlier beats are written by that edge. Word ``i`` is written ``WLOAD_WRITE``
    after the beat holding its last bit, and after word ``i - 1``."""
    _check_wload(n_words, word_bits)
    pb, wb, L = port.port_bits, word_bits, timing.latency
    plan = burst_plan(0, n_words, word_bits, port)
    cmds, takes, writes = [], [], []

    def write_words_through(beat):      # words whose last bit is in beats <= beat
        while len(writes) < n_words and ((len(writes) + 1) * wb - 1) // pb <= beat:
            prev = writes[-1] + 1 if writes else 0
            writes.append(max(takes[((len(writes) + 1) * wb - 1) // pb] + WLOAD_WRITE, prev))

    cmd = WLOAD_FIRST_CMD
    for _, length in plan:
        cmds.append(cmd)
        for k in range(length):
            j = len(takes)
            offer = cmd + L if k == 0 else takes[-1] + 1
            g = beats_before + j
            if g > 0 and g % timing.refresh_every == 0:
                offer += timing.refresh_cycles
            need = min(j * pb // wb, n_words)          # words that must be written first
            ready = writes[need - 1] if need else 0
            takes.append(max(offer, ready))
            write_words_through(j)
        cmd = takes[-1] + WLOAD_NEXT_CMD
    return cmds, takes, writes


def wload_cycles(n_words: int, word_bits: int, port: BurstPort, timing: MemoryTiming,
                 beats_before: int = 0) -> int:
    """Cycles of one WLOAD under the deterministic model, from the edge that samples the engine's
    ``start`` to the edge that raises its ``done`` (the ISS adds the sequencer's ``FETCH``).
    ``beats_before``: beats of this image delivered before it (the refresh phase).

    When a word is at least a beat wide the engine never stalls the port and this is
    ``bursts * latency + beats + WLOAD_FIRST_CMD + WLOAD_WRITE - 1 + refreshes * refresh_cycles``
    (with ``WLOAD_NEXT_CMD = 1`` the next command follows the last beat at once); narrower words
    are paced by WMEM's one write per cycle and go through :func:`beat_edges`."""
    _check_wload(n_words, word_bits)
    _positive("beats_before", beats_before, 0)
    if word_bits >= port.port_bits and WLOAD_NEXT_CMD == 1:
        beats = beats_for(n_words, word_bits, port.port_bits)
        bursts = -(-beats // port.max_burst)
        return (bursts * timing.latency + beats + WLOAD_FIRST_CMD + WLOAD_WRITE - 1
                + refreshes(beats_before, beats, timing) * timing.refresh_cycles)
    return beat_edges(n_words, word_bits, port, timing, beats_before)[2][-1]
