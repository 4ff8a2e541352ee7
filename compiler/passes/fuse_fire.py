"""Pass: a LIF that reads what the CONV just before it wrote fires in that CONV's readout.

Issue 25 measured where the cycles of an image go: on the default model at 8 lanes the LIF
instructions were 17 % of them (one element per cycle, ``T * n + 2`` plus the fetch), and nothing
else runs meanwhile. The readout already holds every output word of the CONV, channel by channel,
when it writes it to ACT; with T = 1 the LIF of that word is one compare (the integer LIF's first
step starts from a zero membrane: ``h2 = x``, spike when ``h2 >= 2 * threshold``), so the readout
can write the spike beside the word in the same cycle and the LIF instruction goes away (SATO's
split of accumulate from fire, with the fire folded into the readout). The ACT word is still
written: residual streams are read again by the next block's add.

Exact by construction (``machine/program.py``, CONV's ``fire``; the ISS and RTL implement it). Only
T = 1: with T > 1 the LIF carries a membrane across steps, which the readout does not hold. A LIF
is fused when it is the very next operation and reads the whole tensor the CONV writes, so its
spikes tensor is allocated at the CONV (the memory plan sees ``fire_dst`` as a second output),
never over the CONV's own live inputs. A current that only its LIF read is then not written at all
(``FIRE_ONLY``): on the 15M preset at 32x32 that halves the ACT words the memory plan needs
(44,032 -> 27,648), on the default model by a third (6,144 -> 4,096).
"""

from __future__ import annotations

import dataclasses

from spikegate.machine.program import OP_CONV, OP_LIF, OUT_WRITE

from .schedule import Schedule


def fuse_fire(s: Schedule, *, drop_dead: bool = True) -> Schedule:
    """``s`` with every fusable LIF folded into the CONV before it (see the module docstring).
    ``drop_dead``: a fused CONV whose words no other operation reads (a current only its LIF used,
    not a residual stream) writes no ACT at all (``FIRE_ONLY``): its tensor gets no ACT space."""
    if s.T != 1:
        return s
    out = []
    for m in s.mops:
        prev = out[-1] if out else None
        if (m.opcode == OP_LIF and prev is not None and prev.opcode == OP_CONV and prev.fire_dst is None
                and m.srcs == [prev.dst] and tuple(m.out_shape) == tuple(prev.out_shape)
                and s.tensors[prev.dst]["steps"] == 1):
            out[-1] = dataclasses.replace(prev, fire_dst=m.dst, attrs={**prev.attrs, "fires": m.name},
                                          params={**prev.params, "threshold": m.params["threshold"]})
            continue
        out.append(m)
    if drop_dead:
        # (a CONV that adds into its dst, OUT_ACCUM, reads it too: a residual stream)
        read = {t for m in out for t in m.srcs} | {m.dst for m in out
                                                    if m.opcode == OP_CONV and m.attrs["out_mode"] != OUT_WRITE}
        out = [dataclasses.replace(m, dst=None)
               if m.fire_dst is not None and m.attrs["out_mode"] == OUT_WRITE and m.dst not in read else m
               for m in out]
    return dataclasses.replace(s, mops=out)
