"""The accelerator's program: instructions, memory images and widths, produced by the compiler.

The spikegate accelerator ("SFA") is a small programmable machine that runs the IR layer by layer,
every layer over all T time steps, memory to memory. ``docs/accelerator.md`` specifies each
instruction's loop nest exactly; :mod:`spikegate.compiler.iss` executes it in Python (bit-exact
with the golden model, and the cycle model), and ``hw/accelerator.py`` implements it in Amaranth.

Memories (all word-addressed):

* ``ACT``: signed ``act_bits``-wide words, one tensor element per word (integer tensors: pixels,
  currents, residual streams, depthwise outputs, attention sums, spatial sums).
* ``SPK``: 1-bit words, one spike per word.
* ``ACC``: ``lanes`` banks of signed ``acc_bits``-wide accumulators (scratch of CONV/HEAD).
* ``WMEM``: ``lanes`` weights of ``weight_bits`` per word: read-only (initialised by the bitstream
  or uploaded before the run), or, for a program whose weights live in external memory
  (``Program.wmem_external``), an on-chip buffer that WLOAD fills from the external image.
* ``BIAS`` / ``SHIFT`` / ``THRESH``: read-only per-channel parameters.

Tensors are laid out ``[t][c][y][x]`` (row-major), one time step after another.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import numpy as np

from spikegate.errors import SpikegateError

# the beats a WLOAD of n packed words reads (one definition, with the port and the packing)
from .external_memory import beats_for as wload_beats

# Opcodes (their numeric values are the hardware encoding).
OP_INPUT = 1    # receive pixels into ACT
OP_CONV = 2     # convolution / linear, scatter-accumulate into ACC, then readout into ACT
OP_LIF = 3      # integer LIF over T: ACT -> SPK
OP_ATTN = 4     # spike-driven self-attention: SPK (q, k, v) -> ACT
OP_SUM = 5      # spatial sum: ACT -> ACT
OP_HEAD = 6     # classifier head on spikes: SPK -> ACC (logits, summed over T)
OP_OUTPUT = 7   # stream the logits out of ACC
OP_WLOAD = 8    # copy WMEM words from the external image into the on-chip WMEM buffer
OPCODES = {OP_INPUT: "INPUT", OP_CONV: "CONV", OP_LIF: "LIF", OP_ATTN: "ATTN", OP_SUM: "SUM",
           OP_HEAD: "HEAD", OP_OUTPUT: "OUTPUT", OP_WLOAD: "WLOAD"}

# WLOAD's operands in the existing fields (no field of its own, so that no program without WLOAD
# gains a bit of ROM word; ``docs/accelerator.md``, "WLOAD"): the external beat address ``src``
# is split over ``src`` (its low ``WLOAD_SRC_LO_BITS`` bits) and ``src2`` (the bits above), the
# word count ``n`` is in ``dst`` and the first on-chip WMEM word in ``wbase``. ``dst`` has as many
# bits as ``wbase``, so every copy that fits the on-chip buffer has a count that fits ``dst``.
WLOAD_SRC_LO_BITS = 20
# external memory ports the machine supports (``machine/external_memory.py``: BurstPort)
WLOAD_PORT_BITS = (16, 32, 64)

# CONV modes
IN_SPIKE, IN_INT = 0, 1          # input is SPK (select weights) or ACT (multiply)
LANES_CO, LANES_TAP = 0, 1       # lanes over output channels (dense) or over kernel taps (depthwise)
OUT_WRITE, OUT_ACCUM = 0, 1      # readout writes ACT, or adds into ACT (membrane shortcut)
# CONV's ``fire`` (T = 1 only): the readout also fires the LIF that reads its output, element by
# element beside the ACT write: ``SPK[src3 + e] = y_e >= 2 * THRESH[pbase + c]`` (``y_e`` the word
# written to ACT, ``c`` its channel; the integer LIF's first step, whose membrane starts at 0, so
# ``h2 = y_e``). It costs no cycle and saves the LIF instruction's ``n + 2 + FETCH``
# (``docs/accelerator.md``, "CONV ... fire"; ``compiler/passes/fuse_fire.py``). FIRE_ONLY: the
# same, and the words are not written to ACT (``dst`` unused; OUT_WRITE only): a current no other
# instruction reads needs no ACT space.
FIRE, FIRE_ONLY = 1, 3

# The instruction word: every field, its width in bits, in encoding order (LSB first).
FIELDS: list[tuple[str, int]] = [
    ("opcode", 4),
    ("src", 20),      # base address of the input tensor (ACT or SPK); ATTN: q base
    ("src2", 20),     # ATTN: k base
    ("src3", 20),     # ATTN: v base
    ("dst", 20),      # base address of the output tensor
    ("T", 5),         # time steps
    ("cin", 12), ("h", 10), ("w", 10),          # input tensor dims
    ("cout", 12), ("ho", 10), ("wo", 10),       # output tensor dims
    ("k", 4), ("stride", 2), ("pad", 3),
    ("in_kind", 1), ("lane_mode", 1), ("out_mode", 1),
    ("heads", 5),
    ("wbase", 20),    # first WMEM word
    ("pbase", 20),    # first BIAS/SHIFT (CONV, HEAD) or THRESH (LIF) entry
    ("tag", 10),      # which IR op (index into the program's op names), for debug and traces
    ("fire", 2),      # CONV: the readout also fires the LIF that follows (FIRE, FIRE_ONLY below)
]
# fields left out of the ROM word where every instruction's value is 0, so that adding them changed
# no word of a program that does not use them (``hw/sfa_common.py: field_or_zero`` reads one that is
# left out as 0)
OPTIONAL_FIELDS = ("fire",)
INSTR_BITS = sum(w for _, w in FIELDS)
# the most words one WLOAD copies (its count is in ``dst``); a larger layer loads in tiles
WLOAD_MAX_WORDS = (1 << dict(FIELDS)["dst"]) - 1


def field_widths(instrs) -> dict[str, int]:
    """Per field of ``FIELDS``, the bits the largest value ``instrs`` put in it need (at least 1):
    the width of that field in the accelerator built for this program (its ROM holds the program
    in this narrower layout; ``hw/sfa_common.py: instr_layout``). An ``OPTIONAL_FIELDS`` one whose
    values are all 0 is left out."""
    widths = {f: max([0 if f in OPTIONAL_FIELDS else 1] + [int(getattr(i, f)).bit_length() for i in instrs])
              for f, _ in FIELDS}
    return {f: w for f, w in widths.items() if w > 0}


# The per-instruction products the engines use (``hw/sfa_common.py: derived_layout``). The compiler
# computes them and the program ROM holds them beside the instruction (:func:`rom_image`), so the
# accelerator needs no multiplier to decode an instruction. (``lo0``, ``pad_s``: the deep scanner's
# start values, see :func:`derived_values`.)
DERIVED = ("hw", "howo", "n_in", "n_out", "kk", "G", "kG", "kkG", "Gt", "d", "dN", "lo0", "pad_s")


def derived_values(ins, lanes: int) -> dict[str, int]:
    """The products of one instruction (``ins`` an :class:`Instr`) for ``lanes`` lanes, in
    ``DERIVED`` order: ``h*w``, ``ho*wo``, ``cin*h*w``, ``cout*ho*wo``, ``k*k``, the lane groups
    ``G = ceil(cout / lanes)``, ``k*G``, ``k*k*G``, the tap groups ``Gt = ceil(k*k / lanes)`` and,
    for ATTN only (0 otherwise, so they widen no word for the others), the channels per head
    ``d = cout / heads`` and ``d*N`` (``N = ho*wo`` tokens); for CONV with more than one lane only
    (the deep scanner of ``hw/sfa_conv.py``, which starts from them in its first cycle, where a
    register of the instruction's fields would be a cycle late), ``lo0``, the first output
    row/column that input row/column 0 reaches (``max(0, ceil((pad - k + 1) / stride))``), and
    ``pad_s = pad >> (stride - 1)``."""
    G = -(-ins.cout // lanes)
    kk = ins.k * ins.k
    d = ins.cout // ins.heads if ins.opcode == OP_ATTN and ins.heads > 0 else 0
    lo0 = pad_s = 0
    if ins.opcode == OP_CONV and lanes > 1:
        sh = 1 if ins.stride == 2 else 0
        a = ins.pad + 1 - ins.k
        lo0 = 0 if a <= 0 else (a + sh) >> sh
        pad_s = ins.pad >> sh
    return {"hw": ins.h * ins.w, "howo": ins.ho * ins.wo, "n_in": ins.cin * ins.h * ins.w,
            "n_out": ins.cout * ins.ho * ins.wo, "kk": kk, "G": G, "kG": ins.k * G,
            "kkG": kk * G, "Gt": -(-kk // lanes), "d": d, "dN": d * ins.ho * ins.wo,
            "lo0": lo0, "pad_s": pad_s}


# products left out of the ROM word where every instruction's value is 0 (the one-lane
# accelerator's deep scanner values), so that adding them changed no narrower machine's word; an
# engine reads one that is left out as 0 (``hw/sfa_common.py: derived_or_zero``)
OPTIONAL_DERIVED = ("lo0", "pad_s")


def derived_widths(instrs, lanes: int) -> dict[str, int]:
    """Per product of ``DERIVED``, the bits its largest value over ``instrs`` needs (at least 1);
    an ``OPTIONAL_DERIVED`` one whose values are all 0 is left out."""
    vals = [derived_values(i, lanes) for i in instrs]
    widths = {k: max([0 if k in OPTIONAL_DERIVED else 1] + [v[k].bit_length() for v in vals]) for k in DERIVED}
    return {k: w for k, w in widths.items() if w > 0}


def pack_word(values: dict[str, int], widths: dict[str, int]) -> int:
    """``values`` packed in the order of ``widths`` (first name in the least significant bits),
    each in its width; a value that does not fit is an error naming it."""
    word, pos = 0, 0
    for name, width in widths.items():
        v = int(values[name])
        if not 0 <= v < (1 << width):
            raise ValueError(f"field {name}={v} does not fit the accelerator's {width} bits")
        word |= v << pos
        pos += width
    return word


def rom_image(instrs, lanes: int, *, without=()) -> list[int]:
    """The accelerator's program ROM: two words per instruction, at ``2*pc`` its fields (the
    :func:`field_widths` layout) and at ``2*pc + 1`` its products (the :func:`derived_widths`
    layout). The ROM's block RAMs are far deeper than a program is long, so the second word costs no
    block RAM where the wider word would have. Fields named in ``without`` are left zero (the
    budget's view of what synthesis keeps)."""
    fw, dw = field_widths(instrs), derived_widths(instrs, lanes)
    words = []
    for i in instrs:
        words.append(pack_word({f: 0 if f in without else getattr(i, f) for f in fw}, fw))
        words.append(pack_word(derived_values(i, lanes), dw))
    return words


@dataclass
class Instr:
    opcode: int
    src: int = 0
    src2: int = 0
    src3: int = 0
    dst: int = 0
    T: int = 1
    cin: int = 1
    h: int = 1
    w: int = 1
    cout: int = 1
    ho: int = 1
    wo: int = 1
    k: int = 1
    stride: int = 1
    pad: int = 0
    in_kind: int = 0
    lane_mode: int = 0
    out_mode: int = 0
    heads: int = 1
    wbase: int = 0
    pbase: int = 0
    tag: int = 0
    fire: int = 0
    name: str = ""  # not encoded
    fires: str = ""  # not encoded: CONV with ``fire``, the IR LIF op whose spikes it writes

    def encode(self) -> int:
        word, pos = 0, 0
        for f, width in FIELDS:
            v = int(getattr(self, f))
            if not 0 <= v < (1 << width):
                raise ValueError(f"instruction {self.name or OPCODES.get(self.opcode)}: field {f}={v} does not "
                                 f"fit {width} bits")
            word |= v << pos
            pos += width
        return word

    @classmethod
    def decode(cls, word: int, name: str = "") -> "Instr":
        vals, pos = {}, 0
        for f, width in FIELDS:
            vals[f] = (word >> pos) & ((1 << width) - 1)
            pos += width
        return cls(**vals, name=name)

    @classmethod
    def wload(cls, src: int, n: int, wbase: int, name: str = "", tag: int = 0) -> "Instr":
        """WLOAD: ``n`` WMEM words from external beat address ``src`` to on-chip word ``wbase``."""
        return cls(OP_WLOAD, src=src & ((1 << WLOAD_SRC_LO_BITS) - 1), src2=src >> WLOAD_SRC_LO_BITS,
                   dst=n, wbase=wbase, name=name, tag=tag)

    @property
    def ext_src(self) -> int:
        """WLOAD: the external beat address its words start at (``src`` + ``src2`` above it)."""
        return int(self.src) | (int(self.src2) << WLOAD_SRC_LO_BITS)

    @property
    def n_words(self) -> int:
        """WLOAD: the WMEM words it copies (carried in ``dst``)."""
        return int(self.dst)

    def describe(self) -> str:
        op = OPCODES[self.opcode]
        if self.opcode == OP_WLOAD:
            return f"{op:<6} {self.name:<36} WMEM[{self.wbase}:{self.wbase + self.n_words}] <- EXT[beat {self.ext_src}]"
        if self.opcode == OP_CONV:
            mode = ("spike" if self.in_kind == IN_SPIKE else "int") + ("/dw" if self.lane_mode == LANES_TAP else "")
            out = "+=" if self.out_mode == OUT_ACCUM else "="
            return (f"{op:<6} {self.name:<36} ACT[{self.dst}] {out} conv{self.k}x{self.k}/s{self.stride}/p{self.pad} "
                    f"{mode} {'SPK' if self.in_kind == IN_SPIKE else 'ACT'}[{self.src}] "
                    f"{self.cin}x{self.h}x{self.w}->{self.cout}x{self.ho}x{self.wo} T={self.T} w@{self.wbase} p@{self.pbase}")
        if self.opcode == OP_LIF:
            return (f"{op:<6} {self.name:<36} SPK[{self.dst}] = lif(ACT[{self.src}]) {self.cout}x{self.ho}x{self.wo} "
                    f"T={self.T} th@{self.pbase}")
        if self.opcode == OP_ATTN:
            return (f"{op:<6} {self.name:<36} ACT[{self.dst}] = attn(SPK[{self.src}],[{self.src2}],[{self.src3}]) "
                    f"{self.cout}x{self.ho}x{self.wo} heads={self.heads} T={self.T}")
        if self.opcode == OP_SUM:
            return f"{op:<6} {self.name:<36} ACT[{self.dst}] = sum_hw(ACT[{self.src}]) {self.cin}x{self.h}x{self.w} T={self.T}"
        if self.opcode == OP_HEAD:
            return (f"{op:<6} {self.name:<36} ACC = sum_t W s(SPK[{self.src}]) + b  {self.cin}->{self.cout} "
                    f"T={self.T} w@{self.wbase} p@{self.pbase}")
        if self.opcode == OP_INPUT:
            return f"{op:<6} {self.name:<36} ACT[{self.dst}] <- {self.cin}x{self.h}x{self.w} pixels"
        return f"{op:<6} {self.name:<36} {self.cout} logits"


@dataclass
class Program:
    """Everything the hardware needs, and the widths it is built with (all from the IR: the
    range analysis' declared widths, and the exact widths of the parameter tables)."""

    instrs: list[Instr]
    lanes: int
    act_bits: int           # ACT words: every integer tensor's declared "out" width
    mul_x_bits: int         # the lanes' multiplier operand: every multi-bit conv input's declared "out" width
    acc_bits: int           # ACC words: every conv's and the head's declared "acc" width
    membrane_bits: int      # LIF h2 = v + x: every LIF's declared "membrane" width
    state_bits: int         # LIF state v carried between time steps: every LIF's declared "state" width
    kv_bits: int            # attention K^T V counts (unsigned): every attention's "kv" width less its sign bit
    weight_bits: int
    bias_bits: int
    shift_bits: int
    thresh_bits: int
    pixel_bits: int
    logit_bits: int
    act_words: int
    spk_words: int
    acc_words: int          # words per ACC bank
    wmem: np.ndarray        # [words, lanes] int64
    bias: np.ndarray        # [entries] int64
    shift: np.ndarray       # [entries] int64 (signed)
    thresh: np.ndarray      # [entries] int64 (the LIF compares h2 >= 2 * thresh)
    num_pixels: int = 0
    num_classes: int = 0
    input_scale: float = 1.0
    T: int = 1
    op_names: list[str] = field(default_factory=list)
    tensors: dict = field(default_factory=dict)  # IR tensor name -> {"mem", "base", "shape"}
    # Saturation (docs/integer-semantics.md): 0 when nothing saturates; else every CONV readout and
    # SUM result is clamped to sat_bits before it is written (a result that does not saturate is
    # proven to fit already), and readout_bits / sum_bits are those results' widths before the clamp
    sat_bits: int = 0
    readout_bits: int = 0
    sum_bits: int = 0
    # Weights in external memory (``compiler/passes/external_weights.py``): None for a program whose
    # weights are all on chip. Otherwise the packed external image, ``port_bits``-wide beats as
    # unsigned integers (uint64), in beat-address order (``machine/external_memory.py``:
    # pack_words), and ``wmem`` is the on-chip buffer the WLOADs fill (zero at the start: its
    # length is the buffer's words; no CONV/HEAD reads a word its layer's WLOADs did not fill).
    wmem_external: np.ndarray | None = None
    port_bits: int = 16

    @property
    def external(self) -> bool:
        """True when the weights live in external memory (WLOAD streams them in)."""
        return self.wmem_external is not None

    def describe(self) -> str:
        head = (f"SFA program: {len(self.instrs)} instructions, lanes={self.lanes}, act {self.act_words}x{self.act_bits}b, "
                f"spk {self.spk_words}x1b, acc {self.lanes}x{self.acc_words}x{self.acc_bits}b, "
                f"wmem {len(self.wmem)}x{self.lanes}x{self.weight_bits}b")
        return "\n".join([head] + [f"{i:4d} {ins.describe()}" for i, ins in enumerate(self.instrs)])

    def summary(self) -> dict:
        d = {k: getattr(self, k) for k in ("lanes", "act_bits", "mul_x_bits", "acc_bits", "membrane_bits", "state_bits",
                                            "kv_bits", "weight_bits", "bias_bits", "shift_bits", "thresh_bits",
                                            "pixel_bits", "logit_bits",
                                            "act_words", "spk_words", "acc_words", "num_pixels", "num_classes",
                                            "input_scale", "T")}
        d["wmem_words"] = int(len(self.wmem))
        d["instructions"] = len(self.instrs)
        if self.external:
            d["external_beats"] = int(len(self.wmem_external))
            d["port_bits"] = self.port_bits
        return d


# ------------------------------------------------------------------------------------ validity

class ProgramError(SpikegateError, ValueError):
    """A Program the machine cannot run: the message names the instruction or table at fault (the
    CLI prints it as one line: a model too large for the ISA's fields is the user's input)."""


def _fits(values, bits: int, signed: bool) -> tuple[int, int] | None:
    """``(lo, hi)`` of ``values`` if some value does not fit ``bits``, else None."""
    v = np.asarray(values, dtype=np.int64).reshape(-1)
    if not v.size:
        return None
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    return None if lo <= v.min() and v.max() <= hi else (int(v.min()), int(v.max()))


def validate_program(p: Program) -> Program:
    """Every rule a :class:`Program` must satisfy for the machine to run it, in one place (as
    ``quantize/graph.py: validate`` is for the IR): the compiler's passes, the ISS and the hardware
    generator call it rather than checking pieces of it themselves. Raises :class:`ProgramError`
    naming the instruction, field or table at fault; returns ``p``.

    * ``lanes`` is an integer in 1..256; the program starts with INPUT and ends with OUTPUT;
    * every opcode is known and every field of every instruction fits its ISA width (``FIELDS``);
    * the tensors an instruction reads and writes lie inside ACT / SPK;
    * ``wmem`` is ``[words, lanes]`` and every table fits its declared width;
    * no CONV runs while ACC holds HEAD sums (between the first HEAD and OUTPUT);
    * WLOAD only in a program with an external image: it copies at least one word, its words lie
      inside the image and the on-chip buffer, and every WMEM word a CONV/HEAD of such a program
      reads was filled by a WLOAD since the previous CONV/HEAD (its layer's).
    """
    if not isinstance(p.lanes, int) or isinstance(p.lanes, bool) or not 1 <= p.lanes <= 256:
        raise ProgramError(f"lanes must be an integer in 1..256, not {p.lanes!r}")
    if not p.instrs or p.instrs[0].opcode != OP_INPUT or p.instrs[-1].opcode != OP_OUTPUT:
        raise ProgramError("program must start with INPUT and end with OUTPUT")
    if p.sat_bits and not (2 <= p.sat_bits <= p.act_bits and p.readout_bits >= p.sat_bits
                           and p.sum_bits >= p.sat_bits):
        raise ProgramError(f"saturation width {p.sat_bits} must lie in 2..act_bits={p.act_bits} and below "
                           f"readout_bits={p.readout_bits} and sum_bits={p.sum_bits}")
    wm = np.asarray(p.wmem)
    if wm.ndim != 2 or wm.shape[1] != p.lanes:
        raise ProgramError(f"wmem must have shape [words, lanes={p.lanes}], not {wm.shape!r}")
    for name, values, bits, signed in (("wmem", wm, p.weight_bits, True), ("bias", p.bias, p.bias_bits, True),
                                       ("shift", p.shift, p.shift_bits, True),
                                       ("thresh", p.thresh, p.thresh_bits, True)):
        bad = _fits(values, bits, signed)
        if bad:
            raise ProgramError(f"{name} must fit {bits}-bit integers, not [{bad[0]}, {bad[1]}]")
    for pc, ins in enumerate(p.instrs):
        _check_instr(p, pc, ins)
    _check_acc_use(p)
    _check_wloads(p)
    return p


def wmem_reads(p: Program, ins: Instr) -> int:
    """The WMEM words a CONV or HEAD reads from ``wbase`` on (0 for the other opcodes)."""
    G = -(-ins.cout // p.lanes)
    if ins.opcode == OP_CONV:
        return ins.cin * (ins.k * ins.k * G if ins.lane_mode == LANES_CO else -(-ins.k * ins.k // p.lanes))
    if ins.opcode == OP_HEAD:
        return ins.cin * G
    return 0


def acc_reads(ins: Instr, lanes: int) -> int:
    """The ACC words per bank a CONV or HEAD uses (0 for the other opcodes): a LANES_CO CONV one
    per lane group and output pixel, a LANES_TAP CONV one per channel and output pixel, a HEAD one
    per lane group of classes. A program's ``acc_words`` is the largest over its instructions."""
    if ins.opcode == OP_HEAD:
        return -(-ins.cout // lanes)
    if ins.opcode != OP_CONV:
        return 0
    return (-(-ins.cout // lanes) if ins.lane_mode == LANES_CO else ins.cout) * ins.ho * ins.wo


def _check_wloads(p: Program) -> None:
    """The WLOAD rules (see :func:`validate_program`)."""
    loads = [pc for pc, i in enumerate(p.instrs) if i.opcode == OP_WLOAD]
    if not p.external:
        if loads:
            raise ProgramError(f"instruction {loads[0]} ({p.instrs[loads[0]].name or 'WLOAD'}): WLOAD in a program "
                               f"without an external weight image (wmem_external)")
        return
    if p.port_bits not in WLOAD_PORT_BITS:
        raise ProgramError(f"port_bits must be one of {WLOAD_PORT_BITS}, not {p.port_bits!r}")
    ext = np.asarray(p.wmem_external)
    if ext.ndim != 1 or ext.dtype != np.uint64:
        raise ProgramError(f"wmem_external must be a 1-D uint64 array of beats, not {ext.dtype} {ext.shape!r}")
    if p.port_bits < 64 and ext.size and int(ext.max()) >> p.port_bits:
        raise ProgramError(f"wmem_external holds a beat wider than port_bits={p.port_bits}")
    word_bits = p.lanes * p.weight_bits
    filled = np.zeros(len(p.wmem), dtype=bool)    # words the WLOADs since the last CONV/HEAD wrote
    for pc, ins in enumerate(p.instrs):
        who = f"instruction {pc} ({ins.name or OPCODES.get(ins.opcode, ins.opcode)})"
        if ins.opcode == OP_WLOAD:
            n, src = ins.n_words, ins.ext_src
            if n < 1:
                raise ProgramError(f"{who}: WLOAD must copy at least one word, not {n}")
            if ins.wbase + n > len(p.wmem):
                raise ProgramError(f"{who}: WMEM[{ins.wbase}:{ins.wbase + n}] lies outside the on-chip "
                                   f"buffer's {len(p.wmem)} words")
            beats = wload_beats(n, word_bits, p.port_bits)
            if src + beats > len(ext):
                raise ProgramError(f"{who}: external beats [{src}:{src + beats}] lie outside the image's "
                                   f"{len(ext)} beats")
            filled[ins.wbase: ins.wbase + n] = True
        elif ins.opcode in (OP_CONV, OP_HEAD):
            n = wmem_reads(p, ins)
            if ins.wbase + n > len(filled):
                raise ProgramError(f"{who}: wbase WMEM[{ins.wbase}:{ins.wbase + n}] lies outside the on-chip "
                                   f"buffer's {len(filled)} words")
            missing = np.flatnonzero(~filled[ins.wbase: ins.wbase + n])
            if missing.size:
                raise ProgramError(f"{who}: reads WMEM[{ins.wbase + int(missing[0])}], which no WLOAD since "
                                   f"the previous CONV/HEAD filled (weights in external memory: each "
                                   f"layer's WLOAD must precede it)")
            filled[:] = False


def _check_acc_use(p: Program) -> None:
    """ACC holds the HEAD sums from the first HEAD until OUTPUT reads and clears them; a CONV uses
    ACC as scratch (it adds its taps to what the words hold and clears them in its readout), so a
    CONV in between would add into the logits (rtl_tests/test_engines.py shows the engine doing
    exactly that). The schedule never places one there; this states it."""
    holding = None
    for pc, ins in enumerate(p.instrs):
        if ins.opcode == OP_HEAD and holding is None:
            holding = ins
        elif ins.opcode == OP_OUTPUT:
            holding = None
        elif ins.opcode == OP_CONV and holding is not None:
            raise ProgramError(f"instruction {pc} ({ins.name or 'CONV'}): a CONV between HEAD "
                               f"({holding.name or 'HEAD'}) and OUTPUT would add its taps into the logits "
                               f"in ACC; schedule it before the first HEAD")


def _check_instr(p: Program, pc: int, ins: Instr) -> None:
    who = f"instruction {pc} ({ins.name or OPCODES.get(ins.opcode, ins.opcode)})"
    if ins.opcode not in OPCODES:
        raise ProgramError(f"{who}: unknown opcode {ins.opcode}")
    for f, width in FIELDS:
        v = getattr(ins, f)
        if not isinstance(v, (int, np.integer)) or not 0 <= int(v) < (1 << width):
            raise ProgramError(f"{who}: field {f}={v} does not fit the ISA's {width} bits")
    if ins.fire and (ins.opcode != OP_CONV or ins.T != 1 or ins.fire not in (FIRE, FIRE_ONLY)):
        raise ProgramError(f"{who}: fire (the readout's LIF) is {FIRE} or {FIRE_ONLY} on a CONV with T = 1 only "
                           f"(the LIF's membrane starts at 0), not {ins.fire} on {OPCODES[ins.opcode]} with T = {ins.T}")
    if ins.fire == FIRE_ONLY and ins.out_mode != OUT_WRITE:
        raise ProgramError(f"{who}: FIRE_ONLY (no ACT write) cannot add into ACT (out_mode OUT_ACCUM)")
    n_in, n_out = ins.cin * ins.h * ins.w, ins.cout * ins.ho * ins.wo
    extents = {
        OP_INPUT: [("dst", "ACT", ins.dst, n_in)],
        OP_CONV: [("src", "SPK" if ins.in_kind == IN_SPIKE else "ACT", ins.src, n_in * (1 if ins.src2 else ins.T))]
        + ([] if ins.fire == FIRE_ONLY else [("dst", "ACT", ins.dst, n_out * ins.T)]),   # src2: one input step for all T
        OP_LIF: [("src", "ACT", ins.src, n_out * ins.T), ("dst", "SPK", ins.dst, n_out * ins.T)],
        OP_ATTN: [(f, "SPK", getattr(ins, f), n_out * ins.T) for f in ("src", "src2", "src3")]
        + [("dst", "ACT", ins.dst, n_out * ins.T)],
        OP_SUM: [("src", "ACT", ins.src, n_in * ins.T), ("dst", "ACT", ins.dst, ins.cin * ins.T)],
        OP_HEAD: [("src", "SPK", ins.src, ins.cin * ins.T)],
        OP_OUTPUT: [],
        OP_WLOAD: [],         # its ranges: _check_wloads
    }[ins.opcode]
    G = -(-ins.cout // p.lanes)
    extents += {
        OP_CONV: [("pbase", "BIAS", ins.pbase, ins.cout), ("pbase", "SHIFT", ins.pbase, ins.cout)]
        + ([("src3", "SPK", ins.src3, n_out), ("pbase", "THRESH", ins.pbase, ins.cout)] if ins.fire else []),
        OP_LIF: [("pbase", "THRESH", ins.pbase, ins.cout)],
        OP_HEAD: [("wbase", "WMEM", ins.wbase, ins.cin * G), ("pbase", "BIAS", ins.pbase, G * p.lanes),
                  ("cout", "ACC", 0, G)],
        OP_OUTPUT: [("cout", "ACC", 0, G)],
    }.get(ins.opcode, [])
    words = {"ACT": p.act_words, "SPK": p.spk_words, "WMEM": len(p.wmem), "BIAS": len(p.bias),
             "SHIFT": len(p.shift), "THRESH": len(p.thresh), "ACC": p.acc_words}
    for field_name, mem, base, n in extents:
        if base + n > words[mem]:
            raise ProgramError(f"{who}: {field_name} {mem}[{base}:{base + n}] lies outside {mem}'s "
                               f"{words[mem]} words")
