"""The external interface every spikegate accelerator core presents.

One definition shared by the compiler (which builds cores), the board wrappers (which connect a core
to a host link) and the testbenches (which drive it):

* ``pixels``  (``In``):  stream of signed integer pixels of one input image, in ``C, H, W`` order,
  exactly ``num_pixels`` words per inference. The core starts computing when it has them all.
* ``logits``  (``Out``): stream of ``num_classes`` signed integer logits in class order;
  ``payload.last`` marks the final class.
* ``cycles``  (``Out``): clock cycles of the last inference, counted from the first accepted pixel
  to the last logit; stable while ``busy`` is low.
* ``busy``    (``Out``): high from the first accepted pixel until the last logit is accepted.

A core whose weights are loaded at run time (the iCE40 build with weights in SPRAM) has one more
member, ``weights`` (``In``, :func:`weight_port_signature`): a write port, one weight-memory word
per cycle while ``en`` is high, used by the host link only while the core is idle.

Bit widths come from the compiled model (the IR), never from here.
"""

from __future__ import annotations

from amaranth.hdl import signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

CYCLE_COUNTER_BITS = 32


def pixel_stream(pixel_bits: int) -> stream.Signature:
    return stream.Signature(signed(pixel_bits))


def logit_stream(logit_bits: int) -> stream.Signature:
    return stream.Signature(data.StructLayout({"value": signed(logit_bits), "last": unsigned(1)}))


def weight_port_signature(*, addr_bits: int, word_bits: int) -> wiring.Signature:
    """The writer's view of a core's runtime weight port: ``addr`` (word address), ``data`` (one
    weight-memory word, lane ``p`` in bits ``[p * weight_bits, (p + 1) * weight_bits)``), ``en``."""
    for name, v in (("addr_bits", addr_bits), ("word_bits", word_bits)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be a positive integer, not {v!r}")
    return wiring.Signature({"addr": Out(addr_bits), "data": Out(word_bits), "en": Out(1)})


def accelerator_signature(*, pixel_bits: int, logit_bits: int) -> wiring.Signature:
    if not isinstance(pixel_bits, int) or pixel_bits < 2:
        raise ValueError(f"pixel_bits must be an integer >= 2, not {pixel_bits!r}")
    if not isinstance(logit_bits, int) or logit_bits < 2:
        raise ValueError(f"logit_bits must be an integer >= 2, not {logit_bits!r}")
    return wiring.Signature({
        "pixels": In(pixel_stream(pixel_bits)),
        "logits": Out(logit_stream(logit_bits)),
        "cycles": Out(CYCLE_COUNTER_BITS),
        "busy": Out(1),
    })
