"""Every notebook in notebooks/ executes top to bottom in its small (test) setting, and
starts with the cell that installs jaxdl in Colab.

``JAXDL_SAVE_NOTEBOOKS=1`` saves each executed notebook in place, with its new outputs and
a record of the run (time, machine, versions) that the book shows on its page."""

import datetime
import os
import platform
import re
import subprocess
import sys
import time
import types
from importlib.metadata import version

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT
from jaxdl.exercises import exercises
from jaxdl.support import project

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
RECORDED_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy")
READ_DATASETS = {"04_computer_vision", "05_convolutions", "06_autoencoder", "07_custom_datasets", "08_learner",
                 "09_nnx"}


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.data) if p.stem in READ_DATASETS else p
                                  for p in NOTEBOOKS], ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, monkeypatch):
    monkeypatch.setenv("JAXDL_FULL", "0")  # the data come from $JAXDL_DATA_DIR, as a user's would
    monkeypatch.setenv("JAXDL_OFFLINE", "1")  # notebook 07 then says so and takes its stand-in, at once
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=600, kernel_name="python3", record_timing=False, store_widget_state=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - start
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    checked = [line for cell in notebook.cells if "hide-cell" in cell.metadata.get("tags", [])
               for o in cell.get("outputs", []) if o.get("output_type") == "stream"
               for line in o.get("text", "").splitlines() if re.match(r"\d\d\.\d (passed|not yet): ", line)]
    asked = [name for name in exercises() if name.startswith(path.stem[:2] + ".")]
    assert len(checked) == len(asked) and all(" passed: " in line for line in checked), checked  # solutions pass
    assert any("image/png" in o.get("data", {}) for cell in notebook.cells for o in cell.get("outputs", []))
    if os.environ.get("JAXDL_SAVE_NOTEBOOKS") == "1":
        notebook.metadata["jaxdl"] = {"executed": execution_record(seconds)}
        nbformat.write(notebook, path)


def execution_record(seconds: float) -> dict:
    """What the book says of a saved notebook's outputs: when, how fast, on what, with what."""
    import jax

    device = jax.devices()[0]
    machine = f"{os.cpu_count()}-core CPU" if device.platform == "cpu" else f"{device.device_kind}"
    return {"date": datetime.date.today().isoformat(), "seconds": round(seconds, 1), "machine": machine,
            "python": platform.python_version(),
            "packages": {name: version(name) for name in RECORDED_PACKAGES}}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_first_code_cell_is_the_colab_install_cell(path):
    notebook = nbformat.read(path, as_version=4)
    first = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert first.source == project.colab_cell(), "run `python3 -m jaxdl.support.project` to write it"
    assert project.COLAB_CELL_TAG in first.metadata.get("tags", []), "run `python3 -m jaxdl.support.project`"


def run_colab_cell(source, monkeypatch):
    """Run a Colab cell as if in Colab, with pip's command captured instead of run."""
    commands = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda command, check: commands.append(command))
    exec(compile(source, "<colab cell>", "exec"), {})
    return commands


def test_the_colab_cell_installs_only_in_colab_and_keeps_colabs_jax(monkeypatch):
    assert "google.colab" not in sys.modules
    exec(compile(project.colab_cell("jaxdl-course"), "<cell>", "exec"), {})  # off Colab: nothing happens
    [command] = run_colab_cell(project.colab_cell("jaxdl-course"), monkeypatch)
    assert command[1:5] == ["-m", "pip", "install", "-q"] and command[5] == "jaxdl-course"
    assert command[6:] == [f"jax=={version('jax')}", f"jaxlib=={version('jaxlib')}"]
    if project.INSTALL_FROM is None:  # no public home yet: the cell says what to set
        with pytest.raises(RuntimeError, match="set JAXDL_INSTALL above"):
            run_colab_cell(project.colab_cell(), monkeypatch)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_each_notebook_ends_with_exercises_and_their_hidden_solutions(path):
    notebook = nbformat.read(path, as_version=4)
    exercises = [i for i, cell in enumerate(notebook.cells)
                 if cell.cell_type == "markdown" and cell.source.startswith("## Exercises")]
    assert exercises, "no Exercises section"
    answers, *solutions = notebook.cells[exercises[-1] + 1:]
    assert answers.cell_type == "code" and not answers.metadata.get("jupyter", {}).get("source_hidden")
    assert "hide-cell" not in answers.metadata.get("tags", []), "the cell a learner writes in is shown"
    assert solutions and all(cell.cell_type == "code" for cell in solutions)
    assert all(cell.metadata.get("jupyter", {}).get("source_hidden") for cell in solutions)
    assert all("hide-cell" in cell.metadata.get("tags", []) for cell in solutions), "the book folds them by this tag"
    assert all(cell.outputs for cell in solutions), "saved without the solutions' outputs"


def test_the_colab_links_come_from_the_projects_one_home(monkeypatch):
    monkeypatch.setattr(project, "REPOSITORY", None)
    monkeypatch.delenv("JAXDL_REPOSITORY", raising=False)
    assert project.repository() is None and project.colab_url("notebooks/05_convolutions.ipynb") is None
    monkeypatch.setenv("JAXDL_REPOSITORY", "someone/jaxdl")  # a home given for one build
    assert project.colab_url("notebooks/05_convolutions.ipynb") == (
        "https://colab.research.google.com/github/someone/jaxdl/blob/main/notebooks/05_convolutions.ipynb")
    monkeypatch.setenv("JAXDL_REPOSITORY", "")  # set empty: no home, whatever the file says
    monkeypatch.setattr(project, "REPOSITORY", "owner/name")
    assert project.repository() is None
    monkeypatch.setenv("JAXDL_REPOSITORY", "https://github.com/someone/jaxdl")
    with pytest.raises(ValueError, match="owner/name"):
        project.repository()
