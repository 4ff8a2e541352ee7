import os

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIXTURES = os.path.normpath(os.path.join(REPO, "..", "shared", "fixtures", "official"))


def fixture_path(name: str) -> str:
    p = os.path.join(FIXTURES, name)
    if not os.path.exists(p):
        pytest.skip(f"official fixture {p} not available (shared/ must sit beside the repository)")
    return p


@pytest.fixture(params=["small_t1", "small_t4"])
def official(request):
    """(checkpoint path, npz data) of each official fixture."""
    ck = fixture_path(request.param + ".pth")
    data = np.load(fixture_path(request.param + ".npz"))
    return ck, data


def run_cli(argv, capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from spikegate.cli import main

    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse errors
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``make demo``'s entry point on a reduced sample (3 held-out digits), run once per test run.
    Without the model bigger than the chip (``--sdram-model ''``): its calibration, RTL run and
    third synthesis would cost make test several minutes; the verbs it runs are tested on their own
    (tests/test_external_tiling.py: the MNIST build, rtl_tests/test_external_rtl.py: RTL with
    SDRAM weights), and its report section in tests/test_external_tiling.py.

    Tests that use it belong to the xdist group ``demo`` so that one worker runs them all; in case
    the grouping does not hold (pytest-xdist's loadgroup rewrites node ids, which pytest 9 ignores),
    the run is also shared between workers through a lock file in their common temporary folder:
    the first worker runs the demo, the others wait and read its result.
    Returns ``(out_dir, completed process)``.
    """
    import json
    import subprocess
    import sys

    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "demo-shared"
    shared.mkdir(exist_ok=True)
    out, result = shared / "demo_out", shared / "result.json"
    with FileLock(str(shared) + ".lock"):
        if not result.exists():
            proc = subprocess.run([sys.executable, "-m", "spikegate.demo", "--out", str(out), "--samples", "3",
                                   "--sdram-model", ""],
                                  capture_output=True, text=True, cwd=REPO)
            result.write_text(json.dumps({"returncode": proc.returncode, "stdout": proc.stdout,
                                          "stderr": proc.stderr}))
    r = json.loads(result.read_text())
    return out, subprocess.CompletedProcess([], r["returncode"], r["stdout"], r["stderr"])
