"""A cocotb model of external memory behind the burst port (``hw/wload.py: burst_port_signature``),
serving beats from an image (a list of ``port_bits`` beats, index = beat address).

Two modes:

* deterministic (``timing`` a :class:`~spikegate.machine.external_memory.MemoryTiming`): exactly the
  model of ``machine/external_memory.py`` (its docstring): a command taken at edge ``c`` offers its
  first beat at ``c + latency``, each next beat one edge after the previous one was taken, a
  refresh stall of ``refresh_cycles`` before every beat whose index since :meth:`reset_count` is a
  positive multiple of ``refresh_every``, the next command taken from the edge after the last beat.
  ``wload_cycles`` must then match the engine to the cycle.
* random (``timing=None``): a seeded random latency per burst (1 .. ``max_latency``), random idle
  cycles between beats (probability ``gap``, 1 .. 3 cycles each) and random cycles with
  ``cmd.ready`` low (probability ``cmd_stall``): for correctness under any timing the port allows.

Either way it checks the protocol (a command's ``len`` within 1 .. ``max_burst``, its beats inside
the image, a command's payload held while it waits) and records every command taken ``(edge, addr,
len)`` and every beat taken ``(edge, addr)``. Signals are sampled at the rising edge (the values
the design saw) and driven for the next cycle, as the other drivers in ``tb_engines.py`` do.
"""

from __future__ import annotations

import cocotb
from cocotb.triggers import RisingEdge

from spikegate.machine.external_memory import BurstPort, MemoryTiming
from spikegate.rtl_tests.tb_streams import Codec

__all__ = ["BurstMemory"]


class BurstMemory:
    def __init__(self, tb, prefix: str, image: list[int], port: BurstPort, cmd_layout, *,
                 timing: MemoryTiming | None = None, max_latency: int = 20, gap: float = 0.3,
                 cmd_stall: float = 0.3):
        self.tb, self.image, self.port = tb, list(image), port
        self.max_latency, self.gap, self.cmd_stall = max_latency, gap, cmd_stall
        self.cmd_codec = Codec(cmd_layout)
        dut = tb.dut
        self.cmd_valid, self.cmd_ready, self.cmd_payload = (getattr(dut, f"{prefix}__cmd__{n}")
                                                            for n in ("valid", "ready", "payload"))
        self.r_valid, self.r_ready, self.r_payload = (getattr(dut, f"{prefix}__rdata__{n}")
                                                      for n in ("valid", "ready", "payload"))
        self.set_timing(timing)
        self.errors: list[str] = []
        self.commands: list[tuple[int, int, int]] = []
        self.beats: list[tuple[int, int]] = []
        self.reset_count()
        self.cmd_ready.value = 0
        self.r_valid.value = 0
        cocotb.start_soon(self._run())

    def set_timing(self, timing: MemoryTiming | None):
        """Switch mode (between bursts): deterministic with ``timing``, random with ``None``."""
        self.timing = timing
        mode = (f"deterministic {timing}" if timing else f"random (latency 1..{self.max_latency}, "
                f"gap {self.gap}, cmd stall {self.cmd_stall})")
        self.tb.dut._log.info("burst memory: %s, seed %d", mode, self.tb.seed)

    def reset_count(self):
        """Beats since here count for the refresh (the start of an image)."""
        self.count = 0

    def _delay(self, first: bool) -> int:
        """Edges from the command (first beat) or the previous beat to the next beat's offer."""
        t = self.timing
        if t is None:
            if first:
                return self.tb.rng.randint(1, self.max_latency)
            return 1 + (self.tb.rng.randint(1, 3) if self.tb.rng.random() < self.gap else 0)
        refresh = self.count > 0 and self.count % t.refresh_every == 0
        return (t.latency if first else 1) + (t.refresh_cycles if refresh else 0)

    async def _run(self):
        burst = None            # [next addr, beats left]
        offer_at = None         # edge at which the next beat is offered (valid before it)
        waiting_cmd = None      # the payload of a command seen waiting (must be held)
        cmd_ready = r_valid = 0
        while True:
            await RisingEdge(self.tb.clk)
            edge = self.tb.cycle()
            if cmd_ready and int(self.cmd_valid.value):
                c = self.cmd_codec.unpack(int(self.cmd_payload.value))
                self._check_cmd(edge, c)
                self.commands.append((edge, c["addr"], c["len"]))
                burst = [c["addr"], c["len"]]
                waiting_cmd = None
                offer_at = edge + self._delay(True)
            elif int(self.cmd_valid.value):
                p = int(self.cmd_payload.value)
                if waiting_cmd is not None and waiting_cmd != p:
                    self.errors.append(f"edge {edge}: command payload changed while waiting")
                waiting_cmd = p
            if r_valid and int(self.r_ready.value):
                self.beats.append((edge, burst[0]))
                self.count += 1
                burst[0] += 1
                burst[1] -= 1
                if burst[1] == 0:
                    burst = offer_at = None
                else:
                    offer_at = edge + self._delay(False)
            # drive for the cycle before the next edge
            r_valid = int(burst is not None and offer_at <= edge + 1)
            if r_valid:
                a = burst[0]        # past the image (reported by _check_cmd): zeros
                self.r_payload.value = self.image[a] if a < len(self.image) else 0
            self.r_valid.value = r_valid
            cmd_ready = int(burst is None and not (self.timing is None and self.tb.rng.random() < self.cmd_stall))
            self.cmd_ready.value = cmd_ready

    def _check_cmd(self, edge, c):
        if not 1 <= c["len"] <= self.port.max_burst:
            self.errors.append(f"edge {edge}: burst len {c['len']} outside 1..{self.port.max_burst}")
        if c["addr"] + c["len"] > len(self.image):
            self.errors.append(f"edge {edge}: burst {c['addr']}+{c['len']} past the image's "
                               f"{len(self.image)} beats")
