"""Per-phase cycle costs of ``hw/accelerator.py``; the ISS multiplies them by the loop counts.

The structure (what is counted) follows the loop nests in docs/accelerator.md; these constants are
the fixed pipeline overheads of each phase, measured on the RTL and kept here, once.
"""

FETCH = 2            # per instruction: fetch + decode
INPUT_OVH = 1        # INPUT: after the last pixel
SCAN = 1             # CONV: per scanned input element (zero or not)
EVENT_OVH = 0        # CONV: per event, before its first tap group
TSTEP_OVH = 2        # CONV: per time step (phase switches, pipeline drain)
READOUT = 1          # CONV: per output element
READOUT_OVH = 2      # CONV: readout pipeline drain, per time step
LIF = 1              # LIF: per element per time step
LIF_OVH = 2
ATTN_SCAN = 1        # ATTN: per K/Q bit scanned
ATTN_ROW = 1         # ATTN: per row element added (per set K or Q bit, d of them)
ATTN_WRITE = 1       # ATTN: per Y element written
ATTN_HEAD_OVH = 4    # ATTN: per (time step, head): KV clear is d*d more (counted separately)
SUM = 1              # SUM: per element read
SUM_ROW_OVH = 1      # SUM: per (t, c) write
HEAD_SCAN = 1
HEAD_BIAS = 1        # per lane group per time step
OUTPUT = 1           # per logit
