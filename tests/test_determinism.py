"""Determinism of the whole flow on the embedded default model (issue 8, item 3).

The same checkpoint and options give byte-identical IR (``.sfq``), Verilog and memory images, and
the same bitstream hash for the same nextpnr seed. Everything is produced twice, from scratch, in
separate folders (so nothing can be shared through a cache) and compared byte for byte.

The two syntheses of the real accelerator for the ULX3S run side by side (about 6 minutes on
2 cores); they are also the test that the shipped model's bitstream builds, with sane numbers in
``synth.json``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest


BOARD = "ulx3s-85f"


def _files(folder) -> dict[str, bytes]:
    return {f: (folder / f).read_bytes() for f in sorted(os.listdir(folder)) if (folder / f).is_file()}


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory):
    from spikeforge.quantize.checkpoint import resolve_checkpoint
    if not os.path.exists(resolve_checkpoint("default")):
        pytest.skip("embedded default checkpoint not built")
    root = tmp_path_factory.mktemp("determinism")
    builds = []
    for i in range(2):
        sfq = root / f"default{i}.sfq"
        rc = subprocess.run([sys.executable, "-m", "spikeforge", "quantize", "default", "--calib", "digits",
                             "-o", str(sfq)], capture_output=True, text=True)
        assert rc.returncode == 0, rc.stderr
        out = root / f"build{i}"
        rc = subprocess.run([sys.executable, "-m", "spikeforge", "compile", str(sfq), "--target", BOARD,
                             "-o", str(out)], capture_output=True, text=True)
        assert rc.returncode == 0, rc.stderr
        builds.append((sfq, out))
    return builds


def test_ir_verilog_and_images_are_byte_identical(two_builds):
    (sfq0, b0), (sfq1, b1) = two_builds
    assert sfq0.read_bytes() == sfq1.read_bytes()
    f0, f1 = _files(b0), _files(b1)
    assert sorted(f0) == sorted(f1)
    for must in ("accelerator.v", "program.hex", "wmem.hex", "bias.hex", "thresh.hex", "report.json"):
        assert must in f0, f"{must} missing from the build directory"
    differing = [name for name in f0 if f0[name] != f1[name]]
    assert not differing, f"differ between two identical compiles: {differing}"


@pytest.mark.slow
def test_same_seed_gives_the_same_bitstream(two_builds):
    procs = [subprocess.Popen([sys.executable, "-m", "spikeforge", "synth", str(b), "--board", BOARD,
                               "--seed", "1", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _, b in two_builds]
    results = []
    for p, (_, b) in zip(procs, two_builds):
        out, err = p.communicate()
        assert p.returncode == 0, err
        r = json.loads(out)
        assert r == json.loads((b / BOARD / "synth.json").read_text())
        results.append(r)
    r0, r1 = results
    # sanity of the real accelerator's numbers on the primary board
    assert r0["timing_met"] is True and r0["fmax_mhz"] >= r0["clock_mhz"] > 0
    assert 1000 < r0["luts"]["used"] < r0["luts"]["available"]
    assert 0 < r0["ffs"]["used"] and 0 < r0["bram"]["used"] <= r0["bram"]["available"]
    for r, (_, b) in zip(results, two_builds):
        data = (b / r["bitstream"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["bitstream_sha256"]
    assert r0["bitstream_sha256"] == r1["bitstream_sha256"], "same seed, different bitstreams"
    for key in ("luts", "ffs", "bram", "dsp", "fmax_mhz"):
        assert r0[key] == r1[key], key
