"""`make demo`: the whole pipeline on the embedded default model, with a report.

Each step is one of the CLI's own verbs, run in-process, so the demo exercises exactly what users
run. A verb that is not part of this install is reported as "not available", never faked.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

from spikegate import report as report_mod
from spikegate.board_build import SMALL_CHECKPOINT, compile_for_board, synth_board
from spikegate.board_targets import demo_boards
from spikegate.io import write_json

BOARDS = tuple(demo_boards())
REPORT_MIN_COLOURS = 500  # a rendered report.png has thousands (plots, anti-aliased text); a blank page a few


def _have(verb: str) -> bool:
    return importlib.util.find_spec(f"spikegate.commands.{verb}") is not None


class _Tee(io.StringIO):
    """Keeps what a verb writes to stderr (for the demo's error messages) and passes it on to the
    terminal, so the verbs' progress bars show; ``isatty`` is the terminal's (tqdm asks it)."""

    def __init__(self, through):
        super().__init__()
        self.through = through

    def write(self, s):
        self.through.write(s)
        return super().write(s)

    def flush(self):
        self.through.flush()

    def isatty(self):
        return self.through.isatty()


def _cli(argv: list[str]) -> tuple[int, str, str]:
    from spikegate.cli import main

    out, err = io.StringIO(), _Tee(sys.stderr)
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


class Demo:
    def __init__(self, out: str, samples: int, checkpoint: str, small_checkpoint: str, boards, sim: str,
                 sdram_model: str = "", sdram_samples: int = 1):
        self.out = out
        self.sdram_model = sdram_model
        self.sdram_samples = sdram_samples
        self.samples = samples
        self.checkpoint = checkpoint
        self.small_checkpoint = small_checkpoint
        self.boards = list(boards)
        self.sim = sim
        self.timings: dict[str, float] = {}
        self.notes: list[str] = []
        self.res: dict = {}
        os.makedirs(out, exist_ok=True)

    def step(self, name: str, argv: list, json_out: bool = False):
        """Run one verb in-process, timed; a failure ends the demo."""
        rc, out, err = self.verb(name, argv, allow_fail=False)
        if not json_out:
            print("    " + out.rstrip().replace("\n", "\n    "))
        return json.loads(out) if json_out else out

    def verb(self, name: str, argv: list, allow_fail: bool) -> tuple[int, str, str]:
        print(f"==> [{len(self.timings) + 1}] {name}: spikegate {' '.join(str(a) for a in argv)}", flush=True)
        t0 = time.time()
        rc, out, err = _cli(argv)
        self.timings[name] = round(time.time() - t0, 2)
        if rc != 0 and not allow_fail:
            sys.stderr.write(out + err)
            raise SystemExit(f"demo: step '{name}' failed (exit {rc})")
        return rc, out, err

    def run(self) -> None:
        from spikegate.quantize.checkpoint import load_model
        from spikegate.quantize.data import digits_split_xy

        o = self.out
        info = self.step("info", ["info", self.checkpoint, "--json"], json_out=True)
        model, _ = load_model(self.checkpoint)
        x, y = digits_split_xy("test", img_size=model.cfg.img_size)
        inputs = os.path.join(o, "inputs.npy")
        np.save(inputs, x[: self.samples])
        np.save(os.path.join(o, "labels.npy"), y[: self.samples])
        sgir = os.path.join(o, "default.sgir")
        qrep = self.step("quantize", ["quantize", self.checkpoint, "--calib", "digits", "-o", sgir, "--json"],
                         json_out=True)
        ev_f = self.step("eval float", ["eval", self.checkpoint, "--data", "digits", "--json"], json_out=True)
        ev_i = self.step("eval golden", ["eval", sgir, "--data", "digits", "--json"], json_out=True)
        self.step("golden", ["golden", sgir, "--inputs", inputs, "--out", os.path.join(o, "golden_logits.npy"),
                             "--trace", os.path.join(o, "trace")])
        stats = self.step("stats", ["stats", sgir, "--inputs", inputs, "--json"], json_out=True)
        self.step("export-onnx float", ["export-onnx", self.checkpoint, "-o", os.path.join(o, "float.onnx")])
        self.step("export-onnx int", ["export-onnx", sgir, "-o", os.path.join(o, "int.onnx")])
        self.res.update(info=info, quant=qrep, stats=stats,
                        accuracy={"float": ev_f["top1"], "integer": ev_i["top1"]},
                        eval={"float": ev_f, "integer": ev_i},
                        classification=held_out_predictions(self.checkpoint, sgir, ev_f, ev_i))
        builds = self.compile_boards(sgir)
        builds.update(self.sdram_build())
        self.res["memories"] = {key: memory_summary(rep) for key, (_, _, rep, _) in builds.items()}
        synth = self.start_synth(builds)
        self.verify(builds)
        self.finish_synth(builds, synth)
        self.write_report(info, qrep, ev_f, ev_i, stats)

    def compile_boards(self, sgir: str) -> dict:
        """``{board: (board, build dir, report, inputs .npy for it)}`` for the boards something fits."""
        builds = {}
        small_sgir = os.path.join(self.out, "small.sgir")
        for board in self.boards:
            step_names = {"compile": f"compile {board}", "quantize small": "quantize small",
                          "compile small": f"compile {board} (small model)"}

            def run(step, argv, names=step_names):
                return self.verb(names[step], argv, allow_fail=step != "quantize small")

            built = compile_for_board(run, sgir, board, os.path.join(self.out, board),
                                      small_checkpoint=self.small_checkpoint or None, small_sgir=small_sgir)
            if built.fell_back:
                self.notes.append(f"The default model does not fit {board}: {built.refused.splitlines()[0]} The "
                                  f"{board} build uses the smaller embedded model `{self.small_checkpoint}`.")
            if built.report is None:
                self.notes.append(f"{board}: not compiled: {built.error}")
                continue
            bdir, rep = built.build_dir, built.report
            self.res.setdefault("board_models", {})[board] = \
                self.small_checkpoint if built.fell_back else self.checkpoint
            inputs = self.small_inputs() if built.fell_back else os.path.join(self.out, "inputs.npy")
            w = rep.get("weights") or {}
            if w.get("loading") == "runtime-loaded":
                upload_s = w["words"] * w["bytes_per_word"] * 10 / 115200
                self.notes.append(
                    f"{board}: the weights ({w['words']:,} words of {w['word_bits']} bits) do not fit the block "
                    f"RAM with the rest; they live in the iCE40's SPRAM ({w['spram']['blocks']} of its "
                    f"SB_SPRAM256KA blocks), which the bitstream cannot initialise, so they are loaded at run "
                    f"time over the UART: `spikegate run --port DEV --build {bdir} --inputs X.npy` uploads "
                    f"`weights.bin` (sha256 {w['sha256'][:16]}...) when the board asks for it, about "
                    f"{upload_s:.1f} s at 115200 baud. The RTL verification writes them through the core's "
                    f"weight port before the first image.")
            builds[board] = (board, bdir, rep, inputs)
        return builds

    def sdram_build(self) -> dict:
        """The model bigger than the chip (``--sdram-model``, the embedded ``mnist`` by default):
        quantized on its own data set and compiled for the ULX3S, where its weights must live in
        the SDRAM; verified and synthesised with the boards' builds. ``{}`` when disabled or when
        the ULX3S is not among the boards."""
        board = "ulx3s-85f"
        if not self.sdram_model or board not in self.boards:
            return {}
        from spikegate.quantize.checkpoint import load_model
        from spikegate.quantize.data import dataset

        model, ck = load_model(self.sdram_model)
        data = ck.args.get("data") or "mnist"       # the data set it was trained on
        key = f"{board} ({self.sdram_model}, SDRAM)"
        o = self.out
        sgir, bdir = os.path.join(o, f"{self.sdram_model}.sgir"), os.path.join(o, f"{board}-sdram")
        x, _ = dataset(data).split_xy("test", model.cfg.img_size, self.sdram_samples)
        inputs = os.path.join(o, f"inputs-{self.sdram_model}.npy")
        np.save(inputs, x)
        q = self.step(f"quantize {self.sdram_model}", ["quantize", self.sdram_model, "--calib", data, "-o", sgir,
                                                       "--json"], json_out=True)
        rep = self.step(f"compile {key}", ["compile", sgir, "--target", board, "-o", bdir, "--json"], json_out=True)
        w = rep.get("weights") or {}
        if w.get("where") != "sdram":
            raise SystemExit(f"demo: {self.sdram_model} was meant to need the SDRAM on {board}, but its weights "
                             f"went to {w.get('where')!r}")
        self.res["board_models"] = dict(self.res.get("board_models") or {}, **{key: self.sdram_model})
        self.res["sdram_model"] = {"model": self.sdram_model, "data": data, "quantize": q}
        self.notes.append(
            f"{key}: `{self.sdram_model}` ({sum(t.numel() for t in model.parameters()):,} parameters) does not fit the block RAM: "
            f"its weights ({w['external_bits']:,} bits packed, `{w['external_image']}`) live in the SDRAM and "
            f"{w['wloads']:,} WLOAD instructions stream them into a {w['buffer_words']:,}-word on-chip buffer; "
            f"`verify` serves them from a model of the memory with the cycle model's timing. On a real board "
            f"the SDRAM is empty at power-up: `spikegate run` must upload `{w['external_image']}` first.")
        return {key: (board, bdir, rep, inputs)}

    def small_inputs(self) -> str:
        """The held-out digits at the small model's input size (its own inputs .npy)."""
        from spikegate.quantize.checkpoint import load_model
        from spikegate.quantize.data import digits_split_xy

        model, _ = load_model(self.small_checkpoint)
        x, _ = digits_split_xy("test", img_size=model.cfg.img_size)
        path = os.path.join(self.out, "inputs-small.npy")
        np.save(path, x[: self.samples])
        return path

    def verify(self, builds: dict) -> None:
        if not _have("verify"):
            self.notes.append("RTL verification: not available in this install (spikegate verify missing).")
            return
        self.res["verify"] = {}
        pred, meas = [], []
        for key, (board, bdir, rep, inputs) in builds.items():
            v = self.step(f"verify {key} ({self.sim})", ["verify", bdir, "--inputs", inputs, "--sim", self.sim,
                                                        "--json"], json_out=True)
            self.res["verify"][key] = v
            if not v["bit_exact"]:
                raise SystemExit(f"demo: {key}: RTL logits differ from the golden model")
            pred += v["predicted_cycles"]
            meas += v["cycles"]
        self.res["cycles"] = {"predicted": pred, "measured": meas}

    def start_synth(self, builds: dict) -> "BackgroundSynth | None":
        """Start the boards' synthesis (in child processes) beside the RTL verification.

        Yosys/nextpnr use one core and the RTL simulation the other (the 2 cores the demo is
        budgeted for); once verify is done the remaining boards take that core too, so the
        longest board's synthesis, not the sum of every step, sets the demo's wall time.
        """
        if not _have("synth"):
            self.notes.append("Bitstreams: not available in this install (spikegate synth missing).")
            return None
        print(f"==> synthesis of {', '.join(builds)} starts in the background (one board at a time "
              f"while verify runs, two after; logs: <board dir>/{BackgroundSynth.CONSOLE})", flush=True)
        return BackgroundSynth(builds).start()

    def finish_synth(self, builds: dict, synth: "BackgroundSynth | None") -> None:
        if synth is None:
            return
        results = synth.wait()
        self.res["boards"] = {}
        for key, (board, bdir, rep, _) in builds.items():
            rc, out, err, seconds = results[key]
            self.timings[f"synth {key} (background)"] = seconds
            print(f"==> [{len(self.timings)}] synth {key}: spikegate synth {bdir} --board {board} --json "
                  f"({seconds:.0f} s, in the background)", flush=True)
            # the board's build directory holds its synth.json (synth writes it one level down,
            # beside the bitstream; a failed fit's synth.json has the error and what it needed)
            written = os.path.join(bdir, board, "synth.json")
            if os.path.exists(written):
                shutil.copyfile(written, os.path.join(bdir, "synth.json"))
            if rc != 0:
                self.notes.append(f"{key}: synthesis failed: {err}")
                continue
            self.res["boards"][key] = json.loads(out)

    def write_report(self, info, qrep, ev_f, ev_i, stats) -> None:
        o = self.out
        lead = (f"Model `{self.checkpoint}`: embed_dim {info['embed_dim']}, {info['num_heads']} heads, "
                f"{info['params']:,} parameters, T={info['T']}, input {info['in_channels']}x{info['img_size']}x"
                f"{info['img_size']}. Every number below comes from a `spikegate` verb the demo ran "
                f"(`report.json` holds them all).")
        self.res.update(notes=self.notes, timings=self.timings)
        report_mod.write(o, self.res, lead=lead, images=np.load(os.path.join(o, "inputs.npy")),
                         labels=np.load(os.path.join(o, "labels.npy")),
                         logits=np.load(os.path.join(o, "golden_logits.npy")), trace_dir=os.path.join(o, "trace"))
        with open(os.path.join(o, "timings.json"), "w") as f:
            json.dump(self.timings, f, indent=1)
        write_json(os.path.join(o, "report.json"), self.res)
        print(f"==> wrote {os.path.join(o, 'report.md')} and report.html")
        self.check_report_renders()

    def check_report_renders(self) -> None:
        """Render report.html in headless Chromium into report.png: what a person sees, checked not blank."""
        html_path, png = os.path.join(self.out, "report.html"), os.path.join(self.out, "report.png")
        if report_mod.chromium() is None:
            print("==> report.png: not taken (chromium is not installed; .ci/setup-env installs it as root)")
            return
        try:
            report_mod.screenshot(html_path, png, height=9000, crop=True)
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            raise SystemExit(f"demo: report.html did not render in chromium: {e}")
        colours = report_mod.distinct_colours(png)
        if colours < REPORT_MIN_COLOURS:
            raise SystemExit(f"demo: {png} looks blank ({colours} distinct colours; a rendered report has "
                             f"thousands): open report.html in a browser to see what broke")
        print(f"==> rendered report.html in chromium: {png} ({colours} distinct colours)")


def memory_summary(rep: dict) -> dict:
    """Where a build's memories live, from its ``report.json``: the weights' place (``bram``,
    ``spram`` or ``sdram``) and how they get there, the on-chip memories' bits, and for SDRAM
    weights the packed image, its WLOADs and the on-chip buffer."""
    w = rep.get("weights") or {}
    out = {"weights": w.get("where"), "storage": w.get("storage"), "loading": w.get("loading"),
           "lanes": rep.get("lanes"), "on_chip_bits": (rep.get("memories") or {}).get("bits") or {}}
    if w.get("where") == "sdram":
        out.update(external_bits=w["external_bits"], wloads=w["wloads"], buffer_words=w["buffer_words"],
                   predicted_images_per_s=rep.get("predicted_images_per_s"), clock_mhz=rep.get("clock_mhz"))
    return out


def held_out_predictions(checkpoint: str, sgir: str, ev_f: dict, ev_i: dict) -> dict:
    """Per-image classes of the float and the integer model on the held-out split (the report's
    confusion matrix and per-class accuracy), checked against the counts `eval` printed, so the
    report's tables and plots cannot tell two stories."""
    import torch

    from spikegate.quantize import intops
    from spikegate.quantize.checkpoint import load_model
    from spikegate.quantize.data import digits_split_xy
    from spikegate.quantize.golden import execute
    from spikegate.quantize.irfile import load_ir

    model, _ = load_model(checkpoint)
    model.eval()
    x, y = digits_split_xy("test", img_size=model.cfg.img_size)
    with torch.no_grad():
        pf = np.concatenate([model(torch.as_tensor(x[i:i + 256])).argmax(1).numpy() for i in range(0, len(x), 256)])
    g = load_ir(sgir)
    xi, _ = digits_split_xy("test", img_size=g.ops[0].attrs["size"])
    pi = np.concatenate([intops.argmax(execute(g, xi[i:i + 256])) for i in range(0, len(xi), 256)])
    for name, pred, ev in (("float", pf, ev_f), ("integer", pi, ev_i)):
        if int((pred == y).sum()) != ev["correct"] or len(y) != ev["samples"]:
            raise SystemExit(f"demo: the {name} model's held-out predictions give {int((pred == y).sum())}/{len(y)} "
                             f"correct, but `spikegate eval` said {ev['correct']}/{ev['samples']}")
    return {"data": "digits (held-out split)", "labels": y.tolist(), "float": pf.tolist(), "integer": pi.tolist()}


class BackgroundSynth:
    """``spikegate synth`` for each board, in child processes, from a queue served by threads.

    ``start()`` begins with one worker (the RTL verification has the other core); ``wait()`` adds
    a second worker for the boards still queued, shows one bar over every board's flow stages,
    and returns ``{board: (exit code, stdout, error message, seconds)}``. The boards are taken in
    the order given (the demo lists the largest first).
    """

    CONSOLE = "synth-console.log"

    def __init__(self, builds: dict):
        self.jobs = [(key, board, bdir) for key, (board, bdir, _, _) in builds.items()]
        self.queue = list(self.jobs)
        self.lock = threading.Lock()
        self.running: dict[str, str] = {}           # build -> its synth output dir, while it runs
        self.results: dict[str, tuple[int, str, str, float]] = {}
        self.threads: list[threading.Thread] = []

    def start(self) -> "BackgroundSynth":
        self._add_worker()
        return self

    def _add_worker(self) -> None:
        t = threading.Thread(target=self._work, daemon=True)
        t.start()
        self.threads.append(t)

    def _work(self) -> None:
        while True:
            with self.lock:
                if not self.queue:
                    return
                key, board, bdir = self.queue.pop(0)
                self.running[key] = os.path.join(bdir, board)
            self.results[key] = synth_board(board, bdir, os.path.join(bdir, self.CONSOLE))
            with self.lock:
                del self.running[key]

    def _stages_done(self) -> int:
        from spikegate.board_targets.flow import FLOW_STAGES, flow_stage

        with self.lock:
            running = list(self.running.values())
        return len(self.results) * len(FLOW_STAGES) + sum(flow_stage(d) for d in running)

    def wait(self) -> dict:
        from spikegate import progress
        from spikegate.board_targets.flow import FLOW_STAGES

        if self.queue:
            self._add_worker()
        total = len(self.jobs) * len(FLOW_STAGES)
        with progress.bar(total, "synth (" + ", ".join(k for k, _, _ in self.jobs) + ")", unit="stage") as bar:
            def update(n):
                bar.n = n
                bar.refresh()
            with progress.poll(self._stages_done, update, interval=1.0):
                for t in self.threads:
                    t.join()
        return self.results


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m spikegate.demo")
    p.add_argument("--out", default="demo_out")
    p.add_argument("--samples", type=int, default=20, help="held-out digits run through the golden model and RTL")
    p.add_argument("--checkpoint", default="default")
    p.add_argument("--small-checkpoint", default=SMALL_CHECKPOINT, help="used where the default does not fit")
    p.add_argument("--boards", default=",".join(BOARDS))
    p.add_argument("--sim", default="verilator")
    p.add_argument("--sdram-model", default="mnist",
                   help="a model bigger than the chip, run from the ULX3S's SDRAM ('' skips it)")
    p.add_argument("--sdram-samples", type=int, default=1, help="its held-out images through the RTL (default 1: "
                   "an image of the mnist model is 3.2M cycles)")
    a = p.parse_args(argv)
    Demo(a.out, a.samples, a.checkpoint, a.small_checkpoint, [b for b in a.boards.split(",") if b], a.sim,
         a.sdram_model, a.sdram_samples).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
