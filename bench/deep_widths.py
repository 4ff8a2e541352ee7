"""Declared widths of deep models at 8-bit weights: the paper presets and an official-layout model.

    .venv/bin/python -m bench.deep_widths [--out bench/deep_widths.json] [--only NAME ...]

For each case, a random checkpoint in the official layout (``spikegate init``), quantized at 8-bit
weights with the default ``--max-bits 32`` on seeded random calibration images: the widest
declared width (``quantize/ranges.widest_word``), the saturation width and how many ops saturate,
how many calibration values the clamps changed, and the time quantize took. Issue 23's goal:
every width <= 32 bits. Too slow for ``make test`` (the 224x224 presets take minutes each);
``tests/test_deep_semantics.py`` tests the same flow on narrow official-layout models.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

import numpy as np

CASES = {
    # name: (preset, init overrides)
    "meta-spikeformer-15m@224": ("meta-spikeformer-15m", {}),
    "meta-spikeformer-31m@224": ("meta-spikeformer-31m", {}),
    "meta-spikeformer-55m@224": ("meta-spikeformer-55m", {}),
    "meta-spikeformer-15m@32": ("meta-spikeformer-15m", {"img_size": 32}),
    # the official layout of issue 23: 3.5M parameters, T = 4, head_kd, 100 classes, 64x64, with
    # the BatchNorm statistics of a briefly trained checkpoint
    "official-3.5m-t4-kd@64": ("fpga-small", dict(embed_dim=(32, 64, 128, 160), depths=(6, 2), T=4, kd=True,
                                                  classes=100, img_size=64, in_channels=3, num_heads=8,
                                                  bn_stats=3)),
}
CALIB_IMAGES = 2


def measure(name: str, workdir: str) -> dict:
    from spikegate import api
    from spikegate.quantize.pipeline import quantize_checkpoint

    preset, kw = CASES[name]
    ck = os.path.join(workdir, "m.pth")
    model = api.init_checkpoint(preset, ck, seed=0, **kw)
    cfg = model.cfg
    x = np.random.RandomState(0).rand(CALIB_IMAGES, cfg.in_channels, cfg.img_size, cfg.img_size)
    calib = os.path.join(workdir, "calib.npy")
    np.save(calib, x.astype(np.float32))
    t = time.perf_counter()
    g, rep = quantize_checkpoint(ck, calib=calib, evaluate=False)
    seconds = time.perf_counter() - t
    w = rep["widths"]
    sat = w["saturating_ops"]
    return {"preset": preset, "parameters": int(sum(p.numel() for p in model.parameters())),
            "img_size": cfg.img_size, "T": cfg.T, "kd": cfg.kd, "weight_bits": 8,
            "max_bits": w["max_bits"], "widest_bits": w["max_declared"],
            "saturation_bits": sat[0]["bits"] if sat else None, "saturating_ops": len(sat),
            "calibration_values_saturated": w["saturated_values"], "quantize_seconds": round(seconds, 1),
            "within_cap": w["max_declared"] <= w["max_bits"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.deep_widths", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "deep_widths.json"))
    p.add_argument("--only", nargs="*", choices=list(CASES), help="measure only these cases")
    args = p.parse_args(argv)
    results = {}
    for name in args.only or CASES:
        with tempfile.TemporaryDirectory() as d:
            results[name] = r = measure(name, d)
        print(f"{name:<28} {r['parameters']:>11,} params  widest {r['widest_bits']:>2} bits  "
              f"saturating ops {r['saturating_ops']:>2} at {r['saturation_bits']} bits  "
              f"calibration values clamped {r['calibration_values_saturated']}  ({r['quantize_seconds']} s)",
              flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"wrote {args.out}")
    return 0 if all(r["within_cap"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
