"""Pass: addresses + lanes -> instructions, weight words and parameter tables; widths from the IR.

Weights are packed ``lanes`` per WMEM word in the order the engines fetch them
(``docs/accelerator.md``): dense convolutions by (input channel, tap, output-channel group),
depthwise by (channel, tap group), the head by (input channel, class group).
"""

from __future__ import annotations

import math

import numpy as np

from spikegate.quantize.graph import Graph
from spikegate.quantize.intops import signed_bits
from spikegate.quantize.ranges import add_operands

from spikegate.machine.program import (FIRE, FIRE_ONLY, IN_INT, acc_reads, LANES_CO, LANES_TAP, OP_ATTN, OP_CONV, OP_HEAD, OP_INPUT, OP_LIF, OP_OUTPUT,
                       OP_SUM, Instr, Program, ProgramError)
from .memory_plan import MemoryPlan
from .schedule import Schedule


def _conv_words(w: np.ndarray, lane_mode: int, lanes: int) -> np.ndarray:
    cout, cpg, k, _ = w.shape
    if lane_mode == LANES_CO:
        G = math.ceil(cout / lanes)
        wp = np.zeros((G * lanes, cpg, k, k), dtype=np.int64)
        wp[:cout] = w
        # word index ((ci*k + ky)*k + kx)*G + g, lane p -> w[g*P + p, ci, ky, kx]
        return wp.reshape(G, lanes, cpg, k, k).transpose(2, 3, 4, 0, 1).reshape(-1, lanes)
    Gt = math.ceil(k * k / lanes)
    taps = np.zeros((cout, Gt * lanes), dtype=np.int64)
    taps[:, : k * k] = w.reshape(cout, k * k)
    return taps.reshape(cout * Gt, lanes)  # word ci*Gt + tg, lane p -> tap tg*P + p


def pack_parameters(g: Graph, s: Schedule, plan: MemoryPlan, lanes: int) -> Program:
    if not isinstance(lanes, int) or lanes < 1 or lanes > 256:
        raise ValueError(f"lanes must be an integer in 1..256, not {lanes!r}")
    irops = {o.name: o for o in g.ops}
    words: list[np.ndarray] = []
    wtop = 0
    bias: list[int] = []
    shift: list[int] = []
    thresh: list[int] = []
    instrs: list[Instr] = []
    names = [m.name for m in s.mops]
    acc_words = 1
    T = s.T
    for i, m in enumerate(s.mops):
        ins = Instr(opcode=m.opcode, name=m.name, tag=i, T=T)
        if m.opcode == OP_INPUT:
            C, H, W = m.out_shape
            # event input: its T frames arrive back to back, as T*C channels (what the first
            # CONV reads at step t, ACT[src + t*C*H*W ...], is frame t)
            C *= s.tensors[m.dst]["steps"]
            ins.dst, ins.cin, ins.h, ins.w, ins.T = plan.addresses[m.dst], C, H, W, 1
        elif m.opcode == OP_CONV:
            a = m.attrs
            cin, h, w = m.in_shape
            cout, ho, wo = m.out_shape
            # (a FIRE_ONLY CONV writes no ACT: no dst)
            ins.src, ins.dst = plan.addresses[m.srcs[0]], plan.addresses[m.dst] if m.dst is not None else 0
            ins.src2 = a["broadcast"]
            ins.cin, ins.h, ins.w, ins.cout, ins.ho, ins.wo = cin, h, w, cout, ho, wo
            ins.k, ins.stride, ins.pad = a["k"], a["stride"], a["pad"]
            ins.in_kind, ins.lane_mode, ins.out_mode = a["in_kind"], a["lane_mode"], a["out_mode"]
            wd = _conv_words(np.asarray(m.params["weight"], dtype=np.int64), a["lane_mode"], lanes)
            ins.wbase = wtop
            words.append(wd)
            wtop += len(wd)
            if m.fire_dst is not None:
                # the fused LIF's thresholds sit at the CONV's BIAS/SHIFT index (the readout reads
                # all three at pbase + c): the tables are padded to a common start
                start = max(len(bias), len(thresh))
                bias += [0] * (start - len(bias))
                shift += [0] * (start - len(shift))
                thresh += [1] * (start - len(thresh))
                thresh += [int(v) for v in m.params["threshold"]]
                ins.fire = FIRE_ONLY if m.dst is None else FIRE
                ins.fires, ins.src3 = m.attrs["fires"], plan.addresses[m.fire_dst]
            ins.pbase = len(bias)
            bias += [int(v) for v in m.params["bias"]]
            shift += [int(v) for v in m.params["shift"]]
            acc_words = max(acc_words, acc_reads(ins, lanes))
        elif m.opcode == OP_LIF:
            C, H, W = (tuple(m.out_shape) + (1, 1))[:3]
            ins.src, ins.dst = plan.addresses[m.srcs[0]], plan.addresses[m.dst]
            ins.cout, ins.ho, ins.wo = C, H, W
            ins.pbase = len(thresh)
            thresh += [int(v) for v in m.params["threshold"]]
        elif m.opcode == OP_ATTN:
            C, H, W = m.out_shape
            ins.src, ins.src2, ins.src3 = (plan.addresses[t] for t in m.srcs)
            ins.dst = plan.addresses[m.dst]
            ins.cout, ins.ho, ins.wo, ins.heads = C, H, W, m.attrs["heads"]
        elif m.opcode == OP_SUM:
            C, H, W = m.in_shape
            ins.src, ins.dst = plan.addresses[m.srcs[0]], plan.addresses[m.dst]
            ins.cin, ins.h, ins.w = C, H, W
        elif m.opcode == OP_HEAD:
            (C,) = m.in_shape
            (K,) = m.out_shape
            ins.src = plan.addresses[m.srcs[0]]
            ins.cin, ins.cout = C, K
            G = math.ceil(K / lanes)
            wpad = np.zeros((G * lanes, C), dtype=np.int64)
            wpad[:K] = m.params["weight"]
            wd = wpad.reshape(G, lanes, C).transpose(2, 0, 1).reshape(-1, lanes)  # word c*G + g
            ins.wbase = wtop
            words.append(wd)
            wtop += len(wd)
            ins.pbase = len(bias)
            bpad = np.zeros(G * lanes, dtype=np.int64)
            bpad[:K] = m.params["bias"]
            bias += [int(v) for v in bpad]
            shift += [0] * (G * lanes)
            acc_words = max(acc_words, acc_reads(ins, lanes))
        elif m.opcode == OP_OUTPUT:
            ins.cout = m.out_shape[0]
        instrs.append(ins)
    wmem = np.concatenate(words) if words else np.zeros((1, lanes), dtype=np.int64)

    # Widths: every one from the IR's declared widths (the range analysis), none re-derived.
    operands = add_operands(g)  # fused into their add's readout: never stored in ACT
    act_tensors = [o for o in g.ops if o.kind in ("quant_input", "conv", "add", "attention", "spatial_sum")
                   and o.name not in operands]
    act_bits = max(o.widths["out"] for o in act_tensors)
    sat, readout_bits, sum_bits = _saturation_widths(g, operands)
    # the lanes' multiplier operand: the widest tensor a multi-bit (``in_kind`` int) conv reads,
    # often far narrower than the ACT word (the pixels, the depthwise convs' outputs; the widest
    # ACT tensors are residual sums, which only LIFs read), so that it fits one DSP block
    mul_x_bits = max([irops[o.inputs[0]].widths["out"] for o in g.ops
                      if o.kind == "conv" and o.attrs["in_kind"] == "int"] + [2])
    conv_acc = [o.widths["acc"] for o in g.ops if o.kind == "conv"]
    head = g.ops[-1]
    acc_bits = max(conv_acc + [head.widths["acc"]])
    lifs = [o for o in g.ops if o.kind == "lif"]
    membrane_bits = max(o.widths["membrane"] for o in lifs)
    state_bits = max(o.widths["state"] for o in lifs)
    # K^T V counts are never negative: the KV memory drops the sign bit of the declared width
    kv_bits = max([o.widths["kv"] - 1 for o in g.ops if o.kind == "attention"] + [1])
    th = np.array(thresh or [1])
    qi = g.ops[0]
    return Program(
        instrs=instrs, lanes=lanes, act_bits=act_bits, mul_x_bits=mul_x_bits, acc_bits=acc_bits,
        membrane_bits=membrane_bits,
        state_bits=state_bits, kv_bits=kv_bits,
        weight_bits=signed_bits(int(wmem.min()), int(wmem.max())),
        bias_bits=signed_bits(min(bias + [0]), max(bias + [0])),
        shift_bits=signed_bits(min(shift + [0]), max(shift + [0])),
        thresh_bits=signed_bits(0, int(th.max())),
        pixel_bits=int(qi.attrs["bits"]), logit_bits=head.widths["acc"],
        sat_bits=sat, readout_bits=readout_bits, sum_bits=sum_bits,
        act_words=plan.words["ACT"], spk_words=plan.words["SPK"], acc_words=acc_words,
        wmem=wmem, bias=np.array(bias or [0], dtype=np.int64), shift=np.array(shift or [0], dtype=np.int64),
        thresh=np.array(thresh or [1], dtype=np.int64),
        num_pixels=int(np.prod(qi.shape)) * s.tensors[qi.name]["steps"], num_classes=int(head.shape[0]), input_scale=float(qi.attrs["scale"]),
        T=T, op_names=names,
        tensors={n: {"mem": s.tensors[n]["mem"], "base": plan.addresses[n], "shape": list(s.tensors[n]["shape"]),
                     "steps": s.tensors[n]["steps"]} for n in plan.addresses},
    )


def _saturation_widths(g: Graph, operands: set[str]) -> tuple[int, int, int]:
    """``(sat_bits, readout_bits, sum_bits)``: 0, 0, 0 when nothing saturates. Otherwise every
    saturating op clamps at one width ``sat_bits`` (``quantize/ranges.py: assign_widths``), and
    the hardware clamps every CONV readout and SUM result at it: a result that does not saturate
    is proven to fit ``sat_bits`` already, so the clamp leaves it as it is. ``readout_bits`` and
    ``sum_bits``: the widths of those results before the clamp (the IR's ``wide`` widths)."""
    sat = {o.widths["out"] for o in g.ops if o.attrs.get("saturate")}
    if not sat:
        return 0, 0, 0
    if len(sat) != 1:
        raise ProgramError(f"the saturating ops clamp at {sorted(sat)} bits; the machine has one "
                           "saturation width (re-quantize the model)")
    (bits,) = sat
    readout = [o for o in g.ops if (o.kind == "conv" and o.name not in operands) or o.kind == "add"]
    sums = [o for o in g.ops if o.kind == "spatial_sum"]
    for o in readout + sums:
        if not o.attrs.get("saturate") and o.widths["out"] > bits:
            raise ProgramError(f"op {o.name}: its {o.widths['out']}-bit output does not saturate but is wider "
                               f"than the {bits}-bit saturation width (re-quantize the model)")
    return (bits, max([bits] + [o.widths.get("wide", o.widths["out"]) for o in readout]),
            max([bits] + [o.widths.get("wide", o.widths["out"]) for o in sums]))
