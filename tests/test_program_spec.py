"""The Program's validity rules (machine/program.py: validate_program): every program the compiler
makes passes them, and each rule, broken on purpose, gives one line naming what is at fault."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from spikegate.compiler.build import lower_to_program
from spikegate.compiler.irgen import random_graph
from spikegate.errors import SpikegateError
from spikegate.machine.program import OP_CONV, OP_HEAD, OP_LIF, ProgramError, validate_program


@pytest.fixture(scope="module")
def program():
    g, _ = random_graph(3)
    return lower_to_program(g, 2)


@pytest.mark.parametrize("seed", range(0, 40, 3))
@pytest.mark.parametrize("lanes", [1, 3, 8])
def test_compiled_programs_are_valid(seed, lanes):
    g, _ = random_graph(seed)
    validate_program(lower_to_program(g, lanes))


def _first(p, opcode):
    return next(i for i in p.instrs if i.opcode == opcode)


def _broken(program, edit):
    p = copy.deepcopy(program)
    edit(p)
    with pytest.raises(ProgramError) as e:
        validate_program(p)
    assert isinstance(e.value, SpikegateError)      # the CLI prints it as one line
    return str(e.value)


def test_each_rule_names_what_is_at_fault(program):
    def field_too_wide(p):
        _first(p, OP_LIF).pbase = 1 << 20

    msg = _broken(program, field_too_wide)
    assert "field pbase=1048576 does not fit the ISA's 20 bits" in msg and "instruction" in msg

    def out_of_act(p):
        ins = _first(p, OP_CONV)
        ins.dst = p.act_words - 1

    assert "lies outside ACT's" in _broken(program, out_of_act)

    def no_output(p):
        p.instrs = p.instrs[:-1]

    assert _broken(program, no_output) == "program must start with INPUT and end with OUTPUT"

    def bad_lanes(p):
        p.lanes = 0

    assert "lanes must be an integer in 1..256" in _broken(program, bad_lanes)

    def wide_weight(p):
        p.wmem = p.wmem.copy()
        p.wmem[0, 0] = 1 << p.weight_bits

    assert f"wmem must fit {program.weight_bits}-bit integers" in _broken(program, wide_weight)

    def wmem_shape(p):
        p.wmem = np.zeros((4, p.lanes + 1), dtype=np.int64)

    assert "wmem must have shape [words, lanes=2]" in _broken(program, wmem_shape)

    def head_bias_outside(p):
        _first(p, OP_HEAD).pbase = len(p.bias)

    assert "BIAS" in _broken(program, head_bias_outside)

    def unknown_opcode(p):
        p.instrs[1].opcode = 15

    assert "unknown opcode 15" in _broken(program, unknown_opcode)

    def conv_after_head(p):
        head = next(i for i, ins in enumerate(p.instrs) if ins.opcode == OP_HEAD)
        p.instrs.insert(head + 1, copy.deepcopy(_first(p, OP_CONV)))

    assert "a CONV between HEAD" in _broken(program, conv_after_head)
