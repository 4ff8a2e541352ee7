"""Pass: refuse IR graphs the accelerator cannot execute, naming every offending op."""

from __future__ import annotations

from spikegate.errors import SpikegateError
from spikegate.quantize.graph import Graph

SUPPORTED = {"quant_input", "conv", "lif", "add", "attention", "spatial_sum", "head"}


class UnsupportedOpError(SpikegateError):
    pass


def check_ops(g: Graph) -> Graph:
    prod = {o.name: o for o in g.ops}
    order = {o.name: i for i, o in enumerate(g.ops)}
    bad = []
    for o in g.ops:
        if o.kind not in SUPPORTED:
            bad.append(f"{o.name} (op kind {o.kind!r} has no hardware engine)")
            continue
        if o.kind == "conv":
            src = prod[o.inputs[0]]
            dw = o.attrs["groups"] > 1
            if dw and (o.attrs["groups"] != o.params["weight"].shape[0] or o.params["weight"].shape[1] != 1):
                bad.append(f"{o.name} (grouped convolution that is not depthwise)")
            if o.attrs["stride"] not in (1, 2) or o.attrs["kernel"] > 15 or o.attrs["padding"] > 7:
                bad.append(f"{o.name} (stride {o.attrs['stride']}, kernel {o.attrs['kernel']}, padding "
                           f"{o.attrs['padding']}: supported are stride 1-2, kernel <= 15, padding <= 7)")
            if src.kind == "quant_input" and o.attrs["in_kind"] != "int":
                bad.append(f"{o.name} (reads pixels as spikes)")
        if o.kind == "add":
            a, b = (prod[i] for i in o.inputs)
            # The membrane shortcut is fused into the branch's last convolution (ACT += y): the
            # branch must be a convolution read only by this add, and the stream operand must have
            # no reader after the add.
            if b.kind != "conv" or [c.name for c in g.consumers(b.name)] != [o.name]:
                bad.append(f"{o.name} (residual add whose branch is not a convolution read only by the add)")
            late = [c.name for c in g.consumers(a.name) if c.name != o.name and order[c.name] > order[b.name]]
            if late:
                bad.append(f"{o.name} (stream {a.name} is still read after the branch: {', '.join(late)})")
        if o.kind == "attention":
            if o.attrs["heads"] < 1 or o.shape[0] % o.attrs["heads"]:
                bad.append(f"{o.name} (channels do not split into heads)")
    if bad:
        raise UnsupportedOpError("unsupported ops for the accelerator: " + "; ".join(bad))
    return g
