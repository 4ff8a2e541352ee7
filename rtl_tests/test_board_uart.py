"""Whole-board simulation: a host sends images over the UART pins of the complete board top and reads
back the logits, bit-exact against the golden model (issue 6; cocotb half: ``tb_board_uart.py``).

The design under test is what ``spikeforge synth`` puts on the board: a small but complete
Meta-SpikeFormer (every op kind: INPUT, multi-bit and spike convolutions, LIF, attention, residual
adds, spatial sum, a distillation head; T = 2) quantised, compiled for the ULX3S
(``compile_ir``), its core loaded from the build directory (``load_core``) and wrapped by
``synth``'s own code (``spikeforge.commands.synth.board_top`` -> ``BoardTop``: power-on reset,
I/O buffers, ``UARTAccelerator``). ``BoardTop`` is elaborated against :class:`SimPlatform`, which
hands out simulation ports for the board's resources (the real amaranth-boards platform names
and directions them), so the simulated Verilog is the board wrapper's, not a re-implementation.
The ULX3S build runs at its 25 MHz oscillator, so no PLL sits in the path (a vendor primitive
the simulators lack); the power-on-reset counter and reset synchroniser are simulated. Two
options differ from a bitstream: the baud rate is clock / 4 (UART divisor 4, computed by
``BoardTop`` as on the board) and the inter-byte timeout is 40 us (1000 cycles) instead of
100 ms, so that a timeout is cheap to provoke.

The host is the host client users run (``spikeforge.host.Device``, pixels quantised by
``spikeforge run``'s ``quantize_images``); the protocol numbers all come from
``spikeforge.host`` / ``spikeforge.hw.host_link`` (``test_host_link.py`` re-writes them
independently; here the point is that the host code and the gateware agree). Expected values
come from the build: the golden model (``quantize.golden.execute`` on the build's IR) for the
logits and the class, the ISS (``compiler.iss``) for the cycle count, ``report.json`` and the
top for INFO.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

pytest.importorskip("spikeforge.hw.accelerator")

from spikeforge.rtl_tests._runner import run_design  # noqa: E402
from spikeforge.rtl_tests.cocotb_util import SIMULATORS, sim_build_dir, write_verilog  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("board_uart")]

BOARD = "ulx3s-85f"      # compiled for, and wrapped for; accelerator clock = oscillator (25 MHz)
LANES = 4
DIVISOR = 4              # UART clock cycles per bit
TIMEOUT_MS = 0.04        # inter-byte timeout: 1000 cycles at 25 MHz
MODULE = "board_top"


class SimPlatform:
    """Stands in for a board's amaranth-boards platform when elaborating ``BoardTop`` for simulation.

    ``request(name, number, dir="-")`` looks the resource up on the board's real platform and
    returns ``amaranth.lib.io.SimulationPort``s with its directions, widths and inversions (a
    resource with subsignals returns an object whose attributes are created on first use, so only
    the pins the wrapper touches become ports). ``ports`` lists them by name, ``top_ports()`` gives
    the top-level signals (``<resource>_<number>[_<subsignal>]__i`` / ``__o``). Nothing here
    supplies vendor primitives: a design that instantiates a PLL will not simulate.
    """

    def __init__(self, board):
        self._real = board.platform()
        self.default_clk = self._real.default_clk
        self.ports: dict = {}

    def request(self, name, number=0, *, dir=None):
        if dir != "-":
            raise ValueError(f"SimPlatform hands out raw ports only (dir='-'), not dir={dir!r}")
        return self._port(self._real.lookup(name, number).ios, f"{name}_{number}")

    def add_clock_constraint(self, clock, frequency):
        pass

    def _port(self, ios, name):
        from amaranth.build.dsl import Pins, Subsignal
        from amaranth.lib import io

        if len(ios) == 1 and isinstance(ios[0], Pins):
            pins = ios[0]
            if pins.dir not in ("i", "o"):
                raise NotImplementedError(f"SimPlatform: {name} has direction {pins.dir!r}")
            port = io.SimulationPort(pins.dir, len(pins.names), invert=pins.invert, name=name)
            self.ports[name] = port
            return port
        if not all(isinstance(s, Subsignal) for s in ios):
            raise NotImplementedError(f"SimPlatform: resource {name} has {ios!r}")
        subs, platform = {s.name: s for s in ios}, self

        class Resource:
            def __getattr__(self, attr):
                if attr not in subs:
                    raise AttributeError(f"resource {name} has no subsignal {attr!r}")
                port = platform._port(subs[attr].ios, f"{name}_{attr}")
                setattr(self, attr, port)
                return port
        return Resource()

    def top_ports(self) -> list:
        return [_port_signal(p) for p in self.ports.values()]


def _port_signal(port):
    """The top-level signal of a simulation port: ``i`` of an input, ``o`` of an output."""
    return port.i if port.direction.value == "i" else port.o


def _port_name(port) -> str:
    return _port_signal(port).name


def _images(cfg, report):
    """Float images ``[B, C, H, W]`` (names): a calibration-like random one, a structured one, and
    one whose pixels (exact multiples of 1/input_scale) span the whole signed pixel range and
    include the sync byte's value (0xA5 = -91 in 8 bits) inside the LOAD payload."""
    from small_models import images

    C, S = cfg.in_channels, cfg.img_size
    yy, xx = np.mgrid[0:S, 0:S]
    rand = images(cfg, 1, seed=4)[0]
    blob = np.broadcast_to(np.exp(-((yy - 5) ** 2 + (xx - 10) ** 2) / 8.0), (C, S, S))
    bits, scale = report["pixel_bits"], float(report["input_scale"])
    rng = np.random.default_rng(7)
    px = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=C * S * S)
    px[:3] = [-(1 << (bits - 1)), (1 << (bits - 1)) - 1, 0xA5 - 0x100 if bits == 8 else 0]
    full = (px / scale).reshape(C, S, S)
    x = np.stack([rand, blob, full]).astype(np.float64)
    return x, ["random", "blob", "full-range"]


@pytest.fixture(scope="module")
def board_design(tmp_path_factory):
    """Model -> IR -> ULX3S build -> BoardTop on the simulation platform -> Verilog; plus the
    expected results of each image (golden logits, ISS cycles) and what INFO must say."""
    from amaranth.hdl import Fragment

    from small_models import calibrated_model, images, tiny_cfg

    from spikeforge.board_targets import get_board
    from spikeforge.board_targets.top import clock_plan
    from spikeforge.commands.run import quantize_images
    from spikeforge.commands.synth import board_top, read_report
    from spikeforge.compiler import iss
    from spikeforge.compiler.build import compile_ir, read_build
    from spikeforge.hw.host_link import PROTOCOL_VERSION
    from spikeforge.quantize.golden import execute
    from spikeforge.quantize.irfile import save_ir
    from spikeforge.quantize.lower import lower
    from spikeforge.quantize.quantizer import quantize_graph

    tmp = tmp_path_factory.mktemp("board_uart")
    cfg = tiny_cfg(T=2, kd=True)
    model = calibrated_model(cfg, seed=3)
    _, g = quantize_graph(lower(model), images(cfg, 6, seed=4))
    sfq = tmp / "tiny.sfq"
    save_ir(g, str(sfq))
    build = tmp / f"tiny-{BOARD}"
    compile_ir(str(sfq), BOARD, LANES, str(build), predict_samples=0)

    report = read_report(str(build))
    _, g, prog = read_build(str(build))          # the build's own IR and program
    kinds = set(report["op_counts"]["ops_by_kind"])
    assert {"conv", "lif", "attention", "add", "spatial_sum", "head"} <= kinds, kinds

    board = get_board(BOARD)
    clk_hz = clock_plan(board, report["clock_mhz"])["actual_mhz"] * 1e6
    top, _, _ = board_top(str(build), board, report, baud=round(clk_hz / DIVISOR),
                          timeout_ms=TIMEOUT_MS)
    assert top.clock["pll"] is None, "the simulated board must run at its oscillator (no PLL)"
    assert top.uart_divisor == DIVISOR and top.actual_baud * DIVISOR == clk_hz
    platform = SimPlatform(board)
    fragment = Fragment.get(top, platform)
    # Probes: inner signals the monitors watch, made top-level outputs (nothing else changes), so
    # the testbench needs no access below the top (Verilator keeps only the top's signals public).
    core = top.core
    probes = {"pixels_valid": core.pixels.valid, "pixels_ready": core.pixels.ready,
              "pixels_payload": core.pixels.payload, "logits_valid": core.logits.valid,
              "logits_ready": core.logits.ready, "logits_payload": core.logits.payload.as_value(),
              "busy": core.busy, "cycles": core.cycles, "rst": fragment.domains["sync"].rst}
    verilog = write_verilog(fragment, MODULE, sim_build_dir("board_uart", "verilog") / f"{MODULE}.v",
                            ports=platform.top_ports() + list(probes.values()))

    x, names = _images(cfg, report)
    pixels = quantize_images(x, report, report["num_pixels"], report["pixel_bits"], "test images")
    assert (pixels[2] * 1.0 == x[2].reshape(-1) * report["input_scale"]).all()   # exact
    golden = execute(g, x)
    expected = []
    for name, px, gl in zip(names, pixels, golden):
        r = iss.run(prog, px.reshape(x.shape[1:]))
        assert r.logits.tolist() == gl.tolist(), f"{name}: ISS and golden model disagree"
        expected.append({"name": name, "pixels": [int(v) for v in px],
                         "golden": [int(v) for v in gl], "iss_cycles": int(r.cycles)})

    uart_name = f"{board.uart[0]}_{board.uart[1]}"
    leds = [platform.ports.get(f"{res}_{num}") for res, num in board.leds]
    config = {
        "ports": {
            "clk": _port_name(platform.ports[f"{platform.default_clk}_0"]),
            "rx": _port_name(platform.ports[f"{uart_name}_rx"]),
            "tx": _port_name(platform.ports[f"{uart_name}_tx"]),
            "loaded": _port_name(leds[0]) if len(leds) > 0 else None,
            "running": _port_name(leds[1]) if len(leds) > 1 else None,
        },
        "probes": {k: v.name for k, v in probes.items()},
        "period_ns": 1e9 / clk_hz,
        "divisor": top.uart_divisor,
        "timeout": top.uart_timeout,
        "por_cycles": top.por_cycles,
        "pixel_bits": report["pixel_bits"],
        "logit_bits": report["logit_bits"],
        "num_classes": report["num_classes"],
        "info": {"version": PROTOCOL_VERSION, "num_pixels": report["num_pixels"],
                 "num_classes": report["num_classes"], "pixel_bits": report["pixel_bits"],
                 "logit_bits": report["logit_bits"], "clk_hz": int(clk_hz) // 1000 * 1000},
        "images": expected,
    }
    return verilog, config


@pytest.mark.parametrize("sim", SIMULATORS)
def test_board_uart(board_design, sim):
    """The three cocotb tests of ``tb_board_uart`` (power-on, inferences vs golden, corrupt frames and
    recovery) on one simulation of the whole board."""
    verilog, config = board_design
    run_design(str(verilog), MODULE, "tb_board_uart", sim, "board_uart", config=config)
