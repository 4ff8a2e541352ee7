"""spikeforge run: classify images on a board over its serial port.

Inputs are an ``.npy`` array, one image per row: ``[B, C, H, W]`` (or ``[B, num_pixels]``), flattened
in ``C, H, W`` order. Float images are quantised as the compiler's reference does
(``clip(floor(x * input_scale + 1/2))`` to ``pixel_bits`` signed bits), which needs ``--build`` (its
``report.json`` holds ``input_scale``); integer arrays are sent as they are. ``--build`` also checks
the device runs that build (INFO: pixels, classes, widths) and supplies the default baud rate from
``BUILD_DIR/<board>/synth.json``.

Per image: the class, the logits, the cycle count and the latency it means at the device's clock
(reported by INFO), and the wall time of the round trip (dominated by the UART).
"""

from __future__ import annotations

import json
import os

import numpy as np

from spikeforge.commands._common import print_json
from spikeforge.errors import InputArrayError, SpikeforgeError


def register(sub):
    p = sub.add_parser("run", help="run images on a board over its serial port")
    p.add_argument("--port", required=True, help="serial port (e.g. /dev/ttyUSB1) or pyserial URL")
    p.add_argument("--inputs", required=True, help=".npy array of images [B, C, H, W] or [B, N]")
    p.add_argument("--build", help="build directory (quantisation scale, checks, default baud)")
    p.add_argument("--baud", help="baud rate (default: from the build's synth.json, else 115200)")
    p.add_argument("--timeout", default="5", help="seconds to wait for each response (default 5)")
    p.add_argument("--json", action="store_true", help="print results as JSON")
    p.set_defaults(func=run)


def _read_build(build_dir: str) -> tuple[dict, int | None]:
    from spikeforge.commands.synth import read_report

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
            raise SpikeforgeError(f"--inputs {path} holds floats: give --build BUILD_DIR (its "
                                  f"report.json has the input_scale to quantise them with)")
        if not np.isfinite(flat).all():
            raise InputArrayError(f"--inputs {path}: contains NaN or Inf values")
        from spikeforge.quantize.intops import quantize_input
        return quantize_input(flat, float(report["input_scale"]), pixel_bits)
    lo, hi = -(1 << (pixel_bits - 1)), (1 << (pixel_bits - 1)) - 1
    q = flat.astype(np.int64)
    if q.min() < lo or q.max() > hi:
        raise InputArrayError(f"--inputs {path}: integer pixels span {q.min()}..{q.max()}; the device "
                              f"takes {pixel_bits}-bit signed pixels ({lo}..{hi})")
    return q


def run(args):
    from spikeforge.commands._common import positive_int
    from spikeforge.host import Device
    from spikeforge.io import load_array

    try:
        timeout = float(args.timeout)
    except ValueError:
        raise SpikeforgeError(f"--timeout must be a number of seconds, not {args.timeout!r}") from None
    if not 0 < timeout <= 3600:
        raise SpikeforgeError(f"--timeout must be in (0, 3600] seconds, not {args.timeout}")
    report, build_baud = _read_build(args.build) if args.build else (None, None)
    baud = positive_int("--baud", 300, 12_000_000)(args.baud) if args.baud else (build_baud or 115200)
    arr = load_array(args.inputs)

    results = []
    with Device.open(args.port, baud=baud, timeout=timeout) as dev:
        info = dev.info()
        if report is not None:
            for key in ("num_pixels", "num_classes", "pixel_bits", "logit_bits"):
                if getattr(info, key) != report[key]:
                    raise SpikeforgeError(f"the device on {args.port} runs a different build: {key} "
                                          f"{getattr(info, key)}, {args.build} has {report[key]}")
        images = quantize_images(arr, report, info.num_pixels, info.pixel_bits, args.inputs)
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
        print_json({"port": args.port, "baud": baud, "device": info.__dict__, "results": results})
    return 0
