"""spikeforge export-onnx: a float checkpoint (or an integer .sfq model) as an ONNX graph."""

from __future__ import annotations

import os

from spikeforge.commands._common import checked_int
from spikeforge.errors import SpikeforgeError


def register(sub):
    p = sub.add_parser(
        "export-onnx",
        help="write a checkpoint (float) or a .sfq model (integer) as ONNX, time steps unrolled",
        description="Export to ONNX with the T time steps unrolled and every LIF as standard ops. "
                    "A checkpoint (.pth, or an embedded name such as 'default') gives the float "
                    "model: input 'images' [B, C, H, W] float32, output 'logits' [B, classes]. "
                    "A quantized model (.sfq) gives its integer graph.")
    p.add_argument("model", metavar="CKPT|MODEL.sfq", help="checkpoint file, embedded name, or .sfq model")
    p.add_argument("-o", "--out", required=True, metavar="OUT.onnx", help="where to write the ONNX file")
    p.add_argument("--T", dest="T", type=int, help="time steps to unroll (default: the checkpoint's)")
    p.add_argument("--heads", type=int, help="attention heads (default 8)")
    p.set_defaults(func=run)


def run(args):
    T = checked_int(args, "T", "--T", 1, 64)
    heads = checked_int(args, "heads", "--heads", 1)

    if args.model.lower().endswith(".sfq"):
        if heads is not None:
            raise SpikeforgeError(f"{args.model}: --heads applies to float checkpoints; a .sfq model fixes it")
        if not os.path.exists(args.model):
            raise SpikeforgeError(f"{args.model}: no such file")
        try:
            from spikeforge.quantize.onnx_int import export_int_onnx
        except ModuleNotFoundError as e:
            if e.name != "spikeforge.quantize.onnx_int":
                raise
            raise SpikeforgeError("integer ONNX export (.sfq models) is not available in this build") from None
        if T is None:
            export_int_onnx(args.model, args.out)
        else:
            export_int_onnx(args.model, args.out, T=T)
        print(f"wrote {args.out}: integer ONNX of {args.model}" + (f", T={T}" if T else ""))
        return 0

    from spikeforge.quantize.checkpoint import load_model
    from spikeforge.quantize.onnx_float import export_float_onnx

    model, _ = load_model(args.model, heads=heads, T=T)
    info = export_float_onnx(model, args.out, T=T or model.cfg.T)
    cfg = model.cfg
    print(f"wrote {args.out}: float ONNX (opset {info['opset']}), T={info['T']}, "
          f"images [B, {cfg.in_channels}, {cfg.img_size}, {cfg.img_size}] -> logits "
          f"[B, {cfg.num_classes}], {info['nodes']} nodes, {info['bytes'] / 1e6:.2f} MB")
    return 0
