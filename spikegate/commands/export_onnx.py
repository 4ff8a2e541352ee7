"""spikegate export-onnx: a float checkpoint (or an integer .sgir model) as an ONNX graph."""

from __future__ import annotations

import os

from spikegate.commands._common import check_model_arg, checked_int, steps
from spikegate.errors import SpikegateError


def register(sub):
    import argparse

    p = sub.add_parser(
        "export-onnx", formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  spikegate export-onnx default -o model.onnx\n"
               "  spikegate export-onnx m.sgir -o m_int.onnx",
        help="write a checkpoint (float) or a .sgir model (integer) as ONNX, time steps unrolled",
        description="Export to ONNX with the T time steps unrolled and every LIF as standard ops. "
                    "A checkpoint (.pth, or an embedded name such as 'default') gives the float "
                    "model: input 'images' [B, C, H, W] float32, output 'logits' [B, classes]. "
                    "A quantized model (.sgir) gives its integer graph.")
    p.add_argument("model", metavar="CKPT|MODEL.sgir", help="checkpoint file, embedded name, or .sgir model")
    p.add_argument("-o", "--out", required=True, metavar="OUT.onnx", help="where to write the ONNX file")
    p.add_argument("--T", dest="T", type=int, help="time steps to unroll (default: the checkpoint's)")
    p.add_argument("--heads", type=int, help="attention heads (default: as recorded in the checkpoint, else 8)")
    p.set_defaults(func=run)


def run(args):
    from spikegate.quantize.irfile import is_ir_file
    T = checked_int(args, "T", "--T", 1, 64)
    heads = checked_int(args, "heads", "--heads", 1)
    from spikegate.io import check_output_path

    check_output_path(args.out, "file", "-o")

    if is_ir_file(args.model):
        if heads is not None:
            raise SpikegateError(f"{args.model}: --heads applies to float checkpoints; a .sgir model fixes it")
        if not os.path.exists(args.model):
            raise SpikegateError(f"{args.model}: no such file")
        try:
            from spikegate.quantize.onnx_int import export_int_onnx
        except ModuleNotFoundError as e:
            if e.name != "spikegate.quantize.onnx_int":
                raise
            raise SpikegateError("integer ONNX export (.sgir models) is not available in this build") from None
        with steps("export-onnx") as step:
            step("integer graph")
            if T is None:
                export_int_onnx(args.model, args.out)
            else:
                export_int_onnx(args.model, args.out, T=T)
        print(f"wrote {args.out}: integer ONNX of {args.model}" + (f", T={T}" if T else ""))
        return 0

    from spikegate.quantize.checkpoint import load_model
    from spikegate.quantize.onnx_float import export_float_onnx

    check_model_arg(args.model)
    model, _ = load_model(args.model, heads=heads, T=T)
    with steps("export-onnx") as step:
        step("float graph")
        info = export_float_onnx(model, args.out, T=T or model.cfg.T)
    cfg = model.cfg
    print(f"wrote {args.out}: float ONNX (opset {info['opset']}), T={info['T']}, "
          f"images [B, {cfg.in_channels}, {cfg.img_size}, {cfg.img_size}] -> logits "
          f"[B, {cfg.num_classes}], {info['nodes']} nodes, {info['bytes'] / 1e6:.2f} MB")
    return 0
