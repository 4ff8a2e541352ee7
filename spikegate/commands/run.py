"""spikegate run: classify images on a board over its serial port.

Inputs are an ``.npy`` array, one image per row: ``[B, C, H, W]`` (or ``[B, num_pixels]``), flattened
in ``C, H, W`` order. Float images are quantised as the compiler's reference does
(``clip(floor(x * input_scale + 1/2))`` to ``pixel_bits`` signed bits), which needs ``--build`` (its
``report.json`` holds ``input_scale``); integer arrays are sent as they are. ``--build`` also checks
the device runs that build (INFO: pixels, classes, widths) and supplies the default baud rate from
``BUILD_DIR/<board>/synth.json``, or else the build's board's (3,000,000 on the ULX3S).

Runtime-loaded weights (iCE40 builds whose weights live in SPRAM, which the bitstream cannot
initialise): when INFO says the device's weights are not loaded (after configuration or a reset),
the weight image of ``--build`` (``weights.bin``, checked against ``report.json``'s sha256) is
uploaded first with LOAD_WEIGHTS frames, with a progress bar on stderr, each chunk's
acknowledgement checked, and INFO must then report them loaded. ``--load-weights`` uploads them
even when the device says it has weights (from another build of the same shape, say).

Weights in SDRAM (ULX3S builds whose weights do not fit on chip; INFO protocol version 3): the
SDRAM is empty at power-up. The build's ``sdram.bin`` (checked against ``report.json``'s
``external_sha256``, and its size against the device's word count: a short or modified file is
refused in one line before anything is sent) is first checked against the device with CHECK_SDRAM:
if the SDRAM already holds it (a CRC-32 over every word read back), nothing is uploaded; otherwise
(or with ``--load-weights``) it is written with LOAD_SDRAM frames, a progress bar on stderr, and
checked again: a read-back that does not match is one clear error (exit 2), and no image runs.

Per image: the class, the logits, the cycle count and the latency it means at the device's clock
(reported by INFO), and the wall time of the round trip (dominated by the UART).
"""

from __future__ import annotations

import json
import os

import numpy as np

from spikegate.commands._common import print_json
from spikegate.errors import InputArrayError, SpikegateError


def register(sub):
    import argparse

    p = sub.add_parser("run", help="run images on a board over its serial port",
                       description="Run images on a board over its serial port.",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="example:\n  spikegate data digits --count 4 -o x.npy && "
                              "spikegate run --port /dev/ttyUSB1 --build build/ --inputs x.npy")
    p.add_argument("--port", required=True, metavar="PORT", help="serial port (e.g. /dev/ttyUSB1) or pyserial URL")
    p.add_argument("--inputs", required=True, metavar="X.npy", help=".npy array of images [B, C, H, W] or [B, N]")
    p.add_argument("--build", metavar="BUILD_DIR", help="build directory (quantisation scale, checks, default baud, and the "
                                   "weights to upload when they are runtime-loaded)")
    p.add_argument("--baud", help="baud rate (default: from the build's synth.json, else its board's, else 115200)")
    p.add_argument("--timeout", default="5", help="seconds to wait for each response (default 5)")
    p.add_argument("--load-weights", action="store_true",
                   help="upload the build's runtime weights (SPRAM) or sdram.bin (SDRAM) even if the "
                        "device already has them")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=run)


def _read_build(build_dir: str) -> tuple[dict, int | None]:
    from spikegate.board_targets.flow import read_report

    report = read_report(build_dir)
    baud = None
    for name in filter(None, (report.get("board"), report.get("target"))):
        path = os.path.join(build_dir, name, "synth.json")
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    baud = int(json.load(f).get("baud") or 0) or None
            except (OSError, ValueError, json.JSONDecodeError):
                baud = None
            break
    if baud is None:          # not synthesised here: the board's rate (a bitstream built elsewhere)
        from spikegate.board_targets.boards import BOARDS
        board = BOARDS.get(report.get("board")) or BOARDS.get(report.get("target"))
        baud = board.baud if board is not None else None
    return report, baud


def quantize_images(arr: np.ndarray, report: dict | None, num_pixels: int, pixel_bits: int,
                    path: str) -> np.ndarray:
    """``[B, ...]`` -> int64 ``[B, num_pixels]`` in ``C, H, W`` order, checked against the device."""
    if arr.dtype.kind not in "fiu":
        raise InputArrayError(f"--inputs {path}: dtype {arr.dtype} is not numeric")
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise InputArrayError(f"--inputs {path}: shape {tuple(arr.shape)}; expected [B, C, H, W] or "
                              f"[B, N] with B >= 1")
    flat = arr.reshape(arr.shape[0], -1)
    if flat.shape[1] != num_pixels:
        raise InputArrayError(f"--inputs {path}: images have {flat.shape[1]} values "
                              f"(shape {tuple(arr.shape)}); the device takes {num_pixels}")
    if arr.dtype.kind == "f":
        if report is None or "input_scale" not in report:
            raise SpikegateError(f"--inputs {path} holds floats: give --build BUILD_DIR (its "
                                  f"report.json has the input_scale to quantise them with)")
        if not np.isfinite(flat).all():
            raise InputArrayError(f"--inputs {path}: contains NaN or Inf values")
        from spikegate.quantize.intops import quantize_input
        return quantize_input(flat, float(report["input_scale"]), pixel_bits)
    lo, hi = -(1 << (pixel_bits - 1)), (1 << (pixel_bits - 1)) - 1
    q = flat.astype(np.int64)
    if q.min() < lo or q.max() > hi:
        raise InputArrayError(f"--inputs {path}: integer pixels span {q.min()}..{q.max()}; the device "
                              f"takes {pixel_bits}-bit signed pixels ({lo}..{hi})")
    return q


def upload_weights(dev, info, report: dict | None, build_dir: str | None, port: str, *,
                   force: bool = False, show_progress: bool = True) -> dict | None:
    """Upload ``build_dir``'s runtime weights if the device needs them (or ``force``); returns what
    was done (for the JSON output), or None if the device takes no weights."""
    import sys
    import time

    from tqdm import tqdm

    if info.sdram:
        return upload_sdram(dev, info, report, build_dir, port, force=force, show_progress=show_progress)
    build_runtime = report is not None and (report.get("weights") or {}).get("loading") == "runtime-loaded"
    if report is not None and (report.get("weights") or {}).get("where") == "sdram":
        raise SpikegateError(f"the device on {port} runs a different build: its weights are not in SDRAM, "
                              f"{build_dir}'s are")
    if not info.runtime_weights:
        if build_runtime:
            raise SpikegateError(f"the device on {port} runs a different build: its weights are in its "
                                  f"bitstream, {build_dir}'s are runtime-loaded")
        if force:
            raise SpikegateError(f"--load-weights: the device on {port} has its weights in the "
                                  f"bitstream; there is nothing to upload")
        return None
    if not info.weights_needed and not force:
        return {"uploaded": False, "words": info.weight_words}
    if report is None or build_dir is None:
        raise SpikegateError(f"the device on {port} needs its weights loaded ({info.weight_words:,} "
                              f"words, in SPRAM): give --build BUILD_DIR, whose weights.bin has them")
    from spikegate.compiler.build import read_weight_image

    w = report.get("weights") or {}
    if w.get("loading") != "runtime-loaded":
        raise SpikegateError(f"the device on {port} needs runtime weights, but {build_dir} has its "
                              f"weights in the bitstream: the device runs another build")
    if (int(w.get("words", -1)), int(w.get("bytes_per_word", -1))) != \
            (info.weight_words, info.weight_bytes_per_word):
        raise SpikegateError(f"the device on {port} runs a different build: it takes "
                              f"{info.weight_words:,} weight words of {info.weight_bytes_per_word} bytes, "
                              f"{build_dir} has {w.get('words')} of {w.get('bytes_per_word')}")
    image = read_weight_image(build_dir, report)
    t0 = time.perf_counter()
    with tqdm(total=info.weight_words, unit="word", desc="weights", file=sys.stderr, leave=False,
              disable=not show_progress or None) as bar:
        dev.load_weights(image, progress=bar.update)
    seconds = time.perf_counter() - t0
    print(f"weights: {info.weight_words:,} words ({len(image):,} bytes, sha256 {w['sha256'][:16]}...) "
          f"uploaded in {seconds:.1f} s", file=sys.stderr)
    return {"uploaded": True, "words": info.weight_words, "bytes": len(image), "sha256": w["sha256"],
            "seconds": round(seconds, 3)}


def upload_sdram(dev, info, report: dict | None, build_dir: str | None, port: str, *,
                 force: bool = False, show_progress: bool = True) -> dict:
    """Make the device's SDRAM hold ``build_dir``'s ``sdram.bin``, verified (module docstring);
    returns what was done (for the JSON output)."""
    import sys
    import time

    from tqdm import tqdm

    from spikegate.compiler.build import EXTERNAL_IMAGE, read_checked_image
    from spikegate.machine.host_protocol import SDRAM_WORD_BYTES, sdram_crc

    words = info.weight_words
    if report is None or build_dir is None:
        if info.sdram_verified and not force:
            return {"uploaded": False, "verified": True, "words": words}
        raise SpikegateError(f"the device on {port} needs its weights in SDRAM ({words:,} 16-bit words, not "
                              f"verified): give --build BUILD_DIR, whose {EXTERNAL_IMAGE} has them")
    w = report.get("weights") or {}
    if w.get("where") != "sdram":
        raise SpikegateError(f"the device on {port} runs a different build: its weights are in SDRAM, "
                              f"{build_dir}'s are not")
    path = os.path.join(build_dir, w.get("external_image") or EXTERNAL_IMAGE)
    image = read_checked_image(path, words * SDRAM_WORD_BYTES, w.get("external_sha256"), "SDRAM image",
                               f"the device on {port} takes {words:,} 16-bit words "
                               f"({words * SDRAM_WORD_BYTES:,} bytes): another build?")
    sha = w["external_sha256"]
    if not force and dev.read_sdram_crc(words, sdram_crc(image)) == sdram_crc(image):
        dev.info()              # (now verified)
        return {"uploaded": False, "verified": True, "words": words, "sha256": sha}
    t0 = time.perf_counter()
    with tqdm(total=words, unit="word", desc="sdram", file=sys.stderr, leave=False,
              disable=not show_progress or None) as bar:
        dev.load_sdram(image, progress=bar.update)
    dev.check_sdram(image)
    seconds = time.perf_counter() - t0
    print(f"sdram: {words:,} words ({len(image):,} bytes, sha256 {sha[:16]}...) uploaded and read back "
          f"(CRC-32 matched) in {seconds:.1f} s", file=sys.stderr)
    return {"uploaded": True, "verified": True, "words": words, "bytes": len(image), "sha256": sha,
            "seconds": round(seconds, 3)}


def run(args):
    from spikegate.commands._common import positive_int
    from spikegate.host import Device
    from spikegate.io import load_array

    try:
        timeout = float(args.timeout)
    except ValueError:
        raise SpikegateError(f"--timeout must be a number of seconds, not {args.timeout!r}") from None
    if not 0 < timeout <= 3600:
        raise SpikegateError(f"--timeout must be in (0, 3600] seconds, not {args.timeout}")
    report, build_baud = _read_build(args.build) if args.build else (None, None)
    baud = positive_int("--baud", 300, 12_000_000)(args.baud) if args.baud else (build_baud or 115200)
    arr = load_array(args.inputs)

    results = []
    with Device.open(args.port, baud=baud, timeout=timeout) as dev:
        info = dev.info()
        if report is not None:
            for key in ("num_pixels", "num_classes", "pixel_bits", "logit_bits"):
                if getattr(info, key) != report[key]:
                    raise SpikegateError(f"the device on {args.port} runs a different build: {key} "
                                          f"{getattr(info, key)}, {args.build} has {report[key]}")
        images = quantize_images(arr, report, info.num_pixels, info.pixel_bits, args.inputs)
        weights = upload_weights(dev, info, report, args.build, args.port, force=args.load_weights,
                                 show_progress=not args.json)
        info = dev.cached_info         # (INFO again after an upload: weights loaded)
        for i, img in enumerate(images):
            r = dev.infer([int(v) for v in img])
            lat = r.latency_us(info.clk_hz)
            row = {"index": i, "class": r.cls, "logits": r.logits, "cycles": r.cycles,
                   "clock_mhz": info.clk_hz / 1e6 if info.clk_hz else None,
                   "latency_us": round(lat, 3) if lat is not None else None,
                   "wall_ms": round(r.wall_s * 1e3, 3)}
            results.append(row)
            if not args.json:
                lat_s = f"{lat:.1f} us at {info.clk_hz / 1e6:g} MHz" if lat is not None else "clock unknown"
                print(f"input {i}: class {r.cls}  logits {r.logits}  cycles {r.cycles}  "
                      f"latency {lat_s}  (wall {r.wall_s * 1e3:.1f} ms)")
    if args.json:
        print_json({"port": args.port, "baud": baud, "device": info.__dict__, "weights": weights,
                    "results": results})
    return 0
