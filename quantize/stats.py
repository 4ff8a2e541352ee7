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
    rows = formula_rows(g, trace, T)
    first = g.ops[1].name
    flops = dense_flops(g)
    prod = {o.name: o for o in g.ops}
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


def formula_rows(g: Graph, trace: dict, T: int) -> list[dict]:
    """Per weighted layer, its ops by the sparsity-weighted operator formula the paper family (and
    the published UP5K design) count with: ``SOPs = input firing rate x T x dense FLOPs`` for a
    layer fed by spikes, ``MACs = dense FLOPs`` (x T, the first conv once) for a multi-bit input.
    ``trace`` from a golden run (its LIF spikes). Not what the accelerator processes
    (:func:`event_ops`, real events: padding taps and zero pixels are no work there)."""
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
    return rows


def formula_ops(g: Graph, trace: dict, T: int | None = None) -> float:
    """SOPs + MACs per sample by the sparsity-weighted formula (:func:`formula_rows`), over the
    samples of ``trace``."""
    rows = formula_rows(g, trace, int(T or g.meta.get("T", 1)))
    return float(sum(r["sops"] + r["macs"] for r in rows))


# --------------------------------------------------------------------------------------------
# Operations processed per sample: the numerator of the datapath utilisation
# --------------------------------------------------------------------------------------------

def _valid_taps(n_in: int, n_out: int, k: int, stride: int, pad: int) -> np.ndarray:
    """For each input coordinate on one axis, how many output coordinates its kernel taps reach."""
    i = np.arange(n_in)
    lo = np.maximum(0, -((-(i + pad - k + 1)) // stride))
    hi = np.minimum(n_out - 1, (i + pad) // stride)
    return np.maximum(hi - lo + 1, 0)


def ops_keep(g: Graph) -> set[str]:
    """Tensors :func:`event_ops` reads that a golden trace holds only when asked: the multi-bit
    inputs of the weighted ops (pass as ``execute(..., trace=t, keep=ops_keep(g))``; spike inputs
    are LIF outputs, always in the trace)."""
    prod = {o.name: o for o in g.ops}
    return {n for o in g.ops if o.kind in ("conv", "attention", "head") for n in o.inputs
            if prod[n].kind != "lif"}


def event_ops(g: Graph, trace: dict) -> dict[str, np.ndarray]:
    """SOPs and MACs per sample (``int64 [B]`` each) that the integer graph processes on the inputs
    of a golden run: ``trace`` from ``execute(g, x, trace=trace, keep=ops_keep(g))``.

    Counted from the real events, once per time step (the first convolution too: its input is
    presented at every step), as the accelerator processes them, not from a dense formula:
    a convolution adds, for every non-zero input element, one product per kernel tap that reaches
    an output, times the output channels it feeds (``cout / groups``): a SOP when the input is
    spikes, a MAC when it is multi-bit (the pixels, SepConv's ``pwconv2``); attention adds a row of
    ``d = C / heads`` per set Q or K bit (``K^T V`` and ``Q (K^T V)``); the head adds one logit per
    class per spike (its heads summed into one weight set, as compiled). This is the one count of
    "ops" for the datapath utilisation, ``ops / (lanes x cycles)``, in ``spikegate verify`` and
    ``make bench``; it does not depend on the hardware, so a faster design cannot change it.
    """
    prod = {o.name: o for o in g.ops}
    batch = trace[g.lif_ops()[0].name][0].shape[1]
    sops, macs = np.zeros(batch, np.int64), np.zeros(batch, np.int64)
    for o in g.ops:
        if o.kind not in ("conv", "attention", "head"):
            continue
        src = [trace[n][0] if prod[n].kind == "lif" else trace[n] for n in o.inputs]   # [T, B, ...]
        if o.kind == "conv":
            a, x = o.attrs, src[0]
            _, _, _, h, w = x.shape
            _, ho, wo = o.shape
            taps = np.outer(_valid_taps(h, ho, a["kernel"], a["stride"], a["padding"]),
                            _valid_taps(w, wo, a["kernel"], a["stride"], a["padding"]))
            work = ((x != 0) * taps).sum(axis=(0, 2, 3, 4), dtype=np.int64) * (o.shape[0] // a["groups"])
            if a["in_kind"] == "spike":
                sops = sops + work
            else:
                macs = macs + work
        elif o.kind == "attention":
            d = o.shape[0] // o.attrs["heads"]
            q, k = (s.reshape(s.shape[0], s.shape[1], -1).sum(axis=(0, 2), dtype=np.int64) for s in src[:2])
            sops = sops + (q + k) * d
        else:
            s = src[0]
            sops = sops + s.reshape(s.shape[0], s.shape[1], -1).sum(axis=(0, 2), dtype=np.int64) * o.shape[0]
    return {"sops": sops, "macs": macs}
