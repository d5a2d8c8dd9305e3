"""Where jaxdl lives and installs from: the one place the notebooks' Colab cells, the
book's "Open in Colab" links and the install hints in error messages are made from.

``python3 -m jaxdl.support.project`` writes :func:`colab_cell` into the first code cell of every
notebook in ``notebooks/`` (a test checks that they agree with this file).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import sys

DISTRIBUTION = "jaxdl-course"
"""jaxdl's distribution name (``pip install jaxdl-course``; the import name is ``jaxdl``)."""

INSTALL_FROM: str | None = None
"""What ``pip install`` is given to install jaxdl where it is not installed yet (Google
Colab): :data:`DISTRIBUTION` once it is published on PyPI, or the git URL of the
project's public repository (``git+https://...``). ``None``: the project has no public
home yet, and the notebooks' Colab cell asks the user to set one."""

REPOSITORY: str | None = None
"""The project's public repository on GitHub, as ``"owner/name"``; the book links each
notebook page to Google Colab through it. ``None``: no public home yet, and the book has
no Colab links. ``JAXDL_REPOSITORY=owner/name`` gives one for a single build (see
:func:`repository`)."""

BRANCH = "main"
"""The branch of :data:`REPOSITORY` whose notebooks the Colab links open."""

COLAB = "https://colab.research.google.com"
"""Google Colab, which opens a notebook of a GitHub repository at ``COLAB/github/...``."""

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the checkout: jaxdl/support/project.py

_COLAB_CELL = '''\
# In Google Colab: install jaxdl, keeping Colab's own jax and its CUDA plugin. Elsewhere: nothing.
import sys
if "google.colab" in sys.modules:
    JAXDL_INSTALL = {install!r}  # what pip installs jaxdl from (jaxdl/support/project.py: INSTALL_FROM)
    if JAXDL_INSTALL is None:
        raise RuntimeError("this copy of the notebook does not say where to install jaxdl from: set "
                           "JAXDL_INSTALL above to the project's PyPI name or a git+https:// URL of its "
                           "repository, or upload a wheel of jaxdl and give its path")
    import subprocess
    from importlib.metadata import version
    keep = [f"{{name}}=={{version(name)}}" for name in ("jax", "jaxlib")]  # pip may not replace them
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", JAXDL_INSTALL, *keep], check=True)'''


def repository() -> str | None:
    """The public repository (``"owner/name"``) the book links to: ``$JAXDL_REPOSITORY``
    where set (an empty value means none), else :data:`REPOSITORY`."""
    value = os.environ.get("JAXDL_REPOSITORY", REPOSITORY)
    if not value:
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9_.-]+", value):
        raise ValueError(f"the project's repository must be written owner/name (as in "
                         f"github.com/owner/name), not {value!r}")
    return value


def colab_url(notebook: str, home: str | None = None) -> str | None:
    """The Google Colab address that opens ``notebook`` (a path in the repository, e.g.
    ``"notebooks/05_convolutions.ipynb"``) from ``home`` (default :func:`repository`) at
    :data:`BRANCH`; ``None`` where the project has no public home."""
    home = repository() if home is None else home
    if home is None:
        return None
    return f"{COLAB}/github/{home}/blob/{BRANCH}/{notebook}"


COLAB_CELL_TAG = "hide-input"
"""The Colab cell's tag: the book shows it folded (myst-nb), Colab and Jupyter ignore it."""


def colab_cell(install: str | None = None) -> str:
    """The first code cell of every notebook: in Colab, ``pip install`` jaxdl from
    ``install`` (default :data:`INSTALL_FROM`) without replacing Colab's jax; elsewhere nothing."""
    return _COLAB_CELL.format(install=INSTALL_FROM if install is None else install)


def write_colab_cells(folder: pathlib.Path = ROOT / "notebooks") -> list[pathlib.Path]:
    """Make the first code cell of each notebook in ``folder`` :func:`colab_cell`
    (inserted before the first code cell where there is none yet), tagged ``hide-input``
    so that the book folds it; returns the notebooks changed."""
    changed = []
    for path in sorted(folder.glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        cells = notebook["cells"]
        first = next(i for i, cell in enumerate(cells) if cell["cell_type"] == "code")
        source = colab_cell().splitlines(keepends=True)
        if not "".join(cells[first]["source"]).startswith("# In Google Colab: install jaxdl"):
            cells.insert(first, {"cell_type": "code", "execution_count": None, "id": f"colab-install-{first}",
                                 "metadata": {}, "outputs": [], "source": source})
        cell = cells[first]
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "".join(cell["source"]) == colab_cell() and COLAB_CELL_TAG in tags:
            continue
        cell["source"] = source
        if COLAB_CELL_TAG not in tags:
            tags.append(COLAB_CELL_TAG)
        path.write_text(json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        changed.append(path)
    return changed


if __name__ == "__main__":
    for path in write_colab_cells():
        print(f"wrote the Colab cell of {path.relative_to(ROOT)}")
    sys.exit(0)
