"""`spikegate sweep`: the issue's acceptance sweep on Ray, resuming, failing points, a Ray cluster.

The tests share one sweep folder (quantisation and compilation stages are reused from it, as a
resumed sweep reuses them), so they run in one xdist worker, in order. No synthesis here: the
`--synth` path is the flow of `spikegate synth` (tests/test_synth.py) plus nextpnr over seeds
(tests/test_bench.py's seed sweep); a real one is `make`-free and documented in the README.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from spikegate.cli import main

pytestmark = pytest.mark.xdist_group("sweep")

ACCEPT = ["sweep", "--model", "default", "--target", "sim", "--lanes", "1,4", "--weight-bits", "4,8", "--json",
          "--jobs", "2"]


@pytest.fixture(scope="module")
def accepted(tmp_path_factory):
    """The issue's acceptance sweep, run once in a folder the module's tests share: its folder and
    its ``--json`` answer. A fixture, so that each test that reruns into the folder finds it there
    whether it runs alone or after the others."""
    folder = tmp_path_factory.mktemp("sweep")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(ACCEPT + ["--out", str(folder)])
    assert rc == 0, err.getvalue()
    return folder, json.loads(out.getvalue())


@pytest.fixture(scope="module")
def sweep_dir(accepted):
    return accepted[0]


def run_json(argv, capsys) -> dict:
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, err
    return json.loads(out)


def test_acceptance_sweep_runs_four_points_on_ray(accepted):
    sweep_dir, res = accepted
    assert res["engine"] == "ray" and res["skipped"] == 0
    pts = res["points"]
    assert [(p["lanes"], p["weight_bits"]) for p in pts] == [(1, 4), (4, 4), (1, 8), (4, 8)]
    for p in pts:
        assert p["status"] == "ok" and p["error"] is None, p
        assert 80 < p["top1"] <= 100 and p["mean_cycles"] > 0 and p["luts"] > 0
        assert p["images_per_s"] == pytest.approx(p["clock_mhz"] * 1e6 / p["mean_cycles"], rel=1e-4)
    by = {(p["lanes"], p["weight_bits"]): p for p in pts}
    assert by[4, 8]["images_per_s"] > 2 * by[1, 8]["images_per_s"]     # lanes buy throughput
    assert by[1, 4]["top1"] == by[4, 4]["top1"]                          # one quantisation per (model, bits)
    lines = (sweep_dir / "points.jsonl").read_text().splitlines()
    assert sorted(json.loads(ln)["lanes"] for ln in lines) == [1, 1, 4, 4]
    html = (sweep_dir / "report.html").read_text()
    assert "Pareto front" in html and "data:image/png;base64," in html


def test_rerun_skips_finished_points_and_drops_a_half_written_line(sweep_dir, capsys):
    before = (sweep_dir / "points.jsonl").read_text()
    with open(sweep_dir / "points.jsonl", "a") as f:
        f.write('{"model": "default", "target": "si')          # a write cut short by a crash
    res = run_json(ACCEPT + ["--out", str(sweep_dir)], capsys)
    assert res["skipped"] == 4 and all(p["status"] == "ok" for p in res["points"])
    assert (sweep_dir / "points.jsonl").read_text() == before


def test_refused_and_failing_points_are_recorded_and_the_sweep_goes_on(sweep_dir, tmp_path, capsys):
    bad = tmp_path / "broken.pth"
    bad.write_bytes(b"not a checkpoint")
    res = run_json(["sweep", "--model", "default", "--model", str(bad), "--target", "sim,icebreaker",
                    "--lanes", "4", "--weight-bits", "4", "--out", str(sweep_dir), "--json", "--jobs", "2"], capsys)
    assert res["skipped"] == 1          # default on sim, 4 lanes, 4 bits: already there
    st = {(os.path.basename(p["model"]), p["target"]): p for p in res["points"]}
    assert st["default", "sim"]["status"] == "ok"
    refused = st["default", "icebreaker"]
    assert refused["status"] == "refused" and "does not fit target icebreaker" in refused["error"]
    assert "\n" not in refused["error"] and "what would make it fit" in refused["error"]
    for target in ("sim", "icebreaker"):
        p = st["broken.pth", target]
        assert p["status"] == "failed" and p["error"] and "\n" not in p["error"]
    assert len((sweep_dir / "points.jsonl").read_text().splitlines()) == 7


def test_bad_arguments_end_in_one_line(sweep_dir, capsys):
    for argv, words in [(["--target", "sim", "--lanes", "0"], "--lanes"),
                        (["--target", "nowhere", "--lanes", "1"], "unknown target"),
                        (["--target", "sim", "--lanes", "1", "--synth"], "not a board"),
                        (["--target", "sim", "--lanes", "1", "--seeds", "1-2"], "need --synth"),
                        (["--target", "sim", "--lanes", "1", "--data", "cifar"], "known data sets")]:
        assert main(["sweep", "--model", "default", "--out", str(sweep_dir), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and words in err, err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head(tmp_path):
    """A Ray head node on the loopback address, with token authentication (Ray's default), stopped
    by its own process id at the end (``ray start --block`` stops what it started on SIGTERM)."""
    port = _free_port()
    env = dict(os.environ, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    log = open(tmp_path / "ray-head.log", "w")
    proc = subprocess.Popen([ray, "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
                             "--num-cpus", "1", "--include-dashboard=false", "--disable-usage-stats",
                             "--object-store-memory", str(100 * 2**20)],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "ray-head.log").read_text()
                time.sleep(0.3)
        yield f"127.0.0.1:{port}", env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)     # the group this fixture started, by its id
            proc.wait()
        log.close()


def test_sweep_on_a_ray_cluster(sweep_dir, tmp_path, ray_head):
    """--address sends the sweep to a running cluster (here a head node on 127.0.0.1): one point
    whose stages the first test left (copied), one the cluster compiles and refuses."""
    address, env = ray_head
    out = tmp_path / "cluster"
    shutil.copytree(sweep_dir / "stages", out / "stages")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "spikegate"), "sweep", "--model", "default",
                           "--target", "sim,icebreaker", "--lanes", "1", "--weight-bits", "4", "--out", str(out),
                           "--address", address, "--json"], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(proc.stdout)
    assert res["engine"] == "ray" and res["skipped"] == 0
    assert [p["status"] for p in res["points"]] == ["ok", "refused"]
    assert len((out / "points.jsonl").read_text().splitlines()) == 2
    # a wrong address is one line, exit 2
    bad = subprocess.run([os.path.join(os.path.dirname(sys.executable), "spikegate"), "sweep", "--model", "default",
                          "--target", "sim", "--lanes", "1", "--out", str(tmp_path / "x"), "--address",
                          f"127.0.0.1:{_free_port()}"], env=env, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--address" in bad.stderr.strip().splitlines()[-1]


def test_seed_stage_reads_nextpnr_as_the_flow_does(tmp_path):
    """A seed's Fmax is the slowest clock of nextpnr's report (the flow's rule), its LUTs the
    flow's utilisation; the report table gives the Fmax spread per configuration."""
    from spikegate.board_targets import get_board
    from spikegate.sweep_report import fmax_table, pareto
    from spikegate.sweep_stages import nextpnr_result

    (tmp_path / "top.log").write_text("Info: Max frequency for clock 'clk': 99.00 MHz (PASS at 50.00 MHz)\n")
    (tmp_path / "report.json").write_text(json.dumps({
        "fmax": {"clk": {"achieved": 71.5, "constraint": 50.0}, "clk25": {"achieved": 180.0, "constraint": 25.0}},
        "utilization": {"TRELLIS_COMB": {"used": 12345, "available": 83640}}, "critical_paths": []}))
    row = nextpnr_result(str(tmp_path), get_board("ulx3s-85f"))
    assert row["fmax_mhz"] == 71.5 and row["constraints_met"] and row["luts"] == 12345
    rows = [{"model": "m", "target": "b", "lanes": 4, "weight_bits": 8, "synth": True, "seed": s, "fmax_mhz": f,
             "timing_met": f >= 60, "luts": 100} for s, f in ((1, 55.0), (2, 61.0), (3, 70.0))]
    assert fmax_table(rows) == [{"model": "m", "target": "b", "lanes": 4, "weight_bits": 8, "seeds": 3, "min": 55.0,
                                 "median": 61.0, "max": 70.0, "timing_met": 2, "luts_median": 100}]
    pts = [{"luts": 1, "images_per_s": 5}, {"luts": 2, "images_per_s": 4}, {"luts": 3, "images_per_s": 9}]
    assert pareto(pts) == [pts[0], pts[2]]
