"""The public Python API (spikegate/api.py, re-exported by ``import spikegate``): light to import,
documented in ``help(spikegate)``, named so no sub-package can shadow it, and raising the CLI's
one-line errors. What each function computes is the CLI's code, tested with the verbs; the
README and notebook tests run the API end to end."""

from __future__ import annotations

import importlib.util
import inspect
import pydoc
import re
import subprocess
import sys

import numpy as np
import pytest

import spikegate
from spikegate import api
from spikegate.errors import InputArrayError, SpikegateError


def test_import_is_light():
    code = ("import sys, spikegate; heavy = [m for m in ('torch', 'amaranth', 'cocotb', 'numpy', 'matplotlib') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_shows_the_api():
    """Its FUNCTIONS are exactly the API's, each with a docstring (pydoc itself lists every module
    of the package, the CLI's included, under PACKAGE CONTENTS)."""
    text = pydoc.render_doc(spikegate, renderer=pydoc.plaintext)
    functions = text.split("\nFUNCTIONS\n", 1)[1].split("\nDATA\n", 1)[0]
    assert set(re.findall(r"^    (\w+)\(", functions, re.M)) == set(api.__all__)
    for name in api.__all__:
        fn = getattr(spikegate, name)
        assert fn is getattr(api, name) and len(inspect.getdoc(fn) or "") > 60, name
    assert "SpikegateError" in text.split("\nCLASSES\n", 1)[1]


def test_no_name_is_shadowed_by_a_subpackage():
    """`import spikegate.X` sets the attribute X on the package: a function called X would vanish."""
    for name in spikegate.__all__:
        assert importlib.util.find_spec(f"spikegate.{name}") is None, name


def test_errors_are_the_cli_one_liners():
    with pytest.raises(SpikegateError, match=r"^unknown target 'nope'; known targets: sim, large, icebreaker"):
        api.compile_ir("never-read.sgir", "nope", "never-written")
    with pytest.raises(SpikegateError, match=r"^count 0: the digits test split has 1\.\.450 images$"):
        api.data("digits", 0)
    with pytest.raises(SpikegateError, match=r"^unknown data set 'cifar'"):
        api.data("cifar")
    with pytest.raises(SpikegateError, match=r"^nosuch\.pth: no such file"):
        api.load_model("nosuch.pth")


def test_golden_checks_its_images():
    x, y = api.data("digits", count=2, size=16)
    assert x.shape == (2, 1, 16, 16) and x.dtype == np.float32 and y.dtype == np.int64
    ir, _ = api.quantize_model("fpga-tiny-t2", calib="digits", evaluate=False)
    with pytest.raises(InputArrayError, match=r"^images array: "):
        api.golden(ir, x[:, 0])                          # [B, H, W]: a channel axis is missing
    logits = api.golden(ir, x)
    assert logits.shape == (2, 10) and logits.dtype == np.int64
