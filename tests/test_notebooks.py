"""Every notebook in notebooks/ executes top to bottom in its small (test) setting."""


import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
READ_DATASETS = {"04_computer_vision", "05_convolutions", "06_autoencoder", "07_custom_datasets"}


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.data) if p.stem in READ_DATASETS else p
                                  for p in NOTEBOOKS], ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("JAXDL_FULL", "0")  # the data come from $JAXDL_DATA_DIR, as a user's would
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert any("image/png" in o.get("data", {}) for cell in notebook.cells for o in cell.get("outputs", []))
