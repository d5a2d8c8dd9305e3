"""Shared test set-up: a fixed key, and the official dataset files from ``JAXDL_DATA_DIR``.

Tests that read MNIST or Fashion-MNIST carry the ``data`` marker and take the folder
from ``JAXDL_DATA_DIR`` (a folder with ``mnist/`` and ``fashion_mnist/``, each holding
the four official files). Without it they are skipped, and say why; with
``JAXDL_REQUIRE_DATA=1`` (as CI runs) a missing folder stops the run instead, so that no
data test is skipped unnoticed.
"""

from __future__ import annotations

import os
import pathlib
import tempfile

# Some tests ask for bit-identical runs. On a GPU, XLA may pick convolution algorithms by
# timing and sum with atomics, so two runs can differ in the last bits; this is JAX's
# switch for deterministic GPU kernels, read when the backend starts. CPU runs are
# deterministic either way.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()

import jax  # noqa: E402
import pytest  # noqa: E402

from jaxdl.run import runtime  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
_data_dir = os.environ.get("JAXDL_DATA_DIR", "").strip()
SHARED_DATA = pathlib.Path(_data_dir).expanduser().resolve() if _data_dir else None
"""The folder of the official files (``$JAXDL_DATA_DIR``), or ``None``."""
if SHARED_DATA is not None:
    # Absolute for what the tests start elsewhere (notebooks run in notebooks/, scripts in
    # temporary folders): CI gives the folder relative to the checkout.
    os.environ["JAXDL_DATA_DIR"] = str(SHARED_DATA)
# Downloads never touch the user's own cache folder, nor come from a mirror set for their work.
os.environ["JAXDL_DOWNLOAD_DIR"] = tempfile.mkdtemp(prefix="jaxdl-test-downloads-")
os.environ.pop("JAXDL_DATASET_MIRROR", None)
HAVE_DATA = SHARED_DATA is not None and all(
    (SHARED_DATA / name / "train-images-idx3-ubyte.gz").is_file() for name in ("mnist", "fashion_mnist"))
NO_DATA = ("needs the official MNIST and Fashion-MNIST files: set JAXDL_DATA_DIR to a folder holding "
           "mnist/ and fashion_mnist/ (" + (f"{SHARED_DATA} does not" if SHARED_DATA else "it is not set") + ")")

# The tests check the maths against NumPy and PyTorch in float32. On a GPU, JAX's default
# precision lets matmuls and convolutions run in TF32 (a 10-bit mantissa: ~1e-3 relative
# error); there the tests ask for full float32. On CPU this changes nothing.
jax.config.update("jax_default_matmul_precision", "highest")

# The test run is an entry script like any other: it makes the settings that speed up
# training (tests of runtime.setup itself run in fresh processes of their own).
runtime.setup()


def pytest_configure(config):
    config.addinivalue_line("markers", "data: reads the official dataset files from $JAXDL_DATA_DIR")
    if os.environ.get("JAXDL_REQUIRE_DATA") == "1" and not HAVE_DATA:
        raise pytest.UsageError(f"JAXDL_REQUIRE_DATA=1, but the data tests cannot run: {NO_DATA}")


def pytest_runtest_setup(item):
    if item.get_closest_marker("data") is not None and not HAVE_DATA:
        pytest.skip(NO_DATA)


@pytest.fixture
def key():
    return jax.random.key(0)
