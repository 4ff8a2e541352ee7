"""The host link's result keeper: the core's logits into the logit memory, with a running argmax."""

from __future__ import annotations

from amaranth.hdl import Module, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.memory import WritePort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikegate.hw.accel_interface import logit_stream

__all__ = ["ResultKeeper"]


class ResultKeeper(wiring.Component):
    """Keeps the ``num_classes`` logits of the inference started by ``start`` and their argmax.

    Logits are registered on arrival and processed a cycle later (flip-flops in front of the
    comparator, whatever the core's output logic looks like). The core's logits are always drained;
    they are recorded only while ``running``.

    Members: ``start`` (In, a pulse), ``logits`` (In, from the core's ``logits``), ``write`` (the
    logit memory's write port, flipped), ``running`` (Out: from ``start`` until the last logit),
    ``have_result`` (Out: the logit memory holds the result of the last ``start``) and
    ``best_idx`` (Out: its class, the first of the largest logits)."""

    def __init__(self, *, num_classes: int, logit_bits: int):
        self._num_classes, self._logit_bits = num_classes, logit_bits
        super().__init__({
            "start": In(1),
            "logits": In(logit_stream(logit_bits)),
            "write": In(WritePort.Signature(addr_width=ceil_log2(num_classes), shape=signed(logit_bits))),
            "running": Out(1),
            "have_result": Out(1),
            "best_idx": Out(range(num_classes)),
        })

    def elaborate(self, platform):
        m = Module()
        ncls, logits, logit_wr, running = self._num_classes, self.logits, self.write, self.running
        k_in = Signal(range(ncls))
        best = Signal(signed(self._logit_bits))
        got_valid = Signal()
        got = Signal.like(logits.payload)
        m.d.comb += logits.ready.eq(1)     # always drained; recorded only while running
        m.d.sync += [got_valid.eq(logits.valid & running), got.eq(logits.payload)]
        m.d.comb += [logit_wr.addr.eq(k_in), logit_wr.data.eq(got.value),
                     logit_wr.en.eq(got_valid & running)]
        with m.If(self.start):
            m.d.sync += [k_in.eq(0), running.eq(1), self.have_result.eq(0)]
        with m.Elif(got_valid & running):
            with m.If((k_in == 0) | (got.value > best)):   # strictly greater: first max wins
                m.d.sync += [best.eq(got.value), self.best_idx.eq(k_in)]
            with m.If(got.last | (k_in == ncls - 1)):
                m.d.sync += [running.eq(0), self.have_result.eq(1)]
            with m.Else():
                m.d.sync += k_in.eq(k_in + 1)
        return m
