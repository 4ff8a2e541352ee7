"""Imports run one way: every ``import`` in the package, lazy ones inside functions included, is
checked against the layering the README states.

    base (spikegate.errors / io / progress) <- machine <- hw <- board_targets
    base <- quantize <- compiler (which may use hw to emit Verilog) <- rtl_tests <- verify flow <- CLI

A module's layer comes from its place in the tree (``LAYERS``), its allowed imports from
``ALLOWED``. An arrow that runs backwards fails with the file, the line and the import.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# folder in the repository -> the import package it installs as (pyproject's package-dir)
FOLDERS = {"spikegate": "spikegate", "machine": "spikegate.machine", "quantize": "spikegate.quantize",
           "compiler": "spikegate.compiler", "hw": "spikegate.hw", "rtl_tests": "spikegate.rtl_tests",
           "board_targets": "spikegate.board_targets"}

# module prefix -> layer, longest prefix first
LAYERS = [
    ("spikegate.errors", "base"), ("spikegate.io", "base"), ("spikegate.progress", "base"),
    ("spikegate.machine", "machine"),
    ("spikegate.quantize", "quantize"),
    ("spikegate.hw", "hw"),
    ("spikegate.compiler", "compiler"),
    ("spikegate.board_targets", "board_targets"),
    ("spikegate.rtl_tests", "rtl_tests"),
    ("spikegate.host", "host"),            # the host client: protocol + serial, no Amaranth
    ("spikegate.report", "report"),        # HTML/markdown report from results (data in, files out)
    ("spikegate.verify", "flows"), ("spikegate.fuzz", "flows"), ("spikegate.board_build", "flows"), ("spikegate.demo", "cli"),
    ("spikegate.sweep_stages", "flows"), ("spikegate.sweep_report", "flows"), ("spikegate.sweep", "flows"),
    ("spikegate.api", "api"),              # the Python API: the flows as documented functions
    ("spikegate.commands", "cli"), ("spikegate.cli", "cli"), ("spikegate.__main__", "cli"),
    ("spikegate", "root"),                 # spikegate/__init__.py only (the version): a new module must be placed
]

_BELOW_FLOWS = {"base", "machine", "quantize", "hw", "compiler", "board_targets", "rtl_tests", "host", "report"}
ALLOWED = {
    "base": {"base"},
    "machine": {"base", "machine"},
    "quantize": {"base", "quantize"},
    "hw": {"base", "machine", "hw"},
    "compiler": {"base", "machine", "quantize", "hw", "compiler"},
    "board_targets": {"base", "machine", "hw", "board_targets"},
    "rtl_tests": {"base", "machine", "quantize", "hw", "compiler", "board_targets", "rtl_tests", "host"},
    "host": {"base", "machine", "host"},
    "report": {"base", "report"},
    "flows": _BELOW_FLOWS | {"flows"},
    "api": _BELOW_FLOWS | {"flows", "api"},
    # the root package re-exports the API; spikegate/api.py imports only the base at module level
    "root": {"root", "base", "api"},
    "cli": _BELOW_FLOWS | {"flows", "api", "cli"},
}
# the root package (spikegate/__init__.py: the version) is a leaf every layer may read
for _allowed in ALLOWED.values():
    _allowed.add("root")
# never imported by package code: the test and bench folders and the helpers inside tests/
FORBIDDEN_TOP = {"tests", "bench"} | {p.stem for p in (ROOT / "tests").glob("*.py")}


def is_test_module(module: str) -> bool:
    """rtl_tests' pytest modules are tests, not package code: like tests/, they may use anything."""
    return module.startswith("spikegate.rtl_tests.") and module.rsplit(".", 1)[1].startswith(("test_", "conftest"))


def layer_of(module: str) -> str:
    for prefix, layer in LAYERS:
        if module == prefix or (layer != "root" and module.startswith(prefix + ".")):
            return layer
    raise AssertionError(f"{module}: no layer; add it to LAYERS in tests/test_imports.py")


def package_modules():
    """``(path, dotted module name, is a package __init__)`` of every package source file."""
    for folder, pkg in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            yield path, ".".join([pkg, *parts]), path.name == "__init__.py"


@functools.lru_cache(maxsize=None)
def all_modules() -> frozenset:
    return frozenset(m for _, m, _ in package_modules())


def imports_of(path: Path, module: str, is_pkg: bool):
    """``(line, imported module)`` of every import in ``path``, relative ones resolved, and
    ``from package import module`` read as the module."""
    modules = all_modules()
    tree = ast.parse(path.read_text(), filename=str(path))
    here = module.split(".") if is_pkg else module.split(".")[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
                for name in names:
                    yield node.lineno, name
            else:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    yield node.lineno, sub if sub in modules else node.module


def backward_arrows() -> list[str]:
    bad = []
    for path, module, is_pkg in package_modules():
        if is_test_module(module):
            continue
        src = layer_of(module)
        for line, target in imports_of(path, module, is_pkg):
            where = f"{path.relative_to(ROOT)}:{line}: {module} ({src}) imports {target}"
            top = target.split(".")[0]
            if top in FORBIDDEN_TOP:
                bad.append(f"{where}: package code never imports {top}/")
            if top != "spikegate":
                continue
            dst = layer_of(target)
            if dst not in ALLOWED[src]:
                bad.append(f"{where} ({dst})")
    return bad


def test_imports_run_one_way():
    bad = backward_arrows()
    assert not bad, "imports that run backwards:\n" + "\n".join(bad)


def test_the_walk_sees_every_layer():
    """The check above is only as good as its walk: it must find imports in each layer, lazy ones
    inside functions included."""
    seen: dict[str, int] = {}
    lazy = 0
    for path, module, is_pkg in package_modules():
        n = list(imports_of(path, module, is_pkg))
        seen[layer_of(module)] = seen.get(layer_of(module), 0) + len(n)
        tree = ast.parse(path.read_text())
        lazy += sum(isinstance(x, (ast.Import, ast.ImportFrom))
                    for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) for x in ast.walk(f))
    for layer in ("base", "machine", "quantize", "hw", "compiler", "board_targets", "rtl_tests", "cli"):
        assert seen.get(layer, 0) > 0, f"no imports found in layer {layer}"
    assert lazy > 0


def test_a_backward_arrow_is_caught(tmp_path, monkeypatch):
    """A hw module that imports the compiler is reported (the test can fail)."""
    fake = tmp_path / "hw"
    fake.mkdir()
    (fake / "bad.py").write_text("def f():\n    from spikegate.compiler.build import compile_ir\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "FOLDERS", {"hw": "spikegate.hw"})
    all_modules.cache_clear()
    try:
        found = backward_arrows()
    finally:
        all_modules.cache_clear()
    assert found == ["hw/bad.py:2: spikegate.hw.bad (hw) imports spikegate.compiler.build (compiler)"]


@pytest.mark.parametrize("module", ["spikegate.host", "spikegate.machine.program", "spikegate.machine.config",
                                    "spikegate.machine.memory", "spikegate.machine.host_protocol"])
def test_runs_without_amaranth(module):
    """The host client and the machine definition import no hardware generator."""
    code = f"import sys, {module}; bad = [m for m in sys.modules if m.split('.')[0] == 'amaranth']; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", f"{module} imports Amaranth: {out}"
