"""PLL parameters and instances for iCE40 (SB_PLL40_PAD) and ECP5 (EHXPLLL).

The searches reproduce icestorm's ``icepll`` and prjtrellis' ``ecppll`` (checked against
``yowasp-icepll``/``yowasp-ecppll``: 12 -> 24 and 12 -> 30 MHz on iCE40, 25 -> 50 and 48 -> 60 MHz on
ECP5 give the same dividers), so no external tool runs during elaboration. The output frequency is
the nearest reachable one; callers check it against what they asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from amaranth.hdl import Const, Instance

__all__ = ["ICE40PLL", "ECP5PLL", "ECP5Output", "ice40_pll", "ecp5_pll", "ecp5_add_output",
           "pll_params", "pll_instance"]


@dataclass(frozen=True)
class ICE40PLL:
    fin_mhz: float
    fout_mhz: float
    divr: int
    divf: int
    divq: int
    filter_range: int


@dataclass(frozen=True)
class ECP5Output:
    """A secondary EHXPLLL output (CLKOS, CLKOS2, CLKOS3 in order): the VCO divided by ``div``,
    ``phase_deg`` after CLKOP's edge (``cphase``/``fphase``: whole and eighth VCO cycles, as
    prjtrellis' ``ecppll`` writes them)."""
    div: int
    cphase: int
    fphase: int
    fout_mhz: float
    phase_deg: float


@dataclass(frozen=True)
class ECP5PLL:
    fin_mhz: float
    fout_mhz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int
    clkop_cphase: int
    fvco_mhz: float
    secondary: tuple[ECP5Output, ...] = ()


def ice40_pll(fin_mhz: float, fout_mhz: float) -> ICE40PLL:
    """SIMPLE feedback: fout = fin * (DIVF+1) / ((DIVR+1) * 2**DIVQ)."""
    if not 10 <= fin_mhz <= 133:
        raise ValueError(f"iCE40 PLL input must be 10..133 MHz, not {fin_mhz}")
    if not 16 <= fout_mhz <= 275:
        raise ValueError(f"iCE40 PLL output must be 16..275 MHz, not {fout_mhz}")
    best = None
    for divr in range(16):
        fpfd = fin_mhz / (divr + 1)
        if not 10 <= fpfd <= 133:
            continue
        for divf in range(128):
            fvco = fpfd * (divf + 1)
            if not 533 <= fvco <= 1066:
                continue
            for divq in range(1, 7):
                fout = fvco / 2 ** divq
                err = abs(fout - fout_mhz)
                if best is None or err < best[0]:
                    best = (err, divr, divf, divq, fout, fpfd)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting makes {fout_mhz} MHz from {fin_mhz} MHz")
    _, divr, divf, divq, fout, fpfd = best
    filter_range = (1 if fpfd < 17 else 2 if fpfd < 26 else 3 if fpfd < 44 else
                    4 if fpfd < 66 else 5 if fpfd < 101 else 6)
    return ICE40PLL(fin_mhz, fout, divr, divf, divq, filter_range)


def ecp5_pll(fin_mhz: float, fout_mhz: float) -> ECP5PLL:
    """CLKOP fed back: fout = fin * CLKFB_DIV / CLKI_DIV, fvco = fout * CLKOP_DIV (400..800 MHz).
    Among the closest outputs, the VCO nearest 600 MHz wins (as ecppll does)."""
    if not 8 <= fin_mhz <= 400:
        raise ValueError(f"ECP5 PLL input must be 8..400 MHz, not {fin_mhz}")
    if not 3.125 <= fout_mhz <= 400:
        raise ValueError(f"ECP5 PLL output must be 3.125..400 MHz, not {fout_mhz}")
    best = None
    for clki in range(1, 129):
        fpfd = fin_mhz / clki
        if fpfd < 3.125 or fpfd > 400:
            continue
        for clkfb in range(1, 81):
            fout = fpfd * clkfb
            for clkop in range(1, 129):
                fvco = fout * clkop
                if not 400 <= fvco <= 800:
                    continue
                key = (round(abs(fout - fout_mhz), 9), abs(fvco - 600))
                if best is None or key < best[0]:
                    best = (key, clki, clkfb, clkop, fout, fvco)
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {fout_mhz} MHz from {fin_mhz} MHz")
    _, clki, clkfb, clkop, fout, fvco = best
    return ECP5PLL(fin_mhz, fout, clki, clkfb, clkop, (clkop - 1) // 2, fvco)


def ecp5_add_output(params: ECP5PLL, max_mhz: float, phase_deg: float = 0.0) -> ECP5PLL:
    """``params`` with one more secondary output: the fastest VCO division at most ``max_mhz``,
    ``phase_deg`` (0 <= phase < 360) after CLKOP, rounded to an eighth of a VCO cycle. Phase
    counts as ``ecppll`` computes them (25 -> 60 MHz, 50 MHz at 90 degrees: CLKOS2_DIV 12, CPHASE
    7 = CLKOP's 4 + 3, FPHASE 0; checked with ``yowasp-ecppll``). Three at most (CLKOS..CLKOS3)."""
    if len(params.secondary) >= 3:
        raise ValueError("an EHXPLLL has three secondary outputs (CLKOS, CLKOS2, CLKOS3)")
    if not 0 <= phase_deg < 360:
        raise ValueError(f"phase must be 0..360 degrees, not {phase_deg}")
    div = math.ceil(params.fvco_mhz / max_mhz - 1e-9)
    if not 1 <= div <= 128:
        raise ValueError(f"no EHXPLLL division of its {params.fvco_mhz:g} MHz VCO is at most {max_mhz:g} MHz")
    eighths = round(phase_deg / 360 * div * 8)
    out = ECP5Output(div=div, cphase=params.clkop_cphase + eighths // 8, fphase=eighths % 8,
                     fout_mhz=params.fvco_mhz / div, phase_deg=eighths * 45 / div)
    return replace(params, secondary=params.secondary + (out,))


def pll_params(family: str, fin_mhz: float, fout_mhz: float):
    if family == "ice40":
        return ice40_pll(fin_mhz, fout_mhz)
    if family == "ecp5":
        return ecp5_pll(fin_mhz, fout_mhz)
    raise ValueError(f"family must be 'ice40' or 'ecp5', not {family!r}")


def pll_instance(params, *, clk_in, clk_out, locked, secondary_out=()) -> Instance:
    """The primitive for ``params``. For iCE40, ``clk_in`` is the pad (an ``IOPort``: the
    SB_PLL40_PAD takes the clock pin directly); for ECP5 it is the buffered input clock signal,
    and ``secondary_out`` the signals of ``params.secondary`` (CLKOS, CLKOS2, CLKOS3), one each."""
    if isinstance(params, ICE40PLL):
        return Instance(
            "SB_PLL40_PAD",
            p_FEEDBACK_PATH="SIMPLE",
            p_PLLOUT_SELECT="GENCLK",
            p_DIVR=Const(params.divr, 4),
            p_DIVF=Const(params.divf, 7),
            p_DIVQ=Const(params.divq, 3),
            p_FILTER_RANGE=Const(params.filter_range, 3),
            i_PACKAGEPIN=clk_in,
            i_RESETB=Const(1),
            i_BYPASS=Const(0),
            o_PLLOUTGLOBAL=clk_out,
            o_LOCK=locked,
        )
    if isinstance(params, ECP5PLL):
        if len(secondary_out) != len(params.secondary):
            raise ValueError(f"{len(params.secondary)} secondary outputs need as many signals, "
                             f"not {len(secondary_out)}")
        extra = {}
        for name, out, sig in zip(("CLKOS", "CLKOS2", "CLKOS3"), params.secondary, secondary_out):
            extra.update({f"a_FREQUENCY_PIN_{name}": f"{out.fout_mhz:g}",
                          f"p_{name}_ENABLE": "ENABLED", f"p_{name}_DIV": out.div,
                          f"p_{name}_CPHASE": out.cphase, f"p_{name}_FPHASE": out.fphase,
                          f"o_{name}": sig})
        return Instance(
            "EHXPLLL",
            a_FREQUENCY_PIN_CLKI=f"{params.fin_mhz:g}",
            a_FREQUENCY_PIN_CLKOP=f"{params.fout_mhz:g}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
            a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED",
            p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
            p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
            p_CLKI_DIV=params.clki_div,
            p_CLKOP_ENABLE="ENABLED",
            p_CLKOP_DIV=params.clkop_div,
            p_CLKOP_CPHASE=params.clkop_cphase,
            p_CLKOP_FPHASE=0,
            p_FEEDBK_PATH="CLKOP",
            p_CLKFB_DIV=params.clkfb_div,
            i_RST=Const(0), i_STDBY=Const(0),
            i_CLKI=clk_in, o_CLKOP=clk_out, i_CLKFB=clk_out,
            i_PHASESEL0=Const(0), i_PHASESEL1=Const(0), i_PHASEDIR=Const(1),
            i_PHASESTEP=Const(1), i_PHASELOADREG=Const(1), i_PLLWAKESYNC=Const(0),
            i_ENCLKOP=Const(0),
            o_LOCK=locked,
            **extra,
        )
    raise TypeError(f"params must be ICE40PLL or ECP5PLL, not {params!r}")
