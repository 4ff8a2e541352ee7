"""Per-phase cycle costs of ``hw/accelerator.py``; the ISS multiplies them by the loop counts.

The structure (what is counted) follows the loop nests in docs/accelerator.md and the engines'
pipelines (``hw/sfa_*.py``); these constants are the fixed overheads of each phase, read off the
RTL and checked cycle for cycle by ``rtl_tests/test_accelerator.py`` (the ``cycles`` output must
equal the ISS's prediction). An instruction's cost runs from its fetch to the cycle its engine
finishes (INPUT: from its first accepted pixel; OUTPUT: to its last accepted logit).
"""

from spikegate.machine import external_memory as em
from spikegate.machine.config import deep_acc_pipeline, split_lane_sum

FETCH = 4            # per instruction: fetch (the instruction's ROM word), DEC1 (its products' word),
                     # DEC2 (the products' register), DEC3 (starts the engine) (INPUT's fetch
                     # happens before the first pixel and is not counted)
INPUT_OVH = 0        # INPUT: one cycle per pixel, done with the last one
SCAN = 1             # CONV/HEAD: per scanned element that is not an event (zero, or reaches no output)
EVENT_OVH = 0        # CONV/HEAD: per event beyond its tap cycles (its scan cycle is its first tap cycle)
TSTEP_OVH = 3        # CONV/HEAD: per time step: scanner fill (S0, SR), and the last tap's T1 (SCAT_DRAIN)
SCAN_DEEP_OVH = 2    # CONV/HEAD, with more than one lane: per time step: the scanner's value stage (SV) fills
                     # too, and the last tap's T5 write has a cycle (SCAT_DRAIN5) before the readout's or
                     # bias phase's first ACC read (the deep pipeline's ACC ports are not transparent)
ACC_DEEP_OVH = 4     # CONV/HEAD, with more than one lane (deep ACC pipeline): the last tap's or bias's
                     # T2, TW, T3 and T4 drain too (SCAT_DRAIN2, _W, 3, 4; BIAS_DRAIN likewise), per time step each
READOUT = 1          # CONV: per output element
READOUT_OVH = 3      # CONV: readout drain per time step (R1, R2 and R3 of the last element)
READOUT_SUM_OVH = 2  # CONV, with more than one lane: the lane select/sum stages (RS, RS2) drain too
READOUT_SUM_DEEP_OVH = 1  # CONV, with more than 8 lanes (machine/config.py: split_lane_sum): the lane sum's
                          # second stage (RS3: the sum of the groups of pairs RS2 summed) drains too
BIAS_OVH = 2         # HEAD: bias drain per time step (T1 and the write-back of the last bias)
LIF = 1              # LIF: per element per time step
LIF_OVH = 2          # LIF: pipeline drain (C1, C2)
ATTN_OVH = 1         # ATTN: per instruction: the start cycle (d and d*N come with the instruction)
ATTN_SCAN = 1        # ATTN: per K/Q bit scanned
ATTN_ROW = 1         # ATTN: per row element added (per set K or Q bit, d of them)
ATTN_SET_OVH = 1     # ATTN: per set K or Q bit beyond its row: the read of the next bit, lost to the
                     # row's V reads (or dropped), is issued again (rep)
ATTN_WRITE = 1       # ATTN: per Y element written
ATTN_HEAD_OVH = 2    # ATTN: per (time step, head): K scan fill (S0, S1) and end; the KV clear is d*d more
ATTN_TOKEN_OVH = 2   # ATTN: per (time step, head, token): Q scan fill (S0, S1) and end
SUM = 1              # SUM: per element read
SUM_ROW_OVH = 0      # SUM: per (t, c) write (overlaps the next row's reads)
SUM_OVH = 1          # SUM: pipeline drain
SUM_DEEP_OVH = 1     # SUM, with more than one lane (deep pipelines): the read word's register stage drains too
HEAD_SCAN = 1        # HEAD: per input channel scanned (non-spike); a spike costs G
HEAD_BIAS = 1        # HEAD: per (lane, lane group) per time step
OUTPUT = 1           # per logit
OUTPUT_OVH = 1       # OUTPUT: first ACC read
OUTPUT_DEEP_OVH = 1  # OUTPUT, with more than one lane: the words' register stage before the lane mux


def readout_ovh(lanes: int) -> int:
    """Readout drain per CONV time step: R1, R2, R3 and, when there are lanes to select or sum, RS and
    RS2, and with more than 8 lanes RS3."""
    return (READOUT_OVH + (READOUT_SUM_OVH if lanes > 1 else 0)
            + (READOUT_SUM_DEEP_OVH if split_lane_sum(lanes) else 0))


def tstep_ovh(lanes: int) -> int:
    """CONV/HEAD overhead per time step: scanner fill and the last tap's drain."""
    return TSTEP_OVH + (SCAN_DEEP_OVH + ACC_DEEP_OVH if deep_acc_pipeline(lanes) else 0)


def bias_ovh(lanes: int) -> int:
    """HEAD bias drain per time step."""
    return BIAS_OVH + (ACC_DEEP_OVH if deep_acc_pipeline(lanes) else 0)


def sum_ovh(lanes: int) -> int:
    """SUM drain per instruction: the last row's write and, with the deep pipelines (more than one
    lane, the ECP5 builds), the register of the read word before the adder."""
    return SUM_OVH + (SUM_DEEP_OVH if deep_acc_pipeline(lanes) else 0)


def output_ovh(lanes: int) -> int:
    """OUTPUT overhead per instruction: the first ACC read and, with the deep pipelines (more than
    one lane), the register stage of the words read."""
    return OUTPUT_OVH + (OUTPUT_DEEP_OVH if deep_acc_pipeline(lanes) else 0)



# WLOAD (weights in external memory): its cycles are the memory model's, one definition in
# ``machine/external_memory.py`` (the port, the deterministic timing of the ULX3S's SDRAM through
# LiteDRAM, and the engine's constants, read off its RTL), plus the sequencer's FETCH; the ISS
# carries the refresh phase across the image (``beats_before``). Every target with external memory
# (the ULX3S, ``large``) is planned with the ULX3S's port and timing.
EXTERNAL_TIMING = em.ULX3S_TIMING
WLOAD_DONE = 1       # WLOAD: the sequencer's RUN cycle that sees the engine's done (a register, raised
                     # at the edge ``em.wload_cycles`` ends on), before the next FETCH


def external_port(prog) -> em.BurstPort:
    """The burst port a program's WLOADs read through: ``prog.port_bits`` wide, the engine's
    longest burst and address width (the ULX3S's)."""
    return em.BurstPort(port_bits=prog.port_bits, max_burst=em.ULX3S_PORT.max_burst,
                        addr_bits=em.ULX3S_PORT.addr_bits)


def wload_cycles(prog, n_words: int, beats_before: int) -> int:
    """Cycles of a WLOAD of ``n_words`` words of ``prog``, from its fetch to its done, in the
    deterministic memory model, after ``beats_before`` beats of this image."""
    return FETCH + WLOAD_DONE + em.wload_cycles(n_words, prog.lanes * prog.weight_bits, external_port(prog),
                                                EXTERNAL_TIMING, beats_before)

