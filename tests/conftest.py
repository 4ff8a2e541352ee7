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
    from spikeforge.cli import main

    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse errors
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """``make demo``'s entry point on a reduced sample (3 held-out digits), run once per session.

    Tests that use it belong to the xdist group ``demo`` so that they share this one run.
    Returns ``(out_dir, completed process)``.
    """
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("demo") / "demo_out"
    proc = subprocess.run([sys.executable, "-m", "spikeforge.demo", "--out", str(out), "--samples", "3"],
                          capture_output=True, text=True, cwd=REPO)
    return out, proc
