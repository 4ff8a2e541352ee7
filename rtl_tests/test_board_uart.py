"""Whole-board simulation: a host sends images over the UART pins of the complete board top and reads
back the logits, bit-exact against the golden model (issue 6; cocotb half: ``tb_board_uart.py``).

The design under test is what ``spikegate synth`` puts on the board: a small but complete
Meta-SpikeFormer (every op kind: INPUT, multi-bit and spike convolutions, LIF, attention, residual
adds, spatial sum, a distillation head; T = 2) quantised, compiled for the ULX3S
(``compile_ir``), its core loaded from the build directory (``load_core``) and wrapped by
``synth``'s own code (``spikegate.board_targets.flow.board_top`` -> ``BoardTop``: power-on reset,
I/O buffers, ``UARTAccelerator``). ``BoardTop`` is elaborated against :class:`SimPlatform`, which
hands out simulation ports for the board's resources (the real amaranth-boards platform names
and directions them), so the simulated Verilog is the board wrapper's, not a re-implementation.
The ULX3S build runs at its 25 MHz oscillator, so no PLL sits in the path (a vendor primitive
the simulators lack); the power-on-reset counter and reset synchroniser are simulated. Two
options differ from a bitstream: the baud rate is clock / 4 (UART divisor 4, computed by
``BoardTop`` as on the board) and the inter-byte timeout is 1000 cycles instead of 100 ms, so
that a timeout is cheap to provoke.

The iCEBreaker case (issue 6) is a smaller model of the same kinds, 4-bit weights, compiled for
the iCEBreaker (12 MHz oscillator, no PLL; the target's lane count) with its weights in SPRAM
(``--weights runtime``): the core's WMEM is SB_SPRAM256KA instances, simulated with the
behavioural model ``hw/sim_models/SB_SPRAM256KA.v``, so nothing is in them until the host uploads
the build's ``weights.bin`` (LOAD_WEIGHTS). Until then START is refused (WEIGHTS_NOT_LOADED);
bad offsets and corrupted chunks are refused too; after the upload the images are bit-exact. The
ULX3S build (weights in its block RAM) answers LOAD_WEIGHTS with UNKNOWN_CMD.

The host is the host client users run (``spikegate.host.Device``, pixels quantised by
``spikegate run``'s ``quantize_images``); the protocol numbers all come from
``spikegate.host`` / ``spikegate.hw.host_link`` (``test_host_link.py`` re-writes them
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

import spikegate.hw.accelerator  # noqa: E402,F401  (a broken accelerator fails here, never skips)
from spikegate.rtl_tests.cocotb_util import SIMULATORS, run_cocotb, sim_build_dir, write_verilog  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("board_uart")]

# Per board (compiled for, and wrapped for; accelerator clock = oscillator, so no PLL): the model
# (tiny_cfg arguments, seed), quantisation weight bits, lanes (None: the target's), where the
# weights go. The iCEBreaker model is small so that its upload (5,765 one-byte words) is quick to
# simulate; its seed is one whose logits depend on the weights and differ between the test images
# (most such tiny random models go quiet, and then the weights would not matter: the fixture
# checks they do).
CASES = {
    "ulx3s-85f": dict(cfg=dict(T=2, kd=True), seed=3, weight_bits=8, lanes=4, weights="auto",
                      name="board_uart"),
    "icebreaker": dict(cfg=dict(T=2, kd=True, embed_dim=(2, 4, 4, 4), img_size=8), seed=1, weight_bits=4,
                       lanes=None, weights="runtime", name="board_uart_icebreaker"),
}
DIVISOR = 4              # UART clock cycles per bit
TIMEOUT_CYCLES = 1000    # inter-byte timeout
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


@pytest.fixture(scope="module", params=list(CASES))
def board_design(request, tmp_path_factory):
    """Model -> IR -> board build -> BoardTop on the simulation platform -> Verilog; plus the
    expected results of each image (golden logits, ISS cycles) and what INFO must say."""
    from amaranth.hdl import Fragment

    from small_models import calibrated_model, images, tiny_cfg

    from spikegate.board_targets import get_board
    from spikegate.board_targets.top import clock_plan
    from spikegate.commands.run import quantize_images
    from spikegate.board_targets.flow import board_top, read_report
    from spikegate.compiler import iss
    from spikegate.compiler.build import compile_ir, load_core, read_build
    from spikegate.compiler.build import read_weight_image
    from spikegate.machine.host_protocol import PROTOCOL_VERSION, PROTOCOL_VERSION_WEIGHTS, bytes_per_word
    from spikegate.hw.spram import sim_sources
    from spikegate.quantize.golden import execute
    from spikegate.quantize.irfile import save_ir
    from spikegate.quantize.lower import lower
    from spikegate.quantize.quantizer import quantize_graph

    board_name = request.param
    case = CASES[board_name]
    tmp = tmp_path_factory.mktemp("board_uart")
    cfg = tiny_cfg(**case["cfg"])
    model = calibrated_model(cfg, seed=case["seed"])
    _, g = quantize_graph(lower(model), images(cfg, 6, seed=4), weight_bits=case["weight_bits"])
    sgir = tmp / "tiny.sgir"
    save_ir(g, str(sgir))
    build = tmp / f"tiny-{board_name}"
    compile_ir(str(sgir), get_board(board_name).target, case["lanes"], str(build), predict_samples=0, weights=case["weights"])

    report = read_report(str(build))
    _, g, prog = read_build(str(build))          # the build's own IR and program
    kinds = set(report["op_counts"]["ops_by_kind"])
    assert {"conv", "lif", "attention", "add", "spatial_sum", "head"} <= kinds, kinds

    board = get_board(board_name)
    # the simulated board runs its accelerator at the oscillator (no PLL model in simulation), not
    # at the clock the target requests
    clk_hz = clock_plan(board, board.oscillator_mhz)["actual_mhz"] * 1e6
    runtime = report["weights"]["loading"] == "runtime-loaded"
    assert runtime == (case["weights"] == "runtime")
    top, _, _ = board_top(str(build), board, report, load_core=load_core, clock_mhz=board.oscillator_mhz, baud=round(clk_hz / DIVISOR),
                          timeout_ms=(TIMEOUT_CYCLES + 0.5) / clk_hz * 1e3)
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
    verilog = write_verilog(fragment, MODULE, sim_build_dir(case["name"], "verilog") / f"{MODULE}.v",
                            ports=platform.top_ports() + list(probes.values()))
    sources = [str(verilog)] + [str(p) for p in sim_sources(verilog.read_text())]
    assert len(sources) == (2 if runtime else 1)     # SB_SPRAM256KA's model exactly when in SPRAM

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
    if runtime:     # the results depend on the weights: a failed upload could not pass unseen
        import dataclasses
        blank = dataclasses.replace(prog, wmem=np.zeros_like(prog.wmem))
        assert any(iss.run(blank, px.reshape(x.shape[1:])).logits.tolist() != e["golden"]
                   for px, e in zip(pixels, expected)), "the test images do not depend on the weights"

    uart_name = f"{board.uart[0]}_{board.uart[1]}"
    leds = [platform.ports.get(f"{res}_{num}") for res, num in board.leds]
    config = {
        "ports": {
            "clk": _port_name(platform.ports[f"{platform.default_clk}_0"]),
            "rx": _port_name(platform.ports[f"{uart_name}_rx"]),
            "tx": _port_name(platform.ports[f"{uart_name}_tx"]),
            "loaded": _port_name(leds[0]) if len(leds) > 0 else None,
            "running": _port_name(leds[1]) if len(leds) > 1 else None,
            "loaded_invert": bool(leds[0].invert[0]) if len(leds) > 0 else False,
            "running_invert": bool(leds[1].invert[0]) if len(leds) > 1 else False,
        },
        "probes": {k: v.name for k, v in probes.items()},
        "period_ns": 2 * round(1e9 / clk_hz / 2, 3),   # (halves in whole ps: 83.334 ns at 12 MHz)
        "divisor": top.uart_divisor,
        "timeout": top.uart_timeout,
        "por_cycles": top.por_cycles,
        "pixel_bits": report["pixel_bits"],
        "logit_bits": report["logit_bits"],
        "num_classes": report["num_classes"],
        "info": {"version": PROTOCOL_VERSION_WEIGHTS if runtime else PROTOCOL_VERSION,
                 "num_pixels": report["num_pixels"],
                 "num_classes": report["num_classes"], "pixel_bits": report["pixel_bits"],
                 "logit_bits": report["logit_bits"], "clk_hz": int(clk_hz) // 1000 * 1000,
                 "runtime_weights": runtime, "weights_loaded": False,
                 "weight_words": report["weights"]["words"] if runtime else 0,
                 "weight_bytes_per_word": bytes_per_word(report["weights"]["word_bits"]) if runtime else 0},
        "weights": None,
        "images": expected,
    }
    if runtime:
        read_weight_image(str(build), report)        # checked against report.json
        config["weights"] = {"image": str(build / report["weights"]["image"]),
                             "words": report["weights"]["words"]}
    return sources, config, case["name"]


@pytest.mark.parametrize("sim", SIMULATORS)
def test_board_uart(board_design, sim):
    """The four cocotb tests of ``tb_board_uart`` (power-on, runtime weights, inferences vs golden,
    corrupt frames and recovery) on one simulation of the whole board."""
    sources, config, name = board_design
    run_cocotb(sources, MODULE, "spikegate.rtl_tests.tb_board_uart", sim, sim_build_dir(name, sim), config=config)
