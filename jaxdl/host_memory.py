"""Host memory: keep the blocks XLA:CPU frees for its next step instead of giving them back.

Not a lesson of the course, but the reason a CPU epoch of the bigger course models runs
at the speed it does. XLA:CPU allocates a compiled program's temporaries -- every
activation and gradient of a train step -- with ``malloc`` at each run and frees them at
the end. glibc serves a block over its mmap threshold (at most 32 MB) from fresh pages
that it returns to the kernel on ``free``, and so does a worker thread's arena whenever
its heap empties; the next step touches them again and the kernel faults them back in,
4 KiB at a time, zeroed. ``MNISTBatchNormCNN``'s step at batch 120 did that for 164 MB
(40,000 page faults) every step: 221-232 ms a step on the 2-core CPU of
``benchmarks/README.md``, 175 ms without the faults. PyTorch, whose tensors are freed and
reallocated one by one, mostly stays under the threshold.

:func:`keep_freed_memory` makes two settings, both needed:

* glibc's ``malloc`` (``mallopt``): no ``mmap`` for big blocks and a trim threshold of
  :data:`TRIM_THRESHOLD_BYTES`, so that a freed block stays in the main heap and the
  next step reuses its pages;
* JAX's ``jax_cpu_enable_async_dispatch = False``: XLA:CPU runs a program in the thread
  that calls it (its threads still share the work inside) instead of handing it to a
  worker thread, whose own arena would give the pages back whatever the first setting
  says. The Python loop then waits for each step, which on a CPU only costs the host
  work that could have overlapped a step (microseconds), and a step never waits in a
  queue holding temporaries of its own.

:mod:`jaxdl` calls it when imported. Measured (``train_speed.py``'s epoch, 12,000
examples, images/s): ``MNISTBatchNormCNN`` at 120 677 with both settings against 606 with
one ``malloc`` arena for all threads instead (the other way to keep the worker's pages,
which makes every allocation of every thread take one lock: the full-batch
``CircleModelV0`` 10.7M -> 4.5M images/s, where these settings give 9.6M).

* ``JAXDL_HOST_MALLOC=system`` leaves both alone, as does ``JAX_CPU_ENABLE_ASYNC_DISPATCH``
  set in the environment for the second;
* they only act on Linux with glibc, and only before JAX's first computation (JAX makes
  its CPU client then): import :mod:`jaxdl` first (``import jax`` alone starts nothing).
"""

from __future__ import annotations

import ctypes
import os
import platform

import jax

# mallopt parameters, from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_MMAP_MAX = -4

TRIM_THRESHOLD_BYTES = 1 << 30
"""Freed memory at the top of the heap goes back to the kernel only beyond this (1 GiB)."""

_applied = False


def on_glibc() -> bool:
    """Whether this process runs on Linux with glibc, whose ``malloc`` the settings are for."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def keep_freed_memory() -> bool:
    """Make the settings of the module docstring: freed blocks stay in glibc's main heap,
    and XLA:CPU runs programs in the calling thread, which allocates from that heap.

    Returns ``True`` once they are in force (also on later calls), ``False`` where they
    were not made: ``JAXDL_HOST_MALLOC=system``, or not Linux with glibc.
    """
    global _applied
    if _applied:
        return True
    if os.environ.get("JAXDL_HOST_MALLOC", "").lower() == "system":
        return False
    if not on_glibc():
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    if not all(libc.mallopt(parameter, value) == 1
               for parameter, value in ((M_MMAP_MAX, 0), (M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))):
        return False
    if "JAX_CPU_ENABLE_ASYNC_DISPATCH" not in os.environ:
        jax.config.update("jax_cpu_enable_async_dispatch", False)
    _applied = True
    return True
