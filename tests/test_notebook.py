"""examples/quickstart.ipynb runs top to bottom, as a researcher would run it in Jupyter.

nbclient executes it on an ipykernel of this venv (the pinned test extras) in a scratch folder, so
it exercises the installed Python API from outside the repository: the embedded model, quantize,
the golden model, compile for ``sim``, verify on Verilator, the report. A cell that raises fails
the test with the cell's error. Cost: about 40 s of CPU, most of it the Verilator build.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")       # the test extras; under CI=true a skip fails the run
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "quickstart.ipynb"


def test_the_committed_notebook_is_clean():
    """Stored without outputs, so its diffs show code changes only (and no stale results)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)


@pytest.mark.slow
def test_quickstart_notebook_runs(tmp_path):
    work = tmp_path / "nb"
    work.mkdir()
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    nb = nbformat.read(work / NOTEBOOK.name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                     resources={"metadata": {"path": str(work)}})
    client.execute()          # raises CellExecutionError naming the failing cell
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "bit exact: True" in text
    assert (work / "build-sim" / "accelerator.v").is_file()
    assert (work / "report" / "report.html").is_file()
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert images, "the golden-model cell shows no figure"
