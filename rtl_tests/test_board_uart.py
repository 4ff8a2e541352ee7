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

At the real clock and baud rate (issue 28; ``test_board_uart_at_the_real_clock_and_baud_rate``,
and the OrangeCrab in ``test_orangecrab.py``): the build ``make demo`` makes for the board, on the
top exactly as ``synth`` builds it, PLL included (``rtl_tests/sim_pll.py``: a stub of the vendor
primitive that makes the clock its parameters give from the oscillator it measures; Verilator with
``--timing``), the board record's 115200-baud divisor and 100 ms inter-byte timeout. The testbench
waits UART bit times with timers there (``Board.cycles``), so its Python cost does not grow with
the divisor; the simulator's does.

The host is the host client users run (``spikegate.host.Device``, pixels quantised by
``spikegate run``'s ``quantize_images``); the protocol numbers all come from
``spikegate.host`` / ``spikegate.hw.host_link`` (``test_host_link.py`` re-writes them
independently; here the point is that the host code and the gateware agree). Expected values
come from the build: the golden model (``quantize.golden.execute`` on the build's IR) for the
logits and the class, the ISS (``compiler.iss``) for the cycle count, ``report.json`` and the
top for INFO.
"""

from __future__ import annotations

import json
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
            port = _SimPort(pins.dir, len(pins.names), invert=pins.invert, name=name)
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


def _sim_port_class():
    from amaranth.lib import io

    class SimPort(io.SimulationPort):
        """A simulation port that also answers ``.io`` as a pad does for the iCE40's SB_PLL40_PAD,
        which takes the clock pin itself (``board_targets/top.py``): its input signal."""

        @property
        def io(self):
            return self.i
    return SimPort


def _SimPort(*args, **kwargs):
    return _sim_port_class()(*args, **kwargs)


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
    from small_models import calibrated_model, images, tiny_cfg

    from spikegate.board_targets import get_board
    from spikegate.board_targets.top import clock_plan
    from spikegate.board_targets.flow import board_top, read_report
    from spikegate.compiler import iss
    from spikegate.compiler.build import compile_ir, load_core, read_build
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
    x, names = _images(cfg, report)
    sources, config = _board_sim(case["name"], board, str(build), report, top, g, prog, x, names)
    full = np.asarray(config["images"][2]["pixels"])
    assert (full * 1.0 == x[2].reshape(-1) * report["input_scale"]).all()   # exact
    if runtime:     # the results depend on the weights: a failed upload could not pass unseen
        import dataclasses
        blank = dataclasses.replace(prog, wmem=np.zeros_like(prog.wmem))
        assert any(iss.run(blank, np.asarray(e["pixels"]).reshape(x.shape[1:])).logits.tolist() != e["golden"]
                   for e in config["images"]), "the test images do not depend on the weights"
    return sources, config, case["name"]


def _board_sim(name, board, build, report, top, g, prog, x, names):
    """``BoardTop`` ``top`` elaborated on :class:`SimPlatform` -> Verilog (with the simulation
    models it needs: SPRAM, the PLL stub), the expected result of each image (golden logits, the
    ISS's cycles, checked to agree) and the testbench's config. Returns ``(sources, config)``."""
    from amaranth.hdl import Fragment

    from spikegate.commands.run import quantize_images
    from spikegate.compiler import iss
    from spikegate.compiler.build import read_weight_image
    from spikegate.hw.spram import sim_sources
    from spikegate.machine.host_protocol import PROTOCOL_VERSION, PROTOCOL_VERSION_WEIGHTS, bytes_per_word
    from spikegate.quantize.golden import execute
    from spikegate.rtl_tests.sim_pll import LOCK_CYCLES, pll_sim_sources

    clk_hz = top.clock["actual_mhz"] * 1e6
    pll = top.clock["pll"] is not None
    runtime = report["weights"]["loading"] == "runtime-loaded"
    platform = SimPlatform(board)
    fragment = Fragment.get(top, platform)
    # Probes: inner signals the monitors watch, made top-level outputs (nothing else changes), so
    # the testbench needs no access below the top (Verilator keeps only the top's signals public).
    # Behind a PLL the testbench counts the PLL's output clock (the sync domain's), not the pin's.
    core = top.core
    probes = {"pixels_valid": core.pixels.valid, "pixels_ready": core.pixels.ready,
              "pixels_payload": core.pixels.payload, "logits_valid": core.logits.valid,
              "logits_ready": core.logits.ready, "logits_payload": core.logits.payload.as_value(),
              "busy": core.busy, "cycles": core.cycles, "rst": fragment.domains["sync"].rst}
    if pll:
        probes["clk"] = fragment.domains["sync"].clk
    verilog = write_verilog(fragment, MODULE, sim_build_dir(name, "verilog") / f"{MODULE}.v",
                            ports=platform.top_ports() + list(probes.values()))
    text = verilog.read_text()
    sources = [str(verilog)] + [str(p) for p in sim_sources(text)]
    assert len(sources) == (2 if runtime else 1)     # SB_SPRAM256KA's model exactly when in SPRAM
    stub = pll_sim_sources(text, sim_build_dir(name, "verilog"))
    assert len(stub) == pll, "the PLL stub exactly when the top instantiates a PLL"
    sources += [str(p) for p in stub]

    pixels = quantize_images(x, report, report["num_pixels"], report["pixel_bits"], "test images")
    golden = execute(g, x)
    expected = []
    for nm, px, gl in zip(names, pixels, golden):
        r = iss.run(prog, px.reshape(x.shape[1:]))
        assert r.logits.tolist() == gl.tolist(), f"{nm}: ISS and golden model disagree"
        expected.append({"name": nm, "pixels": [int(v) for v in px],
                         "golden": [int(v) for v in gl], "iss_cycles": int(r.cycles)})

    uart_name = f"{board.uart[0]}_{board.uart[1]}"
    leds = [platform.ports.get(f"{res}_{num}") for res, num in board.leds]
    osc_hz = board.oscillator_mhz * 1e6
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
        # the oscillator pin's period (halves in whole ps: 83.334 ns at 12 MHz); without a PLL it is
        # the accelerator's clock, behind one the testbench measures the PLL's output
        "period_ns": 2 * round(1e9 / osc_hz / 2, 3),
        "pll": {"clk_hz": clk_hz, "lock_cycles": LOCK_CYCLES} if pll else None,
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
        "busy_checks": True,
        "images": expected,
    }
    if runtime:
        read_weight_image(build, report)        # checked against report.json
        config["weights"] = {"image": os.path.join(build, report["weights"]["image"]),
                             "words": report["weights"]["words"]}
    return sources, config


@pytest.mark.parametrize("sim", SIMULATORS)
def test_board_uart(board_design, sim):
    """The four cocotb tests of ``tb_board_uart`` (power-on, runtime weights, inferences vs golden,
    corrupt frames and recovery) on one simulation of the whole board."""
    sources, config, name = board_design
    run_cocotb(sources, MODULE, "spikegate.rtl_tests.tb_board_uart", sim, sim_build_dir(name, sim), config=config)


# ------------------------------------------------------------------ the real clock and baud rate

# The iCEBreaker build `make demo` makes (the smaller embedded model, `fpga-tiny-t2`, quantised as
# the demo does, compiled for the board with its defaults: 1 lane, weights in SPRAM loaded at run
# time), on the board top exactly as `spikegate synth` builds it: the board's PLL making its 21 MHz
# from the 12 MHz oscillator (``sim_pll``'s stub of SB_PLL40_PAD, from the parameters
# ``pll_instance`` gives it), the 115200-baud divisor (182) and the 100 ms inter-byte timeout of the
# board record. Only the power-on and INFO/READ/START exchanges run here: an image needs the
# weights first, 40,006 bytes over the UART, 73 M clock cycles at 182 cycles per bit (over 10 CPU
# minutes of Verilator); the image at the real clock and baud rate runs on the OrangeCrab, whose
# weights are in the bitstream (``test_orangecrab.py``).
REAL_CLOCK = {"board": "icebreaker", "checkpoint": "fpga-tiny-t2", "digit": 0, "name": "board_uart_real_clock"}


def quantize_and_compile(checkpoint: str, board_name: str, out_dir) -> str:
    """``checkpoint`` quantised as ``make demo`` does (8-bit weights, digits calibration) and compiled
    for ``board_name`` with the board's defaults; returns the build directory."""
    from spikegate.board_targets import get_board
    from spikegate.compiler.build import compile_ir
    from spikegate.quantize.irfile import save_ir
    from spikegate.quantize.pipeline import quantize_checkpoint

    g, _ = quantize_checkpoint(checkpoint, calib="digits", evaluate=False)
    sgir = os.path.join(str(out_dir), f"{checkpoint}.sgir")
    save_ir(g, sgir)
    build = os.path.join(str(out_dir), board_name)
    compile_ir(sgir, get_board(board_name).target, None, build, predict_samples=0)
    return build


def real_clock_sim(build: str, board_name: str, digits, name: str):
    """The board top of ``build`` exactly as ``spikegate synth`` builds it for ``board_name`` (its
    clock through the PLL, the board record's baud rate and inter-byte timeout), for simulation with
    ``sim_pll``'s stub, on held-out ``digits`` (indices). Returns ``(sources, config)``."""
    from spikegate.board_targets import get_board
    from spikegate.board_targets.flow import board_top, read_report
    from spikegate.board_targets.top import clock_plan
    from spikegate.compiler.build import load_core, read_build
    from spikegate.quantize.data import digits_split_xy

    board = get_board(board_name)
    report = read_report(build)
    _, g, prog = read_build(build)
    top, _, requested = board_top(build, board, report, load_core=load_core)
    plan = clock_plan(board)
    assert requested == board.clock_mhz == report["clock_mhz"] and top.clock["pll"] == plan["pll"] is not None
    assert top.baud == board.baud == 115200
    assert top.uart_divisor == round(plan["actual_mhz"] * 1e6 / board.baud)
    x, _ = digits_split_xy("test", img_size=g.ops[0].attrs["size"])
    sources, config = _board_sim(name, board, build, report, top, g, prog, x[list(digits)],
                                 [f"held-out digit {d}" for d in digits])
    # no BUSY probes: at 115200 baud the core finishes long before a refused frame is in; no
    # waits for the 100 ms inter-byte timeout between tests (millions of cycles each)
    config["busy_checks"] = False
    config["quiesce"] = False
    return sources, config


@pytest.fixture(scope="module")
def real_clock_design(tmp_path_factory):
    case = REAL_CLOCK
    build = quantize_and_compile(case["checkpoint"], case["board"], tmp_path_factory.mktemp("board_uart_real"))
    with open(os.path.join(build, "report.json")) as f:
        assert json.load(f)["weights"]["loading"] == "runtime-loaded"     # as on the board: SPRAM
    return real_clock_sim(build, case["board"], [case["digit"]], case["name"])


def test_icebreaker_at_the_real_clock_and_baud_rate(real_clock_design):
    """Power-on through the PLL stub (the testbench measures the PLL's output against the board
    record's 21 MHz; the POR counts from its LOCK), then INFO (the 21 MHz clock, weights needed),
    READ and START refused, through the host client at the real divisor, on Verilator (``--timing``
    for the stub's delays)."""
    from spikegate.rtl_tests.sim_pll import VERILATOR_ARGS

    sources, config = real_clock_design
    run_cocotb(sources, MODULE, "spikegate.rtl_tests.tb_board_uart", "verilator",
               sim_build_dir(REAL_CLOCK["name"], "verilator"), config=config, build_args=VERILATOR_ARGS,
               testcase=["power_on"])
