"""`spikegate verify`: the emitted Verilog against the golden model, image by image.

A flow above the compiler and the testbenches: it reads a build directory (``compiler/build.py``),
runs the golden model (``quantize/``) and the ISS (``compiler/iss.py``), and simulates the RTL
through the testbenches' one cocotb runner (``rtl_tests/cocotb_util.py``). The CLI verb, the demo,
the bench and the fuzzer's ``--rtl`` use it.

For each input: the golden model gives the integer logits and, per LIF, the spikes; the ISS gives
the predicted cycles; the RTL (under cocotb, on Verilator or Icarus) gives logits, measured cycles,
each LIF instruction's spike count (its debug port) and every spike the LIF engine writes (its
spike-memory write port, read through VPI), from which each LIF layer's spike map (every time step,
every neuron) is rebuilt. An image is bit-exact when its logits and every LIF layer's spike map and
spike count equal the golden model's.

**Where it differs.** Observing every memory write costs a Python sample per clock, so the first
pass observes only what the comparison above needs (cheap when everything matches). When an image
differs, a second pass runs that one image again (same simulator build) with every write to ACT,
SPK and ACC recorded with its clock cycle and attributed to its instruction (:data:`WRITE_LAG`),
and :func:`locate_first_difference` steps the ISS through the program beside it: the first
instruction whose result in the RTL's memories differs from the reference is named with its op,
time step, channel, position and both values. The reference is the ISS on the program lowered from
the build's IR (not from the build's memory images, which are what is under test); on each LIF
and on the logits it is checked equal to the golden model's trace, so every reference value is the
golden model's.

**Stalls.** The testbench may add random idle cycles between pixels and back-pressure on the
logits (``idle``, ``backpressure``: probabilities, from a printed ``seed``). The core's counter
counts every cycle from the first accepted pixel to the last accepted logit, so it includes the
cycles the bench added; the cycle model counts a stall-free stream. ``cycles`` is therefore the
counter minus the bench's idle cycles (``valid`` low between two pixels) and back-pressure cycles
(a logit offered while ``ready`` was low): each such cycle delays the core by exactly one cycle
(the input engine accepts a pixel in every cycle of INPUT, the output engine holds its logit while
``ready`` is low), which the equality ``cycles == predicted_cycles`` itself proves. The raw counter
is ``cycles_counted``.

**Weights in external memory.** For a build whose weights live in SDRAM (``report.json``'s
``weights.where == "sdram"``) the testbench serves the core's burst port from the build's
``sdram.bin`` (checked against ``report.json``'s sha256 first). ``memory="deterministic"`` (the
default) is the cycle model's memory (``compiler/cycle_model.py``: ``EXTERNAL_TIMING`` through
``external_port``), so ``cycles == predicted_cycles`` holds as for any build; ``memory="random"``
draws each burst's latency, gaps between beats and stalled commands from the seed: the logits and
spike maps must still be bit-exact, but the cycles are then the memory's, not the model's (the
result's ``memory`` says which ran; ``None`` for a build with its weights on chip).
"""

from __future__ import annotations

import bisect
import json
import os
import random
import shutil

import numpy as np

from spikegate import progress
from spikegate.compiler import iss
from spikegate.compiler import cycle_model
from spikegate.compiler.build import EXTERNAL_IMAGE, REPORT, WEIGHT_IMAGE, read_build, read_checked_image, read_weight_image
from spikegate.errors import SpikegateError
from spikegate.io import check_images, check_output_path, load_array
from spikegate.machine.program import (FIRE_ONLY, OP_CONV, OP_HEAD, OP_INPUT, OP_LIF, OP_OUTPUT, OP_SUM, OP_WLOAD,
                                       OPCODES)
from spikegate.quantize import intops, stats
from spikegate.quantize.golden import execute

SIMS = ("verilator", "icarus")
MEMORY_MODES = ("deterministic", "random")     # the external memory's timing (weights in SDRAM)
IDLE_MAX = 3     # (rtl_tests/tb_verify.py: an idle stretch lasts at most this many cycles)

# Verilator exposes only the top's ports to the testbench (fast); the spike monitor also reads the
# LIF engine's spike-memory write port, the locating pass the memories' write ports (the port
# multiplexer's outputs).
SPIKE_PORT_VLT = ('`verilator_config\npublic_flat_rw -module "*" -var "spk_w__*"\n'
                  'public_flat_rw -module "*ports" -var "act_w__*"\n'
                  'public_flat_rw -module "*ports" -var "acc_w__*"\n')

# A write reaches a memory at most WRITE_LAG cycles after the instruction's ``instr_done`` pulse
# (the port multiplexer registers ACT's and SPK's writes), and the next instruction's first write
# comes later than that: after the pulse the sequencer spends FETCH, DEC1, DEC2 and DEC3 before the
# engine starts, and an engine writes after reading. So a write sampled in cycle c belongs to the
# instruction of the first pulse in a cycle >= c - WRITE_LAG. (A wrong attribution would show as a
# difference on every matching run: the tests run this on matching builds.)
WRITE_LAG = 3


def _sources(build_dir: str) -> list[str]:
    from spikegate.hw.spram import sim_sources          # (Amaranth: imported when simulating)

    verilog = os.path.abspath(os.path.join(build_dir, "accelerator.v"))
    if not os.path.isfile(verilog):
        raise SpikegateError(f"{build_dir}: accelerator.v is missing; recompile with `spikegate compile`")
    with open(verilog) as f:
        return [verilog] + [str(p) for p in sim_sources(f.read())]   # vendor primitive models


def external_config(build_dir: str, report: dict, prog, memory: str) -> dict:
    """The testbench's ``external`` config of a build whose weights live in external memory: its
    ``sdram.bin`` (checked: size and sha256 against ``report.json``), the cycle model's burst port,
    and its memory timing (``None``: random, ``memory="random"``)."""
    w = report.get("weights") or {}
    path = os.path.abspath(os.path.join(build_dir, w.get("external_image") or EXTERNAL_IMAGE))
    read_checked_image(path, len(prog.wmem_external) * prog.port_bits // 8, w.get("external_sha256"),
                       "external weight image")
    port, t = cycle_model.external_port(prog), cycle_model.EXTERNAL_TIMING
    timing = None if memory == "random" else {"latency": t.latency, "refresh_every": t.refresh_every,
                                              "refresh_cycles": t.refresh_cycles}
    return {"image": path, "port_bits": port.port_bits, "max_burst": port.max_burst, "addr_bits": port.addr_bits,
            "timing": timing}


def _simulate(build_dir: str, prog, pixels: np.ndarray, sim: str, *, idle: float = 0.0,
              backpressure: float = 0.0, seed: int = 1, capture_writes: bool = False,
              waves: str | None = None, memory: str = "deterministic") -> list[dict]:
    """Run ``pixels`` through the build's Verilog under rtl_tests/tb_verify.py; its observations."""
    from spikegate.rtl_tests.cocotb_util import run_cocotb

    sources = _sources(build_dir)
    with open(os.path.join(build_dir, REPORT)) as f:     # (read_build checked it already)
        report = json.load(f)
    if sim == "icarus" and shutil.which("iverilog") is None:
        raise SpikegateError("--sim icarus: iverilog is not installed (apt-get install iverilog)")
    # cocotb runs in another directory; a waveform build (everything traced) gets its own folder
    work = os.path.abspath(os.path.join(build_dir, f"sim-{sim}" + ("-waves" if waves else "")))
    os.makedirs(work, exist_ok=True)
    px_path = os.path.join(work, "pixels.npy")
    out_path = os.path.join(work, "observed.json")
    np.save(px_path, pixels)
    if os.path.exists(out_path):
        os.remove(out_path)
    per_image = max(iss.estimate_cycles(prog, 1.0)["cycles"], 1000) + pixels.shape[1] * IDLE_MAX
    if prog.external and memory == "random":    # (burst_memory.py: latency <= 20, gaps <= 3 a beat)
        per_image += 8 * len(prog.wmem_external) + 64 * sum(1 for i in prog.instrs if i.opcode == OP_WLOAD)
    cfg = {"pixels": px_path, "out": out_path, "num_classes": prog.num_classes, "pixel_bits": prog.pixel_bits,
           "logit_bits": prog.logit_bits, "lanes": prog.lanes, "timeout_cycles": 4 * per_image + 10000,
           "capture_spikes": True, "capture_writes": capture_writes, "idle": idle, "backpressure": backpressure}
    weights = report.get("weights") or {}
    if weights.get("loading") == "runtime-loaded":   # written through the weight port first
        read_weight_image(build_dir, report)            # (checked against report.json)
        cfg.update(weights=os.path.abspath(os.path.join(build_dir, weights.get("image") or WEIGHT_IMAGE)),
                   weight_bytes_per_word=int(weights["bytes_per_word"]))
    if prog.external:
        cfg["external"] = external_config(build_dir, report, prog, memory)
    cfg["progress"] = os.path.join(work, "progress.txt")
    progress.remove(cfg["progress"])
    build_args = []
    if sim == "verilator":
        vlt = os.path.join(work, "spike-port.vlt")
        with open(vlt, "w") as f:
            f.write(SPIKE_PORT_VLT)
        build_args = [vlt]
    what = "locating the first difference" if capture_writes else "build, then images"
    with progress.bar(len(pixels), f"{sim} ({what})", unit="img") as bar:
        def done(text):
            bar.n = text.count("\n")
            bar.refresh()
        with progress.poll(lambda: progress.read_text(cfg["progress"]), done):
            try:
                run_cocotb(sources, "sfa_top", "spikegate.rtl_tests.tb_verify", sim, work, config=cfg,
                           build_args=build_args, seed=seed, waves=bool(waves))
            except AssertionError as e:
                raise SpikegateError(f"RTL simulation failed: {str(e).splitlines()[0]}") from None
    if waves:
        # VCD: cocotb's Verilator runner traces with --trace (FST would need Debian's liblz4-dev).
        # Moved, not copied (hundreds of MB); through a temporary name beside the target, so a
        # half-copied file across file systems never carries the final name.
        tmp = waves + f".tmp{os.getpid()}"
        shutil.move(os.path.join(work, "dump.vcd"), tmp)
        os.replace(tmp, waves)
    with open(out_path) as f:
        return json.load(f)


def verify(build_dir: str, inputs_path: str, sim: str = "verilator", backpressure: float = 0.0,
           idle: float = 0.0, seed: int | None = None, waves: str | None = None, locate: bool = True,
           memory: str = "deterministic") -> dict:
    """Simulate the build's Verilog on the images of ``inputs_path`` and compare with the golden model.

    ``idle``/``backpressure``: probabilities of idle pixel cycles and of ``ready`` low on the
    logits (drawn from ``seed``, by default a fresh one, returned as ``seed``). ``waves``: a file
    to write the run's waveform into (VCD; Verilator only). ``locate``: on a mismatch, run the first
    differing image again to name the first differing instruction (``first_difference``).
    ``memory``: for a build whose weights live in external memory, its timing (:data:`MEMORY_MODES`;
    the module's docstring); ignored otherwise (the result's ``memory`` is then None).
    Returns a dict: ``samples``, ``bit_exact``, ``sim``, ``seed``, ``cycles`` (stall-free, see the
    module's docstring) and ``predicted_cycles``, ``cycles_counted``, ``idle_cycles``,
    ``backpressure_cycles``, ``mismatches`` (per differing image: logits and the first differing
    LIF spike), ``first_difference`` (or None), ``waves`` (or None), ``target``, ``lanes``;
    ``ops`` (per sample: the SOPs + MACs the golden model processes on it,
    :func:`spikegate.quantize.stats.event_ops`; ``sops`` and ``macs`` apart) and ``utilisation``,
    ``sum(ops) / (lanes x sum(cycles))`` (the measured, stall-free cycles)."""
    if sim not in SIMS:
        raise SpikegateError(f"--sim must be one of {', '.join(SIMS)}, not {sim!r}")
    if memory not in MEMORY_MODES:
        raise SpikegateError(f"--memory must be one of {', '.join(MEMORY_MODES)}, not {memory!r}")
    for name, p in (("--idle", idle), ("--backpressure", backpressure)):
        if not 0.0 <= p < 1.0:
            raise SpikegateError(f"{name} must be a probability in [0, 1), not {p}")
    if waves is not None:
        if sim != "verilator":
            raise SpikegateError("--waves needs --sim verilator (cocotb's Icarus dump needs SystemVerilog "
                                 "mode, which the testbenches cannot use)")
        check_output_path(waves, "file", "--waves")
    report, g, prog = read_build(build_dir)
    if memory == "random" and not prog.external:
        raise SpikegateError(f"--memory random: {build_dir}'s weights are on chip, there is no external memory "
                             f"to randomise (it applies to builds whose weights live in SDRAM)")
    qi = g.ops[0].attrs
    x = check_images(load_array(inputs_path), qi["channels"], inputs_path, size=qi["size"])
    pixels = intops.quantize_input(x, prog.input_scale, prog.pixel_bits).reshape(len(x), -1)
    seed = int(seed) if seed is not None else random.SystemRandom().randrange(1, 2**31)
    trace: dict = {}
    gold = execute(g, x, trace=trace, keep=stats.ops_keep(g))
    ops = stats.event_ops(g, trace)
    predicted = iss.run_batch(prog, x)
    observed = _simulate(build_dir, prog, pixels, sim, idle=idle, backpressure=backpressure, seed=seed,
                         waves=waves, memory=memory)
    # (by the instruction's tag, its IR op: a WLOAD shares its CONV's, so tags are not program indices)
    # (a CONV with ``fire`` writes its fused LIF's spikes: that LIF is its layer here)
    lif_by_tag = {ins.tag: ins.fires if ins.fire else ins.name for ins in prog.instrs
                  if ins.opcode == OP_LIF or ins.fire}
    mismatches = []
    for b, obs in enumerate(observed):
        logits_ok = np.array_equal(np.asarray(obs["logits"], dtype=np.int64), gold[b])
        first = _first_spike_difference(prog, lif_by_tag, obs, trace, b)
        if logits_ok and first is None:
            continue
        m = {"sample": b, "logits_rtl": obs["logits"], "logits_golden": gold[b].tolist()}
        if first:
            m.update(first)
        mismatches.append(m)
    located = None
    if mismatches and locate:
        b = mismatches[0]["sample"]
        obs = _simulate(build_dir, prog, pixels[b:b + 1], sim, seed=seed, capture_writes=True, memory=memory)[0]
        located = {"sample": b, **locate_first_difference(prog, pixels[b], obs, trace, gold, b)}
        mismatches[0]["first_difference"] = located
    counted = [o["cycles"] for o in observed]
    stalls = [o["idle_cycles"] + o["backpressure_cycles"] for o in observed]
    cycles = [c - s for c, s in zip(counted, stalls)]
    per_sample = (ops["sops"] + ops["macs"]).tolist()
    return {"samples": len(observed), "bit_exact": not mismatches, "sim": sim, "seed": seed,
            "idle": idle, "backpressure": backpressure, "memory": memory if prog.external else None,
            "cycles": cycles, "predicted_cycles": [r.cycles for r in predicted],
            "cycles_counted": counted, "idle_cycles": [o["idle_cycles"] for o in observed],
            "backpressure_cycles": [o["backpressure_cycles"] for o in observed],
            "mismatches": mismatches, "first_difference": located,
            "waves": os.path.abspath(waves) if waves else None,
            "target": report["target"], "lanes": report["lanes"],
            "ops": per_sample, "sops": ops["sops"].tolist(), "macs": ops["macs"].tolist(),
            "utilisation": utilisation(per_sample, report["lanes"], cycles)}


def utilisation(ops: list[int], lanes: int, cycles: list[int]) -> float:
    """The datapath's utilisation over a run: ``sum(ops) / (lanes x sum(cycles))``, the fraction of
    the lanes' cycles that processed an operation (1.0: every lane busy in every cycle)."""
    return sum(ops) / (lanes * sum(cycles))


def _rtl_spike_maps(prog, lif_by_tag: dict, obs: dict) -> dict[str, tuple[np.ndarray, int]]:
    """{LIF layer: (its spikes as written by the RTL, flat ``[steps * neurons]``, -1 where nothing
    was written; its spike count from the debug port)}, from one image's observation. Each write is
    tagged with the instruction (in completion order) that made it; regions of the spike memory are
    reused by later layers, so a write belongs to its instruction, not to an address range."""
    maps = {}
    writes: dict[int, list] = {}
    for i, addr, val in obs["spk_writes"]:
        writes.setdefault(i, []).append((addr, val))
    for i, (tag, count) in enumerate(obs["instr"]):
        name = lif_by_tag.get(tag)
        # (instructions complete in program order; a WLOAD shares its CONV's tag, and the debug
        # port still shows the last count after it, so only a LIF or a CONV with fire counts)
        ins = prog.instrs[i] if i < len(prog.instrs) else None
        if name is None or ins is None or not (ins.opcode == OP_LIF or ins.fire):
            continue
        t_info = prog.tensors[name]
        base, size = t_info["base"], t_info["steps"] * int(np.prod(t_info["shape"]))
        # a layer tiled into several instructions (a CONV with fire, by output channels): theirs together
        rtl, before = maps.get(name, (np.full(size, -1, dtype=np.int64), 0))
        for addr, val in writes.get(i, []):
            if not base <= addr < base + size:
                raise SpikegateError(f"RTL: layer {name} wrote a spike at address {addr}, outside its region "
                                     f"[{base}, {base + size})")
            rtl[addr - base] = val
        maps[name] = (rtl, before + count)
    return maps


def _first_spike_difference(prog, lif_by_tag: dict, obs: dict, trace: dict, b: int) -> dict | None:
    """The first LIF layer (program order) whose spike map or spike count differs from the golden one."""
    maps = _rtl_spike_maps(prog, lif_by_tag, obs)
    for tag, name in sorted(lif_by_tag.items()):
        spikes, membranes = trace[name]
        want = spikes[:, b].reshape(-1).astype(np.int64)
        if name not in maps:
            return {"layer": name, "rtl_spikes": None, "golden_spikes": int(want.sum()),
                    "detail": "the RTL never ran this LIF instruction"}
        rtl, count = maps[name]
        diff = np.nonzero(rtl != want)[0]
        if len(diff) == 0 and count == int(want.sum()):
            continue
        m = {"layer": name, "rtl_spikes": count, "golden_spikes": int(want.sum())}
        if len(diff):
            n = int(np.prod(prog.tensors[name]["shape"]))
            i = int(diff[0])
            t, neuron = divmod(i, n)
            m.update(time_step=t, neuron=[int(v) for v in np.unravel_index(neuron, spikes.shape[2:])],
                     rtl_spike=int(rtl[i]), golden_spike=int(want[i]),
                     golden_membrane=int(membranes[:, b].reshape(-1)[i]), differing_spikes=len(diff))
        else:
            m["detail"] = "every spike written agrees; the debug port's spike count differs"
        return m
    return None


def result_region(prog, ins) -> tuple[str, np.ndarray, np.ndarray, tuple]:
    """Where an instruction's result lives: ``(memory, lanes, addresses, dims)``, one element per
    result value in the order of ``dims`` (``(name, size)`` pairs of ``time_step``, ``channel``,
    ``y``, ``x``; the flat order of the memory), ``lanes`` nonzero only for ACC (a HEAD's class
    ``k`` is lane ``k % lanes``, word ``k // lanes``). OUTPUT's result is the logit stream: memory
    ``"logits"``, its K classes."""
    op, P = ins.opcode, prog.lanes
    if op == OP_OUTPUT:
        return "logits", np.zeros(ins.cout, np.int64), np.arange(ins.cout), (("channel", ins.cout),)
    if op == OP_HEAD:         # every time step summed into one value per class (padded to lanes)
        k = np.arange(-(-ins.cout // P) * P)
        return "acc", k % P, k // P, (("channel", len(k)),)
    if op == OP_INPUT:
        mem, dims = "act", (("time_step", 1), ("channel", ins.cin), ("y", ins.h), ("x", ins.w))
    elif op == OP_SUM:
        mem, dims = "act", (("time_step", ins.T), ("channel", ins.cin))
    else:                     # CONV and ATTN write ACT, LIF writes SPK: [T, channels, rows, columns]
        mem = "spk" if op == OP_LIF else "act"
        dims = (("time_step", ins.T), ("channel", ins.cout), ("y", ins.ho), ("x", ins.wo))
        if op == OP_CONV and ins.fire == FIRE_ONLY:   # its result is the fused LIF's spikes alone
            n = int(np.prod([s for _, s in dims]))
            return "spk", np.zeros(n, np.int64), ins.src3 + np.arange(n), dims
    n = int(np.prod([s for _, s in dims]))
    return mem, np.zeros(n, np.int64), ins.dst + np.arange(n), dims


def _attribute_writes(obs: dict, n: int) -> list[dict]:
    """Per instruction (completion order): {(memory, lane, address): the last value written}."""
    ends = [c for c, _ in obs["done"]]
    per: list[dict] = [{} for _ in range(n + 1)]       # (the last: writes after every instruction ended)
    for cycle, mem, lane, addr, value in obs["writes"]:
        j = min(bisect.bisect_left(ends, cycle - WRITE_LAG), n)
        per[j][(mem, lane, addr)] = value
    return per


def _reference(state, mem: str, lanes: np.ndarray, addrs: np.ndarray) -> np.ndarray:
    if mem == "acc":
        return state.acc[lanes, addrs]
    return (state.act if mem == "act" else state.spk)[addrs]


def _compare_instruction(prog, j: int, ins, state, writes: dict, logits_rtl) -> dict | None:
    """The first element of instruction ``j``'s result where the RTL differs from ``state`` (the
    ISS after it), in the region's flat order; then any write into the result's memory outside the
    region that leaves a value the reference does not have there."""
    mem, lanes, addrs, dims = result_region(prog, ins)
    if mem == "logits":
        want = state.logits
        got = [int(v) for v in logits_rtl]
    else:
        want = _reference(state, mem, lanes, addrs)
        got = [writes.get((mem, int(lane), int(a))) for lane, a in zip(lanes, addrs)]
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g is None or g != int(w)]
    region = set(zip(lanes.tolist(), addrs.tolist()))
    stray = [(lane, a, v) for (m, lane, a), v in sorted(writes.items())
             if m == mem and (lane, a) not in region and v != int(_reference(state, m, np.array([lane]),
                                                                             np.array([a]))[0])]
    if not bad and not stray:
        return None
    d = {"instruction": j, "op": OPCODES.get(ins.opcode, str(ins.opcode)), "layer": ins.name, "memory": mem,
         "differing_values": len(bad) + len(stray)}
    if bad:
        i = bad[0]
        coord = dict(zip([name for name, _ in dims], (int(v) for v in np.unravel_index(i, [s for _, s in dims]))))
        d.update(address=int(addrs[i]), time_step=coord.get("time_step"), channel=coord.get("channel"),
                 position=[coord["y"], coord["x"]] if "y" in coord else None, rtl=got[i], golden=int(want[i]))
        if mem == "acc":
            d["lane"] = int(lanes[i])
        if got[i] is None:
            d["detail"] = "the RTL wrote nothing there in this instruction"
        elif ins.opcode == OP_HEAD:
            d["detail"] = "HEAD sums every time step into one value per class"
        elif ins.opcode == OP_SUM:
            d["detail"] = "SUM's value per channel is a sum over every position"
    else:
        lane, a, v = stray[0]
        d.update(address=a, time_step=None, channel=None, position=None, rtl=v,
                 golden=int(_reference(state, mem, np.array([lane]), np.array([a]))[0]),
                 detail="written outside the instruction's result region")
    return d


def locate_first_difference(prog, pixels: np.ndarray, obs: dict, trace: dict, gold: np.ndarray, b: int) -> dict:
    """The first instruction (program order) whose result in the RTL's memories differs from the
    golden model, from the locating pass's observation ``obs`` of image ``b`` (its integer
    ``pixels``). The ISS steps through the program beside the RTL's writes; on each LIF and on the
    logits its state is first checked equal to the golden trace (``trace``, ``gold``), so the
    reference values are the golden model's."""
    n = len(prog.instrs)
    per = _attribute_writes(obs, n)
    state = iss.MachineState.zeros(prog)
    for j, ins in enumerate(prog.instrs):
        if j >= len(obs["done"]):
            return {"instruction": j, "op": OPCODES.get(ins.opcode), "layer": ins.name,
                    "detail": f"the RTL ended only {len(obs['done'])} of {n} instructions"}
        if obs["done"][j][1] != ins.tag:
            return {"instruction": j, "op": OPCODES.get(ins.opcode), "layer": ins.name,
                    "detail": f"the RTL ended the instruction tagged {obs['done'][j][1]} where the program "
                              f"has tag {ins.tag}"}
        iss.execute(prog, ins, state, pixels)
        _check_reference(prog, ins, state, trace, gold, b)
        if ins.opcode == OP_WLOAD:      # it writes only WMEM (unobserved): a wrong word shows in its CONV
            continue
        d = _compare_instruction(prog, j, ins, state, per[j], obs["logits"])
        if d:
            return d
    return {"instruction": None,
            "detail": "run alone, every instruction's result of this image equals the golden model's: the "
                      "difference depends on the images run before it"}


def _check_reference(prog, ins, state, trace: dict, gold: np.ndarray, b: int) -> None:
    """The ISS is held equal to the golden model by the compiler's tests; a reference that is not
    would blame the hardware for a compiler bug, so say so instead."""
    if ins.opcode == OP_LIF and ins.name in trace:
        want = trace[ins.name][0][:, b].reshape(-1)
        if not np.array_equal(state.spk[ins.dst: ins.dst + want.size], want):
            raise SpikegateError(f"the ISS disagrees with the golden model at LIF {ins.name} (a compiler bug; "
                                 f"the RTL cannot be judged against it)")
    if ins.opcode == OP_OUTPUT and not np.array_equal(state.logits, gold[b]):
        raise SpikegateError("the ISS's logits disagree with the golden model's (a compiler bug; the RTL "
                             "cannot be judged against it)")
