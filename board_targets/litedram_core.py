"""The ULX3S's SDRAM controller, generated from LiteDRAM (pinned on PyPI) into one Verilog module.

Why generated here and not with ``litedram_gen``: the standalone generator (``litedram.gen``)
without a CPU leaves the SDRAM's power-up sequence to software over a Wishbone control bus, and
with a CPU it needs a RISC-V toolchain to build a BIOS. The accelerator has neither, so this module
builds the same parts LiteDRAM's generator and LiteX's ``add_sdram`` build (the ``GENSDRPHY``
single-data-rate PHY, ``LiteDRAMCore``: DFI injector, controller with its bank machines and
refresher, crossbar) plus one native user port, and replays LiteDRAM's own SDR power-up sequence
(``litedram.init.get_sdram_phy_init_sequence``) in hardware through the DFI injector's external
port (``ext_dfi``, the hook LiteDRAM provides for this). No controller logic of our own: the
sequencer only sends the table LiteDRAM's BIOS would send, then hands the DFI to the controller.

The I/O registers are the ECP5's (``OFS1P3BX``/``IFS1P3BX`` in the I/O cells, ``BB`` for the data
tristate), lowered by LiteX's ECP5 overrides as LiteX's own ULX3S target does (its Trellis variant
instantiates ``TRELLIS_IO`` with the pin as an *input* port, which a simulator cannot drive back);
Yosys's ``share/ecp5/cells_sim.v`` simulates them.

Module ports (one clock domain, ``clk``; ``rst`` is synchronised inside):

* ``init_done``: the power-up sequence has finished; the native port accepts commands after it.
* the native port: ``cmd_valid/ready/we/addr`` (word address), ``wdata_valid/ready/we/data``
  (``we`` is the byte-enable mask), ``rdata_valid/ready/data``. Data width 16 (one SDRAM word
  per command at this 1:1 rate).
* the SDRAM pins ``sdram_a, sdram_ba, sdram_ras_n, sdram_cas_n, sdram_we_n, sdram_cs_n,
  sdram_cke, sdram_dm, sdram_dq`` (inout). The SDRAM clock pin is not driven here: the board top
  drives it from a PLL output shifted by 90 degrees (see docs/sdram.md), as LiteX's ULX3S target
  does, so that the chip samples commands in the middle of the PHY's output cycle.

Cached by its inputs: the Verilog lands in ``out_dir/<name>.v`` with a JSON stamp of the inputs
and package versions beside it, and is rebuilt only when they change.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path

__all__ = ["SdramChip", "ULX3S_SDRAM", "CORE_PINS", "PORT_SIGNALS", "generate_ulx3s_sdram_core",
           "core_module_name", "controller_timing", "init_sequence_cycles"]


@dataclass(frozen=True)
class SdramChip:
    """Board facts about an SDR SDRAM chip: the one table for the ULX3S's (the Board record in
    boards.py has no memory fields; everything SDRAM-specific lives here)."""
    part: str                 # the chip on the board
    litedram_module: str      # its class in litedram.modules (geometry + datasheet timings)
    data_bits: int
    banks: int
    rows: int
    cols: int

    @property
    def size_bytes(self) -> int:
        return self.banks * self.rows * self.cols * self.data_bits // 8

    @property
    def word_address_bits(self) -> int:
        return (self.banks * self.rows * self.cols).bit_length() - 1


# The ULX3S v3.0.x carries a 32 MB (256 Mbit) 16-bit SDR SDRAM: Micron MT48LC16M16A2 (4 banks x
# 8192 rows x 512 columns x 16 bits), litex-boards' default `--sdram-module MT48LC16M16`. Newer
# boards that carry the 64 MB Alliance AS4C32M16SB are the AS4C32M16 module (1024 columns); the
# issue asks for the 32 MB part, so this is it.
ULX3S_SDRAM = SdramChip(part="MT48LC16M16A2", litedram_module="MT48LC16M16", data_bits=16,
                        banks=4, rows=8192, cols=512)

# The generated core's SDRAM pins: name -> (width, direction, the amaranth-boards "sdram" resource
# subsignal it goes to). The core drives the raw pins (active-low pins active-low). The resource's
# `clk` is not here: the board top drives it (module docstring).
CORE_PINS = {
    "a": (ULX3S_SDRAM.rows.bit_length() - 1, "o", "a"),
    "ba": (ULX3S_SDRAM.banks.bit_length() - 1, "o", "ba"),
    "ras_n": (1, "o", "ras"), "cas_n": (1, "o", "cas"), "we_n": (1, "o", "we"),
    "cs_n": (1, "o", "cs"), "cke": (1, "o", "clk_en"),
    "dm": (ULX3S_SDRAM.data_bits // 8, "o", "dqm"), "dq": (ULX3S_SDRAM.data_bits, "io", "dq"),
}

# Native-port signals of the generated module: name -> (width or "aw"/"dw"/"mw", direction).
PORT_SIGNALS = {
    "cmd_valid": (1, "i"), "cmd_ready": (1, "o"), "cmd_we": (1, "i"), "cmd_addr": ("aw", "i"),
    "wdata_valid": (1, "i"), "wdata_ready": (1, "o"), "wdata_we": ("mw", "i"),
    "wdata_data": ("dw", "i"),
    "rdata_valid": (1, "o"), "rdata_ready": (1, "i"), "rdata_data": ("dw", "o"),
}


def core_module_name(sys_clk_hz: int) -> str:
    return f"litedram_ulx3s_{int(sys_clk_hz) // 1000}k"


def _module(sys_clk_hz: int):
    from litedram import modules
    return getattr(modules, ULX3S_SDRAM.litedram_module)(float(sys_clk_hz), "1:1")


def controller_timing(sys_clk_hz: int) -> dict[str, int]:
    """The controller's timing in clock cycles (what LiteDRAM derives from the module's datasheet
    values at this clock), plus the PHY's CAS latency: for docs/sdram.md and the test's report."""
    from litedram.common import get_default_cl
    t = _module(sys_clk_hz).timing_settings
    out = {k: getattr(t, k) for k in ("tRP", "tRCD", "tWR", "tWTR", "tREFI", "tRFC", "tRAS",
                                      "tCCD", "tRRD") if getattr(t, k, None) is not None}
    out["CL"] = get_default_cl(memtype="SDR", tck=1 / sys_clk_hz)
    return out


def init_sequence_cycles(sys_clk_hz: int) -> int:
    """Clock cycles the power-up sequence takes (the sum of LiteDRAM's per-step delays + steps)."""
    timing = _module(sys_clk_hz).timing_settings
    return sum(_step_delay(step, timing) + 1 for step in _init_sequence(sys_clk_hz)[0])


def _init_sequence(sys_clk_hz: int):
    from litedram.common import get_default_cl
    from litedram.init import get_sdram_phy_init_sequence
    from litedram.common import PhySettings
    cl = get_default_cl(memtype="SDR", tck=1 / sys_clk_hz)
    settings = PhySettings(phytype="GENSDRPHY", memtype="SDR", databits=ULX3S_SDRAM.data_bits,
                           dfi_databits=ULX3S_SDRAM.data_bits, nranks=1, nphases=1, rdphase=0,
                           wrphase=0, cl=cl, read_latency=cl + 1, write_latency=0)
    return get_sdram_phy_init_sequence(settings, _module(sys_clk_hz).timing_settings)


# Cycles a command needs before the next one (the datasheet's tRP / tRFC / tMRD), when LiteDRAM's
# table asks for less: its delays assume the BIOS, whose CSR writes between two commands take far
# longer than the 4 cycles it lists after AUTO REFRESH (replayed literally, the second REFRESH
# violates tRFC; the chip model caught it).
T_MRD_CYCLES = 2


def _step_delay(step, timing) -> int:
    cmd = step[3]
    need = {"DFII_COMMAND_RAS|DFII_COMMAND_WE|DFII_COMMAND_CS": timing.tRP,
            "DFII_COMMAND_RAS|DFII_COMMAND_CAS|DFII_COMMAND_CS": timing.tRFC,
            "DFII_COMMAND_RAS|DFII_COMMAND_CAS|DFII_COMMAND_WE|DFII_COMMAND_CS": T_MRD_CYCLES}
    return max(1, step[4], need.get(cmd, 0))


def _build(sys_clk_hz: int):
    """The migen design: returns (module, ios) for litex's Verilog converter."""
    from migen import ClockDomain, If, Record, Signal
    from litex.gen import LiteXModule
    from migen.genlib.resetsync import AsyncResetSynchronizer
    from litedram.phy import GENSDRPHY
    from litedram.core import LiteDRAMCore

    module = _module(sys_clk_hz)
    init, _ = _init_sequence(sys_clk_hz)

    class Core(LiteXModule):
        def __init__(self):
            self.cd_sys = ClockDomain()
            self.clk = Signal(name_override="clk")
            self.rst = Signal(name_override="rst")
            self.comb += self.cd_sys.clk.eq(self.clk)
            self.specials += AsyncResetSynchronizer(self.cd_sys, self.rst)

            ios = {"clk": self.clk, "rst": self.rst}
            pads = Record([(name, width) for name, (width, _, _) in CORE_PINS.items()])
            for name, _ in pads.layout:
                sig = getattr(pads, name)
                sig.name_override = f"sdram_{name}"
                ios[f"sdram_{name}"] = sig

            self.sdrphy = GENSDRPHY(pads, sys_clk_freq=float(sys_clk_hz))
            self.sdram = LiteDRAMCore(self.sdrphy, module.geom_settings, module.timing_settings,
                                      clk_freq=float(sys_clk_hz))
            port = self.sdram.crossbar.get_port()
            self.init_done = Signal(name_override="init_done")
            ios["init_done"] = self.init_done
            self._sequencer(self.sdram.dfii, init)
            self._native_port(port, ios)
            self.ios = ios

        def _sequencer(self, dfii, steps):
            """LiteDRAM's power-up table, one step per entry: set the DFI command (or CKE) for one
            cycle, then wait the step's delay; after the last step the controller gets the DFI."""
            flags = [(s[3], s[1], s[2], _step_delay(s, module.timing_settings)) for s in steps]
            n = len(flags)
            step = Signal(max=n + 1)
            wait = Signal(max=max(f[3] for f in flags) + 2)
            fire = Signal()
            cke = Signal()
            p = dfii.ext_dfi.phases[0]
            self.comb += [dfii.ext_dfi_sel.eq(~self.init_done),
                          p.cke.eq(cke), p.odt.eq(0), p.reset_n.eq(1),
                          p.cs_n.eq(1), p.ras_n.eq(1), p.cas_n.eq(1), p.we_n.eq(1),
                          p.wrdata_en.eq(0), p.rddata_en.eq(0)]
            for i, (cmd, addr, bank, delay) in enumerate(flags):
                on = fire & (step == i)
                if "DFII_CONTROL_CKE" in cmd:
                    self.sync += If(on, cke.eq(1))
                else:
                    self.comb += If(on,
                                    p.cs_n.eq(~int("DFII_COMMAND_CS" in cmd)),
                                    p.ras_n.eq(~int("DFII_COMMAND_RAS" in cmd)),
                                    p.cas_n.eq(~int("DFII_COMMAND_CAS" in cmd)),
                                    p.we_n.eq(~int("DFII_COMMAND_WE" in cmd)),
                                    p.address.eq(addr), p.bank.eq(bank))
                self.sync += If(on, wait.eq(delay))
            self.comb += fire.eq(~self.init_done & (wait == 0))
            self.sync += [
                If(wait != 0, wait.eq(wait - 1)),
                If(fire, If(step == n - 1, self.init_done.eq(1)).Else(step.eq(step + 1))),
            ]

        def _native_port(self, port, ios):
            """The crossbar port's streams as plain ports; commands wait for ``init_done``."""
            widths = {"aw": port.address_width, "dw": port.data_width,
                      "mw": port.data_width // 8}
            for name, (width, _) in PORT_SIGNALS.items():
                ios[name] = Signal(widths.get(width, width), name_override=name)
            gate = self.init_done
            self.comb += [
                port.cmd.valid.eq(ios["cmd_valid"] & gate),
                ios["cmd_ready"].eq(port.cmd.ready & gate),
                port.cmd.we.eq(ios["cmd_we"]), port.cmd.addr.eq(ios["cmd_addr"]),
                port.cmd.last.eq(1),
                port.wdata.valid.eq(ios["wdata_valid"]),
                ios["wdata_ready"].eq(port.wdata.ready),
                port.wdata.we.eq(ios["wdata_we"]), port.wdata.data.eq(ios["wdata_data"]),
                ios["rdata_valid"].eq(port.rdata.valid),
                port.rdata.ready.eq(ios["rdata_ready"]),
                ios["rdata_data"].eq(port.rdata.data),
            ]

    core = Core()
    return core, core.ios


def _stamp(sys_clk_hz: int) -> dict:
    return {"sys_clk_hz": int(sys_clk_hz), "chip": asdict(ULX3S_SDRAM), "pins": CORE_PINS,
            "litedram": version("litedram"), "litex": version("litex"),
            "migen": version("migen"), "generator": Path(__file__).read_text()}


def generate_ulx3s_sdram_core(out_dir: os.PathLike, sys_clk_hz: int) -> Path:
    """Write the ULX3S's LiteDRAM core as ``out_dir/<core_module_name>.v`` (cached by its inputs:
    clock, chip table, package versions and this generator's source) and return its path."""
    from litex.build.lattice.common import lattice_ecp5_special_overrides
    from litex.gen.fhdl.verilog import convert

    out_dir = Path(out_dir)
    name = core_module_name(sys_clk_hz)
    path = out_dir / f"{name}.v"
    stamp_path = out_dir / f"{name}.json"
    stamp = json.loads(json.dumps(_stamp(sys_clk_hz)))   # as read back (tuples become lists)
    if path.exists() and stamp_path.exists() and json.loads(stamp_path.read_text()) == stamp:
        return path
    core, ios = _build(sys_clk_hz)
    # regular_comb=False as litedram.gen builds: with LiteX's default (True) the comb logic
    # becomes `always @(*)` blocks that Icarus re-evaluates forever once the refresher first fires
    # (seen: simulated time stops at 7.86 us)
    out = convert(core, ios=set(ios.values()), name=name, regular_comb=False,
                  special_overrides=lattice_ecp5_special_overrides)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".v.tmp")
    # (LiteX stamps the date into the header: dropped, so equal inputs give equal files)
    tmp.write_text("".join(l for l in str(out).splitlines(True) if not l.startswith("// Date")))
    os.replace(tmp, path)
    stamp_path.write_text(json.dumps(stamp))
    return path
