"""The WLOAD engine (issue 24): copies ``n`` WMEM words from external memory into WMEM at ``wbase``.

The words lie packed in external memory from beat ``src`` on (``machine/external_memory.py``: word
``i`` in bits ``[i * word_bits, (i + 1) * word_bits)`` of a little-endian stream of ``port_bits``
beats). The engine asks for them in bursts (``burst_plan``: ``max_burst`` beats each, in address
order), cuts the beats into words in a gearbox (a shift register with a fill count) and writes each
word to WMEM as soon as it is complete, one per cycle.

Why not the ``Engine`` base of ``hw/sfa_common.py``: it takes the whole instruction word of a
compiled program (``instr_layout(cfg)``) and its products, so the engine would depend on which
fields carry ``n`` and ``src``, which the compiler side has not settled, and could not be built or
tested without a program. This engine takes exactly what it needs (``src``, ``n``, ``wbase``, held
or not: they are registered at ``start``); the accelerator maps its instruction fields onto them
when it is wired in. The handshake (``start`` pulse in, ``done`` pulse out) is the engines' own.

Timing (the constants of ``machine/external_memory.py``, which ``wload_cycles`` adds up and
``rtl_tests/test_wload.py`` checks cycle for cycle):

* ``start``'s edge registers the fields; the first command is up in the next cycle
  (``WLOAD_FIRST_CMD``). ``n = 0`` raises ``done`` at once and asks for nothing.
* A command stays up until taken; the burst's beats are then taken as they come. The edge that
  takes a burst's last beat puts up the next command (``WLOAD_NEXT_CMD``).
* A word is written (registered, like the host link's weight loader) at the edge after the beat
  holding its last bit (``WLOAD_WRITE``), the next words one per edge after it. ``done`` rises
  with the last word's write: WMEM holds every word in the cycle ``done`` is high.
* ``rdata.ready`` is high when no complete word would be left in the gearbox after this cycle's
  write, so the gearbox needs ``word_bits + port_bits - 1`` bits. A word at least a beat wide never
  leaves one, so the engine takes every beat as it comes; narrower words (two 8-bit words in a
  16-bit beat) hold the port back to WMEM's one write per cycle.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.hw.accel_interface import weight_port_signature
from spikegate.machine.external_memory import BurstPort

__all__ = ["WLoadEngine", "burst_cmd_layout", "burst_port_signature"]


def burst_cmd_layout(port: BurstPort) -> data.StructLayout:
    """A burst command: beat address ``addr`` and ``len`` (1 .. ``max_burst`` beats)."""
    return data.StructLayout({"addr": port.addr_bits, "len": port.len_bits})


def burst_port_signature(port: BurstPort) -> wiring.Signature:
    """The reader's view of the burst port: ``cmd`` out, ``rdata`` (one beat per transfer) in."""
    return wiring.Signature({
        "cmd": Out(stream.Signature(burst_cmd_layout(port))),
        "rdata": In(stream.Signature(port.port_bits)),
    })


class WLoadEngine(wiring.Component):
    """Members: ``start`` (In), ``done`` (Out), the fields ``src`` (beat address), ``n`` (words,
    ``n_bits``), ``wbase`` (first WMEM word), ``mem`` (Out, :func:`burst_port_signature`) and
    ``wmem`` (Out, the WMEM write port: :func:`weight_port_signature`, registered)."""

    def __init__(self, *, word_bits: int, wmem_abits: int, n_bits: int, port: BurstPort):
        if not isinstance(port, BurstPort):
            raise TypeError(f"port must be a BurstPort, not {port!r}")
        for name, v in (("word_bits", word_bits), ("wmem_abits", wmem_abits), ("n_bits", n_bits)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self.word_bits, self.wmem_abits, self.n_bits, self.port = word_bits, wmem_abits, n_bits, port
        super().__init__({
            "start": In(1),
            "done": Out(1),
            "src": In(port.addr_bits),
            "n": In(n_bits),
            "wbase": In(wmem_abits),
            "mem": Out(burst_port_signature(port)),
            "wmem": Out(weight_port_signature(addr_bits=wmem_abits, word_bits=word_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        wb, pb, mb = self.word_bits, self.port.port_bits, self.port.max_burst
        cmd, rdata, wmem = self.mem.cmd, self.mem.rdata, self.wmem
        max_beats = -(-((1 << self.n_bits) - 1) * wb // pb)

        addr = Signal(self.port.addr_bits)              # the next burst's first beat
        beats_left = Signal(range(max_beats + 1))       # beats not yet asked for
        recv_left = Signal(range(mb + 1))               # beats of the running burst not yet taken
        words_left = Signal(self.n_bits)                # words not yet written
        waddr = Signal(self.wmem_abits)
        gear = Signal(wb + pb - 1)                      # bits [0, fill) received, not yet written
        fill = Signal(range(wb + pb))

        # the gearbox: a complete word in front is written this cycle; a beat goes in behind what
        # is left, only if no complete word is left (so it always fits)
        emit = (fill >= wb) & (words_left != 0)
        fill_after = Signal.like(fill)
        gear_after = Signal.like(gear)
        m.d.comb += [fill_after.eq(fill - Mux(emit, wb, 0)),
                     gear_after.eq(Mux(emit, gear >> wb, gear))]
        take = rdata.valid & rdata.ready
        m.d.sync += [
            fill.eq(fill_after + Mux(take, pb, 0)),
            gear.eq(Mux(take, gear_after | (rdata.payload << fill_after), gear_after)),
            wmem.en.eq(emit), wmem.addr.eq(waddr), wmem.data.eq(gear[:wb]),
            self.done.eq(emit & (words_left == 1)),
        ]
        with m.If(emit):
            m.d.sync += [waddr.eq(waddr + 1), words_left.eq(words_left - 1)]

        burst = Mux(beats_left > mb, mb, beats_left)
        m.d.comb += [cmd.payload.addr.eq(addr), cmd.payload.len.eq(burst)]
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [addr.eq(self.src), words_left.eq(self.n), waddr.eq(self.wbase),
                                 beats_left.eq((self.n * wb + (pb - 1)) >> (pb.bit_length() - 1)),
                                 fill.eq(0), gear.eq(0)]
                    with m.If(self.n == 0):
                        m.d.sync += self.done.eq(1)
                    with m.Else():
                        m.next = "CMD"
            with m.State("CMD"):
                m.d.comb += cmd.valid.eq(1)
                with m.If(cmd.ready):
                    m.d.sync += [addr.eq(addr + burst), beats_left.eq(beats_left - burst),
                                 recv_left.eq(burst)]
                    m.next = "RECV"
            with m.State("RECV"):
                m.d.comb += rdata.ready.eq(fill_after < wb)
                with m.If(take):
                    m.d.sync += recv_left.eq(recv_left - 1)
                    with m.If(recv_left == 1):
                        with m.If(beats_left == 0):
                            m.next = "IDLE"         # the gearbox writes the last words on its own
                        with m.Else():
                            m.next = "CMD"
        return m
