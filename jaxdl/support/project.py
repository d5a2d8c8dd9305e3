"""Where jaxdl is installed from: the one setting the notebooks' Colab cells and the
install hints in error messages are made from.

``python3 -m jaxdl.support.project`` writes :func:`colab_cell` into the first code cell of every
notebook in ``notebooks/`` (a test checks that they agree with this file).
"""

from __future__ import annotations

import json
import pathlib
import sys

DISTRIBUTION = "jaxdl-course"
"""jaxdl's distribution name (``pip install jaxdl-course``; the import name is ``jaxdl``)."""

INSTALL_FROM: str | None = None
"""What ``pip install`` is given to install jaxdl where it is not installed yet (Google
Colab): :data:`DISTRIBUTION` once it is published on PyPI, or the git URL of the
project's public repository (``git+https://...``). ``None``: the project has no public
home yet, and the notebooks' Colab cell asks the user to set one."""

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


def colab_cell(install: str | None = None) -> str:
    """The first code cell of every notebook: in Colab, ``pip install`` jaxdl from
    ``install`` (default :data:`INSTALL_FROM`) without replacing Colab's jax; elsewhere nothing."""
    return _COLAB_CELL.format(install=INSTALL_FROM if install is None else install)


def write_colab_cells(folder: pathlib.Path = ROOT / "notebooks") -> list[pathlib.Path]:
    """Make the first code cell of each notebook in ``folder`` :func:`colab_cell`
    (inserted before the first code cell where there is none yet); returns the
    notebooks changed."""
    changed = []
    for path in sorted(folder.glob("*.ipynb")):
        notebook = json.loads(path.read_text())
        cells = notebook["cells"]
        first = next(i for i, cell in enumerate(cells) if cell["cell_type"] == "code")
        source = colab_cell().splitlines(keepends=True)
        if "".join(cells[first]["source"]).startswith("# In Google Colab: install jaxdl"):
            if "".join(cells[first]["source"]) == colab_cell():
                continue
            cells[first]["source"] = source
        else:
            cells.insert(first, {"cell_type": "code", "execution_count": None, "id": f"colab-install-{first}",
                                 "metadata": {}, "outputs": [], "source": source})
        path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        changed.append(path)
    return changed


if __name__ == "__main__":
    for path in write_colab_cells():
        print(f"wrote the Colab cell of {path.relative_to(ROOT)}")
    sys.exit(0)
