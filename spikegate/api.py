"""The Python API: the CLI's pipeline as functions, for scripts and notebooks.

Every function wraps the code the matching ``spikegate`` verb runs, so a result from Python is the
result the CLI gives; what the user handed in that is wrong raises a
:class:`~spikegate.errors.SpikegateError` (one line naming the argument and the fix), exactly the
line the CLI prints before exiting with 2.

Names avoid those of spikegate's sub-packages (``spikegate.quantize``, ``spikegate.verify``,
``spikegate.report``): importing one of those would replace a function of the same name on the
package. Heavy imports (PyTorch, Amaranth, cocotb) happen inside the functions, so
``import spikegate`` stays fast.

    >>> import spikegate as sg
    >>> ir, rep = sg.quantize_model("default", calib="digits")
    >>> x, y = sg.data("digits", count=4)
    >>> sg.golden(ir, x).argmax(1)            # integer logits -> classes
    >>> sg.compile_ir(ir, "sim", "build-sim")
    >>> sg.verify_rtl("build-sim", x)["bit_exact"]
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any

from spikegate.errors import SpikegateError

if TYPE_CHECKING:  # for the annotations only: importing these costs seconds
    import numpy as np

    from spikegate.quantize.graph import Graph
    from spikegate.quantize.model import MetaSpikeFormer

__all__ = ["models", "model_info", "data", "load_model", "init_checkpoint", "quantize_model", "save_ir", "load_ir", "input_range", "golden",
           "compile_ir", "verify_rtl", "synthesize", "write_report"]


def models() -> list[dict]:
    """The trained models that ship inside spikegate (``spikegate models --json``).

    One dict per model: ``name``, ``preset``, ``data``, ``T``, ``channels``, ``img_size``,
    ``classes``, ``heads``, ``params``, ``accuracy`` (held-out float top-1 in %, as recorded when
    it was trained) and ``samples``. A ``name`` works wherever a checkpoint path is accepted.
    """
    from spikegate.quantize.checkpoint import EMBEDDED_CHECKPOINTS

    return [model_info(name) for name in EMBEDDED_CHECKPOINTS]


def model_info(checkpoint: str) -> dict:
    """One checkpoint's row of :func:`models` (a path or an embedded name); ``preset`` is None for
    a shape no preset has."""
    from spikegate.quantize.checkpoint import infer_config, load_checkpoint
    from spikegate.quantize.model import PRESETS

    ck = load_checkpoint(checkpoint)
    cfg = infer_config(ck)
    preset = next((p for p, pc in PRESETS.items() if pc.replace(T=cfg.T) == cfg), None)
    return {"name": checkpoint, "preset": preset, "data": ck.args.get("data"), "T": cfg.T,
            "channels": cfg.in_channels, "img_size": cfg.img_size, "classes": cfg.num_classes,
            "heads": cfg.num_heads,
            "params": sum(int(v.numel()) for k, v in ck.state_dict.items()
                          if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))),
            "accuracy": ck.args.get("held_out_top1"), "samples": ck.args.get("held_out_samples")}


def data(name: str = "digits", count: int = 16, *, size: int = 32,
         split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """Inputs of a data set, encoded as the embedded models were trained (``spikegate data``).

    Returns ``(images float32 [count, C, size, size], labels int64 [count])``, the first ``count``
    of ``split`` (``"test"``: the held-out split no embedded model was trained on). ``size`` is the
    model's input side: 32 for ``default``, 16 for ``fpga-tiny-t2`` (see :func:`models`).
    """
    import numpy as np

    from spikegate.quantize.data import DATASETS, dataset

    if name not in DATASETS:
        raise SpikegateError(f"unknown data set {name!r}; known data sets: {', '.join(DATASETS)}")
    if split not in ("test", "train"):
        raise SpikegateError(f"split must be 'test' or 'train', not {split!r}")
    ds = dataset(name)
    try:
        size = ds.check_size(size)
    except ValueError as e:
        raise SpikegateError(f"size: {e}") from None
    x, y = ds.split_xy(split, size)
    if not isinstance(count, int) or not 1 <= count <= len(x):
        raise SpikegateError(f"count {count!r}: the {name} {split} split has 1..{len(x)} images")
    return np.ascontiguousarray(x[:count], dtype=np.float32), np.asarray(y[:count], dtype=np.int64)


def load_model(checkpoint: str, *, preset: str | None = None, heads: int | None = None,
               T: int | None = None) -> MetaSpikeFormer:
    """The float PyTorch model of a checkpoint (a path or an embedded name such as ``"default"``).

    Official Meta-SpikeFormer checkpoints load directly; the configuration is inferred from the
    tensor shapes (``heads`` is not recorded in checkpoints; ``T`` defaults to the checkpoint's).
    Files are read with ``torch.load(weights_only=True)``: a pickle that would run code is refused.
    Raises :class:`~spikegate.errors.CheckpointError` for a file that is not a matching checkpoint.
    """
    from spikegate.quantize.checkpoint import load_model as _load

    model, _ = _load(checkpoint, preset_name=preset, heads=heads, T=T)
    return model


def init_checkpoint(preset: str, out: str, *, img_size: int | None = None, classes: int | None = None,
                    T: int | None = None, seed: int = 0, bn_stats: int = 0, **shape) -> MetaSpikeFormer:
    """Write a randomly initialised checkpoint of ``preset`` to ``out`` (``spikegate init``).

    ``img_size``, ``classes`` and ``T`` resize the preset; ``shape`` may also set ``embed_dim``,
    ``depths``, ``in_channels``, ``num_heads`` and ``kd`` (:class:`ModelConfig` fields).
    ``bn_stats=N`` makes it look briefly trained (``spikegate.quantize.random_init``). Returns the
    model (eval mode); the file loads in every verb.
    """
    from spikegate.io import check_output_path
    from spikegate.quantize.model import preset as _preset
    from spikegate.quantize.random_init import write_random_checkpoint

    repl = dict(shape, **{k: v for k, v in (("img_size", img_size), ("num_classes", classes), ("T", T))
                          if v is not None})
    try:
        cfg = _preset(preset).replace(**repl)
        check_output_path(out, "file", "out")
        return write_random_checkpoint(cfg, out, seed=seed, bn_stats=bn_stats, extra_args={"preset": preset})
    except (ValueError, TypeError) as e:
        raise SpikegateError(f"init_checkpoint({preset!r}): {e}") from None


def quantize_model(checkpoint: str, out: str | None = None, *, calib: str | None = "digits",
                   weight_bits: int = 8, input_bits: int = 8, heads: int | None = None,
                   T: int | None = None, preset: str | None = None,
                   evaluate: bool = True, max_bits: int = 32,
                   stream_bits: int = 24, repconv: str = "merge") -> tuple[Graph, dict]:
    """Quantize a checkpoint to the integer IR (``spikegate quantize``); returns ``(ir, report)``.

    BatchNorm is folded, RepConv re-parameterised and weights rounded to ``weight_bits``;
    ``calib`` names the calibration data (``"digits"``) or ``None`` for synthetic inputs. The
    report holds ``layers`` (per-layer errors vs float), ``summary`` (float and integer top-1 and
    their argmax agreement on the held-out split) and ``config``; ``evaluate=False`` skips the
    accuracy for speed. ``max_bits``: no declared width exceeds it; activations the range
    analysis cannot bound within it saturate (``report["widths"]`` lists them with how often the
    calibration data hit each clamp); ``stream_bits``: activations are kept this narrow where the
    calibration data allows. ``repconv="split"``: each attention RepConv as its three convolutions
    (about 4.5x fewer weights for it) instead of one dense 3x3. ``out``: also save the IR there (an
    ``.sgir`` file, see :func:`save_ir`).
    """
    from spikegate.quantize.pipeline import quantize_checkpoint

    if out is not None:
        from spikegate.io import check_output_path

        check_output_path(out, "file", "out")
    g, report = quantize_checkpoint(checkpoint, calib=calib, weight_bits=weight_bits, input_bits=input_bits,
                                    heads=heads, T=T, preset=preset, evaluate=evaluate,
                                    max_bits=max_bits, stream_bits=stream_bits, repconv=repconv)
    if out is not None:
        save_ir(g, out)
    return g, report


def save_ir(ir: Graph, path: str) -> None:
    """Write an IR as an SGIR file (what ``spikegate quantize -o`` writes), atomically."""
    from spikegate.io import atomic_path
    from spikegate.quantize.irfile import save_ir as _save

    with atomic_path(path, ".sgir") as tmp:
        _save(ir, tmp)


def load_ir(path: str) -> Graph:
    """Read an SGIR file; raises :class:`~spikegate.quantize.irfile.IRFileError` (a
    ``SpikegateError``) naming what is wrong with a file that is not a valid IR."""
    from spikegate.quantize.irfile import load_ir as _load

    return _load(path)


def _ir(ir: Graph | str) -> Graph:
    return load_ir(ir) if isinstance(ir, (str, os.PathLike)) else ir


def _images(g: Graph, images: np.ndarray | str) -> np.ndarray:
    """A checked float image batch ``[B, C, S, S]`` for ``g``, from an array or an .npy path."""
    import numpy as np

    from spikegate.io import check_images, load_array

    if isinstance(images, (str, os.PathLike)):
        arr, where = load_array(str(images), "images"), str(images)
    else:
        arr, where = np.asarray(images), "array"
    qi = g.ops[0].attrs
    return check_images(arr, qi["channels"], where, "images", size=qi["size"])


def input_range(ir: Graph | str) -> tuple[tuple[float, float], str]:
    """``((low, high), wording)``: the input values an IR expects. Its calibration data set's range
    when that is a known set ("the model was trained on"), else what its input quantiser represents
    without clipping ("the model's input quantiser covers")."""
    from spikegate.quantize.data import DATASETS

    g = _ir(ir)
    calib = str((g.meta.get("source") or {}).get("calibration") or "")
    for name, ds in DATASETS.items():
        if calib == name or calib.startswith(name + " "):
            return ds.value_range, "the model was trained on"
    qi = g.ops[0].attrs
    half = 1 << (int(qi["bits"]) - 1)
    scale = float(qi["scale"])
    return (-half / scale, (half - 1) / scale), "the model's input quantiser covers"


def golden(ir: Graph | str, images: np.ndarray | str, *, T: int | None = None,
           trace: bool = False) -> np.ndarray | tuple[np.ndarray, dict]:
    """Run the bit-exact integer golden model (``spikegate golden``).

    ``ir``: an IR or an SGIR path; ``images``: float32 ``[B, C, S, S]`` (or an ``.npy`` path) in the
    range the model was trained on (:func:`data` makes them). Returns the integer logits
    ``int64 [B, classes]``; the class is their argmax (ties: the lowest index). With ``trace=True``
    returns ``(logits, trace)``, ``trace[lif name] = (spikes uint8, membranes)`` in
    ``[T, B, C, ...]`` layout. Raises :class:`~spikegate.quantize.golden.WidthError` if a value
    leaves its declared width (the range analysis says it cannot). Inputs outside
    :func:`input_range` (e.g. pixels 0..255 for a model trained on 0..1) get one warning line on
    stderr, as in the CLI: the model still answers, but nonsense.
    """
    from spikegate.io import warn_input_range
    from spikegate.quantize.golden import execute

    g = _ir(ir)
    x = _images(g, images)
    rng, source = input_range(g)
    warn_input_range(x, images if isinstance(images, (str, os.PathLike)) else "array", rng, "images", source)
    if T is not None and (not isinstance(T, int) or not 1 <= T <= 64):
        raise SpikegateError(f"T must be in 1..64, not {T!r}")
    tr: dict | None = {} if trace else None
    logits = execute(g, x, T=T, trace=tr)
    return (logits, tr) if trace else logits


def compile_ir(ir: Graph | str, target: str, out_dir: str, *, lanes: int | None = None,
               weights: str = "auto") -> dict:
    """Compile an IR into a build directory (``spikegate compile``); returns its ``report.json``.

    ``target``: ``"sim"`` (simulation), ``"large"``, or a board (``"icebreaker"``, ``"ulx3s-85f"``,
    ``"orangecrab"``). The build holds the program, memory images and ``accelerator.v``; a model
    that does not fit the target raises with a needs-vs-has table. ``lanes``: parallel accumulate
    lanes (default: the target's). ``weights``: ``"auto"``, ``"bitstream"`` or ``"runtime"``
    (SPRAM, uploaded by ``spikegate run``). An existing ``out_dir`` that is a build is replaced.
    """
    from spikegate.board_build import lookup_target
    from spikegate.compiler.build import compile_ir as _compile
    from spikegate.io import check_output_path

    tgt = lookup_target(target) if isinstance(target, str) else target
    if lanes is not None and (not isinstance(lanes, int) or not 1 <= lanes <= 256):
        raise SpikegateError(f"lanes must be in 1..256, not {lanes!r}")
    if weights not in ("auto", "bitstream", "runtime"):
        raise SpikegateError(f"weights must be 'auto', 'bitstream' or 'runtime', not {weights!r}")
    check_output_path(out_dir, "dir", "out_dir")
    if isinstance(ir, (str, os.PathLike)):
        return _compile(str(ir), tgt, lanes, out_dir, weights=weights)
    with tempfile.TemporaryDirectory(prefix="spikegate-") as tmp:   # the compiler reads an SGIR file
        path = os.path.join(tmp, "model.sgir")
        save_ir(ir, path)
        return _compile(path, tgt, lanes, out_dir, weights=weights)


def verify_rtl(build_dir: str, inputs: np.ndarray | str, *, sim: str = "verilator") -> dict:
    """Simulate a build's Verilog on ``inputs`` and compare with the golden model (``spikegate verify``).

    ``sim``: ``"verilator"`` (fast) or ``"icarus"``. Returns ``samples``, ``bit_exact`` (logits and
    every LIF layer's spike map equal the golden model's for every image), ``cycles`` (measured by
    the RTL), ``predicted_cycles`` (the cycle model's), ``mismatches`` (per differing image: its
    logits and the first differing layer), ``sim``, ``target`` and ``lanes``. The first call builds
    the simulator (about a minute on Verilator).
    """
    from spikegate.verify import verify

    if isinstance(inputs, (str, os.PathLike)):
        return verify(build_dir, str(inputs), sim=sim)
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="spikegate-") as tmp:   # the flow reads an .npy file
        path = os.path.join(tmp, "inputs.npy")
        np.save(path, np.asarray(inputs))
        return verify(build_dir, path, sim=sim)


def synthesize(build_dir: str, board: str, *, seed: int = 1) -> dict:
    """Synthesise a board build with Yosys and nextpnr (``spikegate synth``); returns ``synth.json``.

    The build must be compiled for ``board``. Writes the bitstream into ``build_dir/board/``; the
    result has ``fmax_mhz``, ``clock_mhz``, ``luts``/``ffs``/``bram``/``spram``/``dsp`` (``used``,
    ``available``), ``bitstream`` and ``seconds``. Takes minutes (the iCEBreaker's ``fpga-tiny-t2``
    about 3).
    """
    from spikegate.board_targets.flow import synthesize as _synth
    from spikegate.compiler.build import load_core

    if not isinstance(seed, int) or not 1 <= seed < 2**31:
        raise SpikegateError(f"seed must be in 1..{2**31 - 1}, not {seed!r}")
    return _synth(build_dir, board, load_core=load_core, seed=seed)


def write_report(out_dir: str, *, title: str = "spikegate report", lead: str = "",
                 quantized: dict | None = None, verify: dict | None = None, synth: dict[str, dict] | None = None,
                 images: np.ndarray | None = None, labels: np.ndarray | None = None,
                 logits: np.ndarray | None = None, trace: dict | None = None,
                 notes: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Write ``report.md`` and ``report.html`` (the writer ``make demo`` uses) into ``out_dir``.

    Every argument is optional; a section whose data is not given is left out:
    ``quantized``: :func:`quantize_model`'s report (float vs integer accuracy);
    ``verify``: a :func:`verify_rtl` result, or ``{name: result}`` for several builds (bit-exactness,
    measured vs predicted cycles); ``synth``: ``{board: synthesize() result}`` (resources, Fmax);
    ``images``, ``labels``, ``logits``: example inputs with their true classes and golden logits;
    ``trace``: the trace of ``golden(..., trace=True)`` on those images (a spike raster);
    ``notes``: Markdown lines. Returns the two files' paths.
    """
    import numpy as np

    from spikegate import report as report_mod
    from spikegate.io import check_output_path

    check_output_path(out_dir, "dir", "out_dir")
    os.makedirs(out_dir, exist_ok=True)
    res: dict[str, Any] = {"notes": list(notes)}
    summary = (quantized or {}).get("summary") or {}
    if "float_top1" in summary:          # the quantizer's accuracy on the held-out split
        n = int(summary["samples"])
        res["quant"] = quantized
        res["eval"] = {k: {"top1": summary[key], "samples": n, "correct": round(summary[key] * n / 100)}
                       for k, key in (("float", "float_top1"), ("integer", "int_top1"))}
    if verify:
        res["verify"] = {verify["target"]: verify} if "bit_exact" in verify else dict(verify)
    if synth:
        res["boards"] = dict(synth)
    examples = (images, labels, logits) if all(a is not None for a in (images, labels, logits)) else (None,) * 3
    with tempfile.TemporaryDirectory(prefix="spikegate-trace-") as tmp:   # the writer reads a trace folder
        for name, value in (trace or {}).items():
            spikes = value[0] if isinstance(value, tuple) else value
            np.save(os.path.join(tmp, f"{name}.npy"), np.asarray(spikes, dtype=np.uint8))
        report_mod.write(out_dir, res, title=title, lead=lead, images=examples[0], labels=examples[1],
                         logits=examples[2], trace_dir=tmp if trace else None)
    return [os.path.join(out_dir, "report.md"), os.path.join(out_dir, "report.html")]
