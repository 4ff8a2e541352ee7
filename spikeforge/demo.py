"""`make demo`: the whole pipeline on the embedded default model, with a report.

Each step is one of the CLI's own verbs, run in-process, so the demo exercises exactly what users
run. Steps that are not built yet are listed as such in the report; none is faked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


def _cli(argv: list[str]) -> tuple[int, str]:
    import contextlib
    import io

    from spikeforge.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    return rc, buf.getvalue()


class Demo:
    def __init__(self, out: str, samples: int, checkpoint: str):
        self.out = out
        self.samples = samples
        self.checkpoint = checkpoint
        self.timings: dict[str, float] = {}
        self.sections: list[str] = []
        os.makedirs(out, exist_ok=True)

    def step(self, name: str, argv: list[str], json_out: bool = False):
        print(f"==> {name}: spikeforge {' '.join(argv)}", flush=True)
        t0 = time.time()
        rc, out = _cli(argv)
        self.timings[name] = round(time.time() - t0, 2)
        if rc != 0:
            print(out)
            raise SystemExit(f"demo: step '{name}' failed (exit {rc})")
        if not json_out:
            print(out.rstrip())
        return json.loads(out) if json_out else out

    def run(self) -> None:
        from spikeforge.quantize.data import digits_split_xy
        from spikeforge.quantize.checkpoint import load_model

        o = self.out
        info = self.step("info", ["info", self.checkpoint, "--json"], json_out=True)
        model, _ = load_model(self.checkpoint)
        x, y = digits_split_xy("test", img_size=model.cfg.img_size)
        np.save(os.path.join(o, "inputs.npy"), x[: self.samples])
        np.save(os.path.join(o, "labels.npy"), y[: self.samples])
        sfq = os.path.join(o, "default.sfq")
        qrep = self.step("quantize", ["quantize", self.checkpoint, "--calib", "digits", "-o", sfq, "--json"],
                         json_out=True)
        ev_f = self.step("eval-float", ["eval", self.checkpoint, "--data", "digits", "--json"], json_out=True)
        ev_i = self.step("eval-golden", ["eval", sfq, "--data", "digits", "--json"], json_out=True)
        self.step("golden", ["golden", sfq, "--inputs", os.path.join(o, "inputs.npy"), "--out",
                             os.path.join(o, "golden_logits.npy"), "--trace", os.path.join(o, "trace")])
        stats = self.step("stats", ["stats", sfq, "--inputs", os.path.join(o, "inputs.npy"), "--json"],
                          json_out=True)
        self.step("export-onnx", ["export-onnx", self.checkpoint, "-o", os.path.join(o, "float.onnx")])
        self.write_report(info, qrep, ev_f, ev_i, stats)

    def write_report(self, info, qrep, ev_f, ev_i, stats) -> None:
        s = qrep["summary"]
        lines = [
            "# spikeforge demo report", "",
            f"Model: `{self.checkpoint}`: embed_dim {info['embed_dim']}, {info['num_heads']} heads, "
            f"{info['params']:,} parameters, T={info['T']}, input {info['in_channels']}x{info['img_size']}x"
            f"{info['img_size']}.", "",
            "## Accuracy on the held-out digits", "",
            "| model | top-1 | samples |", "|---|---|---|",
            f"| float (PyTorch) | {ev_f['top1']:.2f}% | {ev_f['samples']} |",
            f"| integer golden model ({s['weight_bits']}-bit weights) | {ev_i['top1']:.2f}% | {ev_i['samples']} |",
            "", f"Argmax agreement float vs integer: {s['argmax_agreement']:.2f}%.", "",
            "## Operations and energy (per sample, paper's model)", "",
            f"SOPs {stats['total_sops']:,.0f}; first-layer MACs {stats['first_layer_macs']:,.0f}; other multi-bit "
            f"MACs {stats['multibit_macs_other']:,.0f}; energy {stats['energy_uj_paper']:.4f} uJ "
            f"({stats['energy_model']}).", "",
            "| LIF | firing rate |", "|---|---|",
        ] + [f"| {k} | {v:.3f} |" for k, v in stats["lif_firing_rates"].items()] + [
            "", "## Step timings (seconds)", "",
            "| step | seconds |", "|---|---|",
        ] + [f"| {k} | {v} |" for k, v in self.timings.items()] + [""]
        path = os.path.join(self.out, "report.md")
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(lines))
        os.replace(path + ".tmp", path)
        print(f"==> wrote {path}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m spikeforge.demo")
    p.add_argument("--out", default="demo_out")
    p.add_argument("--samples", type=int, default=20, help="held-out digits run through golden/RTL")
    p.add_argument("--checkpoint", default="default")
    a = p.parse_args(argv)
    Demo(a.out, a.samples, a.checkpoint).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
