"""Instruction-level simulator of the spikegate accelerator, and its cycle model.

Executes a :class:`~spikegate.machine.program.Program` on the memories the hardware has (ACT,
SPK, ACC banks, WMEM, BIAS/SHIFT/THRESH), instruction by instruction, with the semantics of
``docs/accelerator.md``. It reads weights only from the packed WMEM words, so it checks the
compiler's packing and addressing as well as the arithmetic; a program whose weights live in
external memory reads them from the on-chip buffer its WLOADs fill (``MachineState.wmem``),
unpacked from the packed external image, so the streaming is checked too. Tests hold it equal to the golden
model; the RTL is held equal to both. Alongside the results it counts cycles per instruction
(:mod:`cycle_model`) and synaptic operations, from the actual spikes.

:func:`execute` runs one instruction on a :class:`MachineState` (ACT, SPK, ACC banks) and returns
its cycles; :func:`run` is a loop over it. The per-engine testbenches (``rtl_tests/tb_engines.py``)
hold each engine equal to one :func:`execute` step.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from spikegate.machine.external_memory import unpack_rows
from spikegate.quantize import intops

from . import cycle_model as cm
from spikegate.machine.program import (IN_SPIKE, LANES_CO, OP_ATTN, OP_CONV, OP_HEAD, OP_INPUT, OP_LIF, OP_OUTPUT, OP_SUM,
                      OP_WLOAD, OPCODES, OUT_ACCUM, FIRE_ONLY, Program, wload_beats)


@dataclass
class RunResult:
    logits: np.ndarray                 # int64 [K]
    cycles: int
    cycles_per_instr: list[int]
    sops: int                          # synaptic (spike-selected) additions, dense + depthwise + head
    macs: int                          # multiply-accumulates (multi-bit inputs)
    spike_counts: dict[str, int] = field(default_factory=dict)   # per LIF op
    # per instruction, the spikes it fired (a LIF, or a CONV with ``fire``; 0 for the others): what
    # the accelerator's ``dbg_spikes`` shows after it
    spikes_per_instr: list[int] = field(default_factory=list)
    phases: dict[str, int] = field(default_factory=dict)     # MachineState.phases at the end


def _unpack_conv(prog: Program, wmem: np.ndarray, ins) -> np.ndarray:
    P, k = prog.lanes, ins.k
    if ins.lane_mode == LANES_CO:
        G = math.ceil(ins.cout / P)
        n = ins.cin * k * k * G
        wd = wmem[ins.wbase: ins.wbase + n].reshape(ins.cin, k, k, G, P)
        return wd.transpose(3, 4, 0, 1, 2).reshape(G * P, ins.cin, k, k)[: ins.cout]
    Gt = math.ceil(k * k / P)
    wd = wmem[ins.wbase: ins.wbase + ins.cin * Gt].reshape(ins.cin, Gt * P)[:, : k * k]
    return wd.reshape(ins.cin, 1, k, k)


def _valid_taps(n_in: int, n_out: int, k: int, stride: int, pad: int) -> np.ndarray:
    """For each input coordinate, how many output coordinates it reaches (valid taps on one axis)."""
    i = np.arange(n_in)
    lo = np.maximum(0, -((-(i + pad - k + 1)) // stride))
    hi = np.minimum(n_out - 1, (i + pad) // stride)
    return np.maximum(hi - lo + 1, 0)


@dataclass
class MachineState:
    """The machine's writable memories between two instructions, and the ISS's running counts.

    ``act``, ``spk``: one int64 per word; ``acc``: ``[lanes, acc_words]``. ``logits`` is set by
    OUTPUT. :func:`execute` updates a state in place, one instruction at a time, so that a test can
    run an engine on the state before an instruction and compare with the state after it.
    ``wmem``: for a program whose weights live in external memory, the on-chip WMEM buffer
    ``[words, lanes]`` that its WLOADs fill (zero at the start), which CONV/HEAD read; None for the
    others (they read ``prog.wmem``). ``ext_beats``: beats the WLOADs delivered so far in this
    image (the memory model's refresh phase)."""

    act: np.ndarray
    spk: np.ndarray
    acc: np.ndarray
    wmem: np.ndarray | None = None
    ext_beats: int = 0
    sops: int = 0                      # synaptic (spike-selected) additions so far
    macs: int = 0                      # multiply-accumulates so far
    spike_counts: dict[str, int] = field(default_factory=dict)   # per LIF op
    logits: np.ndarray | None = None
    fired: int = 0                     # the spikes the last LIF (or CONV with ``fire``) fired
    # cycles so far by phase: CONV's scan (elements that are no event), taps (the lanes' work),
    # readout (one per output element), every other opcode's own, and "fixed" (fetch, pipeline
    # fill and drain): what limits the datapath utilisation (bench/utilisation.py)
    phases: dict[str, int] = field(default_factory=dict)

    @classmethod
    def zeros(cls, prog: Program) -> "MachineState":
        """The state at the start of an image: every memory zero."""
        return cls(act=np.zeros(prog.act_words, dtype=np.int64), spk=np.zeros(prog.spk_words, dtype=np.int64),
                   acc=np.zeros((prog.lanes, prog.acc_words), dtype=np.int64),
                   wmem=np.zeros_like(prog.wmem, dtype=np.int64) if prog.external else None)

    def copy(self) -> "MachineState":
        return MachineState(act=self.act.copy(), spk=self.spk.copy(), acc=self.acc.copy(),
                            wmem=None if self.wmem is None else self.wmem.copy(), ext_beats=self.ext_beats,
                            sops=self.sops,
                            macs=self.macs, spike_counts=dict(self.spike_counts),
                            logits=None if self.logits is None else self.logits.copy(), fired=self.fired)


def _saturate(prog: Program, y: np.ndarray) -> np.ndarray:
    """A CONV readout's or SUM's result as written: clamped to ``prog.sat_bits`` when the program
    saturates (``intops.saturate``; a result that does not saturate in the IR fits already)."""
    return intops.saturate(y, prog.sat_bits) if prog.sat_bits else y


def _fire(prog: Program, ins, state: MachineState, y: np.ndarray) -> None:
    """CONV's ``fire`` (``T = 1``): the LIF's first step on the words ``y`` the readout wrote,
    membrane 0, thresholds at the CONV's ``pbase`` (``machine/program.py``)."""
    assert ins.T == 1, ins.name
    th = prog.thresh[ins.pbase: ins.pbase + ins.cout]
    s, _ = intops.lif(y.reshape(1, 1, ins.cout, ins.ho * ins.wo), th)
    state.spk[ins.src3: ins.src3 + y.size] = s.reshape(-1)
    state.fired = int(s.sum())
    state.spike_counts[ins.fires] = state.spike_counts.get(ins.fires, 0) + state.fired


def execute(prog: Program, ins, state: MachineState, pixels: np.ndarray | None = None) -> int:
    """Execute the instruction ``ins`` of ``prog`` on ``state`` (in place; ``pixels``, the image's
    integer pixels, only for INPUT) and return its cycles (:mod:`cycle_model`): from its fetch
    (``cycle_model.FETCH``, the sequencer's) to the cycle its engine finishes; INPUT's from its
    first accepted pixel, OUTPUT's to its last accepted logit."""
    P = prog.lanes
    act, spk, acc = state.act, state.spk, state.acc
    wmem = prog.wmem if state.wmem is None else state.wmem
    sops = macs = 0
    phases: Counter = Counter()      # this instruction's cycles by phase (MachineState.phases)
    c = cm.FETCH
    if ins.opcode == OP_WLOAD:
        c = _wload(prog, ins, state)
    elif ins.opcode == OP_INPUT:
        n = ins.cin * ins.h * ins.w
        px = np.asarray(pixels, dtype=np.int64).reshape(-1)
        assert px.size == n
        act[ins.dst: ins.dst + n] = px
        c = n + cm.INPUT_OVH      # counted from the first pixel: its fetch happened before
    elif ins.opcode == OP_CONV:
        w = _unpack_conv(prog, wmem, ins)
        n_in = ins.cin * ins.h * ins.w
        n_out = ins.cout * ins.ho * ins.wo
        ty = _valid_taps(ins.h, ins.ho, ins.k, ins.stride, ins.pad)
        tx = _valid_taps(ins.w, ins.wo, ins.k, ins.stride, ins.pad)
        taps = np.outer(ty, tx)                       # valid taps per input position
        groups = ins.cin if ins.lane_mode != LANES_CO else 1
        sh = prog.shift[ins.pbase: ins.pbase + ins.cout]
        b = prog.bias[ins.pbase: ins.pbase + ins.cout]
        for t in range(ins.T):
            ts = 0 if ins.src2 else t
            mem = spk if ins.in_kind == IN_SPIKE else act
            x = mem[ins.src + ts * n_in: ins.src + (ts + 1) * n_in].reshape(ins.cin, ins.h, ins.w)
            nz = x != 0
            events = int(nz.sum())
            tap_total = int((nz * taps[None]).sum())
            # An event's scan cycle is its first tap cycle; an element reaching no output
            # (LANES_CO) costs its scan cycle like a zero.
            if ins.lane_mode == LANES_CO:
                G = math.ceil(ins.cout / P)
                ev = int((nz * (taps[None] > 0)).sum())
                scan, tap = (n_in - ev) * cm.SCAN, ev * cm.EVENT_OVH + tap_total * G
                work = tap_total * ins.cout
            else:
                Gt = math.ceil(ins.k * ins.k / P)
                scan, tap = (n_in - events) * cm.SCAN, events * (cm.EVENT_OVH + Gt)
                work = tap_total
            c += scan + tap
            phases["CONV scan"] += scan
            phases["CONV taps"] += tap
            phases["CONV readout"] += n_out * cm.READOUT
            if ins.in_kind == IN_SPIKE:
                sops += work
            else:
                macs += work
            a = F.conv2d(torch.from_numpy(x[None].astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
                         stride=ins.stride, padding=ins.pad, groups=groups).numpy()[0]
            a = np.rint(a).astype(np.int64)
            y = intops.shift_round(a, sh.reshape(-1, 1, 1)) + b.reshape(-1, 1, 1)
            base = ins.dst + t * n_out
            if ins.out_mode == OUT_ACCUM:
                y = act[base: base + n_out] + y.reshape(-1)
            y = _saturate(prog, y.reshape(-1))
            if ins.fire != FIRE_ONLY:
                act[base: base + n_out] = y
            if ins.fire:
                _fire(prog, ins, state, y)
            c += n_out * cm.READOUT + cm.readout_ovh(P) + cm.tstep_ovh(P)
    elif ins.opcode == OP_LIF:
        n = ins.cout * ins.ho * ins.wo
        x = act[ins.src: ins.src + ins.T * n].reshape(ins.T, 1, ins.cout, ins.ho * ins.wo)
        th = prog.thresh[ins.pbase: ins.pbase + ins.cout]
        s, _ = intops.lif(x, th)
        spk[ins.dst: ins.dst + ins.T * n] = s.reshape(-1)
        state.fired = int(s.sum())
        state.spike_counts[ins.name] = state.fired
        c += ins.T * n * cm.LIF + cm.LIF_OVH
    elif ins.opcode == OP_ATTN:
        C, N, h = ins.cout, ins.ho * ins.wo, ins.heads
        d = C // h
        n = C * N
        c += cm.ATTN_OVH
        for t in range(ins.T):
            q, k, v = (spk[base + t * n: base + (t + 1) * n].reshape(C, N) for base in (ins.src, ins.src2, ins.src3))
            y = intops.attention(q.reshape(1, 1, C, N, 1), k.reshape(1, 1, C, N, 1), v.reshape(1, 1, C, N, 1), h)
            act[ins.dst + t * n: ins.dst + (t + 1) * n] = y.reshape(-1)
            c += h * (cm.ATTN_HEAD_OVH + d * d + N * cm.ATTN_TOKEN_OVH) + 2 * N * C * cm.ATTN_SCAN + \
                (int(k.sum()) + int(q.sum())) * (d * cm.ATTN_ROW + cm.ATTN_SET_OVH) + N * C * cm.ATTN_WRITE
            sops += (int(k.sum()) + int(q.sum())) * d
    elif ins.opcode == OP_SUM:
        C, N = ins.cin, ins.h * ins.w
        x = act[ins.src: ins.src + ins.T * C * N].reshape(ins.T, C, N)
        act[ins.dst: ins.dst + ins.T * C] = _saturate(prog, x.sum(axis=2).reshape(-1))
        c += ins.T * C * (N * cm.SUM + cm.SUM_ROW_OVH) + cm.sum_ovh(P)
    elif ins.opcode == OP_HEAD:
        C, K = ins.cin, ins.cout
        G = math.ceil(K / P)
        wd = wmem[ins.wbase: ins.wbase + C * G].reshape(C, G * P)
        b = prog.bias[ins.pbase: ins.pbase + G * P]
        s = spk[ins.src: ins.src + ins.T * C].reshape(ins.T, C)
        tot = (s @ wd).sum(axis=0) + ins.T * b
        acc[:, :G] += tot.reshape(G, P).T
        n_spk = int(s.sum())
        c += ins.T * (C * cm.HEAD_SCAN + G * P * cm.HEAD_BIAS + cm.tstep_ovh(P) + cm.bias_ovh(P)) + \
            n_spk * (G + cm.EVENT_OVH - cm.HEAD_SCAN)
        sops += int(s.sum()) * K
    elif ins.opcode == OP_OUTPUT:
        K = ins.cout
        idx = np.arange(K)
        state.logits = acc[idx % P, idx // P].copy()
        acc[idx % P, idx // P] = 0
        c += K * cm.OUTPUT + cm.output_ovh(P)
    state.sops += sops
    state.macs += macs
    if ins.opcode != OP_CONV:
        phases[OPCODES[ins.opcode]] = c - (cm.FETCH if ins.opcode not in (OP_WLOAD, OP_INPUT) else 0)
    phases["fixed"] = c - sum(phases.values())       # fetch, fill and drain: what no phase counted
    for name, cycles in phases.items():
        state.phases[name] = state.phases.get(name, 0) + int(cycles)
    return c


def _wload(prog: Program, ins, state: MachineState) -> int:
    """WLOAD: the words, unpacked from the external image's beats exactly as the engine reads them,
    into the state's on-chip WMEM buffer; its cycles from the memory model (``cycle_model.wload_cycles``),
    in the refresh phase the image's earlier beats left."""
    word_bits = prog.lanes * prog.weight_bits
    n = ins.n_words
    beats = wload_beats(n, word_bits, prog.port_bits)
    got = prog.wmem_external[ins.ext_src: ins.ext_src + beats]
    state.wmem[ins.wbase: ins.wbase + n] = unpack_rows(got, n, prog.lanes, prog.weight_bits, prog.port_bits)
    c = cm.wload_cycles(prog, n, state.ext_beats)
    state.ext_beats += beats
    return c


def run(prog: Program, pixels: np.ndarray) -> RunResult:
    """Run one image (integer pixels, ``[C, H, W]``; ``[T, C, H, W]`` for a program compiled for
    event input)."""
    state = MachineState.zeros(prog)
    cycles, spikes = [], []
    for ins in prog.instrs:
        state.fired = 0
        cycles.append(execute(prog, ins, state, pixels))
        spikes.append(state.fired)
    return RunResult(logits=state.logits, cycles=int(sum(cycles)), cycles_per_instr=cycles, sops=state.sops,
                     macs=state.macs, spike_counts=state.spike_counts, spikes_per_instr=spikes,
                     phases=dict(state.phases))


def run_batch(prog: Program, images: np.ndarray) -> list[RunResult]:
    """Float images ``[B, C, H, W]`` -> quantised pixels (as the host does) -> one run each."""
    px = intops.quantize_input(images, prog.input_scale, prog.pixel_bits)
    return [run(prog, p) for p in px]


def estimate_cycles(prog: Program, rate: float) -> dict:
    """Cycles and synaptic operations per inference if every spike tensor fires at ``rate``.

    The same cost structure as :func:`run`, with expected event counts instead of measured ones:
    for models too large to simulate (the paper presets), and for the fixed overhead (rate 0).
    Multi-bit inputs are assumed non-zero.
    """
    P = prog.lanes
    cycles = 0.0
    sops = macs = 0.0
    beats = 0
    for ins in prog.instrs:
        c = cm.FETCH
        if ins.opcode == OP_WLOAD:       # data-independent: exact
            c = cm.wload_cycles(prog, ins.n_words, beats)
            beats += wload_beats(ins.n_words, prog.lanes * prog.weight_bits, prog.port_bits)
        elif ins.opcode == OP_INPUT:
            c = ins.cin * ins.h * ins.w + cm.INPUT_OVH
        elif ins.opcode == OP_CONV:
            r = rate if ins.in_kind == IN_SPIKE else 1.0
            n_in = ins.cin * ins.h * ins.w
            ty = _valid_taps(ins.h, ins.ho, ins.k, ins.stride, ins.pad)
            tx = _valid_taps(ins.w, ins.wo, ins.k, ins.stride, ins.pad)
            tap_map = np.outer(ty, tx)
            taps = float(tap_map.sum()) * ins.cin
            reach = float((tap_map > 0).sum()) * ins.cin     # elements reaching an output
            if ins.lane_mode == LANES_CO:
                per_t = (n_in - r * reach) * cm.SCAN + r * reach * cm.EVENT_OVH + \
                    r * taps * math.ceil(ins.cout / P)
                work = r * taps * ins.cout
            else:
                per_t = (n_in - r * n_in) * cm.SCAN + r * n_in * (cm.EVENT_OVH + math.ceil(ins.k * ins.k / P))
                work = r * taps
            per_t += ins.cout * ins.ho * ins.wo * cm.READOUT + cm.readout_ovh(P) + cm.tstep_ovh(P)
            c += ins.T * per_t
            if ins.in_kind == IN_SPIKE:
                sops += ins.T * work
            else:
                macs += ins.T * work
        elif ins.opcode == OP_LIF:
            c += ins.T * ins.cout * ins.ho * ins.wo * cm.LIF + cm.LIF_OVH
        elif ins.opcode == OP_ATTN:
            C, N, h = ins.cout, ins.ho * ins.wo, ins.heads
            d = C // h
            c += cm.ATTN_OVH + ins.T * (h * (cm.ATTN_HEAD_OVH + d * d + N * cm.ATTN_TOKEN_OVH) +
                                        2 * N * C * cm.ATTN_SCAN +
                                        2 * rate * C * N * (d * cm.ATTN_ROW + cm.ATTN_SET_OVH) +
                                        N * C * cm.ATTN_WRITE)
            sops += ins.T * 2 * rate * C * N * d
        elif ins.opcode == OP_SUM:
            c += ins.T * ins.cin * (ins.h * ins.w * cm.SUM + cm.SUM_ROW_OVH) + cm.sum_ovh(P)
        elif ins.opcode == OP_HEAD:
            G = math.ceil(ins.cout / P)
            c += ins.T * (ins.cin * cm.HEAD_SCAN + G * P * cm.HEAD_BIAS + cm.tstep_ovh(P) + cm.bias_ovh(P)) + \
                ins.T * rate * ins.cin * (G + cm.EVENT_OVH - cm.HEAD_SCAN)
            sops += ins.T * rate * ins.cin * ins.cout
        elif ins.opcode == OP_OUTPUT:
            c += ins.cout * cm.OUTPUT + cm.output_ovh(P)
        cycles += c
    return {"rate": rate, "cycles": int(round(cycles)), "sops": int(round(sops)), "macs": int(round(macs))}
