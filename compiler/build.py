"""The compile flow: IR -> checked, scheduled, planned, packed Program (-> hardware, report)."""

from __future__ import annotations

from spikeforge.quantize.graph import Graph

from .passes.check_ops import check_ops
from .passes.memory_plan import memory_plan
from .passes.pack import pack_parameters
from .passes.schedule import schedule
from .program import Program


def lower_to_program(g: Graph, lanes: int) -> Program:
    g = check_ops(g)
    s = schedule(g)
    plan = memory_plan(s)
    return pack_parameters(g, s, plan, lanes)
