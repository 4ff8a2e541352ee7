"""The catalogue of hostile and broken inputs across the CLI: one case per row.

Every case must end with exit status 2, one clear line on stderr naming what is wrong, no
traceback, nothing executed from a pickle, and no partial artifact left at the output path.
"""

import errno
import json
import os
import pickle
import zipfile

import numpy as np
import pytest
import torch

from conftest import fixture_path, run_cli

MARKER = "/tmp/spikegate-pwned-marker"


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    f = {}
    torch.save({"model": {"w": torch.zeros(1)}, "x": _Evil()}, d / "evil.pth")
    with open(d / "evil_plain.pkl", "wb") as fh:
        pickle.dump(_Evil(), fh)
    (d / "empty.pth").write_bytes(b"")
    (d / "text.pth").write_text("hello")
    raw = open(fixture_path("small_t1.pth"), "rb").read()
    (d / "trunc.pth").write_bytes(raw[: len(raw) // 3])
    torch.save([1, 2, 3], d / "list.pth")
    torch.save({"model": {"head.weight": "not a tensor"}}, d / "nontensor.pth")
    data = np.load(fixture_path("small_t1.npz"))
    x = data["inputs"]
    np.save(d / "x.npy", x)
    np.save(d / "x_nan.npy", np.where(np.arange(x.size).reshape(x.shape) == 7, np.nan, x).astype(np.float32))
    np.save(d / "x_inf.npy", np.full_like(x, np.inf))
    np.save(d / "x_rank3.npy", x[0])
    np.save(d / "x_ch.npy", x[:, :1])
    np.save(d / "x_size.npy", np.zeros((2, 3, 24, 24), np.float32))
    np.save(d / "x_str.npy", np.array([["a", "b"]]))
    np.save(d / "x_obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(d / "x_npz.npz", a=x)
    (d / "x_garbage.npy").write_bytes(b"\x93NUMPY garbage")
    from spikegate.quantize.checkpoint import load_model
    from spikegate.quantize.irfile import save_ir
    from spikegate.quantize.lower import lower
    from spikegate.quantize.quantizer import quantize_graph
    m, _ = load_model(fixture_path("small_t1.pth"))
    _, g = quantize_graph(lower(m), x)
    save_ir(g, str(d / "m.sgir"))
    sgir = (d / "m.sgir").read_bytes()
    (d / "m_trunc.sgir").write_bytes(sgir[:-300])
    with zipfile.ZipFile(d / "m.sgir") as zi, zipfile.ZipFile(d / "m_tamper.sgir", "w") as zo:
        for info in zi.infolist():
            b = zi.read(info.filename)
            if info.filename == "ir.json":
                h = json.loads(b)
                h["ops"][2]["params"]["threshold"]["shape"] = [999]
                b = json.dumps(h).encode()
            zo.writestr(info, b)
    (d / "file").write_text("x")
    return d


def _cases(d):
    ck = fixture_path("small_t1.pth")
    out = d / "out"
    return [
        # (id, argv, expected text in the error, output path that must not exist)
        ("missing checkpoint", ["info", d / "nope.pth"], "no such file", None),
        ("checkpoint is a directory", ["info", d], "is a directory", None),
        ("empty checkpoint", ["info", d / "empty.pth"], "not a PyTorch checkpoint", None),
        ("text checkpoint", ["info", d / "text.pth"], "not a PyTorch checkpoint", None),
        ("truncated checkpoint", ["info", d / "trunc.pth"], "not a PyTorch checkpoint", None),
        ("malicious torch pickle", ["info", d / "evil.pth"], "refused to load", None),
        ("malicious plain pickle", ["quantize", d / "evil_plain.pkl", "-o", d / "e.sgir"], "refused", d / "e.sgir"),
        ("checkpoint holding a list", ["info", d / "list.pth"], "not a state dict", None),
        ("state dict with a non-tensor", ["info", d / "nontensor.pth"], "tensors", None),
        ("unknown preset", ["info", "--preset", "nope"], "unknown preset", None),
        ("inputs missing", ["infer", ck, "--inputs", d / "none.npy", "--out", out / "y.npy"], "no such file", None),
        ("inputs NaN", ["infer", ck, "--inputs", d / "x_nan.npy", "--out", d / "y1.npy"], "NaN", d / "y1.npy"),
        ("inputs Inf", ["golden", d / "m.sgir", "--inputs", d / "x_inf.npy", "--out", d / "y2.npy"], "Inf", d / "y2.npy"),
        ("inputs rank 3", ["infer", ck, "--inputs", d / "x_rank3.npy", "--out", d / "y3.npy"], "rank 3", d / "y3.npy"),
        ("inputs channels", ["golden", d / "m.sgir", "--inputs", d / "x_ch.npy", "--out", d / "y4.npy"], "channels", d / "y4.npy"),
        ("inputs size", ["golden", d / "m.sgir", "--inputs", d / "x_size.npy", "--out", d / "y5.npy"], "24x24", d / "y5.npy"),
        ("inputs strings", ["infer", ck, "--inputs", d / "x_str.npy", "--out", d / "y6.npy"], "dtype", d / "y6.npy"),
        ("inputs pickled objects", ["infer", ck, "--inputs", d / "x_obj.npy", "--out", d / "y7.npy"], "not a plain .npy", d / "y7.npy"),
        ("inputs npz", ["infer", ck, "--inputs", d / "x_npz.npz", "--out", d / "y8.npy"], ".npz", d / "y8.npy"),
        ("inputs garbage", ["infer", ck, "--inputs", d / "x_garbage.npy", "--out", d / "y9.npy"], "x_garbage.npy", d / "y9.npy"),
        ("truncated IR", ["ir", "show", d / "m_trunc.sgir"], "m_trunc.sgir", None),
        ("tampered IR", ["golden", d / "m_tamper.sgir", "--inputs", d / "x.npy", "--out", d / "y10.npy"], "threshold", d / "y10.npy"),
        ("IR that is a checkpoint", ["ir", "show", ck], "not an .sgir", None),
        ("weight bits 3", ["quantize", ck, "--calib", d / "x.npy", "--weight-bits", "3", "-o", d / "w.sgir"], "4..16", d / "w.sgir"),
        ("T out of range", ["infer", ck, "--inputs", d / "x.npy", "--out", d / "y11.npy", "--T", "0"], "--T", d / "y11.npy"),
        ("heads out of range", ["info", ck, "--heads", "0"], "--heads", None),
        ("heads not dividing", ["info", ck, "--heads", "3"], "divisible", None),
        ("calibration wrong shape", ["quantize", ck, "--calib", d / "x_ch.npy", "-o", d / "c.sgir"], "--calib", d / "c.sgir"),
        ("output folder missing", ["quantize", ck, "--calib", d / "x.npy", "-o", d / "no" / "m.sgir"], "does not exist", None),
        ("output under a file", ["infer", ck, "--inputs", d / "x.npy", "--out", d / "file" / "y.npy"], "does not exist", None),
        ("output is a directory", ["infer", ck, "--inputs", d / "x.npy", "--out", d], "is a directory", None),
        ("unknown target", ["compile", d / "m.sgir", "--target", "nope", "-o", d / "b1"], "known targets", d / "b1"),
        ("lanes out of range", ["compile", d / "m.sgir", "--target", "sim", "--lanes", "0", "-o", d / "b2"], "--lanes", d / "b2"),
        ("compile a checkpoint", ["compile", ck, "--target", "sim", "-o", d / "b3"], "not an .sgir", d / "b3"),
        ("eval unknown data", ["eval", d / "m.sgir", "--data", "imagenet"], "digits", None),
    ]


def test_catalogue(files, capsys):
    if os.path.exists(MARKER):
        os.remove(MARKER)
    failures = []
    for name, argv, needle, artefact in _cases(files):
        rc, out, err = run_cli(argv, capsys)
        lines = err.strip().splitlines()
        ok = (rc == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err
              and (artefact is None or not os.path.exists(artefact)))
        if not ok:
            failures.append(f"{name}: rc={rc} err={err.strip()[:300]!r}")
        leftovers = [f for f in os.listdir(files) if f.startswith(".tmp-") or f.startswith(".sfbuild-")]
        if leftovers:
            failures.append(f"{name}: left temporary files {leftovers}")
    assert not os.path.exists(MARKER), "a pickle payload ran"
    assert not failures, "\n".join(failures)


def test_disk_full_leaves_nothing(files, capsys, monkeypatch):
    """A write failing half way (ENOSPC) ends in one line and leaves no file at the output path."""
    real_save = np.save

    def full(f, arr, *a, **kw):
        real_save(f, arr[:1], *a, **kw)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "save", full)
    out = files / "full.npy"
    rc, o, err = run_cli(["infer", fixture_path("small_t1.pth"), "--inputs", files / "x.npy", "--out", out], capsys)
    assert rc == 2 and "No space left on device" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
    assert not [f for f in os.listdir(files) if f.startswith(".tmp-")]
