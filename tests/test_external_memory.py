"""machine/external_memory.py: the packed image, the burst plan and the deterministic WLOAD timing
(the RTL engine is checked against the same functions in rtl_tests/test_wload.py)."""

from __future__ import annotations

import random

import pytest

from spikegate.errors import SpikegateError
from spikegate.machine.external_memory import (
    ULX3S_CONTROLLER_100MHZ, ULX3S_PORT, ULX3S_TIMING, BurstPort, ExternalMemoryError, MemoryTiming, beat_edges, beats_for,
    burst_plan, pack_words, refreshes, timing_from_controller, unpack_beats, wload_cycles)


@pytest.mark.parametrize("word_bits,port_bits", [(48, 16), (8, 16), (64, 16), (6, 16), (24, 32),
                                                 (1, 64), (100, 16)])
def test_pack_unpack_round_trip(word_bits, port_bits):
    rng = random.Random(word_bits * 1000 + port_bits)
    for n in (1, 2, 3, 7, 50):
        words = [rng.randrange(1 << word_bits) for _ in range(n)]
        beats = pack_words(words, word_bits, port_bits)
        assert len(beats) == beats_for(n, word_bits, port_bits) == -(-n * word_bits // port_bits)
        assert all(0 <= b < 1 << port_bits for b in beats)
        assert unpack_beats(beats, n, word_bits, port_bits) == words


def test_pack_layout_is_little_endian_bit_string():
    # 8 lanes x 6 bits = 48-bit words over 16-bit beats: 3 beats per word, exactly
    w0, w1 = 0x123456789ABC, 0xFEDCBA987654
    assert pack_words([w0, w1], 48, 16) == [0x9ABC, 0x5678, 0x1234, 0x7654, 0xBA98, 0xFEDC]
    # 6-bit words straddle beats: word 2 is bits 12..17 (4 bits in beat 0, 2 in beat 1)
    beats = pack_words([0, 0, 0b111111], 6, 16)
    assert beats == [0b1111 << 12, 0b11]
    # the last beat is zero-padded
    assert pack_words([0xAB], 8, 16) == [0xAB]


def test_pack_rejects_words_that_do_not_fit():
    with pytest.raises(ExternalMemoryError, match="word 1 = 256 does not fit 8"):
        pack_words([1, 256], 8, 16)
    with pytest.raises(ExternalMemoryError, match="need 3 beats"):
        unpack_beats([0, 0], 1, 48, 16)


def test_burst_plan():
    port = BurstPort(port_bits=16, max_burst=4, addr_bits=10)
    # 10 words of 24 bits = 240 bits = 15 beats: 4 + 4 + 4 + 3, in address order
    assert burst_plan(100, 10, 24, port) == [(100, 4), (104, 4), (108, 4), (112, 3)]
    assert burst_plan(0, 1, 8, port) == [(0, 1)]
    assert sum(n for _, n in burst_plan(7, 333, 6, ULX3S_PORT)) == beats_for(333, 6, 16)
    with pytest.raises(ExternalMemoryError, match="runs past the port's 1024 beats"):
        burst_plan(1020, 10, 24, port)
    with pytest.raises(SpikegateError, match="n_words must be an integer >= 1"):
        burst_plan(0, 0, 8, port)


def test_bad_parameters_are_one_line_errors():
    for kwargs, msg in [(dict(port_bits=24), "power of two"), (dict(max_burst=0), "max_burst"),
                        (dict(port_bits=True), "port_bits")]:
        with pytest.raises(ExternalMemoryError, match=msg):
            BurstPort(**kwargs)
    with pytest.raises(ExternalMemoryError, match="latency"):
        MemoryTiming(latency=0, refresh_every=10, refresh_cycles=1)


def test_refreshes_count_positive_multiples_of_the_interval():
    t = MemoryTiming(latency=3, refresh_every=10, refresh_cycles=5)
    assert refreshes(0, 10, t) == 0          # beats 0..9: beat 0 is the image's first, no refresh
    assert refreshes(0, 11, t) == 1          # beat 10
    assert refreshes(10, 1, t) == 1
    assert refreshes(11, 9, t) == 0
    assert refreshes(5, 100, t) == sum(1 for g in range(5, 105) if g and g % 10 == 0)


def test_wload_cycles_structure_for_words_at_least_a_beat_wide():
    port, t = BurstPort(port_bits=16, max_burst=8), MemoryTiming(latency=5, refresh_every=1000, refresh_cycles=9)
    # 8 lanes x 8 bits: 4 beats a word; 3 words = 12 beats = bursts of 8 + 4
    assert wload_cycles(3, 64, port, t) == 2 * 5 + 12 + 1
    # a refresh inside adds exactly refresh_cycles
    assert wload_cycles(3, 64, port, t, beats_before=995) == 2 * 5 + 12 + 1 + 9
    # one more burst costs its latency, one more beat one cycle
    assert wload_cycles(4, 64, port, t) - wload_cycles(2, 64, port, t) == 5 + 8


@pytest.mark.parametrize("word_bits", [16, 24, 48, 64, 17])
@pytest.mark.parametrize("beats_before", [0, 3, 39])
def test_closed_form_equals_the_schedule(word_bits, beats_before):
    port, t = BurstPort(port_bits=16, max_burst=5), MemoryTiming(latency=4, refresh_every=13, refresh_cycles=6)
    for n in (1, 2, 9, 40):
        cmds, takes, writes = beat_edges(n, word_bits, port, t, beats_before)
        assert wload_cycles(n, word_bits, port, t, beats_before) == writes[-1]
        assert takes == sorted(set(takes)) and len(writes) == n


@pytest.mark.parametrize("word_bits", [1, 6, 8])
def test_narrow_words_are_paced_by_one_write_per_cycle(word_bits):
    port, t = BurstPort(port_bits=16, max_burst=4), MemoryTiming(latency=3, refresh_every=10**6, refresh_cycles=0)
    n = 200
    cmds, takes, writes = beat_edges(n, word_bits, port, t)
    assert writes == sorted(set(writes)) and len(writes) == n
    # the port is slower than WMEM only at burst starts: the writes cover n cycles at least
    assert writes[-1] - writes[0] >= n - 1
    # a word is never written before its last beat came in, nor a beat taken before the earlier
    # beats' complete words were written (the engine's ready rule)
    for i, w in enumerate(writes):
        assert w > takes[((i + 1) * word_bits - 1) // 16]
    for j, a in enumerate(takes):
        need = j * 16 // word_bits
        assert need == 0 or writes[need - 1] <= a
    assert wload_cycles(n, word_bits, port, t) == writes[-1]


def test_ulx3s_timing_follows_litedram():
    """The model's ULX3S figures come from LiteDRAM's own timing for the chip (the copy in machine/
    is checked here, where board_targets may be imported)."""
    from spikegate.board_targets.litedram_core import controller_timing
    lite = controller_timing(100_000_000)
    assert {k: lite[k] for k in ULX3S_CONTROLLER_100MHZ} == ULX3S_CONTROLLER_100MHZ
    assert ULX3S_TIMING == timing_from_controller(lite)
    slower = timing_from_controller(controller_timing(90_000_000))
    assert slower.refresh_every == 704 and slower.refresh_every < ULX3S_TIMING.refresh_every
    with pytest.raises(ExternalMemoryError, match="lacks tRFC"):
        timing_from_controller({"tRP": 2, "tRCD": 2, "tREFI": 782, "CL": 2})


def test_ulx3s_defaults():
    assert ULX3S_PORT.port_bits == 16 and ULX3S_PORT.addr_bits == 24     # 32 MB of 16-bit words
    assert ULX3S_TIMING.refresh_every == 782                             # LiteDRAM's tREFI at 100 MHz
    assert wload_cycles(1, 64, ULX3S_PORT, ULX3S_TIMING) == ULX3S_TIMING.latency + 4 + 1
