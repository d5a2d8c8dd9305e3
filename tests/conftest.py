"""Shared test set-up: a fixed key and the path of the official dataset files."""

from __future__ import annotations

import pathlib
import sys

import jax
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "benchmarks"))  # the PyTorch twins of the course models


@pytest.fixture
def key():
    return jax.random.key(0)
