"""CONV and HEAD engine of the SFA accelerator: event-driven scatter into the ACC banks, then readout.

Semantics: ``docs/accelerator.md`` (CONV, HEAD). HEAD runs as a CONV with a 1x1 kernel on a 1x1
map (``cin = C`` spikes, ``cout = K`` classes, lanes over classes) whose per-time-step phase after
the scatter adds the biases into the ACC banks instead of reading them out.

The engine is its parts, each a component of its own module (the module says why each stage is
where it is; most stages exist because a path through them in one cycle was a critical path of
the UP5K or the ECP5):

* :class:`~spikegate.hw.conv_geometry.ConvGeometry`: the instruction, with HEAD's implicit
  geometry, and the loop bounds less one, registered;
* :class:`~spikegate.hw.conv_scanner.ConvScanner` (SCAT, stages S0, SR and, with more than one
  lane, SV): walks the input elements in ``[c][y][x]`` order, reads each (SPK, or ACT in INT mode)
  and computes, without a multiplier, where its first tap goes;
* :class:`~spikegate.hw.conv_tap_loop.ConvTapLoop` (SCAT, stage S1): a non-zero element is an
  *event* whose taps it issues one per cycle (LANES_CO: ``oy``, ``ox``, lane group ``g``
  innermost; LANES_TAP: one tap group per cycle, lane ``p`` on tap ``tg*P + p``), reading WMEM;
  an event costs exactly its tap cycles (``taps * G``, or ``Gt``), a non-event one cycle;
* :class:`~spikegate.hw.conv_lanes.ConvLaneArray`: the tap pipeline (T1, T2; with more than one
  lane, the *deep* pipeline ``machine/config.py: deep_acc_pipeline``, TW, T3, T4, T5 with a
  three-deep forward, as its ACC read ports are not transparent) and the ``lanes``
  :class:`~spikegate.hw.datapath.AccumulateLane` s, which add a weight, ``x * weight`` or a bias
  into the ACC banks;
* :class:`~spikegate.hw.conv_readout.ConvReadout` (``RO``, CONV): one output element per cycle,
  channels then positions: ``align(acc, shift) + bias (+ old)``, an
  :class:`~spikegate.hw.datapath.AlignBias`, into ACT, the ACC word(s) cleared;
* :class:`~spikegate.hw.conv_head_bias.HeadBiasPhase` (``BIAS``, HEAD): for ``g``, ``p``: lane
  ``p`` adds ``BIAS[pbase + g*P + p]`` into ``ACC[p][g]``;
* :class:`~spikegate.hw.conv_control.ConvControl`: the state machine that runs them per time step
  ``t``: SCAT, its drain (the last tap's write-back), RO or BIAS, their drain, DRAIN.

The lanes and the readout's aligner are the components ``rtl_tests/test_formal.py`` proves equal to
their integer definitions (``quantize/intops.py``), at the widths :func:`lane_widths` and
:func:`readout_widths` give them; the engine only sequences them.

Cycle costs (``compiler/cycle_model.py`` holds the constants, ``compiler/iss.py`` the counting):
per time step ``3 + sum(element costs)`` for SCAT (with SCAT_DRAIN), ``n_out + 3`` for RO, ``G*P +
2`` for BIAS (with BIAS_DRAIN and the DRAIN cycle of the last write-back); with more than one lane
SCAT and BIAS take four more (the deep pipeline's drains, ``ACC_DEEP_OVH``), SCAT two more (SV's
fill, SCAT_DRAIN5: ``SCAN_DEEP_OVH``), RO two more (RS, RS2); with more than 8 lanes RO one more
(RS3: ``READOUT_SUM_DEEP_OVH``).
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from spikegate.machine.config import MachineConfig, deep_acc_pipeline

from .conv_control import ConvControl, conv_states
from .conv_geometry import ConvGeometry, geometry_shapes
from .conv_head_bias import HeadBiasPhase
from .conv_lanes import ConvLaneArray, lane_widths
from .conv_readout import ConvReadout, fire_decode, readout_widths
from .conv_scanner import ConvScanner
from .conv_tap_loop import ConvTapLoop
from .sfa_common import Engine, read_sig, wmem_layout, write_sig

__all__ = ["ConvEngine", "lane_widths", "readout_widths"]


class ConvEngine(Engine):
    """Runs CONV and HEAD instructions (``start`` with the instruction presented on ``instr`` from
    the cycle before ``start`` on and its products on ``drv`` from ``start`` on, both held until
    ``done``; ``done`` pulses in the cycle of the last memory write). ``wmem_r`` delivers a word
    one cycle after its address with one lane, three cycles after it with the deep pipeline (a
    :class:`~spikegate.hw.banked_rom.BankedROM`: the weights are registered in T3 either way)."""

    def __init__(self, cfg: MachineConfig):
        P = cfg.lanes
        super().__init__(cfg, {
            "act_r": Out(read_sig(cfg.act_abits, signed(cfg.act_bits), take=cfg.taken)),
            "act_w": Out(write_sig(cfg.act_abits, signed(cfg.act_bits))),
            "spk_r": Out(read_sig(cfg.spk_abits, unsigned(1))),
            "wmem_r": Out(read_sig(cfg.wmem_abits, wmem_layout(cfg))),
            "bias_r": Out(read_sig(cfg.bias_abits, signed(cfg.bias_bits))),
            "shift_r": Out(read_sig(cfg.shift_abits, signed(cfg.shift_bits))),
            "acc_r": Out(read_sig(cfg.acc_abits, signed(cfg.acc_bits), take=cfg.taken)).array(P),
            "acc_w": Out(write_sig(cfg.acc_abits, signed(cfg.acc_bits))).array(P),
            # the readout's fire mode (ConvReadout), only when the program fires
            **({"thresh_r": Out(read_sig(cfg.thresh_abits, signed(cfg.thresh_bits))),
                "spk_w": Out(write_sig(cfg.spk_abits, unsigned(1))),
                "spikes": Out(32)} if cfg.fires else {}),
        })

    @property
    def acc_read_probe(self) -> dict:
        """With the deep pipeline, what the ACC collision test watches
        (``rtl_tests/test_port_collisions.py``): whether the read is the readout's (``in_ro``) and
        then whether RS uses the lane's word (``ro_used``: LANES_TAP every lane's, LANES_CO lane
        ``rp``'s), whether it is a tap's (``tw_en``: in TW), and the tap's forward in T4
        (``t4_sel``); the signals of the last elaboration."""
        parts = self._parts
        return {"in_ro": parts.control.in_ro, "ro_used": parts.readout.lane_used,
                "tw_en": parts.lanes.tw_en, "t4_sel": parts.lanes.t4_sel}

    def elaborate(self, platform):
        m = Module()
        cfg, P = self._cfg, self._cfg.lanes
        self._parts = parts = SimpleNamespace(
            geometry=ConvGeometry(cfg), scanner=ConvScanner(cfg), tap_loop=ConvTapLoop(cfg),
            lanes=ConvLaneArray(cfg), readout=ConvReadout(cfg), bias=HeadBiasPhase(cfg),
            control=ConvControl(cfg))
        geo, scan, taps, lanes, ro, bias, ctl = (parts.geometry, parts.scanner, parts.tap_loop, parts.lanes,
                                                 parts.readout, parts.bias, parts.control)
        for name, part in vars(parts).items():
            m.submodules[name] = part
            members = part.signature.members
            for port in ("instr", "drv"):
                if port in members and members[port].flow == wiring.In:
                    m.d.comb += getattr(part, port).eq(getattr(self, port))
            if part is not geo:
                # the geometry registers each part takes, by name
                m.d.comb += [getattr(part, n).eq(getattr(geo, n)) for n in geometry_shapes(cfg) if n in members]

        # the control's state (each part decodes it) and the parts' ends back
        m.d.comb += [ctl.start.eq(self.start), self.done.eq(ctl.done), ctl.scan_finished.eq(scan.finished),
                     ctl.more_pos.eq(ro.more_pos), ctl.last_ch.eq(ro.last_ch),
                     ctl.more_lanes.eq(bias.more_lanes), ctl.last_group.eq(bias.last_group)]
        for part in (scan, taps, lanes, ro, bias):
            members = part.signature.members
            m.d.comb += part.state.eq(ctl.state)
            m.d.comb += [getattr(part, n).eq(getattr(v, n)) for v, n in
                         ((self, "start"), (ctl, "t_end"), (ctl, "scan_run")) if n in members]
        m.d.comb += scan.adv.eq(taps.adv)
        wiring.connect(m, scan.element, taps.element)
        wiring.connect(m, taps.issue, lanes.scan_issue)
        wiring.connect(m, bias.issue, lanes.bias_issue)
        m.d.comb += [lanes.in_ro.eq(ctl.in_ro), lanes.ro_addr.eq(ro.ro_addr), lanes.clr_addr.eq(ro.clr_addr)]
        m.d.comb += [lanes.clr[p].eq(ro.clr[p]) for p in range(P)]

        # the memory ports: ACC is the lane array's, ACT's write the readout's; ACT's read is the
        # scanner's or (in_ro) the readout's old word, SPK's the scanner's
        for p in range(P):
            wiring.connect(m, wiring.flipped(self.acc_r[p]), lanes.acc_r[p])
            wiring.connect(m, wiring.flipped(self.acc_w[p]), lanes.acc_w[p])
            m.d.comb += ro.words[p].eq(self.acc_r[p].data)
        wiring.connect(m, wiring.flipped(self.act_w), ro.act_w)
        m.d.comb += [scan.act_data.eq(self.act_r.data), scan.spk_data.eq(self.spk_r.data),
                     ro.old_data.eq(self.act_r.data), ro.shift_data.eq(self.shift_r.data),
                     ro.bias_data.eq(self.bias_r.data), lanes.bias_data.eq(self.bias_r.data),
                     lanes.wmem_data.eq(self.wmem_r.data)]
        m.d.comb += [self.act_r.addr.eq(Mux(ctl.in_ro, ro.act_addr, scan.rd_addr)), self.spk_r.addr.eq(scan.rd_addr)]
        # the reads' enables: the scanner's in the scan (deep pipeline: scan_run), ACT's every
        # cycle of RO (the old word), decoded from the state as the engine's FSM did
        S = conv_states(cfg)
        deep = deep_acc_pipeline(P)
        with m.Switch(ctl.state):
            with m.Case(S["SCAT"]):
                if not deep:
                    m.d.comb += [self.spk_r.en.eq(scan.rd_en), self.act_r.en.eq(scan.rd_en)]
            with m.Case(S["RO"]):
                m.d.comb += self.act_r.en.eq(1)
        if deep:
            with m.If(ctl.scan_run):
                m.d.comb += [self.spk_r.en.eq(scan.rd_en), self.act_r.en.eq(scan.rd_en)]
            m.d.comb += self.act_r.take.eq(scan.act_take)
        m.d.comb += [self.wmem_r.addr.eq(taps.w_addr), self.wmem_r.en.eq(1),
                     self.bias_r.addr.eq(ro.param_addr), self.shift_r.addr.eq(ro.param_addr),
                     self.bias_r.en.eq(1), self.shift_r.en.eq(1)]
        if cfg.fires:
            # THRESH read beside BIAS/SHIFT (enabled only for a CONV with fire: the port is
            # LIF's too), the SPK write and the spike count the readout's
            m.d.comb += [self.thresh_r.addr.eq(ro.param_addr), self.thresh_r.en.eq(fire_decode(self.instr)[0]),
                         ro.thresh_data.eq(self.thresh_r.data), self.spikes.eq(ro.spikes)]
            wiring.connect(m, wiring.flipped(self.spk_w), ro.spk_w)
        return m
