"""The host link's response builder: a response request -> header and payload bytes for the enframer."""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib import enum as hdl_enum
from amaranth.lib.memory import ReadPort
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from spikegate.hw.accel_interface import CYCLE_COUNTER_BITS
from spikegate.hw.uart import byte_stream
from spikegate.machine.host_protocol import (CLASS_BYTES, CYCLES_BYTES, ERROR_RESPONSE, INFO_LENGTH,
                                             INFO_RUNTIME_WEIGHTS, INFO_SDRAM, LOGIT_BYTES, RESPONSE_FLAG,
                                             SDRAM_ACK_BYTES, SDRAM_CRC_BYTES, WEIGHT_ACK_BYTES, result_length)

from .host_link_framing import HEADER_LAYOUT

__all__ = ["ResponseKind", "REQUEST_LAYOUT", "ResponseBuilder"]


class ResponseKind(hdl_enum.Enum, shape=3):
    ACK = 0
    INFO = 1
    RESULT = 2
    ERROR = 3
    WACK = 4       # LOAD_WEIGHTS acknowledged: payload = words loaded so far (u32)
    SACK = 5       # LOAD_SDRAM acknowledged: payload = the word after its last (u32)
    CRC = 6        # CHECK_SDRAM done: payload = the CRC-32 read back (u32)


# a response request: its kind, the command answered, and for an ERROR the error code
REQUEST_LAYOUT = data.StructLayout({"kind": ResponseKind, "cmd": unsigned(8), "err": unsigned(8)})


class ResponseBuilder(wiring.Component):
    """Sends the response a request asks for (one at a time; the request is taken, ``ready``, in
    the cycle after its last byte is handed over).

    ``info`` is INFO's payload (bytes; with ``weight_words`` its weight flags byte is built from
    ``weights_loaded``). Members: ``request`` (In, stream of :data:`REQUEST_LAYOUT`), ``hdr`` and
    ``payload`` (Out, to the enframer), ``best_idx`` (In, READ's class), ``cycles`` (In, READ's
    cycle count), ``logits`` (the logit memory's read port, flipped); with ``weight_words`` also
    ``weights_next`` (In, WACK's words loaded) and ``weights_loaded`` (In); with ``sdram_words``
    ``sdram_next`` (In, SACK's word), ``sdram_crc`` (In, CRC's), ``sdram_verified`` (In, INFO's
    flags) and ``sdram_checking`` (In: a check runs; a CRC response waits for its end)."""

    def __init__(self, *, info: bytes, num_classes: int, logit_bits: int, weight_words: int = 0,
                 sdram_words: int = 0):
        self._info, self._num_classes, self._weight_words = bytes(info), num_classes, weight_words
        self._sdram_words = sdram_words
        members = {
            "request": In(stream.Signature(REQUEST_LAYOUT)),
            "hdr": Out(stream.Signature(HEADER_LAYOUT)),
            "payload": Out(byte_stream()),
            "best_idx": In(range(num_classes)),
            "cycles": In(CYCLE_COUNTER_BITS),
            "logits": In(ReadPort.Signature(addr_width=ceil_log2(num_classes), shape=signed(logit_bits))),
        }
        if weight_words:
            members["weights_next"] = In(range(weight_words + 1))
            members["weights_loaded"] = In(1)
        if sdram_words:
            members.update(sdram_next=In(range(sdram_words + 1)), sdram_crc=In(32), sdram_verified=In(1),
                           sdram_checking=In(1))
        super().__init__(members)

    def _info_bytes(self) -> list:
        info_bytes = [Const(b, 8) for b in self._info]
        if self._weight_words:     # the weight flags: runtime weights, and whether they are loaded
            info_bytes[INFO_LENGTH] = Cat(Const(INFO_RUNTIME_WEIGHTS, 1), self.weights_loaded, Const(0, 6))
        if self._sdram_words:      # runtime | SDRAM, and loaded + verified once the check matched
            v = self.sdram_verified
            info_bytes[INFO_LENGTH] = Cat(Const(INFO_RUNTIME_WEIGHTS, 1), v, Const(INFO_SDRAM >> 2, 1), v,
                                          Const(0, 4))
        return info_bytes

    def _header(self, m, info_len: int):
        """The HEADER state's header: the response's command and payload length."""
        req, hdr = self.request.payload, self.hdr
        m.d.comb += [
            hdr.valid.eq(1),
            hdr.payload.cmd.eq(Mux(req.kind == ResponseKind.ERROR, ERROR_RESPONSE,
                                   req.cmd | RESPONSE_FLAG)),
        ]
        with m.Switch(req.kind):
            with m.Case(ResponseKind.ACK):
                m.d.comb += hdr.payload.length.eq(0)
            with m.Case(ResponseKind.INFO):
                m.d.comb += hdr.payload.length.eq(info_len)
            with m.Case(ResponseKind.WACK):
                m.d.comb += hdr.payload.length.eq(WEIGHT_ACK_BYTES)
            if self._sdram_words:      # (only decoded where they can be requested: no logic elsewhere)
                with m.Case(ResponseKind.SACK):
                    m.d.comb += hdr.payload.length.eq(SDRAM_ACK_BYTES)
                with m.Case(ResponseKind.CRC):
                    m.d.comb += hdr.payload.length.eq(SDRAM_CRC_BYTES)
            with m.Case(ResponseKind.ERROR):
                m.d.comb += hdr.payload.length.eq(2)
            with m.Case(ResponseKind.RESULT):
                m.d.comb += hdr.payload.length.eq(result_length(self._num_classes))

    def elaborate(self, platform):
        m = Module()
        ncls, req, pay = self._num_classes, self.request.payload, self.payload
        info_bytes = self._info_bytes()
        info_len = len(info_bytes)
        info = Array(info_bytes)
        idx = Signal(range(max(info_len, 4)))
        k_out = Signal(range(ncls))
        cycles = Signal(CYCLE_COUNTER_BITS)
        class16 = Signal(8 * CLASS_BYTES)
        m.d.comb += class16.eq(self.best_idx)
        logit32 = Signal(signed(32))
        m.d.comb += [self.logits.addr.eq(k_out), logit32.eq(self.logits.data)]

        with m.FSM():
            with m.State("IDLE"):
                go = self.request.valid
                if self._sdram_words:      # a CRC answer waits for its check to end
                    go = go & ~((req.kind == ResponseKind.CRC) & self.sdram_checking)
                with m.If(go):
                    m.next = "HEADER"
            with m.State("HEADER"):
                self._header(m, info_len)
                with m.If(self.hdr.ready):
                    m.d.sync += [idx.eq(0), k_out.eq(0), cycles.eq(self.cycles)]
                    if self._weight_words:      # the WACK payload goes out through the CYCLES state
                        with m.If(req.kind == ResponseKind.WACK):
                            m.d.sync += cycles.eq(self.weights_next)
                    if self._sdram_words:       # and so do SACK's and CRC's
                        with m.If(req.kind == ResponseKind.SACK):
                            m.d.sync += cycles.eq(self.sdram_next)
                        with m.If(req.kind == ResponseKind.CRC):
                            m.d.sync += cycles.eq(self.sdram_crc)
                    with m.Switch(req.kind):
                        with m.Case(ResponseKind.ACK):
                            m.next = "DONE"
                        with m.Case(ResponseKind.INFO):
                            m.next = "INFO"
                        with m.Case(ResponseKind.ERROR):
                            m.next = "ERROR"
                        with m.Case(ResponseKind.RESULT):
                            m.next = "CLASS"
                        with m.Case(*((ResponseKind.WACK, ResponseKind.SACK, ResponseKind.CRC) if self._sdram_words
                                      else (ResponseKind.WACK,))):
                            m.next = "CYCLES"
            with m.State("INFO"):
                m.d.comb += [pay.valid.eq(1), pay.payload.eq(info[idx])]
                with m.If(pay.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == info_len - 1):
                        m.next = "DONE"
            with m.State("ERROR"):
                m.d.comb += [pay.valid.eq(1), pay.payload.eq(Mux(idx == 0, req.err, req.cmd))]
                with m.If(pay.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == 1):
                        m.next = "DONE"
            with m.State("CLASS"):
                m.d.comb += [pay.valid.eq(1), pay.payload.eq(class16.word_select(idx[0], 8))]
                with m.If(pay.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == CLASS_BYTES - 1):
                        m.d.sync += idx.eq(0)
                        m.next = "FETCH"
            with m.State("FETCH"):     # logits.addr = k_out was presented this cycle
                m.next = "LOGIT"
            with m.State("LOGIT"):
                m.d.comb += [pay.valid.eq(1),
                             pay.payload.eq(logit32.as_unsigned().word_select(idx[:2], 8))]
                with m.If(pay.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == LOGIT_BYTES - 1):
                        m.d.sync += [idx.eq(0), k_out.eq(k_out + 1)]
                        m.next = "FETCH"
                        with m.If(k_out == ncls - 1):
                            m.d.sync += k_out.eq(0)
                            m.next = "CYCLES"
            with m.State("CYCLES"):
                m.d.comb += [pay.valid.eq(1), pay.payload.eq(cycles.word_select(idx[:2], 8))]
                with m.If(pay.ready):
                    m.d.sync += idx.eq(idx + 1)
                    with m.If(idx == CYCLES_BYTES - 1):
                        m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.request.ready.eq(1)     # the request is done with
                m.next = "IDLE"
        return m
