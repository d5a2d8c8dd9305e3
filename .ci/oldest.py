"""CI's second environment: the lowest versions jaxdl declares, in a virtual environment
of their own, running the core tests.

Reads the lower bounds of ``pyproject.toml`` for the libraries whose API jaxdl leans on
(PINNED), installs jaxdl with exactly those versions into ``$JAXDL_OLDEST_VENV``
(default: a folder under the system's temporary directory), prints what it installed,
and runs CORE_TESTS there with the arguments given to this script passed to pytest.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import tempfile
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PINNED = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "tensorflow-datasets", "grain", "safetensors",
          "ipywidgets")
CORE_TESTS = ("tests/test_models.py", "tests/test_layers.py", "tests/test_conv.py", "tests/test_fastpath.py",
              "tests/test_train.py", "tests/test_checkpoint.py", "tests/test_precision.py", "tests/test_data.py",
              "tests/test_download.py", "tests/test_layout.py", "tests/test_nnx.py",
              "tests/test_interop.py",
              # what depends on Flax NNX's and ipywidgets' APIs (Colab's ipywidgets is the oldest)
              "tests/test_exercises.py::test_09_circle_model_and_dropout", "tests/test_exercises.py::test_09_seconds",
              "tests/test_explore.py::test_the_explorer_redraws_on_every_control_and_shows_bad_input_as_a_message",
              "tests/test_explore.py::test_the_feature_map_explorer")


def lower_bounds() -> dict[str, str]:
    """``{name: version}`` of every ``name>=version`` among the base dependencies."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    bounds = {}
    for requirement in project["dependencies"]:
        found = re.match(r"^([A-Za-z0-9_.-]+)\s*>=\s*([0-9][^,;\s]*)", requirement)
        if found:
            bounds[found.group(1).lower()] = found.group(2)
    missing = sorted(set(PINNED) - set(bounds))
    if missing:
        raise SystemExit(f"pyproject.toml declares no lower bound for {missing}")
    return {name: bounds[name] for name in PINNED}


def main() -> int:
    venv = pathlib.Path(os.environ.get("JAXDL_OLDEST_VENV") or pathlib.Path(tempfile.gettempdir()) / "jaxdl-oldest")
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    constraints = venv / "oldest-constraints.txt"
    constraints.write_text("".join(f"{name}=={version}\n" for name, version in lower_bounds().items()))
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]", "-c", str(constraints)],
                   check=True)
    subprocess.run([str(python), str(ROOT / ".ci" / "versions.py"), "oldest declared versions"], check=True)
    return subprocess.run([str(python), "-m", "pytest", *CORE_TESTS, *sys.argv[1:]], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main())
