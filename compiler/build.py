"""The compile flow: IR -> checked, scheduled, planned, packed Program -> build directory.

A build directory holds everything needed to simulate, verify and synthesise one accelerator:

* ``model.sgir``      the IR it was compiled from (so verify/synth rebuild the same design)
* ``program.txt``    the program for humans; ``*.hex`` the memory images (one word per line)
* ``accelerator.v``  the Verilog emitted by Amaranth from ``hw/accelerator.py``
* ``report.json``    lanes, widths, memories, budget, predicted cycles, op counts, and ``weights``:
  where the weights live (``"loading": "bitstream"``, in block RAM, or ``"runtime-loaded"``, in
  the iCE40's SPRAM, uploaded by the host over the host link), WMEM words and bits, and for
  runtime-loaded weights the image (``weights.bin``: each WMEM word as ``bytes_per_word``
  little-endian bytes, in address order, exactly what LOAD_WEIGHTS sends) and its sha256;
  ``"where"``: ``"bram"``, ``"spram"`` or ``"sdram"``. With ``"sdram"`` (the on-chip memory
  cannot hold the weights and the target has external memory: ``passes/external_weights.py``)
  ``"loading": "streamed"``, ``"why"`` says why, and ``sdram.bin`` is the packed external image
  (``port_bits``-wide beats, each ``port_bits / 8`` little-endian bytes, in beat-address order;
  ``external_sha256``). Its ``accelerator.v`` has the WLOAD engine and the burst port ``mem``
  (``hw/accelerator.py``, ``weights="sdram"``), which ``spikegate verify`` serves from ``sdram.bin``.

Compilation is deterministic: the same IR, target and lanes give the same bytes. The directory is
written under a temporary name and renamed into place, so a failed compile leaves nothing that looks
complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np

from spikegate import __version__
from spikegate.errors import SpikegateError
from spikegate.quantize.graph import Graph
from spikegate.quantize.irfile import load_ir

from .passes.acc_tiles import acc_tiled, acc_tiled_to_fit
from .passes.budget import BudgetError, check_budget, external_reason
from .passes.check_ops import check_ops
from .passes.external_weights import external_weights, largest_layer, place_external, tiled_layers
from .passes.fuse_fire import fuse_fire
from .passes.memory_plan import memory_plan
from .passes.pack import pack_parameters
from .passes.schedule import schedule
from spikegate.machine.external_memory import word_ints
from spikegate.machine.program import OP_WLOAD, Program, validate_program
from .targets import Target, resolve_target

REPORT = "report.json"


def lower_to_program(g: Graph, lanes: int, *, events: bool = False, validate: bool = True) -> Program:
    """``events``: compile for event input, T frames per sample (``[T, C, H, W]`` pixels, frame t
    at step t; ``num_pixels`` is T*C*H*W) instead of one image repeated over T. ``validate=False``
    leaves the program unvalidated, for :func:`place_weights` to decide where its weights go first
    (an on-chip layout whose WMEM addresses overflow ``wbase`` is fine once they are streamed)."""
    g = check_ops(g)
    s = fuse_fire(schedule(g, events=events))
    plan = memory_plan(s)
    prog = pack_parameters(g, s, plan, lanes)
    return validate_program(prog) if validate else prog


def _hex_lines(values, bits: int) -> str:
    mask = (1 << bits) - 1
    digits = (bits + 3) // 4
    return "".join(f"{int(v) & mask:0{digits}x}\n" for v in values)


def wmem_words(p: Program) -> list[int]:
    """The WMEM words as unsigned integers: lane ``p``'s weight in bits ``[p*wb, (p+1)*wb)``."""
    return word_ints(p.wmem, p.weight_bits)


def _wmem_lines(p: Program) -> str:
    return _hex_lines(wmem_words(p), p.lanes * p.weight_bits)


WEIGHT_IMAGE = "weights.bin"
EXTERNAL_IMAGE = "sdram.bin"


def external_image(p: Program) -> bytes:
    """The external weight image of a program with its weights in external memory: each beat as
    ``port_bits / 8`` little-endian bytes, in beat-address order."""
    n = p.port_bits // 8
    return b"".join(int(b).to_bytes(n, "little") for b in p.wmem_external)


def sdram_port_bits() -> int:
    """The external memory port's width (the ULX3S's 16-bit SDRAM; ``machine/external_memory.py``)."""
    from spikegate.machine import external_memory as em
    return em.ULX3S_PORT.port_bits


def place_weights(prog: Program, target: Target, weights: str) -> tuple[Program, str | None]:
    """``prog`` as lowered (weights on chip; validated here), or, when ``budget.external_reason`` says so, with its
    weights in the target's external memory; and that reason (None: on chip). Before the weights
    leave the chip, the depthwise layers are tried in channel tiles, which make the ACC banks
    shallower (``passes/acc_tiles.py``): if that fits, the weights stay. A layer whose own
    weights do not fit the on-chip buffer beside the other memories runs in output-channel tiles
    (``passes/external_weights.py: place_external``); one that cannot is one clear error naming it."""
    why = external_reason(prog, target, weights)
    if why is None:
        return validate_program(prog), None
    tiled = acc_tiled_to_fit(prog, target) if weights == "auto" else None
    if tiled is not None:       # the depthwise layers in channel tiles leave room for the weights
        return validate_program(tiled), None
    ext = place_external(prog, target, sdram_port_bits())
    name, words = largest_layer(ext)
    tiled = tiled_layers(ext)
    return ext, (f"{why}: the weights ({len(prog.wmem) * prog.lanes * prog.weight_bits:,} bits of WMEM) go to "
                 f"{target.name}'s external memory, packed ({len(ext.wmem_external) * ext.port_bits:,} bits), "
                 f"streamed by WLOAD into a {words:,}-word on-chip buffer (layer {name}'s weights"
                 + (f"; {len(tiled)} layer(s) in output-channel tiles: {', '.join(tiled)})" if tiled else ")"))


def weight_image(p: Program) -> bytes:
    """The runtime weight image: each WMEM word as ``ceil(lanes * weight_bits / 8)`` little-endian
    bytes, in address order (the payload of LOAD_WEIGHTS after its offset)."""
    n = (p.lanes * p.weight_bits + 7) // 8
    return b"".join(w.to_bytes(n, "little") for w in wmem_words(p))


def weights_storage(report: dict) -> str:
    """``"spram"`` if the build's weights are runtime-loaded into SPRAM, ``"sdram"`` if they live in
    external memory (streamed by WLOAD), else ``"rom"``."""
    w = report.get("weights") or {}
    if w.get("where") == "sdram":
        return "sdram"
    return "spram" if w.get("loading") == "runtime-loaded" else "rom"


def sample_inputs(g: Graph, n: int = 8) -> tuple[np.ndarray | None, str]:
    """Held-out images of a data set the model takes (the one it was calibrated on first: digits,
    mnist); otherwise none (predictions use firing rates)."""
    from spikegate.quantize.data import DATASETS, check_model_fits

    qi = g.ops[0].attrs
    calibrated_on = str(g.meta.get("source", {}).get("calibration", ""))
    for name in sorted(DATASETS, key=lambda k: not calibrated_on.startswith(k)):
        try:
            check_model_fits(DATASETS[name], qi["channels"], int(g.ops[-1].shape[0]), qi["size"], "the model")
        except ValueError:
            continue
        x, _ = DATASETS[name].split_xy("test", qi["size"], n)
        return x, f"first {n} held-out digits" if name == "digits" else f"first {n} held-out {name} images"
    return None, ""


def _placed(g: Graph, target: Target, lanes: int | None, weights: str):
    """``(program, why its weights are external or None, budget, lanes)``: ``g`` lowered for
    ``lanes`` and placed on ``target``. ``lanes`` None: the target's default, or, when a model
    with external weights does not fit beside its on-chip buffers at that many lanes (wider lane
    groups need deeper tiles), the most lanes below it, halving, that fit; ``why`` then says so.
    Nothing fits: the default's :class:`BudgetError` (its table)."""
    first = None
    for n in ([lanes] if lanes is not None else _fewer_lanes(target.default_lanes)):
        lowered = lower_to_program(g, n, validate=False)
        _check_activations_fit(lowered, target)
        try:
            prog, why = place_weights(lowered, target, weights)
            budget = check_budget(prog, target, lanes_given=True, weights=weights)  # raises with the table
        except BudgetError as e:
            first = first or e
            if lanes is not None or not external_reason(lowered, target, weights):
                raise first
            continue
        if first is not None:
            why = (f"{why}; {n} lanes: with the target's default {target.default_lanes}, the on-chip weight "
                   f"buffer and accumulators do not fit beside the other memories")
        return prog, why, budget, n
    tried = _fewer_lanes(target.default_lanes)[1:]
    if lanes is None and tried and first is not None:
        raise BudgetError(f"{first} (at {target.default_lanes} lanes; "
                          f"{', '.join(map(str, tried))} do not fit either)") from None
    raise first


def _check_activations_fit(prog: Program, target: Target) -> None:
    """Activations (ACT) stay on chip: weights can live in external memory, feature maps cannot
    yet. One line when they alone exceed the target's on-chip memory (or the ISA's addresses),
    rather than the first instruction whose ACT address does not fit its field."""
    from spikegate.machine.program import FIELDS

    bits = prog.act_words * prog.act_bits
    limit = 1 << dict(FIELDS)["dst"]
    if target.external_bits and (bits > target.bram_bits + target.spram_bits or prog.act_words > limit):
        raise BudgetError(f"the activations need {prog.act_words:,} words of {prog.act_bits} bits ({bits:,} bits) "
                          f"on chip, more than {target.name} has ({target.bram_bits + target.spram_bits:,} bits"
                          + (f", or the ISA's {limit:,} ACT addresses" if prog.act_words > limit else "")
                          + "): only weights can live in external memory so far; use a smaller input "
                            "(--img-size) or a smaller model")


def _fewer_lanes(n: int) -> list[int]:
    out = [n]
    while out[-1] > 1:
        out.append(out[-1] // 2)
    return out


def compile_ir(ir_path: str, target: Target | str, lanes: int | None, out_dir: str, *,
               predict_samples: int = 4, weights: str = "auto", progress=None) -> dict:
    """Compile the IR at ``ir_path`` for ``target`` into ``out_dir``; returns the report.
    ``target``: a :class:`Target` (a board's comes from ``spikegate.board_targets.compile_target``)
    or the name of one of the compiler's own targets (``sim``, ``large``: ``targets.py``).
    ``weights``: ``"auto"`` (block RAM unless they only fit the target's SPRAM or, on a target with
    external memory, do not fit on chip), ``"bitstream"``, ``"runtime"`` (SPRAM, loaded over the
    host link) or ``"external"`` (streamed from external memory); see ``passes/budget.py``.
    ``progress(name)``, if given, is told each step as it starts (the CLI shows it)."""
    from . import iss

    step = progress or (lambda name: None)

    target = resolve_target(target)
    g = load_ir(ir_path)
    if lanes is not None and not 1 <= lanes <= 256:
        raise SpikegateError(f"--lanes must be in 1..256, not {lanes}")
    prog, why, budget, lanes = _placed(g, target, lanes, weights)
    step("predicting cycles (instruction-set simulator)")
    x, desc = sample_inputs(g, predict_samples) if predict_samples else (None, "")
    predicted = []
    if x is not None:
        for r in iss.run_batch(prog, x):
            predicted.append({"cycles": r.cycles, "sops": r.sops, "macs": r.macs})
    estimates = [iss.estimate_cycles(prog, rate) for rate in (0.0, 0.1, 0.2)]
    ir_bytes = open(ir_path, "rb").read()
    word_bits = prog.lanes * prog.weight_bits
    wrep = dict(budget["weights"], words=int(len(prog.wmem)), word_bits=word_bits,
                bits=int(len(prog.wmem)) * word_bits, bytes_per_word=(word_bits + 7) // 8)
    image = ext_image = None
    if wrep["loading"] == "runtime-loaded":
        image = weight_image(prog)
        wrep.update(image=WEIGHT_IMAGE, sha256=hashlib.sha256(image).hexdigest())
    if prog.external:
        ext_image = external_image(prog)
        wrep.update(why=why, external_image=EXTERNAL_IMAGE, external_sha256=hashlib.sha256(ext_image).hexdigest(),
                    wloads=sum(1 for i in prog.instrs if i.opcode == OP_WLOAD))
    report = {
        "spikegate_version": __version__,
        "target": target.name, "board": target.board, "clock_mhz": target.clock_mhz,
        "lanes": lanes,
        "ir_sha256": hashlib.sha256(ir_bytes).hexdigest(),
        "T": prog.T, "num_pixels": prog.num_pixels, "num_classes": prog.num_classes,
        "pixel_bits": prog.pixel_bits, "logit_bits": prog.logit_bits, "input_scale": prog.input_scale,
        "widths": {k: getattr(prog, k) for k in ("act_bits", "mul_x_bits", "acc_bits", "membrane_bits", "state_bits",
                                                  "kv_bits", "weight_bits", "bias_bits", "shift_bits", "thresh_bits",
                                                  "sat_bits")},
        "memories": {"act_words": prog.act_words, "spk_words": prog.spk_words, "acc_words": prog.acc_words,
                     "wmem_words": int(len(prog.wmem)), "bits": budget["memory_bits"]},
        "resources": budget["resources"],
        "weights": wrep,
        "instructions": len(prog.instrs),
        "predicted_cycles": [p["cycles"] for p in predicted],
        # images/s at the target's requested clock, over the predicted images' mean cycles, or, with
        # no held-out images for this model, the cycle model's estimate at a 10 % firing rate
        "predicted_images_per_s": (round(target.clock_mhz * 1e6 * len(predicted) /
                                         sum(p["cycles"] for p in predicted), 2) if predicted else
                                   round(target.clock_mhz * 1e6 / estimates[1]["cycles"], 2)),
        "images_per_s_from": desc if predicted else f"the cycle estimate at firing rate {estimates[1]['rate']:g} "
                                                     f"(no data set matches this model's input)",
        "predicted_on": desc,
        "predicted_detail": predicted,
        "cycle_estimates": estimates,
        "op_counts": _op_counts(g),
    }
    parent = os.path.dirname(os.path.abspath(out_dir)) or "."
    if not os.path.isdir(parent):
        raise SpikegateError(f"-o {out_dir}: parent folder {parent} does not exist")
    if os.path.exists(out_dir) and not os.path.isfile(os.path.join(out_dir, REPORT)) and os.listdir(out_dir):
        raise SpikegateError(f"-o {out_dir}: exists and is not a spikegate build directory; choose another")
    tmp = tempfile.mkdtemp(prefix=".sfbuild-", dir=parent)
    try:
        with open(os.path.join(tmp, "model.sgir"), "wb") as f:
            f.write(ir_bytes)
        with open(os.path.join(tmp, "program.txt"), "w") as f:
            f.write(prog.describe() + "\n")
        images = {"program.hex": _hex_lines([i.encode() for i in prog.instrs], 256),
                  "wmem.hex": _wmem_lines(prog), "bias.hex": _hex_lines(prog.bias, prog.bias_bits),
                  "shift.hex": _hex_lines(prog.shift, prog.shift_bits),
                  "thresh.hex": _hex_lines(prog.thresh, prog.thresh_bits)}
        for name, text in images.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        if image is not None:
            with open(os.path.join(tmp, WEIGHT_IMAGE), "wb") as f:
                f.write(image)
        if ext_image is not None:
            with open(os.path.join(tmp, EXTERNAL_IMAGE), "wb") as f:
                f.write(ext_image)
        step("emitting Verilog")
        _emit_verilog(prog, os.path.join(tmp, "accelerator.v"), weights_storage(report))
        report["verilog"] = "accelerator.v"
        with open(os.path.join(tmp, REPORT), "w") as f:
            json.dump(report, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(tmp, 0o755)
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except OSError as e:
        raise SpikegateError(f"-o {out_dir}: cannot write the build directory ({e.strerror or e})") from None
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return report


def _emit_verilog(prog: Program, path: str, weights: str = "rom") -> None:
    from spikegate.hw.accelerator import emit_verilog   # imported here: Amaranth takes a second

    emit_verilog(prog, path, weights=weights)


def _op_counts(g: Graph) -> dict:
    from spikegate.quantize.stats import dense_flops

    fl = dense_flops(g)
    kinds: dict[str, int] = {}
    for o in g.ops:
        kinds[o.kind] = kinds.get(o.kind, 0) + 1
    return {"ops_by_kind": kinds, "dense_flops_per_step": int(sum(fl.values())),
            "multiplier_ops": [o.name for o in g.ops if o.kind == "conv" and o.attrs["in_kind"] == "int"]}


def read_build(build_dir: str) -> tuple[dict, Graph, Program]:
    """Open a build directory, checking it is complete and consistent."""
    rp = os.path.join(build_dir, REPORT)
    if not os.path.isdir(build_dir):
        raise SpikegateError(f"{build_dir}: not a directory (run `spikegate compile` first)")
    if not os.path.isfile(rp):
        raise SpikegateError(f"{build_dir}: no {REPORT}: not a spikegate build directory, or incomplete")
    try:
        with open(rp) as f:
            report = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpikegateError(f"{rp}: corrupt ({e})") from None
    for key in ("lanes", "target", "ir_sha256"):
        if key not in report:
            raise SpikegateError(f"{rp}: missing key {key!r}; recompile the build directory")
    sgir = os.path.join(build_dir, "model.sgir")
    if not os.path.isfile(sgir):
        raise SpikegateError(f"{build_dir}: model.sgir is missing; recompile the build directory")
    if hashlib.sha256(open(sgir, "rb").read()).hexdigest() != report["ir_sha256"]:
        raise SpikegateError(f"{build_dir}: model.sgir does not match report.json (modified?); recompile")
    g = load_ir(sgir)
    w = report.get("weights") or {}
    prog = lower_to_program(g, int(report["lanes"]), validate=w.get("where") != "sdram")
    acc_words = (report.get("memories") or {}).get("acc_words")
    if w.get("where") != "sdram" and acc_words and acc_words < prog.acc_words:   # passes/acc_tiles.py
        tiled = acc_tiled(prog, int(acc_words))
        if tiled is None:
            raise SpikegateError(f"{rp}: its acc_words ({acc_words}) cannot be reached by tiling; recompile")
        prog = validate_program(tiled)
    if w.get("where") == "sdram":
        prog = external_weights(prog, int(w.get("port_bits", 16)), w.get("buffer_words"), w.get("acc_words"))  # its tiling
    return report, g, prog


def read_weight_image(build_dir: str, report: dict) -> bytes:
    """The runtime weight image of a build whose weights are runtime-loaded, checked against
    ``report.json`` (size and sha256)."""
    w = report.get("weights") or {}
    if w.get("loading") != "runtime-loaded":
        raise SpikegateError(f"{build_dir}: its weights are in the bitstream, not loaded at run time")
    path = os.path.join(build_dir, w.get("image") or WEIGHT_IMAGE)
    want = int(w.get("words", -1)) * int(w.get("bytes_per_word", 0))
    return read_checked_image(path, want, w.get("sha256"), "weight image",
                              f"report.json says {w.get('words')} words of {w.get('bytes_per_word')} bytes")


def read_checked_image(path: str, size: int, sha256: str | None, what: str, expected: str = "") -> bytes:
    """The bytes of a build's image file (``weights.bin``, ``sdram.bin``), refused in one line unless
    they have the ``size`` and ``sha256`` that ``report.json`` recorded."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise SpikegateError(f"{path}: cannot read the {what} ({e.strerror or e}); recompile "
                              f"the build directory") from None
    if len(data) != size:
        raise SpikegateError(f"{path}: {len(data):,} bytes, {expected or f'report.json says {size:,}'}; "
                              "recompile the build directory")
    if hashlib.sha256(data).hexdigest() != sha256:
        raise SpikegateError(f"{path}: sha256 does not match report.json (modified?); recompile")
    return data


def load_core(build_dir: str):
    """The accelerator core of a build directory, as an Amaranth component (for board wrappers)."""
    from spikegate.hw.accelerator import Accelerator

    report, _, prog = read_build(build_dir)
    return Accelerator(prog, weights=weights_storage(report))
