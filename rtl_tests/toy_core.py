"""A tiny but real accelerator core, for testing everything *around* a core.

``ToyCore`` has the accelerator signature of :mod:`spikegate.hw.accel_interface` and computes
``logits[k] = sum(pixels[i] for i with i % num_classes == k)`` (wrapping at ``logit_bits``, two's
complement). Optional ``stall`` makes it refuse pixels on a pseudo-random half of the cycles (to
exercise back-pressure upstream) and ``latency`` adds idle cycles between the last pixel and the
first logit (to make it observably busy). With ``weight_words > 0`` it has a runtime weight port
(``weights``, as a core whose weights live in SPRAM) and adds word ``k`` (unsigned,
``weight_bits`` wide) to logit ``k``. With ``burst_port`` (a
:class:`~spikegate.machine.external_memory.BurstPort`) it also has an idle burst port ``mem``, as a
core whose weights live in SDRAM (it never issues a command). :func:`toy_model` is the Python
reference.

It is also a stand-in for the compiler's output in the synth flow: :func:`write_toy_build` writes a
``BUILD_DIR`` whose ``report.json`` names :func:`load_core` (``"core": "module:callable"``), the same
contract as ``spikegate.compiler.build.load_core(build_dir)``.
"""

from __future__ import annotations

import json
import os

from amaranth.hdl import Array, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.hw.accel_interface import CYCLE_COUNTER_BITS, accelerator_signature, weight_port_signature

__all__ = ["ToyCore", "toy_model", "write_toy_build", "load_core"]


def _wrap(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def toy_model(pixels, *, num_classes: int, logit_bits: int, weights=None) -> list[int]:
    logits = [0] * num_classes
    for i, p in enumerate(pixels):
        logits[i % num_classes] += int(p)
    for k, w in enumerate((weights or [])[:num_classes]):
        logits[k] += int(w)
    return [_wrap(v, logit_bits) for v in logits]


class ToyCore(wiring.Component):
    def __init__(self, *, num_pixels: int, num_classes: int, pixel_bits: int, logit_bits: int,
                 stall: bool = False, latency: int = 0, weight_words: int = 0, weight_bits: int = 8,
                 burst_port=None):
        for name, v, lo in (("num_pixels", num_pixels, 1), ("num_classes", num_classes, 1),
                            ("latency", latency, 0)):
            if not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, not {v!r}")
        self._num_pixels, self._num_classes = num_pixels, num_classes
        self._pixel_bits, self._logit_bits = pixel_bits, logit_bits
        self._stall, self._latency = bool(stall), latency
        self._weight_words, self._weight_bits = weight_words, weight_bits
        members = dict(accelerator_signature(pixel_bits=pixel_bits, logit_bits=logit_bits).members)
        if weight_words:
            members["weights"] = In(weight_port_signature(
                addr_bits=max(1, (weight_words - 1).bit_length()), word_bits=weight_bits))
        if burst_port is not None:
            from spikegate.hw.wload import burst_port_signature
            members["mem"] = Out(burst_port_signature(burst_port))
        super().__init__(members)

    num_pixels = property(lambda self: self._num_pixels)
    num_classes = property(lambda self: self._num_classes)
    pixel_bits = property(lambda self: self._pixel_bits)
    logit_bits = property(lambda self: self._logit_bits)

    def elaborate(self, platform):
        m = Module()
        npix, ncls = self._num_pixels, self._num_classes
        acc = Array(Signal(signed(self._logit_bits), name=f"acc{k}") for k in range(ncls))
        cls = Signal(range(ncls))
        count = Signal(range(npix))
        wait = Signal(range(self._latency + 1))
        cycles = Signal(CYCLE_COUNTER_BITS)
        busy = Signal()
        m.d.comb += [self.cycles.eq(cycles), self.busy.eq(busy)]

        lfsr = Signal(5, init=1)     # x^5 + x^3 + 1
        m.d.sync += lfsr.eq((lfsr << 1) | (lfsr[4] ^ lfsr[2]))
        accept_now = lfsr[0] if self._stall else 1

        with m.If(busy):
            m.d.sync += cycles.eq(cycles + 1)

        offset = Array(Signal(self._weight_bits, name=f"w{k}") for k in range(ncls))   # weights 0..K-1
        if self._weight_words:
            with m.If(self.weights.en & (self.weights.addr < ncls)):
                m.d.sync += offset[self.weights.addr].eq(self.weights.data)

        with m.FSM():
            with m.State("ACCUM"):
                m.d.comb += self.pixels.ready.eq(accept_now)
                with m.If(self.pixels.valid & self.pixels.ready):
                    m.d.sync += [acc[cls].eq(acc[cls] + self.pixels.payload),
                                 cls.eq(Mux(cls == ncls - 1, 0, cls + 1)),
                                 count.eq(count + 1)]
                    with m.If(count == 0):
                        m.d.sync += [busy.eq(1), cycles.eq(1)]
                    with m.If(count == npix - 1):
                        m.d.sync += [count.eq(0), cls.eq(0), wait.eq(self._latency)]
                        m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(wait == 0):
                    m.next = "EMIT"
                with m.Else():
                    m.d.sync += wait.eq(wait - 1)
            with m.State("EMIT"):
                m.d.comb += [self.logits.valid.eq(1),
                             self.logits.payload.value.eq(acc[cls] + (offset[cls] if self._weight_words else 0)),
                             self.logits.payload.last.eq(cls == ncls - 1)]
                with m.If(self.logits.ready):
                    m.d.sync += acc[cls].eq(0)
                    with m.If(cls == ncls - 1):
                        m.d.sync += [cls.eq(0), busy.eq(0)]
                        m.next = "ACCUM"
                    with m.Else():
                        m.d.sync += cls.eq(cls + 1)
        return m


def write_toy_build(build_dir: str, *, target: str = "icebreaker", num_pixels: int = 16,
                    num_classes: int = 4, pixel_bits: int = 8, logit_bits: int = 16,
                    input_scale: float = 127.0, extra: dict | None = None) -> str:
    """Write a BUILD_DIR (just ``report.json``) whose core is a :class:`ToyCore`."""
    os.makedirs(build_dir, exist_ok=True)
    report = {"target": target, "num_pixels": num_pixels, "num_classes": num_classes,
              "pixel_bits": pixel_bits, "logit_bits": logit_bits, "input_scale": input_scale,
              "core": f"{__name__}:load_core"}
    report.update(extra or {})
    with open(os.path.join(build_dir, "report.json"), "w") as f:
        json.dump(report, f, indent=1)
    return build_dir


def load_core(build_dir: str) -> ToyCore:
    """``callable(build_dir) -> core``, the contract ``spikegate synth`` expects of a core factory."""
    with open(os.path.join(build_dir, "report.json")) as f:
        r = json.load(f)
    return ToyCore(num_pixels=r["num_pixels"], num_classes=r["num_classes"],
                   pixel_bits=r["pixel_bits"], logit_bits=r["logit_bits"])
