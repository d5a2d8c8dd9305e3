"""A persistent compilation cache, on by default: the second run of a script starts at once.

Compiling a course model's train step takes XLA 0.5-2.5 s on a CPU (PyTorch, which
does not compile, takes its first step in 0.05 s). JAX can keep compiled programs on
disk and load them the next time the same program is traced with the same shapes and
flags; for ``FashionCNN`` that turns a 2.0 s first step into 0.3 s
(benchmarks/README.md). :mod:`jaxdl` switches the cache on when it is imported.

* ``JAXDL_CACHE_DIR`` chooses the folder (default ``~/.cache/jaxdl/xla``);
* ``JAXDL_CACHE_DIR=off`` leaves JAX's settings alone, as does a cache folder the user
  has already given JAX (``jax.config.update("jax_compilation_cache_dir", ...)`` or
  ``JAX_COMPILATION_CACHE_DIR``).
"""

from __future__ import annotations

import os
import pathlib

import jax

DEFAULT_DIR = pathlib.Path("~/.cache/jaxdl/xla")
MIN_COMPILE_SECONDS = 0.1
"""Programs that compile faster than this are not worth a file (JAX's default is 1 s,
which would skip most course models on a GPU)."""


def enable(directory: str | os.PathLike | None = None) -> pathlib.Path | None:
    """Keep compiled programs in ``directory`` (default: ``$JAXDL_CACHE_DIR`` or
    ``~/.cache/jaxdl/xla``). Returns the folder in use, or ``None`` when the cache was
    left off (``JAXDL_CACHE_DIR=off``) or the user had configured JAX's own."""
    setting = os.environ.get("JAXDL_CACHE_DIR", "")
    if directory is None:
        if setting.lower() in ("off", "0", "false", "none") or jax.config.jax_compilation_cache_dir:
            return None
        directory = setting or DEFAULT_DIR
    path = pathlib.Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache rather than fail
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path
