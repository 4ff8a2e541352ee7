"""The CLI a user meets in their first hour: output paths, `models`, `data`, choices and help,
the input-range warning, quantize's output, eval's JSON keys, progress staying out of pipes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import run_cli
from spikegate.io import check_output_path
from spikegate.errors import SpikegateError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(folder, IR path, quantize report) of the embedded fpga-tiny-t2, quantised once."""
    from spikegate.quantize.irfile import save_ir
    from spikegate.quantize.pipeline import quantize_checkpoint

    d = tmp_path_factory.mktemp("polish")
    g, rep = quantize_checkpoint("fpga-tiny-t2", calib="digits")
    save_ir(g, str(d / "t.sgir"))
    (d / "existing").write_text("keep me")
    return d, d / "t.sgir", (g, rep)


def _one_line_error(rc, err, needle=""):
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert needle in lines[0], err


def _leftovers(d):
    return [f for f in os.listdir(d) if f.startswith((".tmp-", ".sfbuild-"))]


# -- one output-path check, every verb that writes --------------------------------------------

@pytest.mark.parametrize("case", ["compile /proc", "compile /sys", "compile existing file",
                                  "golden --trace /proc", "golden --trace existing file"])
def test_bad_output_paths_end_in_one_line(tiny, capsys, case):
    d, ir, _ = tiny
    np.save(d / "x.npy", np.zeros((1, 1, 16, 16), np.float32))
    existing = d / "existing"
    argv = {
        "compile /proc": ["compile", ir, "--target", "sim", "-o", "/proc/b"],
        "compile /sys": ["compile", ir, "--target", "sim", "-o", "/sys/b"],
        "compile existing file": ["compile", ir, "--target", "sim", "-o", existing],
        "golden --trace /proc": ["golden", ir, "--inputs", d / "x.npy", "--out", d / "yp.npy",
                                 "--trace", "/proc/tr"],
        "golden --trace existing file": ["golden", ir, "--inputs", d / "x.npy", "--out", d / "ye.npy",
                                         "--trace", existing],
    }[case]
    rc, out, err = run_cli(argv, capsys)
    _one_line_error(rc, err, "/proc" if "/proc" in case else "/sys" if "/sys" in case else "existing file")
    assert existing.read_text() == "keep me"
    assert not os.path.exists("/proc/b") and not os.path.exists("/proc/tr") and not os.path.exists("/sys/b")
    assert not (d / "yp.npy").exists() and not (d / "ye.npy").exists()
    assert not _leftovers(d)


def test_bad_output_path_as_a_process(tiny):
    """The real executable, not just main(): one line on stderr, exit 2, no traceback."""
    d, ir, _ = tiny
    p = subprocess.run([sys.executable, "-m", "spikegate", "compile", str(ir), "--target", "sim", "-o",
                        "/proc/b"], capture_output=True, text=True, timeout=300)
    _one_line_error(p.returncode, p.stderr, "/proc")
    assert p.stdout == ""


def test_check_output_path_cases(tmp_path):
    (tmp_path / "f").write_text("x")
    (tmp_path / "dir").mkdir()
    check_output_path(str(tmp_path / "new.npy"))
    check_output_path(str(tmp_path / "f"))                      # overwriting a file is fine
    check_output_path(str(tmp_path / "dir"), "dir")              # filling a folder is fine
    check_output_path(str(tmp_path / "newdir"), "dir")
    bad = [
        ((str(tmp_path / "dir"), "file"), "is a directory"),
        ((str(tmp_path / "f"), "dir"), "existing file"),
        ((str(tmp_path / "no" / "x.npy"), "file"), "does not exist"),
        ((str(tmp_path / "f" / "x.npy"), "file"), "is a file"),
        (("/dev/null", "file"), "not a regular file"),
        (("/proc/x.npy", "file"), "/proc"),
        (("/sys/kernel/x", "dir"), "/sys"),
    ]
    for (path, kind), needle in bad:
        with pytest.raises(SpikegateError, match=needle.replace("/", r"\/")):
            check_output_path(path, kind)


def test_every_writing_verb_checks_its_output(tiny, capsys):
    d, ir, _ = tiny
    np.save(d / "x.npy", np.zeros((1, 1, 16, 16), np.float32))
    for argv in (["quantize", "fpga-tiny-t2", "-o", "/proc/m.sgir"],
                 ["infer", "fpga-tiny-t2", "--inputs", d / "x.npy", "--out", "/sys/y.npy"],
                 ["golden", ir, "--inputs", d / "x.npy", "--out", "/proc/y.npy"],
                 ["export-onnx", "fpga-tiny-t2", "-o", "/proc/m.onnx"],
                 ["train", "--preset", "fpga-tiny", "-o", "/proc/t.pth"],
                 ["data", "digits", "-o", "/proc/x.npy"],
                 ["data", "digits", "-o", d / "xd.npy", "--labels", d]):
        rc, out, err = run_cli(argv, capsys)
        _one_line_error(rc, err)
    assert not (d / "xd.npy").exists()


# -- models and data --------------------------------------------------------------------------

def test_models_json_lists_the_embedded_models(capsys):
    from spikegate.quantize.checkpoint import EMBEDDED_CHECKPOINTS

    rc, out, err = run_cli(["models", "--json"], capsys)
    assert rc == 0, err
    rows = json.loads(out)
    assert [r["name"] for r in rows] == list(EMBEDDED_CHECKPOINTS)
    d = rows[0]
    assert d["name"] == "default" and d["preset"] == "fpga-digits" and d["data"] == "digits"
    assert d["T"] == 1 and d["img_size"] == 32 and d["channels"] == 1 and d["samples"] == 450
    for r in rows:
        assert set(r) >= {"name", "preset", "data", "T", "accuracy"}
    rc, out, err = run_cli(["models"], capsys)
    assert rc == 0 and "default" in out and "fpga-tiny-t2" in out


def test_models_accuracy_is_what_evaluation_measures(capsys):
    """The stored accuracy (written by `spikegate train` into each checkpoint) matches a fresh
    evaluation of every embedded model."""
    rc, out, _ = run_cli(["models", "--json"], capsys)
    stored = {r["name"]: r for r in json.loads(out)}
    rc, out, err = run_cli(["models", "--json", "--measure"], capsys)
    assert rc == 0, err
    for r in json.loads(out):
        s = stored[r["name"]]
        assert r["samples"] == s["samples"] == (1000 if s["data"] == "mnist" else 450)
        assert r["accuracy"] == pytest.approx(s["accuracy"], abs=1e-3), r["name"]


def test_data_digits_writes_images_the_default_model_takes(tmp_path, capsys):
    from spikegate.quantize.data import digits_split_xy

    x, y = tmp_path / "x.npy", tmp_path / "y.npy"
    rc, out, err = run_cli(["data", "digits", "--count", "4", "-o", x, "--labels", y], capsys)
    assert rc == 0, err
    xs, ys = np.load(x), np.load(y)
    assert xs.shape == (4, 1, 32, 32) and xs.dtype == np.float32 and ys.dtype == np.int64
    ref_x, ref_y = digits_split_xy("test", 32, 4)
    np.testing.assert_array_equal(xs, ref_x)
    np.testing.assert_array_equal(ys, ref_y)
    rc, out, err = run_cli(["infer", "default", "--inputs", x, "--out", tmp_path / "l.npy"], capsys)
    assert rc == 0 and err == "", err           # taken as is: no range warning
    logits = np.load(tmp_path / "l.npy")
    assert (logits.argmax(1) == ys).sum() >= 3
    rc, out, err = run_cli(["data", "digits", "--count", "2", "--model", "fpga-tiny-t2", "-o", x], capsys)
    assert rc == 0 and np.load(x).shape == (2, 1, 16, 16)
    rc, out, err = run_cli(["data", "digits", "--count", "451", "-o", x], capsys)
    _one_line_error(rc, err, "450")
    rc, out, err = run_cli(["data", "mnistt", "-o", x], capsys)
    _one_line_error(rc, err, "known data sets: digits")


def test_data_registry_entry_is_all_a_dataset_needs():
    from spikegate.quantize.data import DATASETS, dataset

    ds = dataset("digits")
    assert ds is DATASETS["digits"] and ds.value_range == (0.0, 1.0)
    x, y = ds.split_xy("test", 16, 3)
    assert x.shape == (3, 1, 16, 16) and len(y) == 3
    assert x.min() >= ds.value_range[0] and x.max() <= ds.value_range[1]


# -- parser: choices, help, examples, messages --------------------------------------------------

def _verbs():
    from spikegate.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices


def test_every_argument_has_help_and_every_verb_an_example():
    for name, p in _verbs().items():
        assert p.epilog and "spikegate " in p.epilog, name
        for a in p._actions:
            if isinstance(a, argparse._HelpAction):
                continue
            assert a.help, f"spikegate {name} {'/'.join(a.option_strings) or a.dest}: no help text"


def test_every_verb_help_renders():
    for name, p in _verbs().items():
        text = p.format_help()
        assert "usage: spikegate " + name in text


def test_closed_sets_are_choices(capsys):
    from spikegate.quantize.model import PRESETS

    verbs = _verbs()

    def choices(verb, dest):
        return next(a for a in verbs[verb]._actions if a.dest == dest).choices

    assert "sim" in choices("compile", "target") and "icebreaker" in choices("compile", "target")
    assert list(choices("quantize", "preset")) == list(PRESETS) == list(choices("info", "preset"))
    assert list(choices("train", "preset")) == list(PRESETS)
    assert "icebreaker" in choices("synth", "board")
    assert list(choices("eval", "data")) == ["digits", "mnist"] == list(choices("data", "name"))
    assert list(choices("train", "data")) == ["digits", "mnist"]
    for argv, needle in ((["compile", "m.sgir", "--target", "nope", "-o", "b"], "known targets: sim"),
                         (["info", "--preset", "nope"], "unknown preset 'nope'"),
                         (["synth", "b", "--board", "nope"], "known boards"),
                         (["eval", "default", "--data", "imagenet"], "digits")):
        rc, out, err = run_cli(argv, capsys)
        _one_line_error(rc, err, needle)


def test_ir_unknown_action_says_what_exists(capsys):
    rc, out, err = run_cli(["ir", "dump", "m.sgir"], capsys)
    _one_line_error(rc, err, "unknown action 'dump'; actions: show")
    assert "argument action" not in err


def test_unknown_model_points_at_models(capsys):
    rc, out, err = run_cli(["info", "notamodel"], capsys)
    _one_line_error(rc, err, "spikegate models")


@pytest.mark.parametrize("content,needle", [(b"hello world, not a checkpoint", "text file"),
                                            (b"", "empty"),
                                            (b"PK\x03\x04" + bytes(60), "zip archive")])
def test_checkpoint_errors_describe_the_file(tmp_path, capsys, content, needle):
    p = tmp_path / "bad.pth"
    p.write_bytes(content)
    rc, out, err = run_cli(["info", p], capsys)
    _one_line_error(rc, err, "not a PyTorch checkpoint")
    assert needle in err and "(101)" not in err and err.strip().endswith("torch.save")


# -- input range --------------------------------------------------------------------------------

def test_inputs_outside_the_trained_range_warn_once(tiny, capsys):
    from spikegate.quantize.data import digits_split_xy

    d, ir, _ = tiny
    x = digits_split_xy("test", 16, 3)[0]
    np.save(d / "ok.npy", x)
    np.save(d / "x255.npy", x * 255)
    rc, out, err = run_cli(["golden", ir, "--inputs", d / "ok.npy", "--out", d / "g.npy"], capsys)
    assert rc == 0 and err == ""
    rc, out, err = run_cli(["golden", ir, "--inputs", d / "x255.npy", "--out", d / "g.npy"], capsys)
    assert rc == 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: --inputs ")
    assert "values in [0, 255] but the model was trained on [0, 1]: divide by 255" in lines[0]
    rc, out, err = run_cli(["infer", "fpga-tiny-t2", "--inputs", d / "x255.npy", "--out", d / "f.npy"], capsys)
    assert rc == 0 and "trained on [0, 1]" in err and len(err.strip().splitlines()) == 1
    rc, out, err = run_cli(["stats", ir, "--inputs", d / "x255.npy", "--json"], capsys)
    assert rc == 0 and "divide by 255" in err
    np.save(d / "neg.npy", x - 0.5)
    rc, out, err = run_cli(["golden", ir, "--inputs", d / "neg.npy", "--out", d / "g.npy"], capsys)
    assert rc == 0 and "rescale them into [0, 1]" in err


# -- quantize output ----------------------------------------------------------------------------

def test_quantize_summary_last_and_table_with_verbose(tiny, capsys, monkeypatch):
    import spikegate.quantize.pipeline as pipeline

    d, _, (g, rep) = tiny
    monkeypatch.setattr(pipeline, "quantize_checkpoint", lambda *a, **k: (g, rep))
    rc, out, err = run_cli(["quantize", "fpga-tiny-t2", "-o", d / "q.sgir"], capsys)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[-1].startswith("top-1 on 450 held-out samples")
    assert len(lines) <= 4 and not any(ln.startswith("ConvBlock") for ln in lines)
    assert any(ln.startswith("wrote ") for ln in lines)
    rc, out, err = run_cli(["quantize", "fpga-tiny-t2", "-o", d / "q.sgir", "--verbose"], capsys)
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert lines[-1].startswith("top-1 on 450 held-out samples")
    for r in rep["layers"]:
        if r["kind"] in ("conv", "head", "lif"):
            row = next(ln for ln in lines if ln.split()[0] == r["op"])
            if "scale" in r:
                assert str(r["scale"]) in row, (r["scale"], row)   # never cut
    rc, out, err = run_cli(["quantize", "fpga-tiny-t2", "-o", d / "q.sgir", "--json"], capsys)
    assert rc == 0 and json.loads(out)["summary"] == rep["summary"] and err == ""
    np.save(d / "cal255.npy", np.full((2, 1, 16, 16), 255, np.float32))
    rc, out, err = run_cli(["quantize", "fpga-tiny-t2", "--calib", d / "cal255.npy", "-o", d / "q.sgir"], capsys)
    assert rc == 0 and err.startswith("warning: --calib ") and "trained on [0, 1]" in err


# -- eval JSON ------------------------------------------------------------------------------------

def test_eval_json_keys_equal_for_checkpoint_and_ir(tiny, capsys):
    _, ir, _ = tiny
    rc, out, err = run_cli(["eval", "fpga-tiny-t2", "--json"], capsys)
    assert rc == 0, err
    ck = json.loads(out)
    rc, out, err = run_cli(["eval", ir, "--json"], capsys)
    assert rc == 0, err
    sg = json.loads(out)
    assert set(ck) == set(sg)
    assert (ck["T"], ck["img_size"], ck["heads"], ck["data"]) == (sg["T"], sg["img_size"], sg["heads"], sg["data"])
    assert ck["kind"] == "float" and sg["kind"] == "golden"


# -- progress stays out of pipes --------------------------------------------------------------------

def test_steps_are_silent_without_a_terminal(capsys):
    from spikegate.commands._common import steps

    with steps("quantize") as step:
        step("calibrating")
    with steps("quantize", quiet=True) as step:
        step("calibrating")
    assert capsys.readouterr().err == ""


def test_float_only_options_on_an_ir_whatever_its_name(tiny, tmp_path, capsys):
    """An IR is known by its contents: under any name, --T on it is refused as float-only."""
    _, ir, _ = tiny
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(ir.read_bytes())
    rc, out, err = run_cli(["eval", renamed, "--T", "2"], capsys)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "apply to float checkpoints only" in err
