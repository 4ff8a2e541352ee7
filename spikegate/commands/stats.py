"""spikegate stats: per-layer FLOPs, firing rates, SOPs and energy (paper's model)."""

from __future__ import annotations

from spikegate.commands._common import (add_verb, check_model_arg, checked_int, checkpoint_input_range,
                                        ir_input_range, print_json, steps)


def register(sub):
    p = add_verb(sub, "stats", "per-layer dense FLOPs, firing rates, SOPs and energy", [
        "spikegate data digits --count 16 -o x.npy && spikegate stats m.sgir --inputs x.npy"])
    p.add_argument("model", metavar="CKPT|MODEL.sgir",
                   help="checkpoint (float model; an embedded name works) or IR file (.sgir, golden model)")
    p.add_argument("--inputs", required=True, metavar="X.npy",
                   help="float32 images [B, C, H, W] in the range the model was trained on")
    p.add_argument("--T", dest="T", type=int, help="time steps, 1..64 (default: the model's)")
    p.add_argument("--heads", type=int, help="attention heads for a checkpoint (default: as recorded, else 8)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args):
    from spikegate.quantize.irfile import is_ir_file
    from spikegate.io import check_images, load_array, warn_input_range
    from spikegate.quantize.stats import layer_stats

    T = checked_int(args, "T", "--T", 1, 64)
    if is_ir_file(args.model):
        from spikegate.quantize.irfile import load_ir
        g = load_ir(args.model)
        mode = "int"
        rng, source = ir_input_range(g)
    else:
        from spikegate.quantize.checkpoint import load_model
        from spikegate.quantize.lower import lower
        check_model_arg(args.model)
        model, ck = load_model(args.model, heads=checked_int(args, "heads", "--heads", 1), T=T)
        g = lower(model)
        mode = "float"
        rng, source = checkpoint_input_range(ck), "the model was trained on"
    qi = g.ops[0].attrs
    x = check_images(load_array(args.inputs), qi["channels"], args.inputs, size=qi["size"])
    warn_input_range(x, args.inputs, rng, "--inputs", source)
    with steps("stats", quiet=args.json) as step:
        step(f"{len(x)} images")
        st = layer_stats(g, x, mode=mode, T=T)
    st["model"] = args.model
    st["kind"] = "golden" if mode == "int" else "float"
    if args.json:
        print_json(st)
        return 0
    print(f"{'op':<36}{'input':<10}{'rate':>7}{'dense FLOPs':>14}{'SOPs':>14}{'MACs':>14}")
    for r in st["layers"]:
        rate = "-" if r["firing_rate"] is None else f"{r['firing_rate']:.3f}"
        print(f"{r['op']:<36}{r['input_kind']:<10}{rate:>7}{r['dense_flops']:>14,}{r['sops']:>14,.0f}{r['macs']:>14,.0f}")
    print(f"per sample (T={st['T']}, {st['samples']} samples): SOPs {st['total_sops']:,.0f}, first-layer MACs "
          f"{st['first_layer_macs']:,.0f}, other multi-bit MACs {st['multibit_macs_other']:,.0f}")
    print(f"energy (paper's model): {st['energy_uj_paper']:.4f} uJ; with pwconv2 charged as MACs: "
          f"{st['energy_uj_pwconv2_as_mac']:.4f} uJ")
    print(f"ops needing a multiplier (multi-bit inputs): {len(st['multiplier_ops'])} "
          f"({', '.join(st['multiplier_ops'][:4])}{', ...' if len(st['multiplier_ops']) > 4 else ''}); "
          f"on the spike path: {st['multiplier_ops_on_spike_path']}")
    return 0
