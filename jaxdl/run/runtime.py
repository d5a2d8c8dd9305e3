"""The process-wide settings that help a training run, made by one explicit call.

``import jaxdl`` changes nothing outside jaxdl: a library is a guest in its user's
process. The entry scripts (``experiments/``, the ``jaxdl`` command, ``benchmarks/``)
call :func:`setup` first thing, as you may at the top of your own training script::

    import jaxdl
    jaxdl.run.runtime.setup()        # before JAX's first computation

It makes three settings, each of which can be left out:

* ``compilation_cache`` -- JAX's persistent compilation cache in ``cache_dir`` (default
  ``$JAXDL_CACHE_DIR`` or ``~/.cache/jaxdl/xla``), capped at ``cache_max_bytes``: a
  second run of a script loads its compiled steps instead of compiling them again.
  Left alone when the user has configured JAX's own cache or set
  ``JAXDL_CACHE_DIR=off``.
* ``keep_freed_memory`` -- on Linux with glibc, ``malloc`` keeps the blocks a CPU
  step frees for the next step (no ``mmap`` for big blocks, a 1 GiB trim threshold)
  instead of returning them to the kernel, which would fault them in again, zeroed,
  every step. ``JAXDL_HOST_MALLOC=system`` leaves glibc alone.
* ``sync_cpu_dispatch`` -- XLA:CPU runs a program in the calling thread instead of a
  worker thread (``jax_cpu_enable_async_dispatch = False``), so its temporaries come
  from the heap the previous setting keeps; the Python loop then waits for each CPU
  step, which costs only the host work that could have overlapped it. Only on a CPU
  backend; left alone when ``JAX_CPU_ENABLE_ASYNC_DISPATCH`` is set.

The last two only act before JAX's first computation (JAX makes its CPU client then).
Why they exist and what they are worth: ``docs/performance.md``, "Host memory".
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import pathlib
import platform

import jax

DEFAULT_CACHE_DIR = pathlib.Path("~/.cache/jaxdl/xla")
DEFAULT_CACHE_MAX_BYTES = 2 * 2**30
"""The cache's cap: JAX evicts the least recently used programs beyond it."""

MIN_COMPILE_SECONDS = 0.1
"""Programs that compile faster than this are not worth a file (JAX's default is 1 s,
which would skip most course models on a GPU)."""

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

TRIM_THRESHOLD_BYTES = 1 << 30
"""Freed memory at the top of the heap goes back to the kernel only beyond this (1 GiB)."""


@dataclasses.dataclass(frozen=True)
class Settings:
    """What :func:`setup` did: the cache folder in use (or ``None``), and whether the
    malloc and dispatch settings are in force."""

    compilation_cache: pathlib.Path | None
    keep_freed_memory: bool
    sync_cpu_dispatch: bool


def setup(*, compilation_cache: bool = True, cache_dir: str | os.PathLike | None = None,
          cache_max_bytes: int = DEFAULT_CACHE_MAX_BYTES, keep_freed_memory: bool = True,
          sync_cpu_dispatch: bool = True) -> Settings:
    """Make the settings of the module docstring; each keyword turns one off. Safe to
    call more than once."""
    cache = enable_compilation_cache(cache_dir, cache_max_bytes) if compilation_cache else None
    memory = keep_freed_host_memory() if keep_freed_memory else False
    dispatch = run_cpu_programs_in_calling_thread() if sync_cpu_dispatch else False
    return Settings(cache, memory, dispatch)


def enable_compilation_cache(directory: str | os.PathLike | None = None,
                             max_bytes: int = DEFAULT_CACHE_MAX_BYTES) -> pathlib.Path | None:
    """Keep compiled programs in ``directory`` (default: ``$JAXDL_CACHE_DIR`` or
    ``~/.cache/jaxdl/xla``), at most ``max_bytes`` of them. Returns the folder in use, or
    ``None`` when the cache was left off (``JAXDL_CACHE_DIR=off``, a folder the user gave
    JAX already, or a folder that cannot be made)."""
    setting = os.environ.get("JAXDL_CACHE_DIR", "")
    if directory is None:
        if setting.lower() in ("off", "0", "false", "none") or jax.config.jax_compilation_cache_dir:
            return None
        directory = setting or DEFAULT_CACHE_DIR
    path = pathlib.Path(directory).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: run without the cache rather than fail
        return None
    if max_bytes > 0:
        _give_every_entry_an_access_time(path)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_compilation_cache_max_size", int(max_bytes))
    return path


def _give_every_entry_an_access_time(path: pathlib.Path) -> None:
    """With a size cap JAX keeps each entry's last use in a ``KEY-atime`` file beside its
    ``KEY-cache``; one entry without it (written by a process with no cap, or cut short by
    a kill) makes every later write fail in the JAX releases before jax-ml/jax#39880 was
    fixed. Give such an entry the oldest time, so that it is the first to go."""
    try:
        for entry in path.glob("*-cache"):
            atime = entry.with_name(entry.name[: -len("-cache")] + "-atime")
            if not atime.exists():
                atime.write_bytes((0).to_bytes(8, "little"))
    except OSError:
        pass  # a cache we cannot tidy still reads; JAX warns about writes it cannot make


def on_glibc() -> bool:
    """Whether this process runs on Linux with glibc, whose ``malloc`` the settings are for."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


_malloc_set = False


def keep_freed_host_memory() -> bool:
    """glibc's ``malloc`` keeps freed blocks in its main heap for the next step. Returns
    whether the setting is in force: ``False`` with ``JAXDL_HOST_MALLOC=system`` or off
    Linux with glibc."""
    global _malloc_set
    if _malloc_set:
        return True
    if os.environ.get("JAXDL_HOST_MALLOC", "").lower() == "system" or not on_glibc():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    _malloc_set = all(libc.mallopt(parameter, value) == 1
                      for parameter, value in ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)))
    return _malloc_set


def run_cpu_programs_in_calling_thread() -> bool:
    """XLA:CPU runs each program in the thread that calls it (with the malloc setting, its
    temporaries then come from the main heap). Returns whether the setting is in force;
    ``JAX_CPU_ENABLE_ASYNC_DISPATCH`` in the environment leaves JAX's own choice."""
    if "JAX_CPU_ENABLE_ASYNC_DISPATCH" in os.environ:
        return not jax.config.values["jax_cpu_enable_async_dispatch"]
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return True
