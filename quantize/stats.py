"""Operation counts and the paper family's energy model, per layer.

Dense FLOPs are per time step and per sample. For a layer whose input is spikes,
``SOPs = input firing rate x T x dense FLOPs`` (synaptic operations: additions selected by spikes).
Multi-bit inputs (the first convolution on pixels, SepConv's ``pwconv2``) need multiply-accumulates:
they are counted as MACs. Energy, as the paper family states it (45 nm):
``E = E_MAC x FLOPs(first real-valued conv) + E_AC x SOPs(every other layer)``, with
E_MAC = 4.6 pJ and E_AC = 0.9 pJ. The paper counts every non-first layer as accumulates; we report
that figure and, beside it, one that charges ``pwconv2``'s multiply-accumulates at E_MAC.
"""

from __future__ import annotations

import numpy as np

from .golden import execute
from .graph import Graph

E_MAC_PJ = 4.6
E_AC_PJ = 0.9


def dense_flops(g: Graph) -> dict[str, int]:
    """Multiply-accumulates of a dense evaluation, per sample and time step, per weighted op."""
    out = {}
    prod = {o.name: o for o in g.ops}
    for o in g.ops:
        if o.kind == "conv":
            w = o.params["weight"]
            cout, ho, wo = o.shape
            out[o.name] = int(cout * ho * wo * w.shape[1] * w.shape[2] * w.shape[3])
        elif o.kind == "attention":
            C, H, W = o.shape
            N, d, h = H * W, C // o.attrs["heads"], o.attrs["heads"]
            out[o.name] = int(2 * h * N * d * d)  # K^T V and Q (K^T V)
        elif o.kind == "head":
            w = o.params["weight"]
            out[o.name] = int(w.shape[0] * w.shape[1] * w.shape[2])
    return out


def layer_stats(g: Graph, x: np.ndarray, *, mode: str, T: int | None = None) -> dict:
    T = int(T or g.meta.get("T", 1))
    trace: dict = {}
    execute(g, x, mode=mode, T=T, trace=trace)
    flops = dense_flops(g)
    prod = {o.name: o for o in g.ops}
    rows = []
    first = g.ops[1].name
    for o in g.ops:
        if o.name not in flops:
            continue
        src = prod[o.inputs[0]]
        row = {"op": o.name, "kind": o.kind, "dense_flops": flops[o.name]}
        if src.kind == "lif":
            rates = [float(trace[i][0].mean()) for i in o.inputs]
            rate = float(np.mean(rates))
            row.update(input_kind="spike", firing_rate=rate, sops=rate * T * flops[o.name], macs=0.0)
        else:
            reps = 1 if o.name == first else T
            row.update(input_kind="multi-bit", firing_rate=None, sops=0.0, macs=float(flops[o.name] * reps))
        rows.append(row)
    first_macs = next(r["macs"] for r in rows if r["op"] == first)
    other_macs = sum(r["macs"] for r in rows if r["op"] != first)
    sops = sum(r["sops"] for r in rows)
    e_paper = E_MAC_PJ * first_macs + E_AC_PJ * (sops + other_macs)
    e_honest = E_MAC_PJ * (first_macs + other_macs) + E_AC_PJ * sops
    lif_rates = {o.name: float(trace[o.name][0].mean()) for o in g.lif_ops()}
    return {
        "T": T, "samples": int(len(x)), "layers": rows, "lif_firing_rates": lif_rates,
        "total_dense_flops_per_step": int(sum(flops.values())),
        "total_sops": sops, "first_layer_macs": first_macs, "multibit_macs_other": other_macs,
        # Ops that need a multiplier: exactly those whose input is multi-bit. Every op fed by
        # spikes must be declared in_kind=spike in the IR (accumulate-only); count any that is not.
        "multiplier_ops": [r["op"] for r in rows if r["input_kind"] == "multi-bit"],
        "multiplier_ops_on_spike_path": sum(
            1 for o in g.ops if o.kind == "conv" and prod[o.inputs[0]].kind == "lif" and o.attrs["in_kind"] != "spike"),
        "energy_uj_paper": e_paper * 1e-6,
        "energy_uj_pwconv2_as_mac": e_honest * 1e-6,
        "energy_model": f"E = {E_MAC_PJ} pJ x MACs(first conv, once per sample) + {E_AC_PJ} pJ x (SOPs + "
                        "other multi-bit ops), per sample",
    }
