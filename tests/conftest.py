"""Shared test set-up: a fixed key and the path of the official dataset files."""

from __future__ import annotations

import os
import pathlib
import sys

# Some tests ask for bit-identical runs. On a GPU, XLA may pick convolution algorithms by
# timing and sum with atomics, so two runs can differ in the last bits (seen on an H100:
# test_two_runs_are_bit_identical_with_dropout); this is JAX's switch for deterministic
# GPU kernels, read when the backend starts. CPU runs are deterministic either way.
os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_gpu_deterministic_ops=true").strip()

import jax  # noqa: E402
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))  # the PyTorch twins of the course models

# The tests check the maths against NumPy and PyTorch in float32. On a GPU, JAX's default
# precision lets matmuls and convolutions run in TF32 (a 10-bit mantissa: ~1e-3 relative
# error, seen on an H100); there the tests ask for full float32. On CPU this changes nothing.
jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture
def key():
    return jax.random.key(0)
