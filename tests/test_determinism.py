"""Determinism of the whole flow on the embedded default model (issue 8, item 3).

The same checkpoint and options give byte-identical IR (``.sgir``), Verilog and memory images, and
the same bitstream hash for the same nextpnr seed. Everything is produced twice, from scratch, in
separate folders (so nothing can be shared through a cache) and compared byte for byte.

The bitstream check synthesises one fresh build for the ULX3S with nextpnr seed 1 and compares it
with the bitstream ``make demo`` built (tests/test_demo.py's run, shared), so it costs one
synthesis of the real accelerator (about 6 minutes on 2 cores).
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest


BOARD = "ulx3s-85f"
pytestmark = pytest.mark.xdist_group("demo")   # one worker: the builds and the demo's run are shared


def _files(folder) -> dict[str, bytes]:
    return {f: (folder / f).read_bytes() for f in sorted(os.listdir(folder)) if (folder / f).is_file()}


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    from spikegate.quantize.checkpoint import resolve_checkpoint
    if not os.path.exists(resolve_checkpoint("default")):
        pytest.fail(f"embedded checkpoint 'default' is missing: {resolve_checkpoint('default')} (it ships in quantize/data/)")
    root = tmp_path_factory.mktemp("determinism")
    builds = []
    for i in range(2):
        sgir = root / f"default{i}.sgir"
        rc = subprocess.run([sys.executable, "-m", "spikegate", "quantize", "default", "--calib", "digits",
                             "-o", str(sgir)], capture_output=True, text=True)
        assert rc.returncode == 0, rc.stderr
        out = root / f"build{i}"
        rc = subprocess.run([sys.executable, "-m", "spikegate", "compile", str(sgir), "--target", BOARD,
                             "-o", str(out)], capture_output=True, text=True)
        assert rc.returncode == 0, rc.stderr
        builds.append((sgir, out))
    return builds


def test_ir_verilog_and_images_are_byte_identical(two_builds):
    (ir0, b0), (ir1, b1) = two_builds
    assert ir0.read_bytes() == ir1.read_bytes()
    f0, f1 = _files(b0), _files(b1)
    assert sorted(f0) == sorted(f1)
    for must in ("accelerator.v", "program.hex", "wmem.hex", "bias.hex", "thresh.hex", "report.json"):
        assert must in f0, f"{must} missing from the build directory"
    differing = [name for name in f0 if f0[name] != f1[name]]
    assert not differing, f"differ between two identical compiles: {differing}"


@pytest.mark.slow
def test_same_seed_gives_the_same_bitstream(two_builds, demo_run):
    """A fresh build of the default model, synthesised with nextpnr seed 1, gives the bitstream the
    demo built (its own quantize + compile, seed 1) byte for byte. The demo's run is shared with
    tests/test_demo.py, so this costs one synthesis."""
    demo_out, proc = demo_run
    assert proc.returncode == 0, proc.stderr[-2000:]
    demo_build = demo_out / BOARD
    (_, build), _ = two_builds
    # the demo's IR and build directory are the same bytes as ours (same checkpoint, same options)
    assert (demo_out / "default.sgir").read_bytes() == two_builds[0][0].read_bytes()
    ours, theirs = _files(build), _files(demo_build)
    for name in ours:
        assert ours[name] == theirs[name], f"{name}: the demo's build differs from a fresh compile"
    demo_synth = json.loads((demo_build / BOARD / "synth.json").read_text())
    assert demo_synth["seed"] == 1 and demo_synth["error"] is None
    p = subprocess.run([sys.executable, "-m", "spikegate", "synth", str(build), "--board", BOARD,
                        "--seed", "1", "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r == json.loads((build / BOARD / "synth.json").read_text())
    data = (build / r["bitstream"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == r["bitstream_sha256"]
    assert r["bitstream_sha256"] == demo_synth["bitstream_sha256"], "same seed, different bitstreams"
    for key in ("luts", "ffs", "bram", "dsp", "fmax_mhz"):
        assert r[key] == demo_synth[key], key
